#!/usr/bin/env bash
# The main job: set up, then train recipes/quickstart.yaml on the embedded model and plot its rewards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WANDB_MODE=${WANDB_MODE:-offline}
rlhub train recipes/quickstart.yaml --overwrite "$@"
