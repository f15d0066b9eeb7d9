"""``python -m rlhub`` (and ``accelerate launch -m rlhub train ...``) runs the CLI."""

from rlhub.cli import main

main()
