"""sql's fourteen question families: a question about a database and the gold query that answers it."""

from __future__ import annotations

from random import Random

from rlhub.envs._sql_schemas import Schema

LEVELS = {
    1: ("count", "filter", "filter_category"),
    2: ("aggregate", "count_known", "group_count", "having", "is_null", "ordered", "top_k"),
    3: ("join_filter", "join_max", "join_sum", "left_join"),
}
"""The families of each difficulty level: 1 one table, one condition; 2 aggregates, groups, NULLs and order;
3 both tables. Level 0 (sql's default) asks all fourteen."""


def ask(rng: Random, schema: Schema, db: dict, level: int = 0) -> tuple[str, str, str, bool]:
    """One question about ``db``: (family, question, gold SQL, ordered); ``level`` 1-3 keeps to that level's
    families (:data:`LEVELS`), 0 draws among all, as sql-v0 to v2 do."""
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
    family = rng.choice(sorted(LEVELS[level] if level else families))
    return (family, *families[family])
