"""The server inside a workspace's sandbox: the workspace's file operations and programs, over framed pipes.

It runs as a standalone script, ``python -I -S -B -X utf8 _workspace_server.py CONFIG_JSON``, beside
``_zygote.py`` (whose program runner and cleanup it reuses, and the framing, ``_protocol.py``, it defines
from the source in the config), and imports only the standard library. ``rlhub.sandbox.workspace`` starts
one per ``Workspace``: under bwrap as PID 1 of the sandbox, the workspace being a size-limited tmpfs that
exists only in the sandbox's mount namespace; with the subprocess backend as a host process over a host directory.

Protocol, on stdin and stdout: the zygote's frames (a 4-byte big-endian length, then UTF-8 JSON). The
server first sends ``{"ready": true}``; then, for each request ``{"op": ...}`` (``list``, ``read``,
``write``, ``delete``, ``snapshot``, ``run``), it replies with the op's result or ``{"error": message}``,
a message fit to show a model. EOF on stdin shuts it down.

Every path is resolved one component at a time from a descriptor of the root, never following a
symbolic link, so a link a program planted cannot make the server touch anything outside. A program
(``run``) is a forked child like the zygote's: a new session, the programs' uid when the server may
change uid, rlimits (CPU, address space, processes, file size, open files), stdout and stderr on pipes
of its own; the workspace root is its working directory and the first entry of ``sys.path``. A thread
watches the workspace while it runs and stops it once it holds more than ``max_files`` entries or
``max_bytes`` bytes; the entries such a run created are then removed. When it ends, every process it
started is killed and the scratch directories are emptied.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import resource
import shutil
import signal
import stat
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _zygote  # the zygote beside this file, not a package: the sandbox holds no rlhub

del sys.path[0]
protocol = _zygote.protocol

WATCH_INTERVAL = 0.05
"""Seconds between two looks at the workspace while a program runs."""
OUTPUT_CAP_BYTES = 1_000_000
"""Output kept of each stream before the program is stopped; the reply then keeps ``max_output_chars``."""
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Refused(Exception):
    """A request the workspace refuses; its message goes back to the model."""


# ----------------------------------------------------------------------------- paths


def split_path(path) -> list[str]:
    """The components of a relative path inside the workspace; Refused for anything else."""
    if not isinstance(path, str) or "\x00" in path:
        raise Refused(f"a path must be a string without NUL characters, got {path!r}")
    if path.startswith("/"):
        raise Refused(f"{path!r} is absolute: give a path relative to the workspace root")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise Refused(f"{path!r} leaves the workspace: '..' is not allowed in a path")
    if not parts:
        raise Refused(f"{path!r} names the workspace root, not a file")
    return parts


def open_dir(root_fd: int, parts: list[str], *, create: bool = False) -> int:
    """A descriptor of the directory ``parts`` below the root, never following a link (the caller closes it)."""
    fd = os.dup(root_fd)
    for depth, name in enumerate(parts):
        try:
            if create:
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
            child = os.open(name, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            raise Refused(f"no directory {'/'.join(parts[: depth + 1])!r} in the workspace") from None
        except OSError:
            raise Refused(f"{'/'.join(parts[: depth + 1])!r} is {kind(fd, name)}, not a directory") from None
        finally:
            os.close(fd)
        fd = child
    return fd


def kind(dir_fd: int, name: str) -> str:
    """What ``name`` in ``dir_fd`` is, in words ("a symbolic link", "a file"), without following it."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return "unreadable"
    if stat.S_ISLNK(mode):
        return "a symbolic link, which the workspace does not follow"
    return "a directory" if stat.S_ISDIR(mode) else "a file" if stat.S_ISREG(mode) else "a special file"


def scan(root_fd: int, limit: int) -> dict[str, os.stat_result]:
    """Every entry below the root (files, directories, links) by relative path, without following links.

    Stops once it has found more than ``limit`` entries, so a program that made a million cannot make it slow.
    """
    found: dict[str, os.stat_result] = {}
    pending = [""]
    while pending and len(found) <= limit:
        prefix = pending.pop()
        try:
            fd = open_dir(root_fd, prefix.split("/")) if prefix else os.dup(root_fd)
        except Refused:  # replaced by something else since it was listed (a program still running)
            continue
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    relative = f"{prefix}/{entry.name}" if prefix else entry.name
                    try:
                        found[relative] = info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(relative)
                    if len(found) > limit:
                        break
        finally:
            os.close(fd)
    return found


# ----------------------------------------------------------------------------- the workspace


class Workspace:
    """The files below ``config["root"]`` and the limits on them."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.root_fd = os.open(config["root"], DIR_FLAGS)

    def entries(self) -> dict[str, os.stat_result]:
        return scan(self.root_fd, self.config["max_files"])

    def over_limits(self, entries: dict[str, os.stat_result]) -> str | None:
        """Which limit the workspace is over, if any."""
        if len(entries) > self.config["max_files"]:
            return f"more than max_files={self.config['max_files']} files and directories"
        size = sum(info.st_size for info in entries.values() if stat.S_ISREG(info.st_mode))
        if size > self.config["max_bytes"]:
            return f"more than max_bytes={self.config['max_bytes']} bytes"
        return None

    def list(self) -> dict:
        files = [path for path, info in self.entries().items() if stat.S_ISREG(info.st_mode)]
        return {"files": sorted(files)}

    def read(self, path) -> dict:
        parts = split_path(path)
        data = self._read_bytes(parts)
        if b"\x00" in data:
            raise Refused(f"{path!r} is a binary file")
        try:
            return {"content": data.decode("utf-8")}
        except UnicodeDecodeError:
            raise Refused(f"{path!r} is a binary file (not UTF-8 text)") from None

    def write(self, path, content) -> dict:
        parts = split_path(path)
        if not isinstance(content, str):
            raise Refused(f"the content of {path!r} must be a string")
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError:
            raise Refused(f"the content of {path!r} is not valid Unicode text") from None
        if len(data) > self.config["max_file_bytes"]:
            raise Refused(f"{path!r} would be {len(data)} bytes, over max_file_bytes={self.config['max_file_bytes']}")
        entries = self.entries()
        new = [p for p in ("/".join(parts[: i + 1]) for i in range(len(parts))) if p not in entries]
        old = entries.get("/".join(parts))
        size = sum(info.st_size for info in entries.values() if stat.S_ISREG(info.st_mode))
        size += len(data) - (old.st_size if old is not None and stat.S_ISREG(old.st_mode) else 0)
        if len(entries) + len(new) > self.config["max_files"]:
            raise Refused(f"the workspace would hold more than max_files={self.config['max_files']} files")
        if size > self.config["max_bytes"]:
            raise Refused(f"the workspace would hold {size} bytes, over max_bytes={self.config['max_bytes']}")
        parent = open_dir(self.root_fd, parts[:-1], create=True)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(parts[-1], flags, 0o666, dir_fd=parent)
        except OSError as exc:
            raise Refused(f"cannot write {path!r}: it is {kind(parent, parts[-1]) or exc.strerror}") from None
        finally:
            os.close(parent)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Refused(f"{path!r} is not a regular file")
            protocol.write_all(fd, data)
        except OSError as exc:
            raise Refused(f"cannot write {path!r}: {exc.strerror}") from None
        finally:
            os.close(fd)
        return {}

    def delete(self, path) -> dict:
        parts = split_path(path)
        parent = open_dir(self.root_fd, parts[:-1])
        try:
            info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(parts[-1], dir_fd=parent)
            else:
                os.unlink(parts[-1], dir_fd=parent)
        except FileNotFoundError:
            raise Refused(f"no file {path!r} in the workspace") from None
        except OSError as exc:
            raise Refused(f"cannot delete {path!r}: {exc.strerror}") from None
        finally:
            os.close(parent)
        return {}

    def snapshot(self) -> dict:
        files = {}
        for path, info in sorted(self.entries().items()):
            if stat.S_ISREG(info.st_mode):
                files[path] = self._read_bytes(path.split("/")).decode("utf-8", "replace")
        return {"files": files}

    def _read_bytes(self, parts: list[str]) -> bytes:
        path = "/".join(parts)
        parent = open_dir(self.root_fd, parts[:-1])
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
        except FileNotFoundError:
            raise Refused(f"no file {path!r} in the workspace") from None
        except OSError as exc:
            raise Refused(f"cannot read {path!r}: it is {kind(parent, parts[-1]) or exc.strerror}") from None
        finally:
            os.close(parent)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise Refused(f"{path!r} is not a regular file")
            if info.st_size > self.config["max_file_bytes"]:
                raise Refused(f"{path!r} is {info.st_size} bytes, over max_file_bytes={self.config['max_file_bytes']}")
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------------- programs

    def run(self, code, timeout) -> dict:
        if not isinstance(code, str):
            raise Refused("code must be a string")
        if not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            raise Refused(f"timeout must be a positive number of seconds, got {timeout!r}")
        before = set(self.entries())
        request = {"code": code, "timeout": timeout, "max_output": OUTPUT_CAP_BYTES, "calls": None}
        child = ProgramChild(self.config)
        watcher = Watcher(self, child.pid)
        watcher.start()
        try:
            reply = _zygote.run_one(json.dumps(request).encode(), child)
        finally:
            watcher.stop()
        notes = []
        over = watcher.over or self.over_limits(self.entries())
        if over:
            removed = self._remove_new(before)
            what = "stopped: the workspace went over" if watcher.over else "the program left the workspace with"
            notes.append(f"rlhub.workspace: {what} {over}; the {removed} files and directories it made were removed")
        # With no per-program directory to remove (the workspace stays), only the scratch and IPC are emptied.
        if not _zygote._clean_scratch({**self.config, "workdir": ""}):
            notes.append("rlhub.workspace: the scratch directories could not be emptied")
        if notes:
            reply["stderr"] += ("\n" if reply["stderr"] else "") + " ".join(notes) + "\n"
        reply.pop("results", None)
        limit = self.config["max_output_chars"]
        for stream in ("stdout", "stderr"):
            if len(reply[stream]) > limit:
                reply[stream] = cut(reply[stream], limit)
                reply["truncated"] = True
        return reply

    def _remove_new(self, before: set[str]) -> int:
        """Remove the entries that are not in ``before`` (a new directory as a whole); return how many went."""
        created = {path for path in scan(self.root_fd, math.inf) if path not in before}
        removed = 0
        for path in created:
            parts = path.split("/")
            if any("/".join(parts[:depth]) in created for depth in range(1, len(parts))):
                continue  # inside a new directory, which goes as a whole
            try:
                self.delete(path)
                removed += 1
            except Refused:
                pass
        return removed


def cut(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, keeping its start and its end (where tracebacks end)."""
    head = limit // 2
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-tail:]}"


class Watcher(threading.Thread):
    """Stops a running program once the workspace goes over its limits."""

    def __init__(self, workspace: Workspace, pid: int) -> None:
        super().__init__(daemon=True)
        self.workspace, self.pid = workspace, pid
        self.over: str | None = None
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(WATCH_INTERVAL):
            over = self.workspace.over_limits(self.workspace.entries()) or self._scratch_over()
            if over and not self._stopped.is_set():
                self.over = over
                for kill in (os.killpg, os.kill):  # its session (or itself, before setsid); run_one kills the rest
                    try:
                        kill(self.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return

    def _scratch_over(self) -> str | None:
        """Files in a tmpfs scratch directory (the bytes there are capped by its size)."""
        if not self.workspace.config["tmpfs"]:
            return None
        for directory in self.workspace.config["scratch"]:
            info = os.statvfs(directory)
            if info.f_files - info.f_ffree > self.workspace.config["max_files"]:
                return f"more than max_files={self.workspace.config['max_files']} files in {directory}"
        return None

    def stop(self) -> None:
        self._stopped.set()
        self.join()


# ----------------------------------------------------------------------------- a program's process


def _child(config: dict, request_r: int, out_w: int, err_w: int, report_w: int, results_w: int) -> None:
    """In the forked child: drop to the programs' uid, set the limits, run the program; never returns."""
    try:
        # All are >= 5: the server's protocol holds fds 3 and 4, which these dup2 calls close.
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(report_w, _zygote.REPORT_FD)
        os.dup2(results_w, _zygote.RESULTS_FD)
        os.setsid()
        uid = config["uid"]
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        _zygote._prctl(_zygote.PR_SET_PDEATHSIG, signal.SIGKILL)
        _zygote._prctl(_zygote.PR_SET_DUMPABLE, 1)
        request = json.loads(protocol.read_to_end(request_r))
        os.chdir(config["root"])
        os.closerange(_zygote.RESULTS_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        _zygote.set_program_limits(request["timeout"], config["memory_mb"], config)
        sys.argv = ["main.py"]
        sys.path.insert(0, config["root"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
    except BaseException as exc:  # any setup failure is reported as the program's error
        os.write(2, f"sandbox setup failed: {exc!r}\n".encode())
        os._exit(_zygote.SETUP_FAILED_EXIT)
    _zygote._run_program([["main.py", request["code"]]], None, None, None)


# ----------------------------------------------------------------------------- the server


def handle(workspace: Workspace, request: dict) -> dict:
    """One request's reply."""
    op = request.get("op")
    try:
        if op == "list":
            return workspace.list()
        if op == "read":
            return workspace.read(request.get("path"))
        if op == "write":
            return workspace.write(request.get("path"), request.get("content"))
        if op == "delete":
            return workspace.delete(request.get("path"))
        if op == "snapshot":
            return workspace.snapshot()
        if op == "run":
            return workspace.run(request.get("code"), request.get("timeout"))
        return {"error": f"unknown workspace operation {op!r}"}
    except Refused as exc:
        return {"error": str(exc)}
    except OSError as exc:  # e.g. the tmpfs is full: the request failed, the server goes on
        return {"error": f"the workspace operation failed: {exc.strerror or exc}"}


def main(argv: list[str]) -> None:
    config = json.loads(argv[-1])
    _zygote._libc = ctypes.CDLL(None, use_errno=True)
    _zygote._libc.syscall.restype = ctypes.c_long
    # Move the protocol off fds 0/1 (to 3 and 4) so that programs never inherit it.
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _zygote._prctl(_zygote.PR_SET_CHILD_SUBREAPER, 1)
    _zygote._prctl(_zygote.PR_SET_DUMPABLE, 0)
    _zygote._prctl(_zygote.PR_SET_PDEATHSIG, signal.SIGKILL)
    os.umask(0)  # files are shared with the programs' uid: 0666, directories 0777, inside the sandbox only
    os.chdir("/")
    os.environ.update(HOME=config["root"], TMPDIR=config["scratch"][0], PWD=config["root"])
    _zygote.prepare_programs(config)
    workspace = Workspace(config)
    protocol.write_all(replies, protocol.encode_frame({"ready": True, "pid": os.getpid()}))
    while (payload := protocol.read_frame(requests)) is not None:
        protocol.write_all(replies, protocol.encode_frame(handle(workspace, json.loads(payload))))
    _zygote._kill_everything_else()


class ProgramChild(_zygote.Spare):
    """The zygote's forked child, set up to run in the workspace (its root as working directory)."""

    child = staticmethod(_child)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except BrokenPipeError:  # the host went away; the sandbox dies with us
        sys.exit(0)
