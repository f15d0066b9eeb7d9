"""``python -m rlhub.cli``: the same command line as ``rlhub``."""

from rlhub.cli import main

main()
