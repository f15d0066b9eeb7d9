#!/usr/bin/env bash
# The test command: set up (idempotent), then the whole suite. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WANDB_MODE=offline
exec "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider --doctest-modules rewards rlhub/__init__.py rlhub/registry.py rlhub/evaluate.py rlhub/tools.py trainers/grpo.py trainers/rloo.py trainers/reinforce_pp.py envs/retrieval.py tests "$@"
