"""A test-suite comparator for sql-v2 queries, written for the cross-check in ``tests/test_sql_test_suite.py``.

Spider's test-suite accuracy (Zhong, Yu & Klein, 2020) calls two queries equivalent when their denotations
(result tables) agree on every database of a suite built to tell the gold query from its near misses. The
suite here is drawn for one gold query by fuzzing the schema's columns, independently of sql-v2's own
variant builder (``rlhub.envs._sql_variants``), from the domain sql-v2's databases come from:

* values: each text column from a few of its own words (so that they repeat), each number column from its
  range, its ends, and every integer literal of the gold with its neighbours (``> 40``: 39, 40, 41);
* NULLs where sql-v2's data has them (the optional number column), in none, some or all rows of a table;
* sizes: a parent table of one to 24 rows, a child table of none to 32, rows copied but for their id, parents
  with no, one or several children, child ids that do or do not collide with parent ids;
* ties: none in an ORDER BY key that picks rows (a ``LIMIT``) or orders other columns than itself, since the
  gold's own answer would then depend on how SQLite breaks them (sql-v2's databases have none there either).

A database joins the suite only when the gold answers something on it (rows, and not one count of 0 or one
NULL aggregate): sql-v2's questions presuppose an answer, and its env redraws databases until there is one.

Denotations compare as the paper defines: column names ignored and columns matched in any order, rows as a
multiset, or as a list when the gold has an ``ORDER BY``; numbers by value (floats to 6 decimals), text
exactly. A query that fails to run on a database is not equivalent.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from random import Random

from rlhub.envs.sql import Schema, Table, ddl

SUITE_SIZE = 48
"""Databases in one gold's suite."""

_INT = re.compile(r"(?<![\w.'])\d+(?![\w.'])")
_TEXT = re.compile(r"'((?:[^']|'')*)'")
_ORDER = re.compile(r"\bORDER BY\s+((?:\w+\.)?\w+)", re.IGNORECASE)
_SELECT = re.compile(r"^\s*SELECT\s+(?:DISTINCT\s+)?(.*?)\s+FROM\b", re.IGNORECASE | re.DOTALL)


def _cell(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(float(value), 6)
    return value


def same_denotation(got: list[tuple], want: list[tuple], ordered: bool) -> bool:
    """Whether two results are the same table, up to column names and column order (rows ordered or not).

    Example:
        >>> same_denotation([(2, "b"), (1, "a")], [("a", 1), ("b", 2.0)], ordered=False)
        True
        >>> same_denotation([(2, "b"), (1, "a")], [("a", 1), ("b", 2)], ordered=True)
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
    for order in itertools.permutations(range(width)):
        rows = [tuple(_cell(row[i]) for i in order) for row in got]
        if rows == target if ordered else Counter(rows) == Counter(target):
            return True
    return False


def _run(db: sqlite3.Connection, query: str) -> list[tuple] | None:
    try:
        return db.execute(query).fetchmany(2001)
    except (sqlite3.Error, ValueError, OverflowError):
        return None


def _answers(rows: list[tuple] | None) -> bool:
    return bool(rows) and rows != [(0,)] and rows != [(None,)]


@dataclass
class Suite:
    """One gold query's databases and its denotation on each."""

    gold: str
    ordered: bool
    databases: list[sqlite3.Connection] = field(default_factory=list)
    denotations: list[list[tuple]] = field(default_factory=list)
    specs: list[dict] = field(default_factory=list)
    """Each database as rows (``{"ddl": [...], "rows": {table: [[...]]}}``), to show a witness."""

    def add(self, spec: dict) -> bool:
        """Add the database ``spec`` describes if the gold answers something on it; whether it was added."""
        db = _build(spec)
        rows = _run(db, self.gold)
        if not _answers(rows):
            db.close()
            return False
        self.databases.append(db)
        self.denotations.append(rows)
        self.specs.append(spec)
        return True

    def witness(self, query: str, among: list[int] | None = None) -> int | None:
        """The index of the first database (of those ``among``, default all) on which ``query``'s denotation
        differs from the gold's, or None."""
        for i in range(len(self.databases)) if among is None else among:
            got = _run(self.databases[i], query)
            if got is None or not same_denotation(got, self.denotations[i], self.ordered):
                return i
        return None

    def close(self) -> None:
        for db in self.databases:
            db.close()


def _tie_free(schema: Schema, gold: str) -> set[tuple[str, str]]:
    """``(table, column)`` of an ORDER BY key whose ties would leave the gold's denotation to SQLite's tie-break."""
    order, select = _ORDER.search(gold), _SELECT.search(gold)
    if not order or not (re.search(r"\bLIMIT\b", gold, re.IGNORECASE) or (select and select[1] != order[1])):
        return set()
    table, _, column = order[1].rpartition(".")
    return {(t.name, column) for t in (schema.parent, schema.child) if table in ("", t.name) and column == t.number}


class _Fuzzer:
    """Draws databases of one schema around one gold query's literals."""

    def __init__(self, schema: Schema, gold: str, rng: Random):
        self.schema, self.rng = schema, rng
        bare = _TEXT.sub("''", gold)
        self.literals = sorted({int(n) + d for n in _INT.findall(bare) for d in (-1, 0, 1)})
        self.texts = {t.replace("''", "'") for t in _TEXT.findall(gold)}
        self.tie_free = _tie_free(schema, gold)

    def words(self, vocabulary: tuple[str, ...]) -> list[str]:
        """One, two, all (twice as likely) or some of a column's words (its gold literals always among them): values
        repeat, and every category can be large at once."""
        count = self.rng.choice([1, 2, len(vocabulary), len(vocabulary), self.rng.randint(1, len(vocabulary))])
        chosen = self.rng.sample(vocabulary, count)
        return sorted({*chosen, *(w for w in vocabulary if w in self.texts)})

    def number(self, bounds: tuple[int, int]) -> int:
        edges = [v for v in self.literals if bounds[0] - 1 <= v <= bounds[1] + 1] + list(bounds)
        return self.rng.choice(edges) if self.rng.random() < 0.5 else self.rng.randint(*bounds)

    def table(self, t: Table, n: int, first_id: int) -> list[list]:
        rng = self.rng
        labels, categories = self.words(t.labels), self.words(t.categories)
        null_share = rng.choice([0.0, 0.3, 0.6, 1.0])
        unique = (t.name, t.number) in self.tie_free
        numbers = rng.sample(range(t.numbers[0], t.numbers[1] + 1), n) if unique else None
        rows = []
        for i in range(n):
            if rows and not unique and rng.random() < 0.2:  # a row copied but for its id
                rows.append([first_id + i, *rng.choice(rows)[1:]])
                continue
            number = numbers[i] if unique else self.number(t.numbers)
            optional = None if rng.random() < null_share else self.number(t.optionals)
            rows.append([first_id + i, rng.choice(labels), rng.choice(categories), number, optional])
        return rows

    def database(self) -> dict:
        rng, s = self.rng, self.schema
        parents = self.table(s.parent, rng.choice([1, 2, 4, 5, 6, 8, 10, 16, 24]), 1)
        first_child = rng.choice([1, len(parents) + 1, 100])
        children = self.table(s.child, rng.choice([0, 1, 3, 6, 8, 12, 16, 24, 32]), first_child)
        owners = rng.sample([p[0] for p in parents], rng.randint(1, len(parents)))
        children = [[*row, rng.choice(owners)] for row in children]
        return {"ddl": ddl(s), "rows": {s.parent.name: parents, s.child.name: children}}


def _build(spec: dict) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    for statement in spec["ddl"]:
        db.execute(statement)
    for table, rows in spec["rows"].items():
        if rows:
            db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    return db


def build_suite(schema: Schema, gold: str, seed: str, size: int = SUITE_SIZE) -> Suite:
    """The suite of ``size`` fuzzed databases for ``gold`` (fewer if ``40 * size`` draws find no more that answer).

    Args:
        schema: The sql-v2 schema the gold queries.
        gold: The gold query; its literals steer the fuzzing, and it must answer on each database kept.
        seed: Seeds the draws (the same seed gives the same suite).
        size: Databases wanted.

    Returns:
        The suite, with the gold's denotation on each database.
    """
    fuzzer = _Fuzzer(schema, gold, Random(seed))
    suite = Suite(gold, ordered=bool(_ORDER.search(gold)))
    for _ in range(size * 40):
        if len(suite.databases) == size:
            break
        suite.add(fuzzer.database())
    return suite


def suite_of(gold: str, specs: list[dict]) -> Suite:
    """A suite of given databases (``{"ddl": [...], "rows": {table: [[...]]}}``; those where the gold answers)."""
    suite = Suite(gold, ordered=bool(_ORDER.search(gold)))
    for spec in specs:
        suite.add(spec)
    return suite
