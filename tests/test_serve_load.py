"""Load and faults against a real ``rlhub serve`` process on loopback: many concurrent clients, then a kill.

The p99 latency is printed, not asserted: timings belong in bench/, and this machine is shared.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

import rlhub
from rlhub.errors import RLHubError

CLIENTS = 32
CALLS_PER_CLIENT = 200


@pytest.fixture
def server_process():
    """``python -m rlhub serve countdown-v0`` on a free loopback port; yields its env URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "rlhub", "serve", "countdown-v0", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"rlhub serve did not start: {process.communicate()[1][-2000:]}")
        time.sleep(0.1)
    yield process, f"http://127.0.0.1:{port}/countdown-v0"
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_32_clients_200_score_calls_each_without_error(server_process, capsys):
    _, url = server_process
    local = rlhub.make("countdown-v0")
    examples = local.examples("train", limit=CLIENTS)
    expected = [local.score(local.gold_completion(ex), ex) for ex in examples]
    latencies, failures = [], []
    lock = threading.Lock()

    def client(index: int) -> None:
        remote = rlhub.make(url)
        example, completion = examples[index], local.gold_completion(examples[index])
        mine = []
        try:
            for _ in range(CALLS_PER_CLIENT):
                started = time.perf_counter()
                score = remote.score(completion, example)
                mine.append(time.perf_counter() - started)
                if score != expected[index]:
                    raise AssertionError(f"client {index} got {score}, expected {expected[index]}")
        except Exception as exc:  # collected and asserted below
            failures.append(exc)
        finally:
            remote.close()
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    elapsed = time.perf_counter() - started
    if failures:  # the server's log says why (a reward that raised logs its exception there)
        process = server_process[0]
        process.send_signal(signal.SIGINT)
        log = process.communicate(timeout=30)[1]
        raise AssertionError(f"{failures[:3]}; server log: {log[-3000:]}")
    assert len(latencies) == CLIENTS * CALLS_PER_CLIENT
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    with capsys.disabled():
        print(
            f"\n{CLIENTS} clients x {CALLS_PER_CLIENT} score calls: {len(latencies) / elapsed:.0f} calls/s, "
            f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms (clients and server share this machine's cores)"
        )


@pytest.mark.slow
def test_killing_the_server_mid_use_gives_one_clear_error(server_process):
    process, url = server_process
    remote = rlhub.make(url, retries=2, backoff=0.1)
    example = remote.examples("train", limit=1)[0]
    gold = remote.gold_completion(example)
    assert remote.score(gold, example).reward == pytest.approx(1.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    started = time.monotonic()
    with pytest.raises(RLHubError, match=rf"{url} did not answer score after 3 tries"):
        remote.score(gold, example)
    assert time.monotonic() - started < 10
