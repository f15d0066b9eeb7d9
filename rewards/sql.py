"""Text-to-SQL reward: run the model's query read-only on SQLite and compare its result set with the gold's.

A database arrives as plain data (a dataset column), ``{"ddl": [CREATE TABLE ...], "rows": {table: [[...]]}}``,
and is built in memory for each scoring, so nothing a query does can outlive it. The query then runs under
three locks: ``PRAGMA query_only``, an authorizer that allows only reading (no write, ``ATTACH``, ``PRAGMA``
or ``load_extension``), and a progress handler that stops it at its time limit; no value may grow past
:data:`MAX_VALUE_BYTES` and its result may hold at most :data:`MAX_RESULT_ROWS` rows. A query must read at
least one table of the database, and it must match the gold on every database it is given (the env sends
the real one and variants with other rows, as Spider's test-suite accuracy does), so gold rows pasted as a
``VALUES`` literal earn nothing.

Time: a completion's query gets :data:`TIME_LIMIT_S` of CPU time in all, over every database it is graded
on, and a query that finishes after that scores 0 even when its rows are right (the gold with a slow
computation appended earns nothing). CPU time, not wall time, so that a busy machine (a trainer's threads)
never fails a right query. The progress handler cannot stop one long C call (``printf('%.*c', 2e9, 'x')``
loops inside SQLite for seconds), so :func:`sql_execution` runs each completion in a worker process that is
killed when the limit (plus :data:`WORKER_GRACE_S` for building the databases) has passed on the wall
clock: scoring one completion never takes much more than a second.

The answer is the one ``<answer>`` block after the reasoning. One Markdown code fence around the whole query
inside it (three backticks, then ``sql``, ``sqlite`` or nothing; as chat models write SQL) is removed; a
fence without the ``<answer>`` tags is no answer, since the prompt asks for the tags and SQL drafted
elsewhere in a completion is not its answer.

Results are compared as multisets of rows (as lists when ``ordered``), ignoring column names and the order
of columns; numbers compare by value (``3`` equals ``3.0``; floats to 6 decimals), text exactly.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import re
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rlhub.sandbox.workers import LineWorker, WorkerPool

from .parsing import completion_text, extract_answer
from .rubric import ReferenceCheck

log = logging.getLogger(__name__)

TIME_LIMIT_S = 1.0
"""The CPU seconds a completion's query may run, in all, over the databases it is graded on."""

GOLD_TIME_LIMIT_S = 30.0
"""The CPU seconds a gold query may run. Golds are the env's own, and fast; the bound only stops a broken one. It
is far above :data:`TIME_LIMIT_S` because the limit reads the thread's CPU time, which includes a garbage
collection that happens to run during the query: in a large process (a trainer, a test run) one took over a
second and refused a gold ``SELECT COUNT(*)``, failing example generation."""

TEST_SUITE_CHECK = ReferenceCheck(
    reference="a test-suite comparison (Zhong, Yu & Klein 2020)",
    test="tests/test_sql_test_suite.py",
    differences={
        "top-k by a threshold": "a top-k question answered with a threshold read at ``OFFSET k-1`` "
        "(``WHERE x >= (SELECT x ... LIMIT 1 OFFSET k-1)``) scores 1 here: it differs from the gold only on a "
        "table with fewer than k rows, which the sql envs never build (every database holds at least 4 parent "
        "and 6 child rows); the fuzzed suite, which builds them, counts it wrong",
    },
)
"""Where ``sql_execution`` decides otherwise than the test-suite comparison, on purpose."""

WORKER_GRACE_S = 0.3
"""Beyond :data:`TIME_LIMIT_S`, what building the databases and the round trip may take before the worker
running a completion is killed (its score is then 0)."""

POOL_SIZE = max(1, min(4, os.cpu_count() or 1))
"""The most worker processes scoring completions at once."""

MAX_RESULT_ROWS = 1000
"""A result with more rows scores 0 (and stops being fetched)."""

MAX_VALUE_BYTES = 100_000
"""SQLite's string/blob length limit while a query runs, so ``randomblob(10**9)`` fails fast."""

MAX_QUERY_CHARS = 4000
"""Longer answers are not run."""

_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, 33})
"""Reading and calling functions (33 is SQLITE_RECURSIVE, for ``WITH RECURSIVE``); everything else is refused."""

_REFUSED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})

_FENCE = re.compile(r"```[ \t]*(?:(?:sqlite|sql)(?=\s))?\s*(?P<query>.*?)\s*```", re.DOTALL | re.IGNORECASE)
_WORKER_STARTUP_S = 60.0
_WORKER_MAIN = """
import sys, types
for name, path in {packages!r}.items():
    sys.modules[name] = package = types.ModuleType(name)
    package.__path__ = [path]
from rlhub.rewards.sql import _serve
_serve()
"""
_WORKER_MEMORY_BYTES = 1024**3


class QueryRefused(Exception):
    """The query is not a single, read-only, timely query over the database."""


def build_database(spec: dict) -> sqlite3.Connection:
    """An in-memory SQLite database from ``{"ddl": [...], "rows": {table: [[...], ...]}}``.

    Example:
        >>> db = build_database({"ddl": ["CREATE TABLE t (x INTEGER)"], "rows": {"t": [[1], [2]]}})
        >>> db.execute("SELECT SUM(x) FROM t").fetchall()
        [(3,)]
    """
    db = sqlite3.connect(":memory:")
    for statement in spec["ddl"]:
        db.execute(statement)
    for table, rows in spec["rows"].items():
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            db.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
    db.commit()
    return db


def run_query(db: sqlite3.Connection, query: str, time_limit: float = TIME_LIMIT_S) -> list[tuple]:
    """Run one query read-only on ``db`` and return its rows.

    The progress handler stops a query at its time limit between SQLite's steps, not inside one function
    call; a query that returns after its limit is refused all the same. To bound the wall time of
    untrusted queries, run them in a process that can be killed, as :func:`sql_execution` does.

    Args:
        db: An open connection (in memory, or a file opened with ``mode=ro``); left unchanged.
        query: One SQL statement; a trailing ``;`` is allowed.
        time_limit: The CPU seconds (this thread's) the query may take.

    Returns:
        The result rows.

    Raises:
        QueryRefused: The query writes, attaches, loads an extension, reads no table, runs past its
            time limit, returns more than :data:`MAX_RESULT_ROWS` rows or is not valid SQL.

    Example:
        >>> db = build_database({"ddl": ["CREATE TABLE t (x INTEGER)"], "rows": {"t": [[1], [2]]}})
        >>> run_query(db, "SELECT x FROM t WHERE x > 1")
        [(2,)]
        >>> try:
        ...     run_query(db, "DELETE FROM t")
        ... except QueryRefused as exc:
        ...     print("refused:", exc)
        refused: not authorized
    """
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    read: set[str] = set()

    def authorize(action, arg1, arg2, db_name, trigger):
        if action not in _ALLOWED_ACTIONS or (action == sqlite3.SQLITE_FUNCTION and arg2 in _REFUSED_FUNCTIONS):
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_READ and arg1 in tables:
            read.add(arg1)
        return sqlite3.SQLITE_OK

    deadline = time.thread_time() + time_limit
    db.execute("PRAGMA query_only = ON")
    old_length = db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    db.set_authorizer(authorize)
    db.set_progress_handler(lambda: int(time.thread_time() > deadline), 1000)
    try:
        cursor = db.execute(query)
        if cursor.description is None:
            raise QueryRefused("not a query")
        rows = cursor.fetchmany(MAX_RESULT_ROWS + 1)
    except (sqlite3.Error, ValueError, MemoryError) as exc:  # bad SQL, refusals, "interrupted", several
        # statements, text SQLite cannot take (a lone surrogate is a UnicodeEncodeError, a ValueError)
        raise QueryRefused(str(exc)) from None
    finally:
        db.set_authorizer(None)
        db.set_progress_handler(None, 0)
        db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, old_length)
    if time.thread_time() > deadline:
        raise QueryRefused("ran past its time limit")
    if len(rows) > MAX_RESULT_ROWS:
        raise QueryRefused(f"more than {MAX_RESULT_ROWS} rows")
    if not read:
        raise QueryRefused("the query reads no table of the database")
    return rows


def _cell(value: Any) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("number", round(float(value), 6))
    return (type(value).__name__, value)


def same_result(got: Sequence[tuple], want: Sequence[tuple], ordered: bool = False) -> bool:
    """Whether two results hold the same rows, whatever their column names and column order.

    Example:
        >>> same_result([("b", 2), ("a", 1)], [(1, "a"), (2, "b")])
        True
        >>> same_result([("b", 2), ("a", 1)], [(1, "a"), (2, "b")], ordered=True)
        False
    """
    if len(got) != len(want):
        return False
    if not want:
        return True
    width = len(want[0])
    if any(len(row) != width for row in got):
        return False
    target = [tuple(map(_cell, row)) for row in want]
    orders = itertools.permutations(range(width)) if width <= 5 else [tuple(range(width))]
    for order in orders:
        rows = [tuple(_cell(row[i]) for i in order) for row in got]
        if rows == target if ordered else Counter(rows) == Counter(target):
            return True
    return False


def _answer_query(completion: Any) -> str | None:
    """The query in a completion: its ``<answer>`` block, less one Markdown fence around the whole of it."""
    answer = extract_answer(completion_text(completion), "tags")
    fenced = _FENCE.fullmatch(answer or "")
    if fenced and "```" not in fenced["query"]:
        return fenced["query"]
    return answer


def _score(query: str, gold: str, databases: Sequence[dict], ordered: bool) -> float:
    """1.0 when ``query`` returns the gold's rows on every database, within :data:`TIME_LIMIT_S` in all."""
    time_left = TIME_LIMIT_S
    for spec in databases:
        db = build_database(spec)
        try:
            want = run_query(db, gold, GOLD_TIME_LIMIT_S)
            start = time.thread_time()
            got = run_query(db, query, time_left)
            time_left -= time.thread_time() - start
        except QueryRefused:
            return 0.0
        finally:
            db.close()
        if not same_result(got, want, ordered):
            return 0.0
    return 1.0


def _serve() -> None:
    """A worker's main loop: read ``[query, gold, databases, ordered]`` JSON lines, answer ``1`` or ``0`` lines."""
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY_BYTES, _WORKER_MEMORY_BYTES))
    except (ValueError, OSError):
        pass
    replies = sys.stdout.buffer
    replies.write(b"ready\n")
    replies.flush()
    for line in sys.stdin.buffer:
        try:
            score = _score(*json.loads(line))
        except Exception:  # whatever breaks on a query earns nothing, and the worker goes on
            score = 0.0
        replies.write(b"1\n" if score == 1.0 else b"0\n")
        replies.flush()


def _worker_argv() -> list[str]:
    """``python -c`` for a worker that imports this module without running rlhub's package ``__init__`` files.

    Those load the env registry, gymnasium and numpy: a second per worker on a busy machine, paid again each
    time a late worker is replaced, so part of the next completion's scoring time. This module needs only the
    standard library, ``rlhub.errors``, ``rlhub.rewards.parsing`` and ``rlhub.sandbox.workers``.
    """
    sandbox = os.path.dirname(os.path.abspath(sys.modules[WorkerPool.__module__].__file__))
    packages = {
        "rlhub": os.path.dirname(sandbox),
        "rlhub.sandbox": sandbox,
        "rlhub.rewards": os.path.dirname(os.path.abspath(__file__)),
    }
    return [sys.executable, "-I", "-c", _WORKER_MAIN.format(packages=packages)]


class _Worker(LineWorker):
    """One scoring process (:func:`_worker_argv`), used by one caller at a time."""

    def __init__(self) -> None:
        super().__init__(_worker_argv(), "sql scoring worker", startup_timeout=_WORKER_STARTUP_S)

    def score(self, job: bytes) -> float | None:
        """The job's score, or ``None`` if the worker died or missed the deadline (then kill it)."""
        reply = self.ask(job, TIME_LIMIT_S + WORKER_GRACE_S)
        return None if reply is None else float(reply == b"1")


class _WorkerPool(WorkerPool[_Worker]):
    """Up to ``size`` scoring workers (the shared pool of ``rlhub.sandbox.workers``); one that runs late is
    replaced."""

    def start_worker(self) -> _Worker:
        return _Worker()

    def stop_worker(self, worker: _Worker) -> None:
        worker.kill()

    def score(self, job: bytes) -> float:
        """A worker's score for ``job``; 0.0 when it runs late. A worker found dead is replaced and asked again."""
        for _ in range(2):
            try:
                worker = self.acquire()
            except OSError as exc:
                log.warning("cannot start an sql scoring worker (%s); the completion scores 0", exc)
                return 0.0
            try:
                score = worker.score(job)
            except BaseException:
                self.release(worker, healthy=False)
                raise
            died = score is None and worker.proc.poll() is not None
            self.release(worker, healthy=score is not None)
            if not died:
                return score or 0.0
        return 0.0


_POOL = _WorkerPool(POOL_SIZE, name="sql scoring worker")
atexit.register(_POOL.close, wait=False)


def sql_execution(
    completions: Sequence[Any],
    answer: Sequence[Any],
    databases: Sequence[Any],
    ordered: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when the query in the ``<answer>`` block returns the gold query's rows on every database.

    Each distinct completion is scored in a worker process, on all workers at once, and gets
    :data:`TIME_LIMIT_S` in all (see the module docstring).

    Args:
        completions: Completions (strings or chat-message lists).
        answer: The gold SQL query per row.
        databases: Per row, a list of database specs (see :func:`build_database`).
        ordered: Per row, whether the question asks for an order (rows then compare as lists).
        **kwargs: Other dataset columns (ignored).

    Returns:
        1.0 or 0.0 per completion; ``None`` where the row has no gold query or no database.

    Example:
        >>> db = {"ddl": ["CREATE TABLE t (name TEXT, x INTEGER)"], "rows": {"t": [["a", 1], ["b", 5]]}}
        >>> sql_execution(
        ...     ["<answer>SELECT name FROM t WHERE x > 2</answer>", "<answer>VALUES ('b')</answer>"],
        ...     answer=["SELECT name FROM t WHERE x >= 5"] * 2,
        ...     databases=[[db], [db]],
        ... )
        [1.0, 0.0]
        >>> sql_execution(["<answer>\\n```sql\\nSELECT name FROM t WHERE x > 2\\n```\\n</answer>"],
        ...     answer=["SELECT name FROM t WHERE x >= 5"], databases=[[db]])
        [1.0]
    """
    ordered = ordered if ordered is not None else [False] * len(completions)
    rewards: list[float | None] = []
    jobs: dict[int, bytes] = {}
    for completion, gold, specs, in_order in zip(completions, answer, databases, ordered, strict=True):
        if not isinstance(gold, str) or not specs:
            rewards.append(None)
            continue
        query = _answer_query(completion)
        if query and len(query) <= MAX_QUERY_CHARS:
            jobs[len(rewards)] = json.dumps([query, gold, list(specs), bool(in_order)]).encode()
        rewards.append(0.0)
    distinct = list(dict.fromkeys(jobs.values()))  # GRPO repeats completions within a group
    with ThreadPoolExecutor(max_workers=max(1, min(_POOL.size, len(distinct)))) as threads:
        scores = dict(zip(distinct, threads.map(_POOL.score, distinct)))
    for i, job in jobs.items():
        rewards[i] = scores[job]
    return rewards


sql_execution.reference_check = TEST_SUITE_CHECK
