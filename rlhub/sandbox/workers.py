"""The one pool of worker processes (the sandbox's warm zygotes, math-verify's and the SQL scorer's workers),
and the one line-protocol worker (:class:`LineWorker`) that the last two run.

A pool lends each worker to one caller at a time (``acquire``/``release``), starts workers on demand
up to ``size``, replaces a worker its caller found unhealthy, and stops every worker on ``close``.
Subclasses say how one worker starts and stops; each speaks its own protocol with its own deadlines.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import subprocess
import threading
import time
from collections.abc import Iterable
from typing import Generic, TypeVar

from rlhub.errors import RLHubError

log = logging.getLogger(__name__)

W = TypeVar("W")


class WorkerPool(Generic[W]):
    """Up to ``size`` workers, started on demand; thread-safe; after a fork the child starts its own.

    Args:
        size: The most workers alive at once (callers beyond it wait for one to be released).
        name: What a worker is, for messages ("sandbox worker").
    """

    def __init__(self, size: int, name: str = "worker") -> None:
        self.size = size
        self.name = name
        self._lock = threading.Lock()
        self._idle: queue.LifoQueue[W] = queue.LifoQueue()
        self._all: set[W] = set()
        self._pid = os.getpid()
        self._closed = False

    # --- what subclasses provide ------------------------------------------------------------------
    def start_worker(self) -> W:
        """A new worker (it may start its process now or on first use); may raise OSError."""
        raise NotImplementedError

    def stop_worker(self, worker: W) -> None:
        """Stop ``worker`` and release what it holds."""
        raise NotImplementedError

    def stop_workers(self, workers: Iterable[W]) -> None:
        """Stop the workers on ``close``; override to stop them in parallel."""
        for worker in workers:
            self.stop_worker(worker)

    # --- lending ------------------------------------------------------------------------------------
    def acquire(self) -> W:
        """An idle worker, a new one while fewer than ``size`` exist, or the next one released.

        Raises:
            RLHubError: The pool is closed.
        """
        while True:
            with self._lock:
                if self._pid != os.getpid():  # forked: the parent's pipes are not ours to share
                    self._idle, self._all, self._pid = queue.LifoQueue(), set(), os.getpid()
                self._refuse_if_closed()
                try:
                    return self._idle.get_nowait()
                except queue.Empty:
                    if len(self._all) < self.size:
                        worker = self.start_worker()
                        self._all.add(worker)
                        return worker
            try:
                worker = self._idle.get(timeout=0.1)
            except queue.Empty:
                continue
            if self._closed:
                self._idle.put(worker)  # close() is waiting for it
                self._refuse_if_closed()
            return worker

    def release(self, worker: W, healthy: bool = True) -> None:
        """Return a worker; an unhealthy one is stopped and a fresh one started in its place, for later."""
        if healthy:
            self._idle.put(worker)
            return
        self.stop_worker(worker)
        with self._lock:
            self._all.discard(worker)
            if self._closed:
                return
            try:
                fresh = self.start_worker()
            except OSError as exc:
                log.warning("cannot start a %s (%s); will retry on the next call", self.name, exc)
                return
            self._all.add(fresh)
        self._idle.put(fresh)

    def close(self, wait: bool = True) -> bool:
        """Stop every worker; the pool refuses work after. Idempotent.

        Args:
            wait: Let workers that are lent out finish first (else stop them under their callers).

        Returns:
            Whether this call closed the pool (False if it was closed already).
        """
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            if self._pid != os.getpid():  # forked: the workers are the parent's to stop
                self._all = set()
                return True
            workers = list(self._all)
        if wait:
            workers = [self._idle.get() for _ in workers]
        self.stop_workers(workers)
        with self._lock:
            self._all = set()
        for worker in workers:  # callers blocked in acquire() find these, and the pool closed
            self._idle.put(worker)
        return True

    @property
    def started(self) -> int:
        """How many workers exist (for tests and diagnostics)."""
        return len(self._all)

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise RLHubError(f"this {self.name} pool is closed; create a new one")


class LineWorker:
    """One helper process that answers one line for each line it is sent, lent to one caller at a time.

    It announces itself with a ``ready`` line once its imports are done (start-up is off the clock); each
    :meth:`ask` then writes one request line and waits for one reply line until a deadline. A worker that
    misses it or dies answers ``None``: its pool replaces it. math-verify's and the SQL scorer's workers are
    both this, with their own ``python -c`` program.

    Args:
        argv: The command that runs the worker's loop.
        name: What the worker is, for the start-up warning.
        env: Its environment (default: this process's).
        startup_timeout: Seconds it may take to say ``ready``.
    """

    def __init__(self, argv: list[str], name: str, env: dict[str, str] | None = None, startup_timeout: float = 120.0):
        self.name = name
        self.startup_timeout = startup_timeout
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            # `python -c` puts its working directory first on sys.path: start from one that holds no module
            # that could shadow what the worker imports (a caller's cwd may).
            cwd=os.path.abspath(os.sep),
        )
        self._buffer = b""
        self._ready = False
        # poll, not select: select fails on descriptors above 1024, common in a training process.
        self._poller = select.poll()
        self._poller.register(self.proc.stdout.fileno(), select.POLLIN)

    def _read_line(self, deadline: float) -> bytes | None:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._poller.poll(remaining * 1000):
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def ask(self, request: bytes, timeout: float) -> bytes | None:
        """The reply to one request line, or ``None`` if the worker died or missed the deadline."""
        if not self._ready:
            if self._read_line(time.monotonic() + self.startup_timeout) != b"ready":
                log.warning("a %s failed to start; what it would have scored scores 0", self.name)
                return None
            self._ready = True
        try:
            self.proc.stdin.write(request + b"\n")
            self.proc.stdin.flush()
        except OSError:
            return None
        return self._read_line(time.monotonic() + timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:  # unflushed input to a dead worker
                pass
