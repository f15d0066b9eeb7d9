"""Every ast.parse on a reward's path is safe from many threads (rlhub serve scores in a thread pool).

CPython 3.11's ast.parse keeps its recursion depth in shared state (python/cpython#106905): a thread
switch inside it, which a garbage collection running a finalizer can cause, makes another thread's parse
fail with "SystemError: AST constructor recursion depth mismatch". The test forces such switches: a tiny
switch interval, a low GC threshold and cyclic garbage whose finalizer yields. Without rlhub.arithmetic's
lock the conversions below fail within a run or two on the 2-core development machine.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from fractions import Fraction

import pytest

from rlhub.arithmetic import FOUR_OPERATIONS, evaluate
from rlhub.envs.humaneval import split_check
from rlhub.sandbox.checks import convert
from rlhub.sandbox.pool import as_checks

DEEP = "[" * 40 + "1" + "]" * 40
ASSERT = f"assert f({DEEP}, {{'a': (1, 2.5, None)}}) == " + "(" * 30 + "3" + ")" * 30
HARNESS = f"def check(candidate):\n    {ASSERT.replace('f(', 'candidate(')}\n    assert candidate(1) == 2\n"


class _Garbage:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it, and then __del__ runs mid-parse

    def __del__(self) -> None:
        time.sleep(0)  # give another thread the interpreter


@pytest.fixture
def thread_switches():
    interval, threshold = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    gc.set_threshold(5)
    yield
    sys.setswitchinterval(interval)
    gc.set_threshold(*threshold)


@pytest.mark.parametrize(
    "parse_once",
    [
        pytest.param(lambda: convert(ASSERT) is not None, id="checks.convert"),
        pytest.param(lambda: as_checks(ASSERT + "\nassert f(2) == 3\n") is not None, id="pool.as_checks"),
        pytest.param(lambda: len(split_check(HARNESS, "f")) == 2, id="humaneval.split_check"),
        pytest.param(lambda: evaluate("((1 + 2) * (3 - 4)) / 5", FOUR_OPERATIONS) == Fraction(-3, 5), id="arithmetic"),
    ],
)
def test_parsing_from_many_threads(thread_switches, parse_once):
    failures: list[BaseException] = []
    results: list[bool] = []

    def work() -> None:
        for _ in range(150):
            _Garbage(), _Garbage()
            try:
                results.append(parse_once())
            except BaseException as exc:  # every failure is the finding
                failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(results) == 8 * 150 and all(results)
