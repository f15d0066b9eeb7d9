"""Maintainer tools, run from a clone of rlhub (``python -m tools.<name>``); not part of the installed package."""
