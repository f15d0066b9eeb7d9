"""sql: text-to-SQL on generated SQLite databases, graded by running the query.

Task: given a database schema (``CREATE TABLE`` statements) and a question, write one SQLite ``SELECT``
query that answers it. Each example draws one of three schemas (a shop, a company, a library; each a
parent table and a child table with a foreign key to it), fills it with random rows (unique numbers, a
few ``NULL``\\s, some parents without children) and asks one of fourteen question families: filters,
counts, aggregates, ``GROUP BY`` / ``HAVING``, ``IS NULL``, top-k and ordered listings, joins, a
``LEFT JOIN`` for parents without children. The gold query is generated with the question; (seed, index)
reproduces both and the data.

Output format: reasoning in ``<think>...</think>``, the query alone in ``<answer>...</answer>``.

Rewards: ``correct`` (``rlhub.rewards.sql.sql_execution``: the query, run read-only with a time limit,
returns the gold query's rows on the example's database and on ``variants`` more databases of the same
schema with other rows; order matters only when the question asks for one, column names never; weight
1.0), ``format`` (exact think/answer layout, weight ``format_weight``).

Version history:
    v0: first version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from random import Random

from rlhub.env import ConfigError, EnvConfig, Example, Probe, ProceduralEnv, Rubric
from rlhub.rewards.format import think_answer_format
from rlhub.rewards.sql import QueryRefused, build_database, run_query, same_result, sql_execution

QUESTION = (
    "The SQLite database has these tables:\n\n{ddl}\n\n{question}\n\nWrite one SQLite SELECT query that answers "
    "the question, and put the query alone in the <answer> tags."
)


@dataclass(frozen=True)
class Table:
    name: str
    entity: str
    """One row is one of these (singular)."""
    label: str
    labels: tuple[str, ...]
    category: str
    categories: tuple[str, ...]
    number: str
    numbers: tuple[int, int]
    optional: str
    """A number column that is ``NULL`` in about a third of the rows."""
    optionals: tuple[int, int]


@dataclass(frozen=True)
class Schema:
    parent: Table
    child: Table
    key: str
    """The child's column referencing ``parent.id``."""


NAMES = ("Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Max", "Nia", "Oto")
SCHEMAS = (
    Schema(
        Table(
            "customers",
            "customer",
            "name",
            NAMES,
            "city",
            ("Oslo", "Lima", "Pune", "Kyiv"),
            "age",
            (18, 90),
            "loyalty_points",
            (0, 500),
        ),
        Table(
            "orders",
            "order",
            "item",
            ("lamp", "desk", "chair", "mug", "rug", "shelf"),
            "channel",
            ("online", "store", "phone"),
            "amount",
            (5, 400),
            "discount",
            (1, 30),
        ),
        "customer_id",
    ),
    Schema(
        Table(
            "departments",
            "department",
            "name",
            ("Sales", "Legal", "Ops", "Research", "Support", "Design", "Finance", "Audit"),
            "city",
            ("Rome", "Oslo", "Quito"),
            "budget",
            (100, 999),
            "floor",
            (1, 12),
        ),
        Table(
            "employees",
            "employee",
            "name",
            NAMES,
            "role",
            ("analyst", "manager", "engineer", "clerk"),
            "salary",
            (30, 200),
            "bonus",
            (1, 40),
        ),
        "department_id",
    ),
    Schema(
        Table(
            "authors",
            "author",
            "name",
            NAMES,
            "country",
            ("Chile", "Japan", "Ghana", "Peru"),
            "birth_year",
            (1900, 2000),
            "awards",
            (0, 9),
        ),
        Table(
            "books",
            "book",
            "title",
            ("Dusk", "Tides", "Ember", "Atlas", "Orbit", "Maze", "Fable"),
            "genre",
            ("poetry", "mystery", "history", "travel"),
            "pages",
            (80, 900),
            "rating",
            (1, 5),
        ),
        "author_id",
    ),
)


def ddl(schema: Schema) -> list[str]:
    def columns(t: Table) -> str:
        return f"id INTEGER PRIMARY KEY, {t.label} TEXT, {t.category} TEXT, {t.number} INTEGER, {t.optional} INTEGER"

    p, c = schema.parent, schema.child
    return [
        f"CREATE TABLE {p.name} ({columns(p)})",
        f"CREATE TABLE {c.name} ({columns(c)}, {schema.key} INTEGER REFERENCES {p.name}(id))",
    ]


def fill(rng: Random, schema: Schema, rows: int) -> dict:
    """A database of ``schema``: numbers unique per table (so orderings have no ties), NULLs, childless parents."""

    def table_rows(t: Table, n: int) -> list[list]:
        numbers = rng.sample(range(t.numbers[0], t.numbers[1] + 1), n)
        return [
            [
                i + 1,
                rng.choice(t.labels),
                rng.choice(t.categories),
                numbers[i],
                None if rng.random() < 0.35 else rng.randint(*t.optionals),
            ]
            for i in range(n)
        ]

    parents = table_rows(schema.parent, max(4, rows // 2))
    owners = sorted(rng.sample([p[0] for p in parents], len(parents) - 2))  # two parents have no children
    children = [[*row, rng.choice(owners)] for row in table_rows(schema.child, rows)]
    return {"ddl": ddl(schema), "rows": {schema.parent.name: parents, schema.child.name: children}}


def ask(rng: Random, schema: Schema, db: dict) -> tuple[str, str, str, bool]:
    """One question about ``db``: (family, question, gold SQL, ordered)."""
    p, c, key = schema.parent, schema.child, schema.key
    t = rng.choice([p, c])
    rows = db["rows"][t.name]
    cat = rng.choice([r[2] for r in rows])
    mid = sorted(r[3] for r in rows)[len(rows) // 2]
    k = rng.randint(2, 4)
    agg, word = rng.choice([("MAX", "highest"), ("MIN", "lowest"), ("SUM", "total"), ("AVG", "average")])
    owners = {r[-1] for r in db["rows"][c.name]}
    pcat = rng.choice([r[2] for r in db["rows"][p.name] if r[0] in owners])
    families = {
        "filter": (
            f"List the {t.label} of every {t.entity} whose {t.number} is greater than {mid}.",
            f"SELECT {t.label} FROM {t.name} WHERE {t.number} > {mid}",
            False,
        ),
        "filter_category": (
            f"List the {t.label} and {t.number} of every {t.entity} whose {t.category} is '{cat}'.",
            f"SELECT {t.label}, {t.number} FROM {t.name} WHERE {t.category} = '{cat}'",
            False,
        ),
        "count": (
            f"How many {t.entity}s have {t.category} '{cat}'?",
            f"SELECT COUNT(*) FROM {t.name} WHERE {t.category} = '{cat}'",
            False,
        ),
        "aggregate": (
            f"What is the {word} {t.number} of the {t.entity}s whose {t.category} is '{cat}'?",
            f"SELECT {agg}({t.number}) FROM {t.name} WHERE {t.category} = '{cat}'",
            False,
        ),
        "group_count": (
            f"For each {t.category}, how many {t.entity}s are there? Give the {t.category} and the count.",
            f"SELECT {t.category}, COUNT(*) FROM {t.name} GROUP BY {t.category}",
            False,
        ),
        "having": (
            f"Which {t.category} values appear in at least 2 {t.entity}s? Give each once.",
            f"SELECT {t.category} FROM {t.name} GROUP BY {t.category} HAVING COUNT(*) >= 2",
            False,
        ),
        "is_null": (
            f"List the {t.label} of every {t.entity} whose {t.optional} is missing (NULL).",
            f"SELECT {t.label} FROM {t.name} WHERE {t.optional} IS NULL",
            False,
        ),
        "count_known": (
            f"How many {t.entity}s have a {t.optional} recorded (not NULL)?",
            f"SELECT COUNT({t.optional}) FROM {t.name}",
            False,
        ),
        "top_k": (
            f"List the {t.label} and {t.number} of the {k} {t.entity}s with the highest {t.number}, highest first.",
            f"SELECT {t.label}, {t.number} FROM {t.name} ORDER BY {t.number} DESC LIMIT {k}",
            True,
        ),
        "ordered": (
            f"List the {t.number} of every {t.entity} whose {t.category} is '{cat}', from lowest to highest.",
            f"SELECT {t.number} FROM {t.name} WHERE {t.category} = '{cat}' ORDER BY {t.number}",
            True,
        ),
        "join_filter": (
            f"List the {c.label} of every {c.entity} whose {p.entity} has {p.category} '{pcat}'.",
            f"SELECT {c.name}.{c.label} FROM {c.name} JOIN {p.name} ON {c.name}.{key} = {p.name}.id "
            f"WHERE {p.name}.{p.category} = '{pcat}'",
            False,
        ),
        "join_sum": (
            f"For each {p.entity} that has at least one {c.entity}, give the {p.entity}'s id and the total "
            f"{c.number} of its {c.entity}s.",
            f"SELECT {key}, SUM({c.number}) FROM {c.name} GROUP BY {key}",
            False,
        ),
        "join_max": (
            f"Give the id and {p.label} of the {p.entity} of the {c.entity} with the highest {c.number}.",
            f"SELECT {p.name}.id, {p.name}.{p.label} FROM {p.name} JOIN {c.name} ON {c.name}.{key} = "
            f"{p.name}.id ORDER BY {c.name}.{c.number} DESC LIMIT 1",
            False,
        ),
        "left_join": (
            f"List the id of every {p.entity} that has no {c.entity}.",
            f"SELECT {p.name}.id FROM {p.name} LEFT JOIN {c.name} ON {c.name}.{key} = {p.name}.id "
            f"WHERE {c.name}.id IS NULL",
            False,
        ),
    }
    family = rng.choice(sorted(families))
    return (family, *families[family])


@dataclass
class SQLConfig(EnvConfig):
    rows: int = 12
    """Rows of each child table (parent tables get half as many, at least 4)."""
    variants: int = 2
    """Extra databases (same schema, other rows) the query must also answer correctly; 0 grades on one."""

    def validate(self) -> None:
        super().validate()
        if self.answer_format != "tags":
            raise ConfigError("sql answers are queries: set answer_format='tags'")
        if not 6 <= self.rows <= 60:
            raise ConfigError(f"rows must be in 6..60, got {self.rows}; try rows=12")
        if not 0 <= self.variants <= 5:
            raise ConfigError(f"variants must be in 0..5, got {self.variants}; try variants=2")


def _rows(spec: dict, query: str) -> list[tuple]:
    db = build_database(spec)
    try:
        return run_query(db, query)
    finally:
        db.close()


class SQLEnv(ProceduralEnv):
    Config = SQLConfig

    def generate(self, rng: Random, split: str, index: int) -> Example:
        schema = rng.choice(SCHEMAS)
        for _ in range(100):  # redraw until the question has a non-empty answer
            db = fill(rng, schema, self.config.rows)
            family, question, gold, ordered = ask(rng, schema, db)
            want = _rows(db, gold)
            if want and want != [(0,)] and want != [(None,)]:
                break
        variants = []
        for _ in range(self.config.variants):
            # prefer variants where the gold's rows differ, so a hard-coded answer fails on them
            for _ in range(20):
                other = fill(rng, schema, self.config.rows)
                if not same_result(_rows(other, gold), want, ordered):
                    break
            variants.append(other)
        text = QUESTION.format(ddl=";\n".join(db["ddl"]) + ";", question=question)
        return Example(
            id=f"sql/{split}/{index}",
            prompt=self.make_prompt(text),
            answer=gold,
            info={"databases": [db, *variants], "ordered": ordered, "family": family},
        )

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
        endless = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n, {first}"
        timed = [self.format_answer(endless), self.format_answer("SELECT length(randomblob(1000000000))")]
        return [*probes, Probe("endless query", timed, max_seconds=10.0, about="stopped by the time and size limits")]

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


__all__ = ["QueryRefused", "SQLConfig", "SQLEnv"]
