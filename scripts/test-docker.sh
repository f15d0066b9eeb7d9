#!/usr/bin/env bash
# The docker tier (tests/docker_tier): install the engine if missing, start dockerd if none answers (and
# stop the one started here on exit), build the images locally (no registry is reachable; each is
# tagged by a content hash, so a second run builds nothing: the Python base here, each env's image
# by its test through rlhub.serve.container), then run the tier. Its tests fail, not
# skip, when the engine is unavailable (RLHUB_REQUIRE_DOCKER=1). Idempotent; needs root for apt and
# dockerd. Arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export DEBIAN_FRONTEND=noninteractive
started=$(date +%s)
log() { echo "test-docker: $* ($(($(date +%s) - started)) s)"; }

# 1. The engine (Debian's docker.io: dockerd, containerd, runc) and the Python whose files the image holds.
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
dpkg -s python3.11-minimal libpython3.11-stdlib >/dev/null 2>&1 || missing+=(python3.11-minimal libpython3.11-stdlib)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (apt-get)"
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. A running engine: ours only if none answers. No bridge and no iptables rules: containers get
# either no network (the sandbox) or the host's (a served env on 127.0.0.1), so the engine leaves
# the host's network configuration alone.
dockerd_pid=""
stop_dockerd() {
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    log "stopped the dockerd started here"
  fi
}
trap stop_dockerd EXIT
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  dockerd --bridge=none --iptables=false --ip-masq=false >/tmp/rlhub-dockerd.log 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 150); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || { tail -20 /tmp/rlhub-dockerd.log >&2; exit 1; }
    sleep 0.2
  done
  docker info >/dev/null 2>&1 || { echo "test-docker: dockerd did not answer in 30 s" >&2; exit 1; }
fi
log "engine $(docker version --format '{{.Server.Version}}') ready"

# 3. The images, built locally from this host's files.
RLHUB_SANDBOX_IMAGE=$("$PY" scripts/docker_images.py)
export RLHUB_SANDBOX_IMAGE
log "image $RLHUB_SANDBOX_IMAGE ready"

# 4. The docker SDK the backend talks through and the server stack (extras "docker" and "serve"), then the tier.
if ! "$PY" -c "import docker, fastapi, uvicorn, httpx" 2>/dev/null; then
  "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[docker,serve]"
fi
export RLHUB_REQUIRE_DOCKER=1 WANDB_MODE=offline
status=0
"$PY" -m pytest -q -p no:cacheprovider tests/docker_tier "$@" || status=$?
log "tier finished (pytest exit $status)"
exit $status
