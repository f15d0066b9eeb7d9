"""The one pool of worker processes: the sandbox's warm zygotes and math-verify's workers both use it.

A pool lends each worker to one caller at a time (``acquire``/``release``), starts workers on demand
up to ``size``, replaces a worker its caller found unhealthy, and stops every worker on ``close``.
Subclasses say how one worker starts and stops; each speaks its own protocol with its own deadlines.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
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
