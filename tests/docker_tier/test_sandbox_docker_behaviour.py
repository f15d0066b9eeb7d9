"""The sandbox's behaviour on the docker backend against a real engine.

The tests of tests/test_sandbox.py are collected again here, from a copy of that module imported
with RLHUB_SANDBOX=docker, except those that find workers as host processes, which have docker
versions below that find them as containers.
"""

import threading
import time

import pytest
from main_suite import load, reused_tests

from rlhub.errors import RLHubError
from rlhub.sandbox import SandboxPool
from rlhub.sandbox import pool as pool_module

HOST_PROCESS_TESTS = {
    "test_worker_is_reused_between_programs",
    "test_worker_that_died_while_idle_is_replaced_transparently",
    "test_worker_that_dies_mid_program_reports_killed_then_is_replaced",
    "test_worker_that_cannot_clean_up_is_retired_without_losing_the_next_program",
    "test_wedged_worker_is_replaced",
    "test_nothing_is_left_running_after_close",
    "test_private_tmp_shm_and_ipc_are_emptied_between_programs",  # marked bwrap-only; run below
}
NOT_ABOUT_A_BACKEND = {
    "test_unknown_backend_names_the_choices",
    "test_subprocess_backend_runs_programs_and_warns_once",
    "test_docker_backend_without_an_engine_raises_a_clear_error",
    "test_docker_container_settings",
    "test_docker_channel_speaks_the_attach_protocol",
}
behaviour = load("test_sandbox")
assert behaviour.BACKEND == "docker"
globals().update(reused_tests(behaviour, HOST_PROCESS_TESTS | NOT_ABOUT_A_BACKEND))


@pytest.fixture(scope="module")
def pool(sandbox_image):
    with SandboxPool(workers=2, backend="docker") as pool:
        yield pool


@pytest.fixture
def one(sandbox_image):
    with SandboxPool(workers=1, backend="docker") as one:
        yield one


def worker_containers(client) -> dict:
    """{id: container} of the sandbox worker containers the engine has now."""
    return {c.id: c for c in client.containers.list(all=True, filters={"label": "rlhub.sandbox=worker"})}


def new_workers(docker_client, before: dict) -> dict:
    return {key: c for key, c in worker_containers(docker_client).items() if key not in before}


def test_private_tmp_shm_and_ipc_are_emptied_between_programs(sandbox_image):
    behaviour.test_private_tmp_shm_and_ipc_are_emptied_between_programs()


def test_worker_is_one_container_reused_between_programs(docker_client, one):
    before = worker_containers(docker_client)
    one.warm()
    mine = new_workers(docker_client, before)
    for _ in range(5):
        assert one.run("print(1)").ok
    assert new_workers(docker_client, before).keys() == mine.keys() and len(mine) == 1


def test_container_killed_while_idle_is_replaced_transparently(docker_client, one):
    before = worker_containers(docker_client)
    one.warm()
    [container] = new_workers(docker_client, before).values()
    container.kill()
    container.wait(timeout=10)
    assert one.run("print('still fine')").stdout == "still fine\n"
    assert new_workers(docker_client, before).keys() - {container.id}


def test_container_killed_mid_program_reports_killed_then_is_replaced(docker_client, one):
    before = worker_containers(docker_client)
    one.warm()
    [container] = new_workers(docker_client, before).values()
    threading.Timer(0.5, container.kill).start()
    result = one.run("import time; time.sleep(10)", timeout=5)
    assert result.status == "killed" and "worker lost" in result.stderr
    assert one.run("print(2)").stdout == "2\n"


def test_worker_that_cannot_clean_up_is_retired_without_losing_the_next_program(docker_client, one):
    deep_tree = "import os\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\nprint('deep')"
    before = worker_containers(docker_client)
    assert one.run(deep_tree).stdout == "deep\n"
    [first] = new_workers(docker_client, before)
    assert one.run("print('next')").stdout == "next\n"
    assert new_workers(docker_client, before).keys() - {first}


def test_paused_container_is_replaced(docker_client, one, monkeypatch):
    monkeypatch.setattr(pool_module, "REPLY_GRACE", 0.5)
    before = worker_containers(docker_client)
    one.warm()
    [container] = new_workers(docker_client, before).values()
    container.pause()  # alive but deaf
    result = one.run("print(1)", timeout=0.5)
    assert result.status == "timeout" and "did not answer" in result.stderr
    assert one.run("print(2)").stdout == "2\n"
    assert container.id not in worker_containers(docker_client)


def test_no_container_is_left_after_close(docker_client, sandbox_image):
    before = worker_containers(docker_client)
    with SandboxPool(workers=2, backend="docker") as two:
        two.warm()
        escape = (
            "import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(60)\n"
            "    os._exit(0)\n"
            "time.sleep(60)\n"
        )
        results = two.run_batch([escape, "import time; time.sleep(60)"], timeout=0.5)
        assert [r.status for r in results] == ["timeout", "timeout"]
        assert len(new_workers(docker_client, before)) == 2
        assert two.run("print(1)").ok
    deadline = time.monotonic() + 10
    while new_workers(docker_client, before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not new_workers(docker_client, before)


def test_missing_image_is_a_clear_error(sandbox_image):
    with pytest.raises(RLHubError, match=r"'rlhub-absent:0' is not present.*docker_images\.py"):
        SandboxPool(workers=1, backend="docker", docker_image="rlhub-absent:0")
