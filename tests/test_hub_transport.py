"""The sandbox client's transport (``rlhub.hub.client.SandboxClient``): keep-alive connections over a unix socket,
replaced when the server closed them while idle, and a server that hangs or is gone mapped to the sandbox's errors.

A real uvicorn server on a unix socket stands in for the sandbox's server (no bubblewrap needed).
"""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import pytest

import rlhub
from rlhub.errors import RLHubError
from rlhub.hub import CapabilityViolation
from rlhub.hub.client import SandboxClient
from rlhub.serve.protocol import example_to_json
from rlhub.serve.server import create_app
from tests.hub_packages import FakeSandbox, unix_server

ENV_ID = "arithmetic-v1"
KEEP_ALIVE_S = 0.2


@pytest.fixture
def served(tmp_path):
    """A uvicorn server of ``ENV_ID`` on a unix socket that closes connections idle for ``KEEP_ALIVE_S``."""
    path = str(tmp_path / "env.sock")
    app = create_app(lambda: rlhub.make(ENV_ID), ENV_ID)
    with unix_server(path, app, timeout_keep_alive=KEEP_ALIVE_S) as (server, thread):
        yield SimpleNamespace(path=path, server=server, thread=thread)


def score_body(env, size: int) -> dict:
    examples = env.examples("train", limit=size)
    completions = [env.gold_completion(example) for example in examples]
    return {"completions": completions, "examples": [example_to_json(example) for example in examples]}


def test_a_connection_the_server_closed_while_idle_is_replaced(served):
    sandbox = FakeSandbox(served.path)
    client = SandboxClient(sandbox, ENV_ID)
    body = score_body(rlhub.make(ENV_ID), 3)
    assert [row["rewards"]["correct"] for row in client.call("POST", "score", body)["scores"]] == [1.0] * 3
    assert client.call("GET", "info")["env_id"] == ENV_ID
    (first,) = client._idle  # both calls went over one kept connection
    time.sleep(4 * KEEP_ALIVE_S)  # the server closes it meanwhile
    assert [row["rewards"]["correct"] for row in client.call("POST", "score", body)["scores"]] == [1.0] * 3
    (second,) = client._idle
    assert second is not first and first.sock.fileno() == -1 and not sandbox.stopped
    client.close()
    assert client._idle == [] and second.sock.fileno() == -1


def test_a_server_that_does_not_answer_in_time_is_a_cpu_violation(tmp_path):
    path = str(tmp_path / "env.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:  # accepts, reads nothing, never answers
        mute.bind(path)
        mute.listen(1)
        sandbox = FakeSandbox(path)
        client = SandboxClient(sandbox, ENV_ID)
        client.timeout = 0.3
        started = time.monotonic()
        with pytest.raises(CapabilityViolation, match=r"\(cpu\): score did not answer within 0.3 s"):
            client.call("POST", "score", {"completions": [], "examples": []})
    assert time.monotonic() - started < 10 and sandbox.stopped and client._idle == []


def test_a_server_that_is_gone_fails_as_the_sandbox_says(served):
    sandbox = FakeSandbox(served.path)
    client = SandboxClient(sandbox, ENV_ID)
    assert client.call("GET", "info")["env_id"] == ENV_ID
    served.server.should_exit = True  # the server ends (its kept connection closes with it), and nothing listens
    served.thread.join(timeout=10)
    assert not served.thread.is_alive(), "the test server did not stop"
    with pytest.raises(RLHubError, match="the env server died during score"):
        client.call("POST", "score", {"completions": [], "examples": []})
    assert sandbox.stopped


def test_sandbox_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    """A host killed with SIGKILL leaves its sandbox folder behind; the next set-up removes it by its free lock."""
    import os
    import signal
    import subprocess
    import sys

    from rlhub.hub.sandbox import new_folder, remove_folder, remove_stale_folders

    child = (
        "import os, signal, sys\n"
        "from rlhub.hub.sandbox import new_folder\n"
        f"print(new_folder({str(tmp_path)!r}), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    dead = proc.stdout.strip()
    young = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60).stdout.strip()
    live = new_folder(str(tmp_path))  # this process holds its lock
    old = time.time() - 3600
    for folder in (dead, live):
        os.utime(folder, (old, old))
    assert remove_stale_folders(str(tmp_path)) == [dead]
    assert not os.path.exists(dead) and os.path.isdir(live) and os.path.isdir(young)  # young: maybe not locked yet
    remove_folder(live)
    assert not os.path.exists(live)


def test_the_interpreters_own_site_packages_is_bound_when_there_is_no_virtualenv(tmp_path, monkeypatch):
    """Without a virtualenv, rlhub's dependencies (yaml...) live under sys.base_prefix; a sandbox without them
    failed to load any package ("No module named 'yaml'") when the README's test command ran on a system Python."""
    import importlib.metadata
    import os
    import sys

    from rlhub.hub.sandbox import _site_dirs

    site = tmp_path / "lib" / "python3" / "site-packages"
    (site / "pyyaml-6.0.dist-info").mkdir(parents=True)
    stdlib = tmp_path / "lib" / "python3"  # holds no distributions: not bound
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path))
    monkeypatch.setattr(sys, "path", [str(stdlib), str(site)])
    found = _site_dirs(importlib.metadata.distribution("PyYAML"))
    assert os.path.realpath(site) in found and os.path.realpath(stdlib) not in found
