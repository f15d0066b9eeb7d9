"""Adapters that let other training libraries use rlhub environments (``rlhub.integrations.trl`` for TRL)."""
