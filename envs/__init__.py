"""rlhub environments (each module is one environment; registry.yaml lists them)."""
