"""Where workers run: under bubblewrap (the default), as plain host processes, or in docker.

A backend starts one zygote (``_zygote.py``) per call to ``start()`` and returns the channel to it;
the pool does the rest, identically for every backend.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Protocol

from rlhub.errors import RLHubError
from rlhub.sandbox.channel import Channel, PipeChannel

logger = logging.getLogger("rlhub.sandbox")

SANDBOX_BACKENDS = ("bwrap", "docker", "subprocess")
ZYGOTE_PATH = Path(__file__).with_name("_zygote.py")
ZYGOTE_IN_SANDBOX = "/opt/rlhub/zygote.py"
PYTHON_IN_SANDBOX = "/opt/rlhub/python"
PYTHON_FLAGS = ["-I", "-S", "-B", "-X", "utf8"]
"""Isolated (no PYTHON* env vars, no user site), no ``site`` (its .pth files would run host hooks in
every sandbox; site-packages go on sys.path through the config instead), no .pyc writes, UTF-8."""

PRELOAD = (
    *("array", "bisect", "collections", "copy", "dataclasses", "datetime", "decimal", "fractions", "functools"),
    *("heapq", "itertools", "json", "math", "operator", "random", "re", "statistics", "string"),
    *("textwrap", "typing", "unittest"),
)
"""Standard-library modules every zygote imports once, so that programs get them for free: a
program doing ``from typing import List`` and ``import json`` costs 3-4 ms of CPU instead of 10-12,
one importing unittest 4 instead of 20-24 (measured here); a trivial one costs the same."""

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_OPEN_FILES = 256
WORKER_UID_BASE = 1_000_000_000
"""When the host runs as root, programs run as a host uid that nothing else uses, a fresh one per
worker: RLIMIT_NPROC counts processes per host uid (and does not hold root at all), so the cap
then covers exactly one worker's programs, and a program cannot signal or ptrace its zygote
(uid 0) or another worker's programs."""

BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "USER": "sandbox",
    "LOGNAME": "sandbox",
    # One thread per numeric library: the sandbox shares few cores, and thread arenas eat address space.
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "passwd", "group")
ETC_FILES += ("nsswitch.conf", "hosts")

_worker_serial = itertools.count()


class Backend(Protocol):
    name: str
    isolated: bool

    def start(self) -> Channel:
        """Start one zygote and return the channel to it (before its ready message)."""

    def close(self) -> None:
        """Release what the backend holds once every worker is gone."""


def zygote_config(
    *,
    uid: int | None,
    max_processes: int | None,
    workdir: str,
    scratch: list[str],
    private_ipc: bool,
    site_packages: list[str],
) -> dict:
    """The JSON config a zygote takes on its command line (see ``_zygote.py``)."""
    return {
        "uid": uid,
        "max_processes": max_processes,
        "workdir": workdir,
        "scratch": scratch,
        "private_ipc": private_ipc,
        "site_packages": site_packages,
        "preload": list(PRELOAD),
        "max_file_bytes": MAX_FILE_BYTES,
        "max_open_files": MAX_OPEN_FILES,
    }


def next_worker_uid() -> int:
    # Spread by host pid so that two processes' pools do not share uids.
    return WORKER_UID_BASE + (os.getpid() % 100_000) * 1000 + next(_worker_serial) % 1000


# ----------------------------------------------------------------------------- bwrap


@functools.cache
def _python_layout() -> tuple[str, list[tuple[str, str]], dict[str, str], list[str]]:
    """This interpreter's base installation as seen inside the sandbox.

    An interpreter under /usr is visible as is. One elsewhere (pyenv and conda live under $HOME or
    /opt) is bound at ``PYTHON_IN_SANDBOX``, so that the home directory stays out of the sandbox.
    A virtualenv's own packages are not visible; the base installation's are.

    Returns:
        (executable, read-only binds, extra env, site-packages directories), as seen inside.
    """
    prefix = os.path.realpath(sys.base_prefix)
    executable = f"bin/python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = [path for path in site.getsitepackages([prefix]) if os.path.isdir(path)]
    if prefix == "/usr" or prefix.startswith("/usr/"):
        return os.path.join(prefix, executable), [], {}, site_packages
    env = {"PATH": f"{PYTHON_IN_SANDBOX}/bin:{BASE_ENV['PATH']}"}
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        # Its rpath names the host location, which does not exist inside.
        env["LD_LIBRARY_PATH"] = f"{PYTHON_IN_SANDBOX}/lib"
    inside = [PYTHON_IN_SANDBOX + path[len(prefix) :] for path in site_packages if path.startswith(prefix + "/")]
    return f"{PYTHON_IN_SANDBOX}/{executable}", [(prefix, PYTHON_IN_SANDBOX)], env, inside


def bwrap_python_command(args: list[str], ro_binds: list[tuple[str, str]] = ()) -> list[str]:
    """The bwrap command line that runs this Python, with ``args``, in the sandbox every worker gets.

    No network (a new network namespace: loopback is its own, empty), new PID/IPC/UTS/cgroup
    namespaces with the command as PID 1, read-only system directories and interpreter, private
    /tmp and /dev/shm, no home directory, a cleared environment, and a read-only root.

    Args:
        args: The interpreter's arguments.
        ro_binds: Extra ``(host_path, sandbox_path)`` pairs to bind read-only.

    Returns:
        The argv, starting with ``bwrap``.
    """
    python, python_binds, python_env, _ = _python_layout()
    argv = [
        "bwrap",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    argv += ["--as-pid-1", "--die-with-parent", "--new-session", "--hostname", "sandbox", "--clearenv"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for name in ETC_FILES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # Where the interpreter and zygote are bound; created 0700 otherwise, closed to the programs' uid.
    argv += ["--perms", "0755", "--dir", "/opt", "--perms", "0755", "--dir", "/opt/rlhub"]
    for source, target in [*python_binds, *ro_binds]:
        argv += ["--ro-bind", str(source), target]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/dev/shm"]
    for key, value in {**BASE_ENV, **python_env}.items():
        argv += ["--setenv", key, value]
    if os.geteuid() == 0:
        # Real root keeps every capability inside bwrap unless told otherwise. The zygote keeps
        # these (its children drop them with their uid): run children as other uids, signal
        # them, empty their scratch, and remove their SysV IPC objects.
        argv += ["--cap-drop", "ALL"]
        for cap in ("SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "FOWNER", "IPC_OWNER"):
            argv += ["--cap-add", f"CAP_{cap}"]
    argv += ["--remount-ro", "/", "--chdir", "/", "--"]
    return [*argv, python, *args]


@functools.cache
def bwrap_problem() -> str | None:
    """Why bwrap cannot run sandboxes here, or None if it can."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (install it: apt-get install -y bubblewrap)"
    try:
        probe = subprocess.run(bwrap_python_command(["-c", "pass"]), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap failed to run: {exc}"
    if probe.returncode != 0:
        return f"bwrap failed (exit {probe.returncode}): {probe.stderr.strip()[-500:]}"
    return None


class BwrapBackend:
    """Each worker is one long-lived bwrap sandbox whose PID 1 is the zygote.

    Args:
        max_processes: RLIMIT_NPROC for programs (processes and threads at once).
    """

    name = "bwrap"
    isolated = True

    def __init__(self, max_processes: int = 64) -> None:
        problem = bwrap_problem()
        if problem is not None:
            raise RLHubError(f"the bwrap sandbox backend is unavailable: {problem}; or use backend='subprocess'")
        self.max_processes = max_processes

    def start(self) -> Channel:
        # Without root, bwrap runs in a user namespace where the zygote cannot change uid.
        uid = next_worker_uid() if os.geteuid() == 0 else None
        config = zygote_config(
            uid=uid,
            max_processes=self.max_processes,
            workdir="/tmp/work",
            scratch=["/tmp", "/dev/shm"],
            private_ipc=True,
            site_packages=_python_layout()[3],
        )
        argv = bwrap_python_command(
            [*PYTHON_FLAGS, ZYGOTE_IN_SANDBOX, json.dumps(config)],
            ro_binds=[(str(ZYGOTE_PATH), ZYGOTE_IN_SANDBOX)],
        )
        return PipeChannel(argv, env={"PATH": os.environ.get("PATH", BASE_ENV["PATH"])}, wrapped=True)

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- subprocess

_warned_not_isolated = False


class SubprocessBackend:
    """Workers are plain host processes: rlimits, a private directory and cleanup, no isolation.

    Programs can read and write whatever the host user can, use the network, and on a root host
    are not held by RLIMIT_NPROC. Processes a program detaches from its session are swept when the
    program ends, but not if its worker is killed. For development machines without bubblewrap.
    """

    name = "subprocess"
    isolated = False

    def __init__(self) -> None:
        global _warned_not_isolated
        if not _warned_not_isolated:
            logger.warning("rlhub.sandbox: the subprocess backend is NOT isolated; install bubblewrap")
            _warned_not_isolated = True

    def start(self) -> Channel:
        scratch = tempfile.mkdtemp(prefix="rlhub-sandbox-")
        config = zygote_config(
            uid=None,
            max_processes=None,
            workdir=os.path.join(scratch, "work"),
            scratch=[scratch],
            private_ipc=False,
            site_packages=site.getsitepackages(),
        )
        argv = [sys.executable, *PYTHON_FLAGS, str(ZYGOTE_PATH), json.dumps(config)]
        # rm, not shutil.rmtree: a program can nest directories deeper than Python's recursion limit.
        remove = ["rm", "-rf", "--one-file-system", scratch]
        return PipeChannel(
            argv, env=dict(BASE_ENV), wrapped=False, on_close=lambda: subprocess.run(remove, check=False)
        )

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- choosing


def resolve_backend(name: str | None) -> str:
    """The backend to use: ``name``, else $RLHUB_SANDBOX, else bwrap if it works here, else subprocess."""
    name = name or os.environ.get("RLHUB_SANDBOX") or "auto"
    if name == "auto":
        return "bwrap" if bwrap_problem() is None else "subprocess"
    if name not in SANDBOX_BACKENDS:
        raise RLHubError(
            f"unknown sandbox backend {name!r}: use one of {', '.join(SANDBOX_BACKENDS)} or 'auto' "
            "(argument backend= or env var RLHUB_SANDBOX)"
        )
    return name


def make_backend(name: str | None, *, max_processes: int, docker_image: str) -> Backend:
    """Instantiate the backend ``resolve_backend(name)`` picks."""
    name = resolve_backend(name)
    if name == "bwrap":
        return BwrapBackend(max_processes=max_processes)
    if name == "docker":
        from rlhub.sandbox.docker_backend import DockerBackend

        return DockerBackend(image=docker_image, max_processes=max_processes)
    return SubprocessBackend()
