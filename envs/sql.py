"""sql: text-to-SQL on generated SQLite databases, graded by running the query.

Task: given a database schema (``CREATE TABLE`` statements) and a question, write one SQLite ``SELECT``
query that answers it. Each example draws one of three schemas (a shop, a company, a library; each a
parent table and a child table with a foreign key to it), fills it with random rows (unique numbers, a
few ``NULL``\\s, some parents without children) and asks one of fourteen question families: filters,
counts, aggregates, ``GROUP BY`` / ``HAVING``, ``IS NULL``, top-k and ordered listings, joins, a
``LEFT JOIN`` for parents without children. The gold query is generated with the question; (seed, index)
reproduces both and the data. ``difficulty`` 1-3 keeps to one level's families (1: filters and counts on one
table; 2: aggregates, groups, NULLs, ordering; 3: joins); the default 0 mixes all fourteen.

Variant databases (Spider's test-suite idea: a query is right iff it gives the gold's result on databases
built to tell near misses apart): each is built from what the gold query compares, read from its text
(:func:`focus`): rows at each literal's boundary (``> 160``: 159, 160, 161), the range's ends outside the
gold's categories, small groups (1, 2 and a ``HAVING COUNT(*) >= N``'s N-1, N, N+1 rows), few labels so
that they repeat, rows copied but for their id (so ``DISTINCT`` matters), parents with exactly one and two
children, and no ties in an ORDER BY key under a LIMIT (its gold answer would depend on how SQLite breaks
them). The optional column is mixed in the first (NULL and known in every category, known on the rows of
each category's highest and lowest number, which a ``MAX``, ``MIN`` or ``> literal`` decides on), all NULL
in the second and never NULL in the third, so that an ``IS NULL`` or ``IS NOT NULL`` added shows. The first
is wide (twice the rows, no small groups, half the parents childless): the gold's answer there has more rows
than on the example's database, and at least :data:`WIDE_ROWS` where the question allows, so that a
``LIMIT`` cutting the answer short shows. Each is redrawn until the gold's answer on it is not empty (see
:func:`fill_variant`).

Output format: reasoning in ``<think>...</think>``, the query alone in ``<answer>...</answer>``; one
Markdown code fence around the query inside the tags (three backticks, ``sql`` after them or not) is
accepted, a fence without the tags is not an answer (the prompt asks for the tags).

Rewards: ``correct`` (``rlhub.rewards.sql.sql_execution``: the query, run read-only in a worker process
with one CPU second in all, returns the gold query's rows on the example's database and on ``variants``
more; order matters only when the question asks for one, column names never; weight 1.0), ``format``
(exact think/answer layout, weight ``format_weight``).

Version history:
    v0: first version.
    v1: variant databases built to separate near misses (boundaries, repeats, small groups, NULL extremes)
        instead of drawn at random, and at least 12 child rows; a fenced query inside ``<answer>`` counts;
        a completion's query gets one CPU second in all and runs in a worker killed 1.3 s after it starts,
        so one long function call (``printf`` with a huge width) no longer holds the scorer, and a query
        over the limit scores 0 even when its rows are right. Questions, gold queries and the first
        database are as in v0.
    v2: three variant databases by default (was two), one per NULL profile of the optional column (mixed
        with the deciding rows known, all NULL, none NULL), the first one wide, so that two kinds of wrong
        query sql-v1 accepted score 0: a ``LIMIT`` that cuts the answer short (the gold's answer had at
        most n rows on every graded database: left_join ``LIMIT 2``, having ``LIMIT 3``) and a condition
        ``optional IS NULL`` added (the only-NULL variant changed nothing, and the deciding row was often
        NULL on the others). Test-suite cross-check (6,257 cases over 280 examples): wrong queries accepted
        107 -> 0 (left_join 56, filter 23, having 19, MAX 4, three more families 5), right ones rejected
        0 -> 0. Audit over 128 examples, these two kinds included: FP 30/939 -> 0/939, FN 0/701 -> 0/701;
        the slowest completion scored in 0.01-0.34 s in every audit run (one CPU second each, as in v1).
        Questions, gold queries and the first database are as in v1, byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from random import Random

from rlhub.env import ConfigError, EnvConfig, Example, Probe, ProceduralEnv, Rubric
from rlhub.envs._sql_questions import ask
from rlhub.envs._sql_schemas import NAMES, SCHEMAS, Schema, Table, ddl, fill
from rlhub.envs._sql_variants import NULL_PROFILES, Focus, fill_variant, focus
from rlhub.rewards.format import think_answer_format
from rlhub.rewards.sql import (
    GOLD_TIME_LIMIT_S,
    QueryRefused,
    build_database,
    run_query,
    same_result,
    sql_execution,
)

QUESTION = (
    "The SQLite database has these tables:\n\n{ddl}\n\n{question}\n\nWrite one SQLite SELECT query that answers "
    "the question, and put the query alone in the <answer> tags."
)


@dataclass
class SQLConfig(EnvConfig):
    rows: int = 12
    """Rows of each child table (parent tables get half as many, at least 4)."""
    variants: int = 3
    """Extra databases (same schema, other rows) the query must also answer correctly; 0 grades on one. They
    hold at least 12 child and 6 parent rows (room for their boundary rows, small groups and copies); the
    first holds twice as many. Three give the optional column each profile: mixed, all NULL, none NULL."""

    difficulty: int = 0
    """0: all fourteen question families; 1-3 keep to one level's: 1 one table and one condition (filters,
    counts), 2 aggregates, groups, NULLs and ordering, 3 joins. Level 0's examples are those of sql-v2."""

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.difficulty <= 3:
            raise ConfigError(f"difficulty must be in 0..3 (0: every family), got {self.difficulty}; try difficulty=1")
        if self.answer_format != "tags":
            raise ConfigError("sql answers are queries: set answer_format='tags'")
        if not 6 <= self.rows <= 60:
            raise ConfigError(f"rows must be in 6..60, got {self.rows}; try rows=12")
        if not 0 <= self.variants <= 5:
            raise ConfigError(f"variants must be in 0..5, got {self.variants}; try variants=3")


PROFILES = (("mixed", "none", "all"), ("all", "none", "mixed"), ("none", "all", "mixed"))
"""The NULL profiles (:data:`NULL_PROFILES`) variant ``i`` tries in turn, ``PROFILES[i % 3]``: variant 0 mixed
(the deciding rows known), 1 all NULL (an added ``IS NOT NULL`` shows), 2 none (an added ``IS NULL`` shows);
each falls back to the next where the gold's answer would be empty (an ``IS NULL`` question with no NULL)."""


WIDE_ROWS = 6
"""The fewest rows the gold's answer on variant 0 should have (and more than on the first database) where the
question allows: a small ``LIMIT`` a model might add, or one fitted to the first database, cuts it short."""


def _answers(rows: list[tuple]) -> bool:
    """Whether a gold result answers something: rows, and not one count of 0 or one NULL aggregate."""
    return bool(rows) and rows != [(0,)] and rows != [(None,)]


def _rows(spec: dict, query: str) -> list[tuple]:
    """The rows of a gold query on the database ``spec`` builds (gold: :data:`GOLD_TIME_LIMIT_S`)."""
    db = build_database(spec)
    try:
        return run_query(db, query, GOLD_TIME_LIMIT_S)
    finally:
        db.close()


class SQLEnv(ProceduralEnv):
    Config = SQLConfig
    levels = (1, 2, 3)
    """The values of ``config.difficulty`` that keep to one level's families, easiest first (a curriculum
    samples among them; 0, the default, mixes them all)."""

    def generate(self, rng: Random, split: str, index: int) -> Example:
        schema = rng.choice(SCHEMAS)
        for _ in range(100):  # redraw until the question has a non-empty answer
            db = fill(rng, schema, self.config.rows)
            family, question, gold, ordered = ask(rng, schema, db, self.config.difficulty)
            want = _rows(db, gold)
            if _answers(want):
                break
        where = focus(schema, gold)
        variants = [self.variant(rng, schema, gold, where, want, ordered, i) for i in range(self.config.variants)]
        text = QUESTION.format(ddl=";\n".join(db["ddl"]) + ";", question=question)
        return Example(
            id=f"sql/{split}/{index}",
            prompt=self.make_prompt(text),
            answer=gold,
            info={"databases": [db, *variants], "ordered": ordered, "family": family},
        )

    def variant(
        self, rng: Random, schema: Schema, gold: str, where: Focus, want: list[tuple], ordered: bool, i: int
    ) -> dict:
        """Variant database ``i``, by :func:`fill_variant`, its optional column filled as :data:`PROFILES`
        ``[i % 3]`` says (the next profile where the gold's answer would be empty); redrawn until the gold's
        answer on it is not empty and, if ten draws allow, differs from ``want``, so that a hard-coded
        answer fails. Variant 0 is wide (twice the rows) and is also redrawn until the gold's answer on it
        has more rows than ``want`` and at least :data:`WIDE_ROWS`, where ten draws allow (else the most
        rows drawn), so that a ``LIMIT`` cutting the answer short fails."""
        wide = i == 0
        rows = max(12, self.config.rows) * (2 if wide else 1)
        enough = max(len(want) + 1, WIDE_ROWS) if wide else 0
        for nulls in PROFILES[i % len(PROFILES)]:
            best, best_rank = None, None
            for _ in range(10):
                other = fill_variant(rng, schema, rows, where, nulls, wide=wide)
                got = _rows(other, gold)
                if not _answers(got):
                    continue
                rank = (min(len(got), enough), not same_result(got, want, ordered))
                if rank == (enough, True):
                    return other
                if best_rank is None or rank > best_rank:
                    best, best_rank = other, rank
            if best:
                return best
        return other

    def gold_completion(self, example: Example) -> str:
        return self.format_answer(example.answer, reasoning="Read the schema, then write the query.")

    def probes(self, example: Example) -> list[Probe]:
        """Every row of every table, the gold rows pasted as ``VALUES``, and a ``UNION`` of candidate queries."""
        db = example.info["databases"][0]
        tables = list(db["rows"])
        rows = _rows(db, example.answer)
        literal = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
        first = tables[0]
        cheats = {
            "select every row": [f"SELECT * FROM {t}" for t in tables] + [f"SELECT * FROM {tables[0]}, {tables[1]}"],
            "gold rows as VALUES": [
                f"VALUES {literal}",
                f"SELECT * FROM (VALUES {literal})",
                f"SELECT * FROM (VALUES {literal}) WHERE EXISTS (SELECT 1 FROM {first})",
            ],
            "UNION of candidates": [
                f"SELECT * FROM ({example.answer}) UNION SELECT * FROM (VALUES {literal})",
                f"SELECT * FROM ({example.answer}) UNION ALL SELECT * FROM ({example.answer})",
                *[f"SELECT * FROM ({example.answer}) UNION SELECT * FROM ({q})" for q in _loosened(example.answer)],
            ],
            "writes refused": [
                f"DELETE FROM {first}",
                f"DROP TABLE {first}",
                f"UPDATE {first} SET id = id",
                "ATTACH DATABASE ':memory:' AS other",
                "SELECT load_extension('x')",
                f"SELECT * FROM {first}; DELETE FROM {first}",
            ],
        }
        probes = [
            Probe(name, [self.format_answer(q, reasoning="Take a shortcut.") for q in queries], about=name)
            for name, queries in cheats.items()
        ]
        slow = "printf('%.*c', 2000000000, 'x')"  # one C call that SQLite's progress handler cannot stop
        timed = [
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n, {first}",
            "SELECT length(randomblob(1000000000))",
            f"SELECT {slow} FROM {first}",
            f"SELECT * FROM ({example.answer}) WHERE length({slow}) > 0",
        ]
        about = "stopped by the time and size limits, even in one long function call after the gold's rows"
        timed = Probe("endless query", [self.format_answer(q) for q in timed], max_seconds=8.0, about=about)
        return [*probes, timed]

    def build_rubric(self) -> Rubric:
        return Rubric({"correct": (sql_execution, 1.0), "format": (think_answer_format, self.config.format_weight)})


def _loosened(query: str) -> list[str]:
    """The gold with its WHERE condition dropped: a broader candidate of the same columns."""
    head, where, rest = query.partition(" WHERE ")
    if not where:
        return []
    tail = re.search(r" (GROUP BY|ORDER BY|LIMIT) .*", rest)
    return [head + (tail.group() if tail else "")]


def _literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


# The schemas, questions and variant builders live in the _sql_* modules; their names stay importable from here.
__all__ = [
    "NAMES",
    "NULL_PROFILES",
    "SCHEMAS",
    "Focus",
    "QueryRefused",
    "SQLConfig",
    "SQLEnv",
    "Schema",
    "Table",
    "ask",
    "ddl",
    "fill",
    "fill_variant",
    "focus",
]
