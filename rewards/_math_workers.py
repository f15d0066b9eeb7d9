"""The slow path of :func:`rlhub.rewards.math.math_equal`: math-verify in worker processes with a hard deadline.

math-verify's own timeout uses ``signal.alarm``, which works only in the main thread and cannot interrupt a long
C-level computation such as ``9^{9^{9^9}}``; a worker that misses the deadline is killed and replaced, and the
comparison is ``False``. Workers are started on first use, reused, and limited to 2 GiB of address space;
verdicts are cached (GRPO repeats answers within a group). The workers run ``python -c`` with the same
interpreter, so they work from any thread and need no ``if __name__ == "__main__"`` guard in the caller's
script; they are POSIX-only.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import re
import select
import subprocess
import sys
import time
from typing import Any

from rlhub.sandbox.workers import WorkerPool

log = logging.getLogger(__name__)

POOL_SIZE = max(1, min(4, os.cpu_count() or 1))
"""The most worker processes the slow path runs at once."""

_WORKER_STARTUP_TIMEOUT = 120.0
_WORKER_MEMORY_BYTES = 2 * 1024**3
_SLOW_CACHE_SIZE = 4096

_DOLLAR = re.compile(r"(?<!\\)\$\$?")
"""A ``$`` or ``$$`` math delimiter (not an escaped ``\\$``)."""


def _as_math(text: str) -> str:
    """Delimit ``text`` as one LaTeX expression, so math-verify parses the whole answer, not a piece."""
    if _DOLLAR.search(text) or "\\(" in text or "\\[" in text or "\\boxed" in text:
        return text
    return f"${text}$"


def _math_verify_equal(pred: str, gold: str) -> bool:
    """math-verify's verdict on the two whole answers (run in a worker).

    Only LaTeX extraction is used, and only its first match: when the answer does not parse as a whole,
    math-verify's fallbacks would read a number out of it (``2`` out of ``2^{10}.``, ``3`` out of
    ``3 +``), and its string fallback compares such leftovers. Unparsed answers match nothing here
    (identical ones were matched before the slow path).
    """
    from math_verify import LatexExtractionConfig, parse, verify

    def expression(text: str) -> Any:
        parsed = parse(_as_math(text), [LatexExtractionConfig()], extraction_mode="first_match", parsing_timeout=None)
        return next((p for p in parsed if not isinstance(p, str)), None)

    gold_expr, pred_expr = expression(gold), expression(pred)
    return gold_expr is not None and pred_expr is not None and verify(gold_expr, pred_expr, timeout_seconds=None)


def _serve() -> None:
    """A worker's main loop: read ``[pred, gold]`` JSON lines on stdin, answer ``1`` or ``0`` lines."""
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY_BYTES, _WORKER_MEMORY_BYTES))
    except (ValueError, OSError):
        pass
    # Keep the protocol on a private copy of stdout so that stray prints from sympy cannot corrupt it.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    logging.disable(logging.CRITICAL)
    import math_verify  # noqa: F401 - import before announcing readiness, so startup is off the clock

    replies.write(b"ready\n")
    replies.flush()
    for line in sys.stdin.buffer:
        try:
            pred, gold = json.loads(line)
            equal = _math_verify_equal(pred, gold)
        except Exception:
            equal = False
        replies.write(b"1\n" if equal else b"0\n")
        replies.flush()


class _Worker:
    """One math-verify worker process, used by one caller at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # The parent's path, so the child imports this module under the same name (doctest, scripts).
        env["PYTHONPATH"] = os.pathsep.join(p for p in [*sys.path, env.get("PYTHONPATH", "")] if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import _serve; _serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            # `python -c` puts its working directory first on sys.path: start from one that holds no
            # module that could shadow math_verify or sympy (a caller's cwd may).
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

    def ask(self, pred: str, gold: str, timeout: float) -> bool | None:
        """The worker's verdict, or ``None`` if it died or missed the deadline (then kill it)."""
        if not self._ready:
            if self._read_line(time.monotonic() + _WORKER_STARTUP_TIMEOUT) != b"ready":
                log.warning("a math-verify worker failed to start; comparisons on the slow path score 0")
                return None
            self._ready = True
        try:
            self.proc.stdin.write(json.dumps([pred, gold]).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            return None
        reply = self._read_line(time.monotonic() + timeout)
        return None if reply is None else reply == b"1"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:  # unflushed input to a dead worker
                pass


class _WorkerPool(WorkerPool[_Worker]):
    """Up to ``size`` math-verify workers (the shared pool of ``rlhub.sandbox.workers``); a worker that
    times out is replaced."""

    def start_worker(self) -> _Worker:
        return _Worker()

    def stop_worker(self, worker: _Worker) -> None:
        worker.kill()

    def equal(self, pred: str, gold: str, timeout: float) -> bool:
        """The verdict of a worker; ``False`` on timeout. A worker found dead is replaced and asked again."""
        for _ in range(2):
            try:
                worker = self.acquire()
            except OSError as exc:
                log.warning("cannot start a math-verify worker (%s); scoring the comparison False", exc)
                return False
            try:
                verdict = worker.ask(pred, gold, timeout)
            except Exception as exc:
                log.warning("math-verify worker failed (%s: %s); replacing it", type(exc).__name__, exc)
                verdict = None
            except BaseException:
                self.release(worker, healthy=False)
                raise
            died = verdict is None and worker.proc.poll() is not None
            self.release(worker, healthy=verdict is not None)
            if not died:
                return bool(verdict)
        return False


_POOL = _WorkerPool(POOL_SIZE, name="math-verify worker")
atexit.register(_POOL.close, wait=False)


@functools.lru_cache(maxsize=_SLOW_CACHE_SIZE)
def _slow_equal(pred: str, gold: str, timeout: float) -> bool:
    # GRPO samples many completions per prompt, so the same (pred, gold) pair recurs within a batch.
    return _POOL.equal(pred, gold, timeout)
