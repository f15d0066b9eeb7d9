"""sql's three schemas (a shop, a company, a library) and the first database of an example.

Each schema is a parent table and a child table whose key column references the parent's ``id``; :func:`fill`
draws the rows that the example's question is asked about (see ``rlhub.envs.sql``).
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random


@dataclass(frozen=True)
class Table:
    """A table's name and columns, each with the values rows draw from: ``id``, a text label, a text
    category, a unique number and an optional number."""

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
    """A parent table and a child table whose rows each belong to one parent."""

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
    """The ``CREATE TABLE`` statements of ``schema``, parent first."""

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
