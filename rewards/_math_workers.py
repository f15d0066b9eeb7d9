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
import sys
from typing import Any

from rlhub.sandbox.workers import LineWorker, WorkerPool

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


class _Worker(LineWorker):
    """One math-verify worker process (``python -c`` running :func:`_serve`), used by one caller at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # The parent's path, so the child imports this module under the same name (doctest, scripts).
        env["PYTHONPATH"] = os.pathsep.join(p for p in [*sys.path, env.get("PYTHONPATH", "")] if p)
        argv = [sys.executable, "-c", f"from {__name__} import _serve; _serve()"]
        super().__init__(argv, "math-verify worker", env=env, startup_timeout=_WORKER_STARTUP_TIMEOUT)

    def verdict(self, pred: str, gold: str, timeout: float) -> bool | None:
        """The worker's verdict, or ``None`` if it died or missed the deadline (then kill it)."""
        reply = self.ask(json.dumps([pred, gold]).encode(), timeout)
        return None if reply is None else reply == b"1"


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
                verdict = worker.verdict(pred, gold, timeout)
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
