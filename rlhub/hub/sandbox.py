"""The host side of an isolated env package: a bubblewrap sandbox running ``_server.py`` on the package.

What the package's code sees: the system directories and the interpreter read-only, the site directories
(folders on ``sys.path`` that hold installed distributions) read-only at neutral paths with every other env
package's files masked, rlhub itself, an empty private ``/tmp`` holding its workdir, no network but the TCP
pairs its manifest declares (a network namespace of its own, and a relay to each declared pair:
:mod:`rlhub.hub.egress`), no home, none of the trainer's files or environment variables, and a uid of its own
when the host runs as root. The env server listens on a unix socket the host created and passes in, so the
sandbox needs no writable view of the host at all.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

from rlhub.env.registry import default_registry_path
from rlhub.errors import ConfigError, RLHubError
from rlhub.hub import egress
from rlhub.hub.manifest import Capabilities
from rlhub.sandbox.bwrap_backend import SYSTEM_DIRS, bwrap_problem, bwrap_python_command
from rlhub.sandbox.config import BASE_ENV, PYTHON_FLAGS, next_worker_uid

SERVER_IN_SANDBOX = "/opt/rlhub/hub_server.py"
SERVER_PATH = Path(__file__).with_name("_server.py")
EGRESS_IN_SANDBOX = "/opt/rlhub/hub_egress.py"
EGRESS_SOCKETS_IN_SANDBOX = "/opt/rlhub/egress"
REGISTRY_IN_SANDBOX = "/opt/rlhub/registry.yaml"
WORKDIR = "/tmp/work"
READABLE = (*SYSTEM_DIRS, "/usr", "/etc", "/opt/rlhub", "/proc", "/sys", "/dev")
REWARD_BOUND = 1e6
"""A reward outside ±REWARD_BOUND (or not finite) is a violation, not a reward."""
RLHUB_PACKAGES = ("rlhub", "rlhub.envs", "rlhub.rewards")
START_SECONDS = 120.0


class CapabilityViolation(RLHubError):
    """An isolated env package tried something its manifest does not declare (or returned an invalid reward).

    Attributes:
        capability: ``network``, ``filesystem``, ``memory``, ``cpu``, ``processes`` or ``reward``.
    """

    def __init__(self, package: str, capability: str, detail: str) -> None:
        self.package, self.capability = package, capability
        super().__init__(f"environment package {package!r} violated its capabilities ({capability}): {detail}")


def _site_dirs(distribution: importlib.metadata.Distribution) -> list[str]:
    """The folders on ``sys.path`` holding installed distributions, and the package's own; never the trainer's
    working directory, its home, or a folder above either. The interpreter's own ``site-packages`` counts too:
    without a virtualenv, that is where rlhub's dependencies are installed (the standard library folders hold no
    distributions, so they are not bound)."""
    private = [os.path.realpath(p) for p in (os.getcwd(), os.path.expanduser("~"))]
    found = []
    for entry in [*sys.path, str(distribution.locate_file(""))]:
        path = os.path.realpath(entry or ".")
        if path in found or not os.path.isdir(path):
            continue
        if any(p == path or p.startswith(path.rstrip(os.sep) + os.sep) for p in private):
            continue
        if any(name.endswith((".dist-info", ".egg-info")) for name in os.listdir(path)):
            found.append(path)
    return found


def _inside(path: str, binds: list[tuple[str, str]]) -> str | None:
    for host, inside in binds:
        if path == host or path.startswith(host + os.sep):
            return inside + path[len(host) :]
    return None


FOLDER_PREFIX = "rlhub-hub-"
LOCK_FILE = ".owner-lock"
STALE_AFTER_S = 60.0
"""A folder younger than this is never taken for a dead process's (its creator may not hold the lock yet)."""
_folder_locks: dict[str, int] = {}
"""This process's live folders -> the descriptor holding each one's lock (released by the kernel at exit)."""


def new_folder(root: str | None = None) -> str:
    """A fresh host folder for one package's sandbox, locked for as long as this process holds it.

    First removes the folders of processes that ended without cleaning up (a trainer killed with SIGKILL never
    runs its finalizers, and left ``env.sock`` and ``stderr`` behind): a folder whose lock nobody holds.
    """
    remove_stale_folders(root)
    folder = tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=root)
    fd = os.open(os.path.join(folder, LOCK_FILE), os.O_CREAT | os.O_RDONLY, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _folder_locks[folder] = fd
    return folder


def remove_folder(folder: str) -> None:
    """Delete a folder :func:`new_folder` made, and release its lock."""
    shutil.rmtree(folder, ignore_errors=True)
    fd = _folder_locks.pop(folder, None)
    if fd is not None:
        os.close(fd)


def remove_stale_folders(root: str | None = None) -> list[str]:
    """Delete this user's sandbox folders whose process has ended (their lock is free); returns them.

    A folder without a lock file (an older rlhub's) or younger than ``STALE_AFTER_S`` is left alone.
    """
    root = root or tempfile.gettempdir()
    removed = []
    try:
        entries = [e for e in os.scandir(root) if e.name.startswith(FOLDER_PREFIX)]
    except OSError:
        return removed
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if not entry.is_dir(follow_symlinks=False) or info.st_uid != os.geteuid():
                continue
            if time.time() - info.st_mtime < STALE_AFTER_S or entry.path in _folder_locks:
                continue
            fd = os.open(os.path.join(entry.path, LOCK_FILE), os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its process is alive
            os.close(fd)
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        os.close(fd)
        removed.append(entry.path)
    return removed


class SandboxPlan:
    """The bwrap command line and server config for one env package, and the host folder they use.

    Args:
        distribution: The package's installed distribution.
        entry_point: Its ``rlhub.envs`` entry point.
        capabilities: What its manifest declares.
    """

    def __init__(
        self,
        distribution: importlib.metadata.Distribution,
        entry_point: importlib.metadata.EntryPoint,
        capabilities: Capabilities,
    ) -> None:
        problem = bwrap_problem()
        if problem is not None:
            raise RLHubError(
                f"environment package {distribution.name!r} runs isolated, which needs bubblewrap: {problem}; "
                f"or run it in-process, trusting its code with your files and tokens: RLHUB_TRUST={distribution.name}"
            )
        self.package = distribution.name
        self.capabilities = capabilities
        self.folder = new_folder()
        empty = os.path.join(self.folder, "empty")
        os.mkdir(empty)
        binds = [(path, f"/opt/rlhub/site-{i}") for i, path in enumerate(_site_dirs(distribution))]
        for path, _ in binds:
            if os.geteuid() == 0 and os.stat(path).st_mode & 0o005 != 0o005:
                raise RLHubError(f"{path} holds installed packages but others cannot read it: chmod o+rx {path}")
        modules = {}
        for name in RLHUB_PACKAGES:
            folder = os.path.realpath(importlib.util.find_spec(name).submodule_search_locations[0])
            if _inside(folder, binds) is None:
                modules[name] = f"/opt/rlhub/package-{name}"
                binds.append((folder, modules[name]))
        masks = self._masks(distribution, binds, empty)
        registry_file = str(default_registry_path())
        self.uid = next_worker_uid() if os.geteuid() == 0 else None
        self.config = {
            "entry_point": entry_point.name,
            "entry_value": entry_point.value,
            "uid": self.uid,
            "sys_path": [inside for _, inside in binds if not inside.startswith("/opt/rlhub/package-")],
            "modules": modules,
            "workdir": WORKDIR,
            "writable": sorted({os.path.normpath(os.path.join(WORKDIR, p)) for p in capabilities.writable}),
            "readable": [*READABLE, WORKDIR],
            "denied": [inside for _, inside in masks],
            # Inside, the package runs in-process: other env packages are masked, so it is the only one found.
            "environ": {"HOME": WORKDIR, "TMPDIR": WORKDIR, "MALLOC_ARENA_MAX": "2", "RLHUB_TRUST": self.package}
            | {"RLHUB_REGISTRY": REGISTRY_IN_SANDBOX},
            "memory_mb": capabilities.memory_mb,
            "cpu_seconds": capabilities.cpu_seconds,
            "processes": capabilities.processes,
            "reward_bound": REWARD_BOUND,
        }
        self.ro_binds = [*binds, *masks, (str(SERVER_PATH), SERVER_IN_SANDBOX)]
        if os.path.isfile(registry_file):
            self.ro_binds.append((registry_file, REGISTRY_IN_SANDBOX))
        self.routes = egress.routes(capabilities.network)
        if self.routes:
            self._plan_egress()

    def _plan_egress(self) -> None:
        """The folder of the relay's unix sockets, the sandbox's /etc/hosts and nsswitch.conf, and the config
        that has the sandbox relay each declared pair (see :mod:`rlhub.hub.egress`)."""
        sockets = os.path.join(self.folder, "egress")
        os.mkdir(sockets)
        os.chmod(sockets, 0o755)  # inside, the sandbox's uid reaches its sockets; outside, self.folder is 0700
        files = {egress.HOSTS_FILE: egress.hosts_file(self.routes), egress.NSSWITCH_FILE: egress.NSSWITCH}
        for name, text in files.items():
            Path(self.folder, name).write_text(text)
            os.chmod(os.path.join(self.folder, name), 0o644)
            self.ro_binds.append((os.path.join(self.folder, name), f"/etc/{name}"))
        self.ro_binds += [(sockets, EGRESS_SOCKETS_IN_SANDBOX), (egress.__file__, EGRESS_IN_SANDBOX)]
        self.config["egress"] = {
            "module": EGRESS_IN_SANDBOX,
            "folder": EGRESS_SOCKETS_IN_SANDBOX,
            "routes": [route._asdict() for route in self.routes],
        }

    def open_egress(self) -> egress.HostRelay | None:
        """The host side of the declared network, for one run of the sandbox (None when it declares none);
        the caller closes it when the sandbox has ended."""
        return egress.HostRelay(self.routes, os.path.join(self.folder, "egress")) if self.routes else None

    @staticmethod
    def _masks(distribution, binds, empty) -> list[tuple[str, str]]:
        """Binds that hide every other env package's files (an empty folder, or /dev/null for a file)."""
        masks = []
        for point in importlib.metadata.entry_points(group="rlhub.envs"):
            other = point.dist
            if other is None or other.name == distribution.name:
                continue
            tops = {file.parts[0] for file in other.files or [] if file.parts and file.parts[0] != ".."}
            for top in sorted(tops):
                host = os.path.realpath(other.locate_file(top))
                inside = _inside(host, binds)
                if inside is not None and os.path.exists(host):
                    masks.append((empty if os.path.isdir(host) else os.devnull, inside))
        return masks

    def argv(self, mode: str, **extra) -> list[str]:
        config = {**self.config, "mode": mode, **extra}
        argv = bwrap_python_command([*PYTHON_FLAGS, SERVER_IN_SANDBOX, json.dumps(config)], ro_binds=self.ro_binds)
        if any(route.port < 1024 for route in self.routes):
            # The sandbox's PID 1 binds the inside relay's listeners, and a port below 1024 takes this capability
            # in the user namespace that owns the sandbox's network namespace. As root, PID 1 gets it and its
            # child drops it with its uid. Otherwise bwrap makes two user namespaces, the outer owning the
            # network, unless the sandbox runs as its uid 0 (still this user outside).
            end = argv.index("--")
            unprivileged = ["--unshare-user", "--uid", "0", "--gid", "0"] if os.geteuid() != 0 else []
            argv[end:end] = [*unprivileged, "--cap-add", "CAP_NET_BIND_SERVICE"]
        return argv

    def violation_or_error(self, proc: subprocess.CompletedProcess | subprocess.Popen, stdout: str, what: str):
        """The exception for a sandbox that ended: a named violation where there is one."""
        for line in stdout.splitlines()[::-1]:
            if line.startswith("{") and "violations" in line:
                first = json.loads(line)["violations"][0]
                return CapabilityViolation(self.package, first["capability"], first["detail"])
            if line.startswith('{"config_error"'):
                return ConfigError(json.loads(line)["config_error"])
        code = proc.returncode
        if code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            return CapabilityViolation(self.package, "cpu", f"used more than {self.capabilities.cpu_seconds:g} CPU s")
        try:
            stderr = Path(self.folder, "stderr").read_text(errors="replace")[-2000:]
        except OSError:
            stderr = ""
        return RLHubError(f"environment package {self.package!r}: {what} failed (exit {code}): {stderr.strip()}")

    def entries(self) -> list:
        """The registry entries the package's entry point gives, loaded in the sandbox."""
        try:
            proc = self._run_entries()
            if proc.returncode != 0:
                raise self.violation_or_error(proc, proc.stdout, "loading its entry point")
            return json.loads(proc.stdout.strip().splitlines()[-1])["entries"]
        finally:
            remove_folder(self.folder)

    def _run_entries(self) -> subprocess.CompletedProcess:
        relay = self.open_egress()
        lifeline, keep = os.pipe()
        try:
            with open(os.path.join(self.folder, "stderr"), "w") as stderr:
                return subprocess.run(
                    self.argv("entries", lifeline_fd=lifeline),
                    stdout=subprocess.PIPE, stderr=stderr, text=True, env=_host_env(), timeout=300,
                    pass_fds=[lifeline],
                )  # fmt: skip
        finally:
            os.close(lifeline)
            os.close(keep)  # the sandbox's PID 1 sees the pipe close and ends every process left in it
            if relay is not None:
                relay.close()


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _host_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", BASE_ENV["PATH"])}


class EnvSandbox:
    """One running env server in its sandbox; stopped by :meth:`stop`, garbage collection or interpreter exit.

    Args:
        plan: The package's sandbox.
        env_id: The env it serves.
        overrides: Config overrides, as ``rlhub.make`` got them.
    """

    def __init__(self, plan: SandboxPlan, env_id: str, overrides: dict) -> None:
        self.plan = plan
        self.socket_path = os.path.join(plan.folder, "env.sock")
        relay = plan.open_egress()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.socket_path)
            listener.listen(64)
            os.set_inheritable(listener.fileno(), True)
            # The lifeline: this process holds its write end and never writes. When this process ends, however
            # it ends (kill -9 included), the pipe closes and the sandbox's PID 1 ends everything in it. A second
            # guard beside bwrap's --die-with-parent, which holds only while PID 1 keeps its credentials.
            lifeline, self._lifeline = os.pipe()
            argv = plan.argv(
                "serve", env_id=env_id, overrides=overrides, socket_fd=listener.fileno(), lifeline_fd=lifeline
            )
            with open(os.path.join(plan.folder, "stderr"), "w") as stderr:
                self.process = subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=stderr, text=True, env=_host_env(),
                    pass_fds=[listener.fileno(), lifeline], start_new_session=True,
                )  # fmt: skip
            os.close(lifeline)
        except BaseException:
            if relay is not None:
                relay.close()
            raise
        finally:
            listener.close()  # the server holds it now; a dead server then refuses connections at once
        self._finalizer = weakref.finalize(self, _stop, self.process, plan.folder, self._lifeline, relay)

    def failure(self, what: str) -> RLHubError:
        """Stop the server and say why it failed (a named violation where it left one)."""
        try:
            self.process.wait(timeout=5)  # a server that died on its own says how
        except subprocess.TimeoutExpired:
            pass
        error = self.plan.violation_or_error(self.process, self.process.stdout.read(), what)
        self.stop()
        return error

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self._finalizer()


def _stop(
    process: subprocess.Popen, folder: str, lifeline: int | None = None, relay: egress.HostRelay | None = None
) -> None:
    if lifeline is not None:
        os.close(lifeline)
    if process.poll() is None:
        # Killing the sandbox's PID 1 ends every process in its PID namespace; then bwrap itself.
        inits = _children(process.pid)
        for pid in inits:
            os.kill(pid, signal.SIGKILL)
        process.kill()
        process.wait()
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{pid}") for pid in inits) and time.monotonic() < deadline:
            time.sleep(0.01)
    if process.stdout is not None:
        process.stdout.close()
    if relay is not None:
        relay.close()
    remove_folder(folder)
