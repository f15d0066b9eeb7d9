"""The sandbox's behaviour: statuses, inputs, batching, worker replacement, backends, cleanup.

Runs on the automatic backend (bwrap where it works, else subprocess); the attacks the sandbox
must contain are in test_sandbox_security.py.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from rlhub.errors import RLHubError
from rlhub.sandbox import SandboxPool, run_python, run_python_batch, run_tests
from rlhub.sandbox import pool as pool_module
from rlhub.sandbox.backends import ZYGOTE_PATH, resolve_backend, zygote_config
from rlhub.sandbox.docker_backend import DockerBackend, DockerChannel

BACKEND = resolve_backend(None)  # RLHUB_SANDBOX=subprocess runs these on the plain backend


def _process_table() -> dict[int, tuple[int, list[bytes]]]:
    """{pid: (parent pid, argv)} of every live (non-zombie) process."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            if fields[0] != "Z":
                table[int(entry)] = (int(fields[1]), argv)
    return table


def descendants(table: dict | None = None) -> set[int]:
    """Pids of every live process below this test process."""
    table = table or _process_table()
    found, stack = set(), [os.getpid()]
    while stack:
        parent = stack.pop()
        for pid, (ppid, _argv) in table.items():
            if ppid == parent:
                found.add(pid)
                stack.append(pid)
    return found


def zygote_pids() -> set[int]:
    """The zygotes of every pool this test process has open (not their forked children)."""
    table = _process_table()
    forks_of_zygote_py = {
        pid
        for pid in descendants(table)
        if table[pid][1][0] != b"bwrap" and any(arg.endswith(b"zygote.py") for arg in table[pid][1])
    }
    return {pid for pid in forks_of_zygote_py if table[pid][0] not in forks_of_zygote_py}


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2, backend=BACKEND) as pool:
        yield pool


def test_ok_program_output_and_timing(pool):
    result = pool.run("print(sum(i * i for i in range(10)))")
    assert (result.status, result.stdout, result.stderr, result.returncode) == ("ok", "285\n", "", 0)
    assert result.ok and not result.truncated and 0 < result.wall_time < 5


def test_the_system_files_bound_in_are_readable_by_the_programs_uid(pool):
    """/etc holds the system files a sandbox provides (bwrap binds the host's users, time zone and loader cache; a
    docker image has its own), and programs, under their own uid, can read every one of them."""
    result = pool.run(
        "import os\n"
        "names = [n for n in ('passwd', 'group', 'localtime', 'ld.so.cache', 'hosts', 'nsswitch.conf')\n"
        "         if os.path.isfile(os.path.join('/etc', n))]\n"
        "for name in names:\n"
        "    open(os.path.join('/etc', name), 'rb').read(1)\n"
        "print(oct(os.stat('/etc').st_mode & 0o777), len(names) >= 1)"
    )
    assert result.status == "ok", result.stderr
    assert result.stdout.split() == ["0o755", "True"]


def test_uncaught_exception_is_error_with_traceback(pool):
    result = pool.run("def f():\n    raise ValueError('boom')\nf()")
    assert (result.status, result.returncode) == ("error", 1)
    assert 'File "main.py", line 2, in f' in result.stderr
    assert "raise ValueError('boom')" in result.stderr  # source lines come from the submitted code
    assert result.stderr.rstrip().endswith("ValueError: boom")
    assert "zygote" not in result.stderr


@pytest.mark.parametrize(
    ("code", "status", "returncode"),
    [
        ("import sys; sys.exit(3)", "error", 3),
        ("import sys; sys.exit()", "ok", 0),
        ("import sys; sys.exit('bye')", "error", 1),
        ("def f(:\n    pass", "error", 1),
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "killed", -signal.SIGSEGV),
    ],
)
def test_exit_paths(pool, code, status, returncode):
    result = pool.run(code)
    assert (result.status, result.returncode) == (status, returncode)


def test_timeout_stops_the_program(pool):
    started = time.monotonic()
    result = pool.run("while True:\n    pass", timeout=0.5)
    assert result.status == "timeout"
    assert 0.5 <= result.wall_time < 3 and time.monotonic() - started < 5


def test_sleeping_program_times_out_on_wall_clock(pool):
    assert pool.run("import time; time.sleep(30)", timeout=0.3).status == "timeout"


def test_memory_limit(pool):
    result = pool.run("blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))", memory_mb=256)
    assert result.status == "memory"
    assert "MemoryError" in result.stderr


def test_output_cap_truncates_and_flags():
    with SandboxPool(workers=1, backend=BACKEND, max_output=1000) as small:
        result = small.run("print('x' * 5000)")
        assert (result.status, result.truncated, len(result.stdout)) == ("output_limit", True, 1000)
        assert small.run("print('y' * 999, end='')").status == "ok"


def test_stdin_and_files(pool):
    code = (
        "import sys, json\n"
        "data = sys.stdin.read()\n"
        "print(data.upper(), open('input.txt').read(), open('pkg/helper.py').read().strip())\n"
        "sys.path.insert(0, 'pkg'); import helper; print(helper.VALUE)"
    )
    result = pool.run(code, stdin="abc", files={"input.txt": "file", "pkg/helper.py": "VALUE = 42\n"})
    assert result.stdout == "ABC file VALUE = 42\n42\n"


def test_large_stdin(pool):
    result = pool.run("import sys; print(len(sys.stdin.read()))", stdin="z" * 3_000_000)
    assert result.stdout == "3000000\n"


def test_files_can_be_imported_from_the_working_directory(pool):
    assert (
        pool.run("import solution; print(solution.f(2))", files={"solution.py": "def f(x): return 2 * x"}).stdout
        == "4\n"
    )


@pytest.mark.parametrize("path", ["/etc/passwd", "../escape.txt", "a/../../b", "", "."])
def test_file_paths_must_stay_inside_the_working_directory(pool, path):
    with pytest.raises(ValueError, match="relative paths"):
        pool.run("pass", files={path: "x"})


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"timeout": float("inf")}, {"memory_mb": 0}, {"stdin": b"bytes"}])
def test_bad_limits_are_rejected(pool, kwargs):
    with pytest.raises(ValueError):
        pool.run("pass", **kwargs)


def test_each_program_starts_clean():
    """Files, env vars and module state left by one program are gone for the next one."""
    leave_traces = "import os, json\nopen('left.txt', 'w').write('x')\nos.environ['LEFT'] = '1'\njson.LEFT = 1"
    check = "import os, json\nprint(os.listdir('.'), os.environ.get('LEFT'), hasattr(json, 'LEFT'))"
    with SandboxPool(workers=1, backend=BACKEND) as one:
        assert one.run(leave_traces).status == "ok"
        assert one.run(check).stdout == "[] None False\n"


def test_preloaded_random_is_reseeded_for_every_program(pool):
    draws = {r.stdout for r in pool.run_batch(["import random; print(random.random())"] * 6)}
    assert len(draws) == 6


@pytest.mark.skipif(BACKEND != "bwrap", reason="/tmp, /dev/shm and SysV IPC are the host's without bwrap")
def test_private_tmp_shm_and_ipc_are_emptied_between_programs():
    leave_traces = """
import ctypes, os
os.makedirs('/tmp/sub'); open('/tmp/sub/left.txt', 'w').write('x')
open('/dev/shm/left', 'w').write('x')
print(ctypes.CDLL(None).shmget(0x5EED, 4096, 0o1666))  # IPC_CREAT | 0o666
"""
    check = (
        "import ctypes, os\nprint(os.listdir('/tmp'), os.listdir('/dev/shm'), ctypes.CDLL(None).shmget(0x5EED, 9, 0))"
    )
    with SandboxPool(workers=1, backend=BACKEND) as one:
        created = one.run(leave_traces)
        assert created.status == "ok" and int(created.stdout) >= 0
        assert one.run(check).stdout == "['work'] [] -1\n"  # work: its own working directory


def test_batch_keeps_order_and_accepts_dicts(pool):
    programs = [f"import time; time.sleep({0.05 * (i % 3)}); print({i})" for i in range(8)]
    programs.append({"code": "print(input()[::-1])", "stdin": "olleh"})
    programs.append({"code": "print(open('f').read())", "files": {"f": "F"}})
    results = pool.run_batch(programs, timeout=5)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(8)] + ["hello\n", "F\n"]


def test_batch_rejects_unknown_program_keys(pool):
    with pytest.raises(ValueError, match="code string or a dict"):
        pool.run_batch([{"code": "pass", "timeout": 3}])


def test_module_level_api_uses_a_default_pool():
    assert run_python("print(input())", stdin="hi").stdout == "hi\n"
    results = run_python_batch(["print(1)", {"code": "print(2)"}], timeout=2)
    assert [r.stdout for r in results] == ["1\n", "2\n"]
    assert run_tests("def f(x):\n    return x + 1", "assert f(1) == 2")
    assert not run_tests("def f(x):\n    return x", "assert f(1) == 2")


def test_worker_is_reused_between_programs():
    others = zygote_pids()
    with SandboxPool(workers=1, backend=BACKEND) as one:
        one.warm()
        mine = zygote_pids() - others
        for _ in range(5):
            assert one.run("print(1)").ok
        assert zygote_pids() - others == mine and len(mine) == 1


def test_worker_that_died_while_idle_is_replaced_transparently():
    others = zygote_pids()
    with SandboxPool(workers=1, backend=BACKEND) as one:
        one.warm()
        [zygote] = zygote_pids() - others
        exited = os.pidfd_open(zygote)
        os.kill(zygote, signal.SIGKILL)
        select.select([exited], [], [], 5)  # until it has fully exited, not merely been signalled
        os.close(exited)
        assert one.run("print('still fine')").stdout == "still fine\n"
        assert len(zygote_pids() - others - {zygote}) == 1


def test_worker_that_dies_mid_program_reports_killed_then_is_replaced():
    others = zygote_pids()
    with SandboxPool(workers=1, backend=BACKEND) as one:
        one.warm()
        [zygote] = zygote_pids() - others
        threading.Timer(0.5, os.kill, (zygote, signal.SIGKILL)).start()
        result = one.run("import time; time.sleep(10)", timeout=5)
        assert result.status == "killed" and "worker lost" in result.stderr
        assert one.run("print(2)").stdout == "2\n"


def test_worker_that_cannot_clean_up_is_retired_without_losing_the_next_program():
    deep_tree = "import os\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\nprint('deep')"
    others = zygote_pids()
    with SandboxPool(workers=1, backend=BACKEND) as one:
        assert one.run(deep_tree).stdout == "deep\n"
        [first] = zygote_pids() - others
        assert one.run("print('next')").stdout == "next\n"  # rmtree recursed too deep: a fresh worker ran it
        assert zygote_pids() - others - {first}


def test_wedged_worker_is_replaced(monkeypatch):
    monkeypatch.setattr(pool_module, "REPLY_GRACE", 0.5)
    others = zygote_pids()
    with SandboxPool(workers=1, backend=BACKEND) as one:
        one.warm()
        [zygote] = zygote_pids() - others
        os.kill(zygote, signal.SIGSTOP)  # alive but deaf
        result = one.run("print(1)", timeout=0.5)
        assert result.status == "timeout" and "did not answer" in result.stderr
        assert one.run("print(2)").stdout == "2\n"
        assert zygote not in zygote_pids()


def test_nothing_is_left_running_after_close():
    before = descendants()
    others = zygote_pids()
    with SandboxPool(workers=2, backend=BACKEND) as two:
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
        assert len(zygote_pids() - others) == 2
        assert two.run("print(1)").ok
    _wait_until(lambda: descendants() <= before)
    assert descendants() <= before


def test_closed_pool_refuses_work():
    closed = SandboxPool(workers=1, backend=BACKEND)
    closed.close()
    closed.close()  # idempotent
    with pytest.raises(RLHubError, match="closed"):
        closed.run("print(1)")


def test_unknown_backend_names_the_choices(monkeypatch):
    with pytest.raises(RLHubError, match="bwrap, docker, subprocess"):
        SandboxPool(backend="chroot")
    monkeypatch.setenv("RLHUB_SANDBOX", "jail")
    with pytest.raises(RLHubError, match="RLHUB_SANDBOX"):
        resolve_backend(None)
    monkeypatch.setenv("RLHUB_SANDBOX", "subprocess")
    assert resolve_backend(None) == "subprocess"
    # "auto" takes bwrap when bwrap works here, and falls back to the plain backend when it does not.
    import rlhub.sandbox.backends as backends

    monkeypatch.setattr(backends, "bwrap_problem", lambda: None)
    assert resolve_backend("auto") == "bwrap"
    monkeypatch.setattr(backends, "bwrap_problem", lambda: "bubblewrap is not installed")
    assert resolve_backend("auto") == "subprocess"
    monkeypatch.delenv("RLHUB_SANDBOX")
    assert resolve_backend(None) == "subprocess"  # no name and no variable: auto


# ----------------------------------------------------------------------------- subprocess backend


def test_subprocess_backend_runs_programs_and_warns_once(caplog):
    import rlhub.sandbox.backends as backends

    backends._warned_not_isolated = False
    with caplog.at_level("WARNING", logger="rlhub.sandbox"):
        with SandboxPool(workers=1, backend="subprocess") as local:
            results = [local.run("import os; print(os.getcwd())") for _ in range(2)]
            timed_out = local.run("while True: pass", timeout=0.3)
        SandboxPool(workers=1, backend="subprocess").close()
    assert [r.status for r in results] == ["ok", "ok"]
    assert results[0].stdout.strip().endswith("/work")
    assert timed_out.status == "timeout"
    warnings = [r for r in caplog.records if "NOT isolated" in r.getMessage()]
    assert len(warnings) == 1


# ----------------------------------------------------------------------------- docker backend plumbing


class _FakeImages:
    def get(self, image):
        return image


class _FakeDockerClient:
    images = _FakeImages()

    def ping(self):
        return True

    def close(self):
        pass


def test_docker_backend_without_an_engine_raises_a_clear_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(RLHubError, match=r"no Docker engine is reachable.*backend='bwrap'"):
        SandboxPool(backend="docker")


def test_docker_container_settings():
    backend = DockerBackend(image="python:3.12-slim", max_processes=32, client=_FakeDockerClient())
    kwargs = backend.container_kwargs(uid=1_000_000_123)
    assert kwargs["image"] == "python:3.12-slim"
    assert kwargs["network_mode"] == "none" and kwargs["read_only"] is True
    assert kwargs["cap_drop"] == ["ALL"] and "SYS_ADMIN" not in kwargs["cap_add"]
    assert kwargs["security_opt"] == ["no-new-privileges"]
    assert kwargs["pids_limit"] > 32 and kwargs["mem_limit"] == kwargs["memswap_limit"] == "2048m"
    assert kwargs["nano_cpus"] == 1_000_000_000 and kwargs["init"] is False
    assert kwargs["stdin_open"] is True and kwargs["tty"] is False
    assert "/tmp" in kwargs["tmpfs"]
    command = kwargs["command"]
    assert command[0] == "python3" and command[command.index("-c") + 1] == ZYGOTE_PATH.read_text()
    config = json.loads(command[-1])
    assert config["uid"] == 1_000_000_123 and config["max_processes"] == 32 and config["private_ipc"]


class _DockerAttachEmulator:
    """Plays the engine's side of an attach socket for a real zygote running as a local process.

    Bytes from the socket go to the zygote's stdin; its stdout and stderr come back multiplexed
    the way docker does without a TTY, split at awkward places.
    """

    def __init__(self, scratch):
        self.host_side, engine_side = socket.socketpair()
        config = zygote_config(
            uid=None, max_processes=None, workdir=str(scratch / "work"), scratch=[str(scratch)],
            private_ipc=False, site_packages=[],
        )  # fmt: skip
        self.zygote = subprocess.Popen(
            [sys.executable, "-I", "-S", str(ZYGOTE_PATH), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._engine = engine_side
        threading.Thread(target=self._pump_in, daemon=True).start()
        threading.Thread(target=self._pump_out, args=(self.zygote.stdout, 1), daemon=True).start()
        threading.Thread(target=self._pump_out, args=(self.zygote.stderr, 2), daemon=True).start()
        self._send_lock = threading.Lock()

    def _pump_in(self):
        while data := self._engine.recv(65536):
            self.zygote.stdin.write(data)
            self.zygote.stdin.flush()
        self.zygote.stdin.close()

    def _pump_out(self, stream, stream_id):
        while data := stream.read1(65536):
            for start in range(0, len(data), 7):  # many small docker frames
                frame = data[start : start + 7]
                header = bytes([stream_id, 0, 0, 0]) + len(frame).to_bytes(4, "big")
                with self._send_lock:
                    for piece in (header[:3], header[3:] + frame[:2], frame[2:]):  # split mid-header
                        self._engine.sendall(piece)

    def close(self):
        self.zygote.kill()
        self.zygote.wait()
        self._engine.close()


class _EmulatedDockerBackend:
    name = "docker"
    isolated = True

    def __init__(self, scratch):
        self.scratch = scratch
        self.emulators = []

    def start(self):
        emulator = _DockerAttachEmulator(self.scratch)
        self.emulators.append(emulator)
        return DockerChannel(emulator.host_side, on_close=emulator.close)

    def close(self):
        pass


def test_docker_channel_speaks_the_attach_protocol(tmp_path):
    backend = _EmulatedDockerBackend(tmp_path)
    with SandboxPool(workers=1, backend=backend) as emulated:
        result = emulated.run("import sys; print('out' * 50); print('err', file=sys.stderr)")
        assert (result.status, result.stdout, result.stderr) == ("ok", "out" * 50 + "\n", "err\n")
        assert emulated.run("raise SystemExit(4)").returncode == 4
    assert all(e.zygote.poll() is not None for e in backend.emulators)


def _wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
