"""The attacks the bwrap sandbox contains (tests/test_sandbox_security.py), against docker workers.

Every attack test of that file is collected again here with a docker pool, except the one that
starts its own bwrap pool, which has a docker version below. Then what only a container adds:
its caps on memory and processes hold for the container as a whole.
"""

import pytest
from main_suite import load, reused_tests

from rlhub.sandbox import SandboxPool
from rlhub.sandbox.docker_backend import DockerBackend

attacks = load("test_sandbox_security")
globals().update(reused_tests(attacks, {"test_detached_processes_do_not_survive_their_program"}))


@pytest.fixture(scope="module")
def pool(sandbox_image):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLHUB_TEST_SECRET", attacks.SECRET)  # in our environment when the workers start
        with SandboxPool(workers=2, backend="docker", max_output=attacks.MAX_OUTPUT) as pool:
            pool.warm()
            yield pool


def test_detached_processes_do_not_survive_their_program(sandbox_image):
    escape = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.setpgid(0, 0)
        print(os.getpid(), flush=True)
        time.sleep(60)
    os._exit(0)
time.sleep(0.2)
"""
    with SandboxPool(workers=1, backend="docker") as one:
        escaped = one.run(escape)
        assert escaped.status == "ok"
        pid = int(escaped.stdout)
        assert one.run(f"import os\nprint(os.path.exists('/proc/{pid}'))").stdout == "False\n"
        timed_out = one.run(escape.replace("time.sleep(0.2)", "time.sleep(60)"), timeout=0.5)
        assert timed_out.status == "timeout"
        assert one.run(f"import os\nprint(os.path.exists('/proc/{int(timed_out.stdout)}'))").stdout == "False\n"


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
