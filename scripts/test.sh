#!/usr/bin/env bash
# The test command: set up (idempotent), then the whole main suite. CI runs exactly this, then the tiers that
# need an engine: scripts/test-docker.sh (tests/docker_tier) and scripts/test-vllm.sh (tests/vllm_tier).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WANDB_MODE=offline
exec "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider --doctest-modules rewards rlhub/__init__.py rlhub/env/registry.py rlhub/evaluate.py rlhub/env/tools.py rlhub/authoring/envcard.py rlhub/authoring/measurements.py tools rlhub/plot.py rlhub/sandbox/checks.py rlhub/generation/_http.py rlhub/generation/vllm.py rlhub/resolve.py trainers/recipe.py rlhub/hub/egress.py rlhub/sandbox/_protocol.py rlhub/arithmetic.py rlhub/types.py trainers/grpo.py trainers/ppo.py trainers/rloo.py trainers/reinforce_pp.py envs/retrieval.py envs/reasoning_gym.py tests \
  --ignore=tests/docker_tier --ignore=tests/vllm_tier "$@"
