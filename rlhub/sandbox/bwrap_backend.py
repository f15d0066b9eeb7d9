"""The bwrap backend (the default where it works): each worker is a bubblewrap sandbox whose PID 1 is the zygote.

No network (a new network namespace), new PID/IPC/UTS/cgroup namespaces, read-only system directories
and interpreter, private /tmp and /dev/shm, no home directory, a cleared environment, a read-only root,
and, when the host runs as root, programs running as a uid of their own without capabilities.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig

from rlhub.errors import RLHubError
from rlhub.sandbox.channel import Channel, PipeChannel
from rlhub.sandbox.config import BASE_ENV, PYTHON_FLAGS, ZYGOTE_PATH, next_worker_uid, zygote_config

ZYGOTE_IN_SANDBOX = "/opt/rlhub/zygote.py"
PYTHON_IN_SANDBOX = "/opt/rlhub/python"
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "passwd", "group")
ETC_FILES += ("nsswitch.conf", "hosts")


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
    # bwrap creates the /etc that holds these binds 0700, which would close them to the programs' uid.
    argv += ["--perms", "0755", "--dir", "/etc"]
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

    Raises:
        RLHubError: bwrap cannot run sandboxes here (``bwrap_problem`` says why).
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
