"""Text-to-SQL reward: run the model's query read-only on SQLite and compare its result set with the gold's.

A database arrives as plain data (a dataset column), ``{"ddl": [CREATE TABLE ...], "rows": {table: [[...]]}}``,
and is built in memory for each scoring, so nothing a query does can outlive it. The query then runs under
three locks: ``PRAGMA query_only``, an authorizer that allows only reading (no write, ``ATTACH``, ``PRAGMA``
or ``load_extension``), and a progress handler that stops it after :data:`TIME_LIMIT_S`; its result may
hold at most :data:`MAX_RESULT_ROWS` rows. A query must read at least one table of the database, and it
must match the gold on every database it is given (the env sends the real one and variants with other
rows, as Spider's test-suite accuracy does), so gold rows pasted as a ``VALUES`` literal earn nothing.

Results are compared as multisets of rows (as lists when ``ordered``), ignoring column names and the order
of columns; numbers compare by value (``3`` equals ``3.0``; floats to 6 decimals), text exactly.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .parsing import completion_text, extract_answer

TIME_LIMIT_S = 1.0
"""The most one query may run on one database."""

MAX_RESULT_ROWS = 1000
"""A result with more rows scores 0 (and stops being fetched)."""

MAX_VALUE_BYTES = 100_000
"""SQLite's string/blob length limit while a query runs, so ``randomblob(10**9)`` fails fast."""

MAX_QUERY_CHARS = 4000
"""Longer answers are not run."""

_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, 33})
"""Reading and calling functions (33 is SQLITE_RECURSIVE, for ``WITH RECURSIVE``); everything else is refused."""

_REFUSED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})


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


def run_query(db: sqlite3.Connection, query: str) -> list[tuple]:
    """Run one query read-only on ``db`` and return its rows.

    Args:
        db: An open connection (in memory, or a file opened with ``mode=ro``); left unchanged.
        query: One SQL statement; a trailing ``;`` is allowed.

    Returns:
        The result rows.

    Raises:
        QueryRefused: The query writes, attaches, loads an extension, reads no table, runs past
            :data:`TIME_LIMIT_S`, returns more than :data:`MAX_RESULT_ROWS` rows or is not valid SQL.

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

    deadline = time.monotonic() + TIME_LIMIT_S
    db.execute("PRAGMA query_only = ON")
    old_length = db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    db.set_authorizer(authorize)
    db.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
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


def _score(query: str | None, gold: str, databases: Sequence[dict], ordered: bool) -> float:
    if not query or len(query) > MAX_QUERY_CHARS:
        return 0.0
    for spec in databases:
        db = build_database(spec)
        try:
            want = run_query(db, gold)
            got = run_query(db, query)
        except QueryRefused:
            return 0.0
        finally:
            db.close()
        if not same_result(got, want, ordered):
            return 0.0
    return 1.0


def sql_execution(
    completions: Sequence[Any],
    answer: Sequence[Any],
    databases: Sequence[Any],
    ordered: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when the query in the ``<answer>`` block returns the gold query's rows on every database.

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
    """
    ordered = ordered if ordered is not None else [False] * len(completions)
    rewards: list[float | None] = []
    for completion, gold, specs, in_order in zip(completions, answer, databases, ordered, strict=True):
        if not isinstance(gold, str) or not specs:
            rewards.append(None)
            continue
        query = extract_answer(completion_text(completion), "tags")
        rewards.append(_score(query, gold, specs, bool(in_order)))
    return rewards
