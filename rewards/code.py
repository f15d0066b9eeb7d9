"""Code rewards: find the program in a completion, run it against its tests in the sandbox, score it.

A completion answers with a fenced ```python block (see :func:`extract_code`). Its tests are assert
statements (the ``tests`` column, one string per test case), with the optional ``setup_code`` column
run after the solution and before them (MBPP's ``test_setup_code``) and the optional ``prelude``
column before the solution in the same program (HumanEval's prompt, so that its imports and helper
functions exist).

Expected values never enter the sandbox. A case that is one assert on calls of the solution's
functions (``assert add(1, 2) == 3``, ``assert abs(f(x) - 0.5) < 1e-6``; see :mod:`rlhub.sandbox.checks`)
is turned, here, into those calls and a check: the sandbox runs the solution and the calls
(``SandboxPool.run_calls``, all of a completion's calls in one program within :data:`TIMEOUT`
seconds) and returns each result through a strict serializer, exact bool, int, float, str, None,
list, tuple, dict and set only; the check runs here, with Python's own ``==`` on those plain values.
So a program can print anything it likes, exit when it likes, or return an object whose ``__eq__``
always answers True or an ``int`` subclass that lies: it cannot see the expected values, and nothing
but plain values comes back. ``correct`` and ``pass_rate`` share that one run.

A case that does not convert (a loop, names the test binds) runs as asserts, each case in a program
of its own (``run_tests``): it passes only when the run ends cleanly with a fresh secret token
printed after its last statement, under an audit hook that refuses frame and gc introspection. With
an ``entry_point`` column (HumanEval), such a case runs in a process apart from the solution,
calling that function through the same strict serializer, so not even those asserts can be fooled.
After a timeout a completion's remaining cases fail unrun, so an endless loop costs one timeout.
Identical programs with identical tests in a batch run once.

Rewards never raise on model output: no code scores 0.0, and so does any sandbox failure (logged).
An example without tests scores ``None`` (not applicable).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from rlhub.sandbox import default_pool, run_python
from rlhub.sandbox.checks import CallCheck, convert

from .parsing import completion_text, strip_think
from .rubric import Rubric

log = logging.getLogger(__name__)


def run_distinct(jobs: Sequence, run, thread_name: str) -> dict:
    """``{job: run(pool, job)}`` for distinct ``jobs``, run at once on the default sandbox pool's workers.

    Args:
        jobs: Distinct, hashable jobs (a reward's completions, deduplicated).
        run: Runs one job on the pool; returns its verdict.
        thread_name: The threads' name prefix.

    Returns:
        The verdicts; empty (every job scores 0) when no sandbox can start here, which is logged.
    """
    if not jobs:
        return {}
    try:
        pool = default_pool()
    except Exception as exc:
        log.warning("no sandbox (%s: %s); scoring 0", type(exc).__name__, exc)
        return {}
    with ThreadPoolExecutor(pool.workers, thread_name_prefix=thread_name) as executor:
        return dict(zip(jobs, executor.map(lambda job: run(pool, job), jobs)))


CODE_INSTRUCTION = (
    "Think step by step inside <think> </think> tags, then write your complete solution in one ```python code block."
)
"""The format instruction of the code environments: the answer is one fenced python block."""

TIMEOUT = 3.0
"""Wall-clock seconds one program (a solution and one test case) may run."""

MEMORY_MB = 512
"""Address-space limit of each of a program's processes, in MiB."""

PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})
"""Fence info strings (lowercased) that mark a block as Python."""

_OPEN_FENCE = re.compile(r"(?P<indent>[ \t]*)(?P<fence>`{3,})[ \t]*(?P<info>[^`]*)")
_LANGUAGE = re.compile(r"[\w+.#-]*")


class _Block(NamedTuple):
    language: str
    code: str
    closed: bool


def _blocks(text: str) -> list[_Block]:
    """Every fenced block of ``text`` in order; a fence left open runs to the end (as in CommonMark)."""
    blocks = []
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        opening = _OPEN_FENCE.fullmatch(lines[i])
        i += 1
        if opening is None:
            continue
        language = _LANGUAGE.match(opening["info"].strip()).group().lower()
        closing = re.compile(rf"[ \t]*`{{{len(opening['fence'])},}}[ \t]*")
        body, closed = [], False
        while i < len(lines):
            line = lines[i]
            i += 1
            if closing.fullmatch(line):
                closed = True
                break
            body.append(line)
        indent = len(opening["indent"])
        code = "\n".join(line[min(indent, len(line) - len(line.lstrip(" \t"))) :] for line in body)
        blocks.append(_Block(language, code, closed))
    return blocks


def extract_code(text: str) -> str | None:
    """The program a completion answers with, after its reasoning is dropped.

    The last non-empty ```python block wins (also ```py / ```python3); without one, the last bare
    ``` block. Only when the text has no closed block at all does an unclosed fence count (a
    completion cut off by the token limit): its code runs to the end of the text. Blocks of other
    languages (```text, ```bash) are never code. As in CommonMark, an indented fence's indentation is
    removed from its lines; a block's own indentation is kept (an answer may be an indented function body).

    Args:
        text: A completion's text.

    Returns:
        The code without its fences, or ``None`` when there is none.

    Example:
        >>> extract_code("<think>```python\\nx = 0\\n```</think>Use:\\n```python\\nx = 1\\n```\\n```\\nout\\n```")
        'x = 1'
        >>> extract_code("```\\nprint(2)\\n```"), extract_code("```python\\nprint(3)"), extract_code("no code")
        ('print(2)', 'print(3)', None)
    """
    if not isinstance(text, str):
        return None
    blocks = [b for b in _blocks(strip_think(text)) if b.code.strip()]
    closed = [b for b in blocks if b.closed]
    candidates = closed or blocks
    for wanted in (lambda b: b.language in PYTHON_TAGS, lambda b: not b.language):
        found = [b.code for b in candidates if wanted(b)]
        if found:
            return found[-1]
    return None


def fenced_python(code: str) -> str:
    """``code`` as a ```python block: the answer format of the code environments (gold completions).

    The fence is longer than any run of backticks that starts a line of ``code``, so it cannot end early.

    Example:
        >>> print(fenced_python("x = 1\\n"))
        ```python
        x = 1
        ```
    """
    body = code.strip("\n")
    fence = "`" * max([3, *(len(run) + 1 for run in re.findall(r"^[ \t]*(`{3,})", body, re.MULTILINE))])
    return f"{fence}python\n{body}\n{fence}"


def code_format(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """1.0 iff, after the reasoning, there is exactly one ```python block, it is closed and not empty.

    Args:
        completions: Completions (strings or chat-message lists).
        **kwargs: Dataset columns (ignored).

    Returns:
        1.0 or 0.0 per completion.

    Example:
        >>> code_format(["```python\\nx = 1\\n```", "```python\\n```", "```python\\na\\n```\\n```python\\nb\\n```"])
        [1.0, 0.0, 0.0]
    """
    scores = []
    for completion in completions:
        blocks = [b for b in _blocks(strip_think(completion_text(completion))) if b.language in PYTHON_TAGS]
        ok = len(blocks) == 1 and blocks[0].closed and bool(blocks[0].code.strip())
        scores.append(float(ok))
    return scores


def _column(values: Sequence[Any] | None, n: int) -> list[Any]:
    """A per-example column, or ``None`` for every example when the column is absent."""
    return [None] * n if values is None else list(values)


def _test_list(tests: Any) -> list[str] | None:
    if isinstance(tests, str):
        tests = [tests]
    if not isinstance(tests, (list, tuple)) or not tests or not all(isinstance(t, str) for t in tests):
        return None
    return list(tests)


def _run_fallback(pool, program: str, cases: Sequence[str], prelude: str, entry_point: str) -> list[bool]:
    """Run ``program`` with each case in turn (``run_tests``); after a timeout, the remaining cases fail unrun.

    With an ``entry_point``, each case runs apart from the program, calling that function of it through
    the strict serializer, after the ``prelude`` (``run_tests``'s ``isolate``).
    """
    passed = []
    isolation = {"isolate": [entry_point], "test_prelude": prelude} if entry_point else {}
    for case in cases:
        try:
            verdict = pool.run_tests(program, case, timeout=TIMEOUT, memory_mb=MEMORY_MB, **isolation)
        except Exception as exc:  # a sandbox failure scores 0; it must never stop training
            log.warning("sandbox run failed (%s: %s); scoring 0", type(exc).__name__, exc)
            return passed + [False] * (len(cases) - len(passed))
        passed.append(verdict.passed)
        if verdict.result.status == "timeout":  # an endless loop costs one timeout, not one per case
            return passed + [False] * (len(cases) - len(passed))
    return passed


_verdict_cache: OrderedDict[tuple, tuple[list[bool], bool]] = OrderedDict()
_verdict_cache_lock = threading.Lock()
VERDICT_CACHE_SIZE = 4096
"""Verdicts of converted cases kept (a few bools each), so that ``correct`` and ``pass_rate`` share one run."""


def _run_converted(pool, program: str, setup: str, checks: Sequence[CallCheck]) -> tuple[list[bool], bool]:
    """Whether each converted case passes, from one ``run_calls`` of all their calls; and whether it timed out."""
    key = (program, setup, tuple((check.calls, check.check) for check in checks))
    with _verdict_cache_lock:
        if key in _verdict_cache:
            passed, timed_out = _verdict_cache[key]
            return list(passed), timed_out
    calls = [call for check in checks for call in check.calls]
    try:
        outcome = pool.run_calls(program, calls, setup=setup, timeout=TIMEOUT, memory_mb=MEMORY_MB)
    except Exception as exc:  # a sandbox failure scores 0; it must never stop training
        log.warning("sandbox run failed (%s: %s); scoring 0", type(exc).__name__, exc)
        return [False] * len(checks), False
    passed, start = [], 0
    for check in checks:
        results = outcome.calls[start : start + len(check.calls)]
        start += len(check.calls)
        passed.append(all(r.ok for r in results) and check.passes([r.value for r in results]))
    timed_out = outcome.result.status == "timeout"
    with _verdict_cache_lock:
        _verdict_cache[key] = (passed, timed_out)
        while len(_verdict_cache) > VERDICT_CACHE_SIZE:
            _verdict_cache.popitem(last=False)
    return list(passed), timed_out


def _run_job(
    pool, program: str, cases: tuple[str, ...], setup: str, prelude: str, entry_point: str, together: bool
) -> list[bool]:
    """One completion's verdict per case: converted cases by calls, the rest by asserts in the sandbox."""
    checks = [convert(case, setup) for case in cases]
    converted = [c for c in checks if c is not None]
    fallback = [case for case, c in zip(cases, checks) if c is None]
    verdicts, timed_out = _run_converted(pool, program, setup, converted) if converted else ([], False)
    prefix = f"{setup}\n" if setup.strip() else ""
    if timed_out:
        rest = [False] * len(fallback)
    elif together and fallback:
        rest = _run_fallback(pool, program, [prefix + "\n".join(fallback)], prelude, entry_point) * len(fallback)
    else:
        rest = _run_fallback(pool, program, [prefix + case for case in fallback], prelude, entry_point)
    by_case, done, left = [], iter(verdicts), iter(rest)
    for c in checks:
        by_case.append(next(done) if c is not None else next(left))
    return by_case


def run_test_cases(
    completions: Sequence[Any],
    tests: Sequence[Any],
    setup_code: Sequence[str | None] | None = None,
    prelude: Sequence[str | None] | None = None,
    together: bool = False,
    entry_point: Sequence[str | None] | None = None,
) -> list[list[bool] | None]:
    """Whether each completion's program passes each of its test cases.

    Cases that convert (see :mod:`rlhub.sandbox.checks`: one assert on calls of the solution's
    functions) run as calls, all of a completion's in one program, and are checked here; the rest run
    as asserts after the solution, each in a program of its own (or all in one, ``together``).
    Completions run concurrently on the default sandbox pool; a program that times out is not run
    on its remaining cases (they fail), and identical programs with identical tests run once.

    Args:
        completions: Completions (strings or chat-message lists).
        tests: Per completion, its test cases (strings of statements, usually asserts).
        setup_code: Per completion, code run before its tests (after the solution), or ``None``.
        prelude: Per completion, code placed before the solution in the same source, or ``None``.
        together: Run the cases that do not convert in one program rather than one each.
        entry_point: Per completion, the function its tests call, or ``None``. Given, the cases that
            do not convert run apart from the solution, calling that function through the strict
            serializer, after the prelude (``run_tests``'s ``isolate``).

    Returns:
        Per completion, one bool per test case (all ``False`` when it has no code or the sandbox
        fails), or ``None`` when it has no valid tests.
    """
    n = len(completions)
    jobs: list[tuple[str | None, tuple[str, ...], str, str, str] | None] = []
    columns = zip(completions, tests, _column(setup_code, n), _column(prelude, n), _column(entry_point, n))
    for completion, cases, setup, before, entry in columns:
        cases = _test_list(cases)
        if cases is None:
            jobs.append(None)
            continue
        code = extract_code(completion_text(completion))
        if code is not None and isinstance(before, str) and before:
            code = f"{before}\n{code}"
        before = before if isinstance(before, str) else ""
        entry = entry if isinstance(entry, str) and entry.isidentifier() else ""
        jobs.append((code, tuple(cases), setup if isinstance(setup, str) else "", before, entry))
    unique = list(dict.fromkeys(job for job in jobs if job is not None and job[0] is not None))
    verdicts = run_distinct(unique, lambda pool, job: _run_job(pool, *job, together), "rlhub-code-reward")
    return [None if job is None else verdicts.get(job, [False] * len(job[1])) for job in jobs]


def code_pass_rate(
    completions: Sequence[Any],
    tests: Sequence[Any],
    setup_code: Sequence[str | None] | None = None,
    prelude: Sequence[str | None] | None = None,
    entry_point: Sequence[str | None] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """The fraction of its test cases each completion's program passes (partial credit).

    Args:
        completions: Completions (strings or chat-message lists).
        tests: Per completion, its test cases (strings of assert statements).
        setup_code: Per completion, code run before its tests, or ``None``.
        prelude: Per completion, code placed before the solution, or ``None``.
        entry_point: Per completion, the function the tests call, or ``None`` (see ``run_test_cases``).
        **kwargs: Other dataset columns (ignored).

    Returns:
        A value in [0, 1] per completion; ``None`` for an example without tests.

    Example:
        >>> answer = "```python\\ndef add(a, b):\\n    return a + b\\n```"
        >>> code_pass_rate([answer, "no code"], tests=[["assert add(1, 2) == 3", "assert add(2, 2) == 5"]] * 2)
        [0.5, 0.0]
    """
    results = run_test_cases(completions, tests, setup_code, prelude, entry_point=entry_point)
    return [None if r is None else sum(r) / len(r) for r in results]


def code_all_pass(
    completions: Sequence[Any],
    tests: Sequence[Any],
    setup_code: Sequence[str | None] | None = None,
    prelude: Sequence[str | None] | None = None,
    entry_point: Sequence[str | None] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 iff each completion's program passes all its tests, run together in one program.

    Args:
        completions: Completions (strings or chat-message lists).
        tests: Per completion, its test cases: converted ones run as calls of one program, the rest
            are joined into one test program.
        setup_code: Per completion, code run before its tests, or ``None``.
        prelude: Per completion, code placed before the solution, or ``None``.
        entry_point: Per completion, the function the tests call, or ``None`` (see ``run_test_cases``).
        **kwargs: Other dataset columns (ignored).

    Returns:
        1.0 or 0.0 per completion; ``None`` for an example without tests.

    Example:
        >>> code_all_pass(["I would loop over the list.", "```text\\nnot python\\n```"], tests=[["assert True"]] * 2)
        [0.0, 0.0]
    """
    results = run_test_cases(completions, tests, setup_code, prelude, together=True, entry_point=entry_point)
    return [None if r is None else float(all(r)) for r in results]


def code_rubric(format_weight: float, pass_rate_weight: float = 0.0) -> Rubric:
    """``correct`` (all tests pass, weight 1) + ``pass_rate`` (partial credit) + ``format`` (one python block)."""
    return Rubric(
        {
            "correct": (code_all_pass, 1.0),
            "pass_rate": (code_pass_rate, pass_rate_weight),
            "format": (code_format, format_weight),
        }
    )


def run_program(code: str) -> str:
    """A tool's reply to the model for running ``code`` in rlhub's sandbox (no network, no host files, 5 s, 256 MiB):
    the tail of what it prints, or its failure and the tail of its stderr."""
    result = run_python(code, timeout=5.0, memory_mb=256)
    if result.status != "ok":
        return f"{result.status}: {result.stderr.strip()[-500:]}"
    return result.stdout.strip()[-2000:] or "(no output)"
