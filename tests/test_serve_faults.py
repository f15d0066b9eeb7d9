"""Killing a served env's server in the middle of training: bounded retries, one clear error, a usable checkpoint.

The server is a real ``rlhub serve`` process on loopback, killed with SIGKILL once the run has saved a
checkpoint; the run is then resumed against a restarted server.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from rlhub.errors import RLHubError
from rlhub.serve.client import EnvClient
from rlhub.trainers.recipe import load_recipe

KILL_AFTER_STEP = 2


def start_server(port: int) -> subprocess.Popen:
    """``python -m rlhub serve countdown-v0`` on ``port``, once its health route answers."""
    command = [sys.executable, "-m", "rlhub", "serve", "countdown-v0", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"rlhub serve did not start: {process.communicate()[1][-2000:]}")
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def recipe_for(model_dir: str, url: str, out, steps: int):
    values = {
        "model.name": model_dir,
        "env.id": "countdown-v0",
        "env.url": url,
        "algorithm.group_size": 4,
        "training.max_steps": steps,
        "training.prompts_per_step": 2,
        "training.micro_batch_size": 4,
        "training.max_new_tokens": 8,
        "training.save_every": 1,
        "training.output_dir": str(out),
        "logging.wandb": False,
    }
    return load_recipe(None, values)


@pytest.mark.slow
def test_killing_the_env_server_mid_training_fails_once_clearly_and_the_checkpoint_resumes(tiny_model_dir, tmp_path):
    from rlhub.trainers.checkpoint import latest
    from rlhub.trainers.loop import train

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/countdown-v0"
    out = tmp_path / "run"
    server = start_server(port)
    killed_at: list[float] = []

    def kill_after_a_checkpoint() -> None:
        deadline = time.monotonic() + 600
        state = out / "checkpoints" / f"step-{KILL_AFTER_STEP:06d}" / "state.json"
        while not state.is_file() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(server.pid, signal.SIGKILL)
        killed_at.append(time.monotonic())

    killer = threading.Thread(target=kill_after_a_checkpoint, daemon=True)
    killer.start()
    try:
        # The run would take 40 steps; the server dies after step 2's checkpoint.
        with pytest.raises(RLHubError) as failure:
            train(recipe_for(tiny_model_dir, url, out, steps=40), recipe_name="faults", progress=False)
        failed_at = time.monotonic()
    finally:
        killer.join(30)
        stop(server)
    # The client's retries (EnvClient's default: 3 more tries, 0.25 s backoff doubling), then one error.
    retries = EnvClient.__init__.__kwdefaults__["retries"]
    assert f"rlhub env server {url} did not answer" in str(failure.value)
    assert f"after {retries + 1} tries" in str(failure.value) and "is `rlhub serve` running there?" in str(
        failure.value
    )
    assert killed_at and failed_at - killed_at[0] < 120  # bounded: no hang on a dead server

    # The last checkpoint is complete, and the run resumes from it against a restarted server.
    checkpoint = latest(out)
    saved_step = json.loads((checkpoint / "state.json").read_text())["step"]
    assert saved_step >= KILL_AFTER_STEP and (checkpoint / "adapter" / "adapter_model.safetensors").is_file()
    server = start_server(port)
    try:
        result = train(recipe_for(tiny_model_dir, url, out, steps=saved_step + 1), resume=True, progress=False)
    finally:
        stop(server)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "reward" in r]
    assert steps[-1] == saved_step + 1 and result.summary["checkpoint"].endswith(f"step-{saved_step + 1:06d}")
