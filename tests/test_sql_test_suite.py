"""sql-v2's ``correct`` reward against an independent test-suite comparator (issue 25, verifier audit).

No implementation of Spider's test-suite accuracy (Zhong, Yu & Klein, 2020) ships on PyPI, so
``tests/sql_test_suite.py`` is one written from the paper's description: for each gold query a suite of 48
fuzzed databases of its schema, and a query is right iff its denotation equals the gold's on all of them.

Cases, for the first examples of every one of the fourteen families: the gold, the audit's rewrites and near
misses before its witness filter (:mod:`rlhub.authoring.audit.queries`), and the templates below, written
independently (join orders, subquery for join, ``BETWEEN`` for two comparisons, ``COUNT(*)`` and ``COUNT`` of
a column with or without NULLs, set and multiset operators, ``DISTINCT``, ``LIMIT``, the order's direction,
a condition dropped, the wrong column, key or table). The suite labels each case; the templates' names say
only what they change. sql-v2's verdict (the env's ``correct`` reward, 1.0) must equal the suite's on every
case that no entry of :data:`DELIBERATE` (differences on purpose) or :data:`DEFECTS` (known holes, left to a
new version; none now) explains, so a new kind of disagreement fails the test.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from typing import NamedTuple

import pytest

import rlhub
from rlhub.authoring.audit.queries import _columns, _near_misses, _rewrites
from rlhub.envs.sql import SCHEMAS
from rlhub.rewards.sql import TEST_SUITE_CHECK
from rlhub.types import Example
from tests.sql_test_suite import build_suite, suite_of

ENV_ID = "sql-v2"
"""The env whose ``correct`` reward is cross-checked."""

PER_FAMILY = 10
"""Examples per family at each of two sizes."""

FAMILIES = 14

SQL_SIZES = {"parent": 4, "child": 6}
"""The fewest rows sql-v2 gives a parent and a child table (``rows`` >= 6; parents get half, at least 4)."""


class Difference(NamedTuple):
    """A class of cases where sql-v2's verdict and the suite's differ, and why."""

    name: str
    rlhub: bool
    """sql-v2's verdict on them (the suite gives the other)."""
    kinds: str
    """A regular expression the case's kind matches."""
    reason: str
    below_sql_sizes: bool = False
    """Only cases that just the suite's databases smaller than sql-v2 ever draws separate from the gold."""

    def explains(self, v: Verdict) -> bool:
        small = not self.below_sql_sizes or v.suite_sized
        return v.rlhub == self.rlhub != v.suite and bool(re.fullmatch(self.kinds, v.kind)) and small


DELIBERATE = [
    Difference(
        "top-k by a threshold",
        True,
        ".*",
        f"sql-v2's databases hold at least {SQL_SIZES['parent']} parent and {SQL_SIZES['child']} child rows; "
        "the suite also tries fewer, where a top-k written as a threshold read at OFFSET k-1 answers nothing",
        below_sql_sizes=True,
    ),
]
"""Where sql-v2's verdict differs from the suite's on purpose: the kinds ``TEST_SUITE_CHECK`` lists on the cards."""

DEFECTS: list[Difference] = []
"""Known defects of the reward, left to a new version to fix (a reward changes only with a version bump); listed so
that the cross-check passes and fails on any new kind of disagreement. sql-v1 had two, which sql-v2 fixed: a
``LIMIT`` no graded database reached (its gold's answer had at most n rows on each) and ``AND optional IS NULL``
added (its second variant held only NULLs there, and the rows that decided were often NULL on the others)."""


TEMPLATES = {
    "filter": [
        ("BETWEEN for two comparisons", "SELECT {L} FROM {T} WHERE {N} BETWEEN {mid1} AND (SELECT MAX({N}) FROM {T})"),
        ("BETWEEN with the literal", "SELECT {L} FROM {T} WHERE {N} BETWEEN {mid} AND (SELECT MAX({N}) FROM {T})"),
        ("two comparisons", "SELECT {L} FROM {T} WHERE {N} > {mid} AND {N} <= (SELECT MAX({N}) FROM {T})"),
        ("operands swapped", "SELECT {L} FROM {T} WHERE {mid} < {N}"),
        ("NOT <=", "SELECT {L} FROM {T} WHERE NOT {N} <= {mid}"),
        ("NOT <", "SELECT {L} FROM {T} WHERE NOT {N} < {mid}"),
        ("IN subquery", "SELECT {L} FROM {T} WHERE id IN (SELECT id FROM {T} WHERE {N} > {mid})"),
        ("self-join", "SELECT a.{L} FROM {T} a JOIN {T} b ON a.id = b.id WHERE b.{N} > {mid}"),
        ("wrong column", "SELECT {L} FROM {T} WHERE {O} > {mid}"),
        ("ORDER BY added", "SELECT {L} FROM {T} WHERE {N} > {mid} ORDER BY {N}"),
        ("EXCEPT (a set)", "SELECT {L} FROM {T} EXCEPT SELECT {L} FROM {T} WHERE {N} <= {mid}"),
        (
            "UNION ALL of a split",
            "SELECT {L} FROM {T} WHERE {N} > {mid} AND {O} IS NULL UNION ALL "
            "SELECT {L} FROM {T} WHERE {N} > {mid} AND {O} IS NOT NULL",
        ),
        (
            "UNION of a split (a set)",
            "SELECT {L} FROM {T} WHERE {N} > {mid} AND {O} IS NULL UNION "
            "SELECT {L} FROM {T} WHERE {N} > {mid} AND {O} IS NOT NULL",
        ),
        ("GROUP BY the column", "SELECT {L} FROM {T} WHERE {N} > {mid} GROUP BY {L}"),
    ],
    "filter_category": [
        ("columns swapped", "SELECT {N}, {L} FROM {T} WHERE {C} = '{cat}'"),
        ("IN list", "SELECT {L}, {N} FROM {T} WHERE {C} IN ('{cat}')"),
        ("LIKE", "SELECT {L}, {N} FROM {T} WHERE {C} LIKE '{cat}'"),
        ("another category", "SELECT {L}, {N} FROM {T} WHERE {C} = '{cat2}'"),
        ("two categories", "SELECT {L}, {N} FROM {T} WHERE {C} IN ('{cat}', '{cat2}')"),
        ("one column", "SELECT {L} FROM {T} WHERE {C} = '{cat}'"),
        ("GROUP BY both columns", "SELECT {L}, {N} FROM {T} WHERE {C} = '{cat}' GROUP BY {L}, {N}"),
        ("ORDER BY added", "SELECT {L}, {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} DESC"),
        ("optional known", "SELECT {L}, {N} FROM {T} WHERE {C} = '{cat}' AND {O} IS NOT NULL"),
        (
            "UNION ALL of a split",
            "SELECT {L}, {N} FROM {T} WHERE {C} = '{cat}' AND {O} IS NULL UNION ALL "
            "SELECT {L}, {N} FROM {T} WHERE {C} = '{cat}' AND {O} IS NOT NULL",
        ),
        ("wrong number column", "SELECT {L}, {O} FROM {T} WHERE {C} = '{cat}'"),
    ],
    "count": [
        ("COUNT(id)", "SELECT COUNT(id) FROM {T} WHERE {C} = '{cat}'"),
        ("COUNT of a column without NULLs", "SELECT COUNT({N}) FROM {T} WHERE {C} = '{cat}'"),
        ("COUNT of the label", "SELECT COUNT({L}) FROM {T} WHERE {C} = '{cat}'"),
        ("COUNT of the optional column", "SELECT COUNT({O}) FROM {T} WHERE {C} = '{cat}'"),
        ("COUNT(DISTINCT label)", "SELECT COUNT(DISTINCT {L}) FROM {T} WHERE {C} = '{cat}'"),
        ("COUNT(DISTINCT number)", "SELECT COUNT(DISTINCT {N}) FROM {T} WHERE {C} = '{cat}'"),
        ("SUM of a comparison", "SELECT SUM({C} = '{cat}') FROM {T}"),
        ("GROUP BY and HAVING", "SELECT COUNT(*) FROM {T} GROUP BY {C} HAVING {C} = '{cat}'"),
        ("distinct rows counted", "SELECT COUNT(*) FROM (SELECT DISTINCT {L}, {N}, {O} FROM {T} WHERE {C} = '{cat}')"),
        ("condition dropped", "SELECT COUNT(*) FROM {T}"),
        ("count of the other categories", "SELECT COUNT(*) FROM {T} WHERE {C} <> '{cat}'"),
    ],
    "aggregate MAX": [
        ("ORDER BY DESC LIMIT 1", "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} DESC LIMIT 1"),
        ("ORDER BY ASC LIMIT 1", "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} LIMIT 1"),
        ("wrong column", "SELECT MAX({O}) FROM {T} WHERE {C} = '{cat}'"),
        ("every MAX per category", "SELECT MAX({N}) FROM {T} GROUP BY {C} HAVING {C} = '{cat}'"),
        (
            "NOT EXISTS a larger",
            "SELECT DISTINCT a.{N} FROM {T} a WHERE a.{C} = '{cat}' AND NOT EXISTS "
            "(SELECT 1 FROM {T} b WHERE b.{C} = '{cat}' AND b.{N} > a.{N})",
        ),
    ],
    "aggregate MIN": [
        ("ORDER BY ASC LIMIT 1", "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} LIMIT 1"),
        ("ORDER BY DESC LIMIT 1", "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} DESC LIMIT 1"),
        ("wrong column", "SELECT MIN({O}) FROM {T} WHERE {C} = '{cat}'"),
        ("second lowest", "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} LIMIT 1 OFFSET 1"),
    ],
    "aggregate SUM": [
        ("TOTAL", "SELECT TOTAL({N}) FROM {T} WHERE {C} = '{cat}'"),
        ("SUM(DISTINCT)", "SELECT SUM(DISTINCT {N}) FROM {T} WHERE {C} = '{cat}'"),
        ("AVG times COUNT", "SELECT AVG({N}) * COUNT(*) FROM {T} WHERE {C} = '{cat}'"),
        ("wrong column", "SELECT SUM({O}) FROM {T} WHERE {C} = '{cat}'"),
        ("sum of the distinct rows", "SELECT SUM({N}) FROM (SELECT DISTINCT {L}, {N} FROM {T} WHERE {C} = '{cat}')"),
    ],
    "aggregate AVG": [
        ("SUM * 1.0 / COUNT(*)", "SELECT SUM({N}) * 1.0 / COUNT(*) FROM {T} WHERE {C} = '{cat}'"),
        ("integer division", "SELECT SUM({N}) / COUNT(*) FROM {T} WHERE {C} = '{cat}'"),
        ("AVG(DISTINCT)", "SELECT AVG(DISTINCT {N}) FROM {T} WHERE {C} = '{cat}'"),
        ("divided by COUNT(optional)", "SELECT SUM({N}) * 1.0 / COUNT({O}) FROM {T} WHERE {C} = '{cat}'"),
        ("midrange", "SELECT (MAX({N}) + MIN({N})) / 2.0 FROM {T} WHERE {C} = '{cat}'"),
    ],
    "group_count": [
        ("COUNT of a column without NULLs", "SELECT {C}, COUNT({N}) FROM {T} GROUP BY {C}"),
        ("COUNT of the optional column", "SELECT {C}, COUNT({O}) FROM {T} GROUP BY {C}"),
        ("GROUP BY 1", "SELECT {C}, COUNT(*) FROM {T} GROUP BY 1"),
        ("ordered by count", "SELECT COUNT(*), {C} FROM {T} GROUP BY {C} ORDER BY 1 DESC"),
        ("correlated subquery", "SELECT DISTINCT a.{C}, (SELECT COUNT(*) FROM {T} b WHERE b.{C} = a.{C}) FROM {T} a"),
        ("window function", "SELECT DISTINCT {C}, COUNT(*) OVER (PARTITION BY {C}) FROM {T}"),
        ("groups of one dropped", "SELECT {C}, COUNT(*) FROM {T} GROUP BY {C} HAVING COUNT(*) > 1"),
        ("COUNT(DISTINCT label)", "SELECT {C}, COUNT(DISTINCT {L}) FROM {T} GROUP BY {C}"),
        ("only known optionals", "SELECT {C}, COUNT(*) FROM {T} WHERE {O} IS NOT NULL GROUP BY {C}"),
        ("grouped by the label", "SELECT {L}, COUNT(*) FROM {T} GROUP BY {L}"),
    ],
    "having": [
        ("> 1", "SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT(*) > 1"),
        (">= 3", "SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT(*) >= 3"),
        ("= 2", "SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT(*) = 2"),
        ("every category", "SELECT DISTINCT {C} FROM {T}"),
        ("subquery", "SELECT g FROM (SELECT {C} AS g, COUNT(*) AS n FROM {T} GROUP BY {C}) WHERE n >= 2"),
        ("self-join", "SELECT DISTINCT a.{C} FROM {T} a JOIN {T} b ON a.{C} = b.{C} AND a.id < b.id"),
        ("self-join without DISTINCT", "SELECT a.{C} FROM {T} a JOIN {T} b ON a.{C} = b.{C} AND a.id < b.id"),
        ("COUNT(DISTINCT label)", "SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT(DISTINCT {L}) >= 2"),
        ("COUNT of the optional column", "SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT({O}) >= 2"),
        ("ORDER BY added", "SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT(*) >= 2 ORDER BY {C}"),
    ],
    "is_null": [
        ("ISNULL", "SELECT {L} FROM {T} WHERE {O} ISNULL"),
        ("= NULL", "SELECT {L} FROM {T} WHERE {O} = NULL"),
        ("IFNULL to a value out of range", "SELECT {L} FROM {T} WHERE IFNULL({O}, -1) = -1"),
        ("COALESCE to 0", "SELECT {L} FROM {T} WHERE COALESCE({O}, 0) = 0"),
        ("NOT IS NOT NULL", "SELECT {L} FROM {T} WHERE NOT ({O} IS NOT NULL)"),
        ("NOT IN the known", "SELECT {L} FROM {T} WHERE id NOT IN (SELECT id FROM {T} WHERE {O} IS NOT NULL)"),
        ("IS NOT NULL", "SELECT {L} FROM {T} WHERE {O} IS NOT NULL"),
        ("DISTINCT", "SELECT DISTINCT {L} FROM {T} WHERE {O} IS NULL"),
        ("wrong column", "SELECT {L} FROM {T} WHERE {N} IS NULL"),
    ],
    "count_known": [
        ("COUNT(*) of the known", "SELECT COUNT(*) FROM {T} WHERE {O} IS NOT NULL"),
        ("SUM of IS NOT NULL", "SELECT SUM({O} IS NOT NULL) FROM {T}"),
        ("COUNT(*)", "SELECT COUNT(*) FROM {T}"),
        ("COUNT(DISTINCT)", "SELECT COUNT(DISTINCT {O}) FROM {T}"),
        ("NULLs counted", "SELECT COUNT(*) - COUNT({O}) FROM {T}"),
        ("positive values counted", "SELECT COUNT(*) FROM {T} WHERE {O} > 0"),
        ("COUNT of the number column", "SELECT COUNT({N}) FROM {T}"),
    ],
    "top_k": [
        ("ORDER BY the negation", "SELECT {L}, {N} FROM {T} ORDER BY -{N} LIMIT {k}"),
        ("ascending", "SELECT {L}, {N} FROM {T} ORDER BY {N} ASC LIMIT {k}"),
        ("LIMIT + 1", "SELECT {L}, {N} FROM {T} ORDER BY {N} DESC LIMIT {k_plus}"),
        ("LIMIT - 1", "SELECT {L}, {N} FROM {T} ORDER BY {N} DESC LIMIT {k_minus}"),
        ("OFFSET 1", "SELECT {L}, {N} FROM {T} ORDER BY {N} DESC LIMIT {k} OFFSET 1"),
        ("LIMIT dropped", "SELECT {L}, {N} FROM {T} ORDER BY {N} DESC"),
        ("columns swapped", "SELECT {N}, {L} FROM {T} ORDER BY {N} DESC LIMIT {k}"),
        (
            "threshold from the k-th",
            "SELECT {L}, {N} FROM {T} WHERE {N} >= (SELECT {N} FROM {T} ORDER BY {N} DESC "
            "LIMIT 1 OFFSET {k_minus}) ORDER BY {N} DESC",
        ),
        (
            "ranked by count of larger",
            "SELECT {L}, {N} FROM {T} a WHERE (SELECT COUNT(*) FROM {T} b WHERE b.{N} > a.{N}) < {k} ORDER BY {N} DESC",
        ),
        ("wrong order key", "SELECT {L}, {N} FROM {T} ORDER BY {O} DESC LIMIT {k}"),
    ],
    "ordered": [
        ("ASC", "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} ASC"),
        ("DESC", "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} DESC"),
        ("ORDER BY dropped", "SELECT {N} FROM {T} WHERE {C} = '{cat}'"),
        ("ORDER BY the negation descending", "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY -{N} DESC"),
        ("DISTINCT", "SELECT DISTINCT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N}"),
        ("tie broken by id", "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N}, id"),
        ("ordered by id", "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY id"),
        ("a large LIMIT", "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} LIMIT 100"),
        ("GROUP BY the number", "SELECT {N} FROM {T} WHERE {C} = '{cat}' GROUP BY {N} ORDER BY {N}"),
    ],
    "join_filter": [
        ("join order", "SELECT {CH}.{CL} FROM {P} JOIN {CH} ON {P}.id = {CH}.{K} WHERE {P}.{PC} = '{pcat}'"),
        ("comma join", "SELECT {CH}.{CL} FROM {CH}, {P} WHERE {P}.{PC} = '{pcat}' AND {CH}.{K} = {P}.id"),
        ("IN subquery", "SELECT {CL} FROM {CH} WHERE {K} IN (SELECT id FROM {P} WHERE {PC} = '{pcat}')"),
        (
            "EXISTS",
            "SELECT c.{CL} FROM {CH} c WHERE EXISTS (SELECT 1 FROM {P} p WHERE p.id = c.{K} AND p.{PC} = '{pcat}')",
        ),
        ("LEFT JOIN", "SELECT {CH}.{CL} FROM {CH} LEFT JOIN {P} ON {CH}.{K} = {P}.id WHERE {P}.{PC} = '{pcat}'"),
        ("joined on the ids", "SELECT {CH}.{CL} FROM {CH} JOIN {P} ON {CH}.id = {P}.id WHERE {P}.{PC} = '{pcat}'"),
        ("the parent's label", "SELECT {P}.{PL} FROM {CH} JOIN {P} ON {CH}.{K} = {P}.id WHERE {P}.{PC} = '{pcat}'"),
        ("DISTINCT", "SELECT DISTINCT {CH}.{CL} FROM {CH} JOIN {P} ON {CH}.{K} = {P}.id WHERE {P}.{PC} = '{pcat}'"),
        ("the other parents", "SELECT {CH}.{CL} FROM {CH} JOIN {P} ON {CH}.{K} = {P}.id WHERE {P}.{PC} <> '{pcat}'"),
    ],
    "join_sum": [
        ("join on the parent", "SELECT {P}.id, SUM({CH}.{CN}) FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id GROUP BY {P}.id"),
        ("TOTAL", "SELECT {K}, TOTAL({CN}) FROM {CH} GROUP BY {K}"),
        ("SUM(DISTINCT)", "SELECT {K}, SUM(DISTINCT {CN}) FROM {CH} GROUP BY {K}"),
        (
            "LEFT JOIN from the parent",
            "SELECT {P}.id, SUM({CH}.{CN}) FROM {P} LEFT JOIN {CH} ON {CH}.{K} = {P}.id GROUP BY {P}.id",
        ),
        ("COUNT for SUM", "SELECT {K}, COUNT({CN}) FROM {CH} GROUP BY {K}"),
        ("grouped by the child", "SELECT {K}, SUM({CN}) FROM {CH} GROUP BY id"),
        ("the optional summed", "SELECT {K}, SUM({CO}) FROM {CH} GROUP BY {K}"),
        (
            "correlated subquery",
            "SELECT p.id, (SELECT SUM(c.{CN}) FROM {CH} c WHERE c.{K} = p.id) FROM {P} p "
            "WHERE p.id IN (SELECT {K} FROM {CH})",
        ),
        ("window function", "SELECT DISTINCT {K}, SUM({CN}) OVER (PARTITION BY {K}) FROM {CH}"),
        ("MAX for SUM", "SELECT {K}, MAX({CN}) FROM {CH} GROUP BY {K}"),
    ],
    "join_max": [
        (
            "subquery for the key",
            "SELECT id, {PL} FROM {P} WHERE id = (SELECT {K} FROM {CH} ORDER BY {CN} DESC LIMIT 1)",
        ),
        (
            "MAX subquery",
            "SELECT {P}.id, {P}.{PL} FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id "
            "WHERE {CH}.{CN} = (SELECT MAX({CN}) FROM {CH})",
        ),
        (
            "join order",
            "SELECT {P}.id, {P}.{PL} FROM {CH} JOIN {P} ON {P}.id = {CH}.{K} ORDER BY {CH}.{CN} DESC LIMIT 1",
        ),
        (
            "grouped by parent",
            "SELECT {P}.id, {P}.{PL} FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id GROUP BY {P}.id "
            "ORDER BY MAX({CH}.{CN}) DESC LIMIT 1",
        ),
        (
            "grouped by parent, ordered by SUM",
            "SELECT {P}.id, {P}.{PL} FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id "
            "GROUP BY {P}.id ORDER BY SUM({CH}.{CN}) DESC LIMIT 1",
        ),
        ("ascending", "SELECT {P}.id, {P}.{PL} FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id ORDER BY {CH}.{CN} LIMIT 1"),
        ("LIMIT 2", "SELECT {P}.id, {P}.{PL} FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id ORDER BY {CH}.{CN} DESC LIMIT 2"),
        (
            "the parent's number",
            "SELECT {P}.id, {P}.{PL} FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id ORDER BY {P}.{PN} DESC LIMIT 1",
        ),
        (
            "the child's id",
            "SELECT {CH}.id, {P}.{PL} FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id ORDER BY {CH}.{CN} DESC LIMIT 1",
        ),
        ("without the join", "SELECT id, {PL} FROM {P} ORDER BY {PN} DESC LIMIT 1"),
    ],
    "left_join": [
        ("NOT IN", "SELECT id FROM {P} WHERE id NOT IN (SELECT {K} FROM {CH})"),
        ("NOT EXISTS", "SELECT p.id FROM {P} p WHERE NOT EXISTS (SELECT 1 FROM {CH} c WHERE c.{K} = p.id)"),
        ("EXCEPT", "SELECT id FROM {P} EXCEPT SELECT {K} FROM {CH}"),
        ("the key IS NULL", "SELECT {P}.id FROM {P} LEFT JOIN {CH} ON {CH}.{K} = {P}.id WHERE {CH}.{K} IS NULL"),
        ("the optional IS NULL", "SELECT {P}.id FROM {P} LEFT JOIN {CH} ON {CH}.{K} = {P}.id WHERE {CH}.{CO} IS NULL"),
        ("count of children = 0", "SELECT p.id FROM {P} p WHERE (SELECT COUNT(*) FROM {CH} c WHERE c.{K} = p.id) = 0"),
        (
            "HAVING COUNT(child id) = 0",
            "SELECT {P}.id FROM {P} LEFT JOIN {CH} ON {CH}.{K} = {P}.id GROUP BY {P}.id HAVING COUNT({CH}.id) = 0",
        ),
        (
            "HAVING COUNT(*) = 1",
            "SELECT {P}.id FROM {P} LEFT JOIN {CH} ON {CH}.{K} = {P}.id GROUP BY {P}.id HAVING COUNT(*) = 1",
        ),
        ("joined on the ids", "SELECT {P}.id FROM {P} LEFT JOIN {CH} ON {CH}.id = {P}.id WHERE {CH}.id IS NULL"),
        ("parents with children", "SELECT DISTINCT {K} FROM {CH}"),
    ],
}
"""Independent rewrites and near misses per family (aggregates per function), ``{name}`` filled from the gold."""


class Verdict(NamedTuple):
    family: str
    example: str
    kind: str
    query: str
    rlhub: bool
    suite: bool
    suite_sized: bool
    """The suite's verdict on its databases of sql-v2's sizes only."""
    differs_on_own: bool
    """Whether the query's denotation differs from the gold's on one of the example's own databases."""
    witness: dict | None
    """A suite database that separates the query from the gold (where the suite rejects it)."""


def _fill(example) -> tuple:
    """The example's schema, family (with the aggregate) and the names and literals the templates use."""
    gold = example.answer
    schema = next(s for s in SCHEMAS if s.parent.name in example.info["databases"][0]["rows"])
    p, c = schema.parent, schema.child
    t = p if re.search(r"FROM (\w+)", gold)[1] == p.name else c
    family = example.info["family"]
    if family == "aggregate":
        family += " " + re.match(r"SELECT (\w+)\(", gold)[1]
    text, mid, k = re.search(r"'([^']*)'", gold), re.search(r"> (\d+)", gold), re.search(r"LIMIT (\d+)", gold)
    cat = text[1] if text else ""
    vocabulary = p.categories if family == "join_filter" else t.categories
    mid, k = int(mid[1]) if mid else 0, int(k[1]) if k else 1
    names = {
        **{"T": t.name, "L": t.label, "C": t.category, "N": t.number, "O": t.optional},
        **{"P": p.name, "PL": p.label, "PC": p.category, "PN": p.number, "K": schema.key},
        **{"CH": c.name, "CL": c.label, "CN": c.number, "CO": c.optional},
        **{"cat": cat, "pcat": cat, "cat2": next(v for v in vocabulary if v != cat)},
        **{"mid": mid, "mid1": mid + 1, "k": k, "k_plus": k + 1, "k_minus": k - 1},
    }
    return schema, family, names


def _generic(gold: str, names: dict) -> list[tuple[str, str]]:
    """Near misses any gold has: a ``LIMIT`` added, a condition on the optional column added."""
    out = []
    if " LIMIT " not in gold:
        out += [(f"LIMIT {n} added", f"{gold} LIMIT {n}") for n in (1, 2, 3, 4)]
    where = re.search(r" WHERE (.+?)(?= GROUP BY| ORDER BY| LIMIT|$)", gold)
    if where and "JOIN" not in gold:
        for test in ("IS NULL", "IS NOT NULL"):
            condition = f"{where[1]} AND {names['O']} {test}"
            out.append((f"AND optional {test} added", gold.replace(where[1], condition, 1)))
    return out


def _cases(example) -> list[tuple[str, str]]:
    """(kind, query): the gold, the audit's rewrites and near misses, the generic ones and the family's templates."""
    _, family, names = _fill(example)
    gold = example.answer
    tables = {table: [name for name, _ in cols] for table, cols in _columns(example.info["databases"][0]).items()}
    cases = [("gold", gold)]
    cases += [(f"audit: {kind}", query) for kind, query in _rewrites(gold) + _near_misses(gold, tables)]
    cases += _generic(gold, names)
    cases += [(kind, template.format(**names)) for kind, template in TEMPLATES[family]]
    return list({query: (kind, query) for kind, query in reversed(cases)}.values())


def _sized(spec: dict) -> bool:
    parent, child = spec["rows"].values()
    return len(parent) >= SQL_SIZES["parent"] and len(child) >= SQL_SIZES["child"]


def _examples() -> list[tuple[str, Example]]:
    """(name, example): the first :data:`PER_FAMILY` test examples of each family, at the default size and at the
    smallest; the name tells the size (``sql/test/3@rows=6``)."""
    taken: dict[tuple, list] = defaultdict(list)
    for rows in (12, 6):
        env = rlhub.make(ENV_ID, rows=rows)
        for index in itertools.count():  # as env.examples("test") makes them, until every family has its share
            example = env.generate(env.example_rng("test", index, 0), "test", index)
            if len(taken[rows, example.info["family"]]) < PER_FAMILY:
                taken[rows, example.info["family"]].append((f"{example.id}@rows={rows}", example))
            if sum(len(v) for (size, _), v in taken.items() if size == rows) == FAMILIES * PER_FAMILY:
                break
    return [named for examples in taken.values() for named in examples]


def cross_check() -> list[Verdict]:
    """Every case of :func:`_examples`, with sql-v2's verdict and the suite's."""
    rows = []
    for name, example in _examples():
        schema, family, _ = _fill(example)
        suite = build_suite(schema, example.answer, seed=name)
        sized = [i for i, spec in enumerate(suite.specs) if _sized(spec)]
        own = suite_of(example.answer, example.info["databases"])
        for kind, query in _cases(example):
            witness = suite.witness(query)
            in_size = witness is None or suite.witness(query, among=sized) is None
            on_own = own.witness(query) is not None
            spec = suite.specs[witness] if witness is not None else None
            rows.append((family, name, example, kind, query, witness is None, in_size, on_own, spec))
        suite.close()
        own.close()
    env = rlhub.make(ENV_ID)
    completions = [env.format_answer(row[4], reasoning="Work it out.") for row in rows]
    scores = env.score_batch(completions, [row[2] for row in rows])
    return [
        Verdict(family, name, kind, query, score.rewards["correct"] == 1.0, *labels)
        for (family, name, _, kind, query, *labels), score in zip(rows, scores)
    ]


@pytest.fixture(scope="module")
def verdicts() -> list[Verdict]:
    return cross_check()


def _explained(v: Verdict) -> str | None:
    """The name of the listed difference that explains a disagreement (a defect first), or None."""
    return next((d.name for d in DEFECTS + DELIBERATE if d.explains(v)), None)


def test_every_family_has_right_and_wrong_cases(verdicts):
    families = Counter(v.family.split()[0] for v in verdicts)
    assert len(families) == FAMILIES, families
    for family in families:
        mine = [v for v in verdicts if v.family.split()[0] == family]
        assert sum(v.suite for v in mine) >= 2 * PER_FAMILY and sum(not v.suite for v in mine) >= 4 * PER_FAMILY
    assert len(verdicts) > 3000


def test_both_accept_every_gold(verdicts):
    assert [(v.example, v.query) for v in verdicts if v.kind == "gold" and not (v.rlhub and v.suite)] == []


def test_the_suite_separates_whatever_the_examples_databases_separate(verdicts):
    """The suite's strength: a query whose rows differ from the gold's on a database sql-v2 drew differs on one
    of the suite's too (the suite never saw those databases)."""
    missed = [(v.example, v.kind, v.query) for v in verdicts if v.differs_on_own and v.suite]
    assert missed == []


def test_sql_v2_agrees_with_the_test_suite_except_where_listed(verdicts):
    unexplained = [v for v in verdicts if v.rlhub != v.suite and not _explained(v)]
    agreement = sum(v.rlhub == v.suite for v in verdicts) / len(verdicts)
    shown = [(v.family, v.kind, v.query, f"sql-v2 {v.rlhub}, suite {v.suite}", v.witness) for v in unexplained[:5]]
    assert not unexplained, f"agreement {agreement:.2%}; {len(unexplained)} disagreements, e.g. {shown}"


def test_the_cards_list_the_deliberate_differences_by_the_same_names():
    assert [d.name for d in DELIBERATE] == list(TEST_SUITE_CHECK.differences)


def test_every_listed_difference_is_real(verdicts):
    """Each entry of DELIBERATE and DEFECTS explains at least one case where the two verdicts do differ."""
    used = {_explained(v) for v in verdicts if v.rlhub != v.suite}
    assert [d.name for d in DELIBERATE + DEFECTS if d.name not in used] == []
