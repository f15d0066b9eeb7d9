"""Per-episode workspaces: files that persist across an episode's tool calls, in one warm sandbox.

    >>> from rlhub.sandbox.workspace import Workspace
    >>> with Workspace(files={"calc.py": "def add(a, b):\\n    return a + b\\n"}) as ws:  # doctest: +SKIP
    ...     ws.write("main.py", "from calc import add\\nprint(add(2, 2))\\n")
    ...     ws.run("import main").stdout
    '4\\n'

A ``Workspace`` is one long-lived sandbox whose server (``_workspace_server.py``) holds a directory of
files and runs programs in it: every file operation and every program goes through that server, over
pipes. With the bwrap backend the directory is a tmpfs of the sandbox's own, capped at about
``max_bytes``: it exists in no host directory, and bwrap runs with ``--die-with-parent``, so when the
process that opened a workspace dies, even by ``kill -9``, the sandbox, its processes and its files go
with it. Programs get what ``rlhub.sandbox`` programs get (no network, a read-only system, no host
files, a cleared environment, their own uid when the host runs as root), with the workspace root as
their working directory and first ``sys.path`` entry. With the subprocess backend (no bubblewrap) the
directory is a host temporary directory and programs are host processes with rlimits: NOT isolated,
as ``rlhub.sandbox`` warns, and a killed trainer leaves that directory behind.

Close a workspace (``close()``, or use it as a context manager) when its episode ends; episodes of
``MultiTurnEnv`` do it through ``EpisodeState.resources`` (see docs/workspace.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

from rlhub.errors import ConfigError, RLHubError
from rlhub.sandbox.backends import make_backend, resolve_backend
from rlhub.sandbox.bwrap_backend import _python_layout, bwrap_python_command
from rlhub.sandbox.channel import PipeChannel, WorkerLost
from rlhub.sandbox.config import BASE_ENV, PYTHON_FLAGS, ZYGOTE_PATH, next_worker_uid, zygote_config
from rlhub.sandbox.result import ExecResult

SERVER_PATH = Path(__file__).with_name("_workspace_server.py")
SANDBOX_DIR = "/opt/rlhub"
ROOT_IN_SANDBOX = "/workspace"
SCRATCH_IN_SANDBOX = ("/tmp", "/dev/shm")
MAX_PROCESSES = 64
STARTUP_TIMEOUT = 60.0
OPERATION_TIMEOUT = 30.0
"""Seconds a file operation may take before the server counts as wedged."""
REPLY_GRACE = 10.0
"""Seconds past a program's timeout for the server to clean up and answer."""
CLOSE_TIMEOUT = 2.0
PAGE = 4096


class WorkspaceError(RLHubError):
    """A workspace operation failed; the message says why, in words fit to show the model."""


@dataclasses.dataclass(frozen=True)
class WorkspaceLimits:
    """What one workspace may hold and what its programs may use."""

    max_bytes: int = 8_000_000
    """Total size of the files' contents. Under bwrap the tmpfs holding them is this plus a page per
    entry, so a program that writes past it gets "No space left on device"."""
    max_files: int = 200
    """Files, directories and links at most. A write past it is refused; a program past it is stopped
    and what it created removed."""
    max_file_bytes: int = 1_000_000
    """Size of one file: a write past it is refused, a program's write past it fails (RLIMIT_FSIZE)."""
    run_timeout: float = 10.0
    """Default wall-clock seconds of ``run``; CPU time is capped a second above it."""
    memory_mb: int = 512
    """Address-space limit of each of a program's processes."""
    max_output_chars: int = 4000
    """Characters kept of a program's stdout and of its stderr (the start and the end)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first limit that is not a positive number."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"WorkspaceLimits.{field.name} must be a positive number, got {value!r}")
            if field.type == "int" and not isinstance(value, int):
                raise ConfigError(f"WorkspaceLimits.{field.name} must be an int, got {value!r}")


class Workspace:
    """A directory of text files in a sandbox of its own, for one episode; see the module docstring.

    Thread-safe (operations run one at a time). Every error about a path or a limit raises
    ``WorkspaceError`` with a message for the model; a workspace whose sandbox died is closed.

    Args:
        files: ``{relative_path: content}`` to start with.
        limits: What the workspace may hold and its programs use; default ``WorkspaceLimits()``.
        backend: "bwrap", "subprocess", "auto", or None for $RLHUB_SANDBOX, else "auto" (bwrap if
            it works here, else subprocess, with a warning that it is not isolated).

    Raises:
        WorkspaceError: ``files`` break a limit or name a path outside the workspace.
        RLHubError: The backend cannot run here (docker workspaces are not implemented).
    """

    def __init__(
        self,
        files: dict[str, str] | None = None,
        limits: WorkspaceLimits | None = None,
        backend: str | None = None,
    ) -> None:
        self.limits = limits or WorkspaceLimits()
        name = resolve_backend(backend)
        if name not in ("bwrap", "subprocess"):
            raise RLHubError(f"workspaces run on the bwrap or subprocess backend, not {name!r}; pass backend='bwrap'")
        self.backend = make_backend(name, max_processes=MAX_PROCESSES, docker_image="").name
        self._lock = threading.Lock()
        self._channel = _start_bwrap(self.limits) if self.backend == "bwrap" else _start_subprocess(self.limits)
        self._close = weakref.finalize(self, self._channel.close, 0)
        try:
            ready = self._channel.recv(time.monotonic() + STARTUP_TIMEOUT)
            if not ready.get("ready"):
                raise WorkerLost("killed", f"it sent {ready!r} instead of its ready message")
        except WorkerLost as lost:
            details = self._channel.diagnostics() or "it wrote nothing to stderr"
            self.close()
            raise RLHubError(f"a {self.backend} workspace failed to start ({lost}): {details}") from None
        try:
            for path, content in (files or {}).items():
                self.write(path, content)
        except BaseException:
            self.close()
            raise

    def list_files(self) -> list[str]:
        """The relative POSIX paths of the regular files, sorted."""
        return self._request({"op": "list"})["files"]

    def read(self, path: str) -> str:
        """The text of the file at ``path``.

        Raises:
            WorkspaceError: The path is missing, outside the workspace, a link, binary, or over max_file_bytes.
        """
        return self._request({"op": "read", "path": path})["content"]

    def write(self, path: str, content: str) -> None:
        """Create or replace the file at ``path`` (and its parent directories).

        Raises:
            WorkspaceError: The path is outside the workspace or crosses a link, or a limit would be broken.
        """
        self._request({"op": "write", "path": path, "content": content})

    def delete(self, path: str) -> None:
        """Remove the file, link or directory tree at ``path``.

        Raises:
            WorkspaceError: Nothing is there, or the path is outside the workspace.
        """
        self._request({"op": "delete", "path": path})

    def run(self, code: str, *, timeout: float | None = None) -> ExecResult:
        """Run a Python program with the workspace root as working directory and first ``sys.path`` entry.

        What it writes to the workspace stays; its scratch (/tmp) does not, nor any process it started.
        A program that takes the workspace over ``max_files`` or ``max_bytes`` is stopped (status
        "killed"; one that ends before it is seen keeps its status), the files and directories it made
        are removed, and its stderr ends with a note saying so.

        Args:
            code: Python source, run as ``__main__`` (``sys.argv == ["main.py"]``).
            timeout: Wall-clock seconds; default ``limits.run_timeout``.

        Returns:
            The outcome, stdout and stderr each cut to ``limits.max_output_chars``; a program's failure
            is reported there, never raised.
        """
        timeout = self.limits.run_timeout if timeout is None else timeout
        reply = self._request({"op": "run", "code": code, "timeout": timeout}, timeout + REPLY_GRACE)
        return ExecResult(**reply)

    def snapshot(self) -> dict[str, str]:
        """Every regular file's text by path (bytes that are not UTF-8 replaced by U+FFFD)."""
        return self._request({"op": "snapshot"})["files"]

    def close(self) -> None:
        """Stop the sandbox and remove the files; idempotent, and safe while another thread waits on it."""
        self._close()

    @property
    def closed(self) -> bool:
        return not self._close.alive

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace(backend={self.backend!r}, closed={self.closed})"

    def _request(self, message: dict, timeout: float = OPERATION_TIMEOUT) -> dict:
        with self._lock:
            if self.closed:
                raise WorkspaceError("the workspace is closed")
            deadline = time.monotonic() + timeout
            try:
                self._channel.send(message, deadline)
                reply = self._channel.recv(deadline)
            except WorkerLost as lost:
                details = "" if self.closed else self._channel.diagnostics()
                self.close()
                raise WorkspaceError(
                    f"the workspace's sandbox stopped ({lost}){': ' + details if details else ''}; it is closed"
                ) from None
            except (OSError, ValueError):  # closed by another thread while this one waited
                self.close()
                raise WorkspaceError("the workspace was closed during the operation") from None
        if "error" in reply:
            raise WorkspaceError(reply["error"])
        return reply


def _server_config(limits: WorkspaceLimits, *, root: str, scratch: list[str], sandboxed: bool) -> dict:
    """What ``_workspace_server.py`` takes on its command line."""
    config = zygote_config(
        uid=next_worker_uid() if sandboxed and os.geteuid() == 0 else None,
        max_processes=MAX_PROCESSES if sandboxed else None,
        workdir=root,
        scratch=scratch,
        private_ipc=sandboxed,
        site_packages=_python_layout()[3] if sandboxed else _host_site_packages(),
    )
    return {
        **config,
        "root": root,
        "tmpfs": sandboxed,
        "max_bytes": limits.max_bytes,
        "max_files": limits.max_files,
        "max_file_bytes": limits.max_file_bytes,
        "memory_mb": limits.memory_mb,
        "max_output_chars": limits.max_output_chars,
    }


def _start_bwrap(limits: WorkspaceLimits) -> PipeChannel:
    """The server as PID 1 of a bwrap sandbox, the workspace and scratch being tmpfs mounts of the sandbox's own."""
    config = _server_config(limits, root=ROOT_IN_SANDBOX, scratch=list(SCRATCH_IN_SANDBOX), sandboxed=True)
    server = f"{SANDBOX_DIR}/{SERVER_PATH.name}"
    argv = bwrap_python_command(
        [*PYTHON_FLAGS, server, json.dumps(config)],
        ro_binds=[(str(ZYGOTE_PATH), f"{SANDBOX_DIR}/{ZYGOTE_PATH.name}"), (str(SERVER_PATH), server)],
    )
    # Sized tmpfs mounts, made before the root turns read-only: a page per entry on top of the contents.
    size = str(limits.max_bytes + (limits.max_files + 1) * PAGE)
    mounts = ["--size", size, "--perms", "0777", "--tmpfs", ROOT_IN_SANDBOX]
    for directory in SCRATCH_IN_SANDBOX:
        mounts += ["--size", size, "--perms", "1777", "--tmpfs", directory]
    at = argv.index("--remount-ro")
    argv[at:at] = mounts
    return PipeChannel(argv, env={"PATH": os.environ.get("PATH", BASE_ENV["PATH"])}, wrapped=True)


def _start_subprocess(limits: WorkspaceLimits) -> PipeChannel:
    """The server as a host process over a host temporary directory (not isolated)."""
    base = tempfile.mkdtemp(prefix="rlhub-workspace-")
    root, scratch = os.path.join(base, "workspace"), os.path.join(base, "tmp")
    os.mkdir(root)
    os.mkdir(scratch)
    config = _server_config(limits, root=root, scratch=[scratch], sandboxed=False)
    argv = [sys.executable, *PYTHON_FLAGS, str(SERVER_PATH), json.dumps(config)]
    # rm, not shutil.rmtree: a program can nest directories deeper than Python's recursion limit.
    remove = ["rm", "-rf", "--one-file-system", base]
    return PipeChannel(argv, env=dict(BASE_ENV), wrapped=False, on_close=lambda: subprocess.run(remove, check=False))


def _host_site_packages() -> list[str]:
    import site

    return site.getsitepackages()
