"""Talking to one warm worker: the framed pipe channel, and the thread that starts worker processes."""

from __future__ import annotations

import os
import queue
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol

from rlhub.sandbox._protocol import FrameBuffer, encode_frame

DIAGNOSTICS_CHARS = 2000


class WorkerLost(Exception):
    """The worker died or stopped answering; ``status`` is what to report for the program."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class Channel(Protocol):
    """A connection to one zygote, used by one thread at a time."""

    def send(self, message: dict, deadline: float) -> None: ...

    def recv(self, deadline: float) -> dict: ...

    def alive(self) -> bool:
        """False if the worker is known to have died (checked before each program)."""

    def request_exit(self) -> None:
        """Ask the zygote to exit (EOF on its stdin) without waiting."""

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the worker to exit, then kill it; release everything."""

    def diagnostics(self) -> str:
        """The tail of what the worker wrote to its own stderr, for error messages."""


class _Spawner:
    """Starts worker processes from one long-lived daemon thread.

    bwrap's ``--die-with-parent`` (``PR_SET_PDEATHSIG``) fires when the *thread* that forked it
    exits, not the process: a worker started from a short-lived caller thread would die with it.
    """

    def __init__(self) -> None:
        self._forget()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        """Start afresh: a forked child has none of its parent's threads."""
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="rlhub-sandbox-spawner", daemon=True)
                self._thread.start()
        future: Future = Future()
        self._requests.put((future, argv, kwargs))
        return future.result()

    def _serve(self) -> None:
        while True:
            future, argv, kwargs = self._requests.get()
            try:
                future.set_result(subprocess.Popen(argv, **kwargs))
            except BaseException as exc:  # handed to the waiting caller
                future.set_exception(exc)


SPAWNER = _Spawner()


class PipeChannel:
    """A zygote running as a local process (bwrap or plain python), framed over its stdin/stdout.

    Args:
        argv: The command that starts the zygote.
        env: Its environment.
        wrapped: The command starts the zygote as its only child (bwrap) rather than being it.
        on_close: Called once the process is gone (e.g. to remove a scratch directory).
    """

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        *,
        wrapped: bool,
        on_close: Callable[[], None] | None = None,
    ):
        self._wrapped = wrapped
        self._zygote_exit: select.poll | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the channel; closed in close()
        self._on_close = on_close
        self._proc = SPAWNER.popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            bufsize=0,
            start_new_session=True,
        )
        self._frames = FrameBuffer()
        os.set_blocking(self._proc.stdin.fileno(), False)
        self._readable = select.poll()
        self._readable.register(self._proc.stdout.fileno(), select.POLLIN)
        self._writable = select.poll()
        self._writable.register(self._proc.stdin.fileno(), select.POLLOUT)

    def send(self, message: dict, deadline: float) -> None:
        data = memoryview(encode_frame(message))
        fd = self._proc.stdin.fileno()
        while data:
            if not self._writable.poll(_millis_left(deadline)):
                raise WorkerLost("timeout", "the worker stopped reading its requests")
            try:
                data = data[os.write(fd, data) :]
            except BlockingIOError:
                continue
            except OSError as exc:
                raise WorkerLost("killed", f"the worker is gone ({self._exit_description()})") from exc

    def recv(self, deadline: float) -> dict:
        fd = self._proc.stdout.fileno()
        while (message := self._frames.pop()) is None:
            if not self._readable.poll(_millis_left(deadline)):
                raise WorkerLost("timeout", "the worker did not answer in time")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise WorkerLost("killed", f"the worker exited ({self._exit_description()})")
            self._frames.feed(chunk)
        return message

    def alive(self) -> bool:
        if self._proc.poll() is not None:
            return False
        if self._zygote_exit is None:
            # bwrap outlives its child for a moment, so watch the zygote itself.
            pid = self._proc.pid
            if self._wrapped:
                with open(f"/proc/{pid}/task/{pid}/children") as handle:
                    children = handle.read().split()
                if not children:
                    return False
                pid = int(children[0])
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                return False
            self._zygote_exit = select.poll()
            self._zygote_exit.register(pidfd, select.POLLIN)
            self._zygote_pidfd = pidfd
        return not self._zygote_exit.poll(0)

    def request_exit(self) -> None:
        if not self._proc.stdin.closed:
            self._proc.stdin.close()

    def close(self, timeout: float) -> None:
        self.request_exit()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # The process group is bwrap (whose --die-with-parent takes the sandbox down with it)
            # or the plain zygote.
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()
        if self._zygote_exit is not None:
            os.close(self._zygote_pidfd)
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def diagnostics(self) -> str:
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - DIAGNOSTICS_CHARS))
        return self._stderr.read().decode("utf-8", "replace").strip()

    def _exit_description(self) -> str:
        try:
            returncode = self._proc.wait(1.0)
        except subprocess.TimeoutExpired:
            return "still running, pipe closed"
        return f"exit status {returncode}"


def _millis_left(deadline: float) -> int:
    return max(0, int((deadline - time.monotonic()) * 1000))
