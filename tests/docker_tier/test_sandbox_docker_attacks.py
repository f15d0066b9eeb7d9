"""The attacks the sandbox contains (tests/test_sandbox_security.py), against docker workers.

Every attack test of that file is collected again here, its ``pool`` and the pools it starts on the
backend this file's ``backend`` fixture names: docker. Then what only a container adds: its caps on
memory and processes hold for the container as a whole.
"""

import pytest
from main_suite import load, reused_tests

from rlhub.sandbox import SandboxPool
from rlhub.sandbox.docker_backend import DockerBackend

attacks = load("test_sandbox_security")
globals().update(reused_tests(attacks, set()))
pool = attacks.pool  # a fixture: its pool is started on the backend below


@pytest.fixture(scope="module")
def backend(sandbox_image) -> str:
    """The backend under attack: docker, with the tier's engine and image (which skip or fail it, saying why)."""
    return "docker"


def test_many_processes_together_stay_under_the_containers_memory_cap(sandbox_image):
    """Each process may map memory_mb, but 8 of them at once meet the container's cgroup cap."""
    hog = """
import os, time
for _ in range(8):
    if os.fork() == 0:
        block = bytearray(200 * 1024 * 1024)
        block[::4096] = b'x' * len(block[::4096])
        time.sleep(3)
        os._exit(0)
codes = [os.wait()[1] for _ in range(8)]
print(sum(code != 0 for code in codes), 'children died')
"""
    backend = DockerBackend(image=sandbox_image, container_memory_mb=512)
    with SandboxPool(workers=1, backend=backend) as small:
        result = small.run(hog, memory_mb=256, timeout=20)
        assert result.status != "ok" or not result.stdout.startswith("0 "), result
        assert small.run("print(sum(range(10)))").stdout == "45\n"
