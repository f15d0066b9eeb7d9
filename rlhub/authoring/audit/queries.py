"""Audit cases for a SQL query as the answer, with the example's databases (the ``databases`` column).

The accept set rewrites the gold query without changing what it means: inside a ```` ```sql ```` fence,
a trailing ``;``, keywords in lower case, clauses on their own lines, ``<>`` for ``!=``, ``AND`` terms in
another order, table and column aliases. Each must return the gold's rows on every database given, or
it is dropped (a rewrite this module got wrong).

The reject set makes one near miss: a comparison's boundary moved (``>`` for ``>=``), a literal off by
one, ``=`` negated, ``DISTINCT`` added or removed, ``COUNT(DISTINCT ...)``, ``IS NULL`` negated, the
``WHERE`` condition dropped, the order reversed, ``LIMIT`` changed, ``LEFT JOIN`` as ``JOIN``, ``MAX`` for
``MIN``; and, from the databases: a ``LIMIT`` that cuts the answer short (1, 2, 3, or as many rows as the
gold returns on the first database, the one a model may explore), a condition ``column IS NULL`` or ``IS NOT
NULL`` added on a column that holds NULLs. A near miss is kept only with a witness: a database on which its
rows differ from the gold's, searched among the example's databases and copies of them with one value
changed (to a literal of the gold, one off it, a neighbour's value, or ``NULL``), as Spider's test suites
do; for the last two kinds, among copies with every row twice or a column with NULLs all NULL or none.
A near miss no database separates may mean the same thing as the gold, so it is dropped.
"""

from __future__ import annotations

import copy
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any

from rlhub.authoring.audit.cases import Cases, placed
from rlhub.authoring.probes import _Target
from rlhub.rewards.sql import build_database

_LITERAL = re.compile(r"('(?:[^']|'')*')")
_KEYWORDS = re.compile(
    r"\b(SELECT|DISTINCT|FROM|WHERE|GROUP BY|HAVING|ORDER BY|LIMIT|AND|OR|NOT|IS|NULL|AS|ON|JOIN|LEFT|ASC|DESC|"
    r"COUNT|SUM|AVG|MIN|MAX)\b"
)
_CLAUSE = re.compile(r" (FROM|WHERE|GROUP BY|HAVING|ORDER BY|LIMIT) ")


def _outside_literals(query: str, edit) -> str:
    """``query`` with ``edit`` applied to the text outside its string literals."""
    return "".join(part if _LITERAL.fullmatch(part) else edit(part) for part in _LITERAL.split(query))


def _rows(db: sqlite3.Connection, query: str) -> Any:
    """The rows of ``query`` on ``db`` (floats to 6 places), or ``"error"``."""
    try:
        rows = db.execute(query).fetchmany(1001)
    except sqlite3.Error:
        return "error"
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows]


def _same(a: Any, b: Any, ordered: bool) -> bool:
    """Whether two results hold the same rows (as lists when ``ordered``, else as multisets)."""
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return a == b if ordered else Counter(a) == Counter(b)


def _numbers(query: str) -> list[int]:
    """The integer literals of ``query`` (not those inside its string literals)."""
    return [int(n) for n in re.findall(r"(?<![\w.])\d+(?![\w.])", _LITERAL.sub("''", query))]


def _columns(spec: dict) -> dict[str, list[tuple[str, bool]]]:
    """Each table's columns in order, with whether each references another table, from its ``CREATE TABLE``."""
    out = {}
    for statement in spec["ddl"]:
        m = re.match(r"CREATE TABLE (\w+) \((.*)\)", statement, re.DOTALL)
        if m:
            parts = [c.split() for c in m[2].split(",")]
            out[m[1]] = [(p[0], "REFERENCES" in map(str.upper, p)) for p in parts if p and p[0].isidentifier()]
    return out


def _variants(specs: list[dict], query: str) -> Iterator[dict]:
    """Copies of the databases with one value changed, where a near miss of ``query`` would show.

    A value becomes a literal of the query, one off a number literal, a neighbour row's value or ``NULL``,
    keeping what the given databases show of each column: ``NULL`` only where some database holds one, a
    repeated value only where values repeat, a foreign key only another row's key.
    """
    numbers = sorted({v for n in _numbers(query) for v in (n - 1, n, n + 1)})
    texts = [t[1:-1].replace("''", "'") for t in _LITERAL.findall(query)]
    keys = {(table, i) for table, columns in _columns(specs[0]).items() for i, (_, key) in enumerate(columns) if key}
    seen: dict[tuple[str, int], list[list]] = {}
    for spec in specs:
        for table, rows in spec["rows"].items():
            for column in range(len(rows[0]) if rows else 0):
                seen.setdefault((table, column), []).append([r[column] for r in rows])
    nullable = {place for place, columns in seen.items() if any(None in values for values in columns)}
    repeats = {place for place, columns in seen.items() if any(_repeats(values) for values in columns)}
    for spec in specs:
        for table, rows in spec["rows"].items():
            for column in range(1, len(rows[0]) if rows else 0):  # column 0 is the id
                place, present = (table, column), [r[column] for r in rows]
                sample = next((v for v in present if v is not None), None)
                values = numbers if isinstance(sample, int) else texts if isinstance(sample, str) else []
                values = [] if place in keys else values
                for row in range(min(len(rows), 3)):
                    others = present[:row] + present[row + 1 :]
                    candidates = [*values, others[0] if others else None] + ([None] if place in nullable else [])
                    for value in candidates:
                        if value is not None and value in others and place not in repeats | keys:
                            continue  # a unique column stays unique
                        changed = copy.deepcopy(spec)
                        changed["rows"][table][row][column] = value
                        yield changed


def _doubled(specs: list[dict]) -> Iterator[dict]:
    """Each database with every row twice (the copy with a new id, a child's copy under the same parent): the
    gold's answer outgrows a ``LIMIT`` there."""
    for spec in specs:
        doubled = copy.deepcopy(spec)
        for rows in doubled["rows"].values():
            if rows and all(isinstance(r[0], int) for r in rows):
                top = max(r[0] for r in rows)
                rows += [[top + 1 + i, *row[1:]] for i, row in enumerate(rows)]
        yield doubled


def _null_extremes(specs: list[dict]) -> Iterator[dict]:
    """Each database with a column that holds NULLs all NULL, or never (its NULLs set to a value it holds
    somewhere): an added ``IS NULL`` or ``IS NOT NULL`` changes the gold's answer there."""
    known: dict[tuple[str, int], Any] = {}
    for spec in specs:
        for table, rows in spec["rows"].items():
            for row in rows:
                for column, value in enumerate(row):
                    if value is not None:
                        known.setdefault((table, column), value)
    for spec in specs:
        for table, rows in spec["rows"].items():
            for column in range(1, len(rows[0]) if rows else 0):
                if all(r[column] is not None for r in rows) or (table, column) not in known:
                    continue
                for value in (None, known[table, column]):
                    changed = copy.deepcopy(spec)
                    for row in changed["rows"][table]:
                        if value is None or row[column] is None:
                            row[column] = value
                    yield changed


_SEARCHES = {"LIMIT that truncates": _doubled, "IS NULL added": _null_extremes, "IS NOT NULL added": _null_extremes}
"""Where a near miss of these kinds looks for a witness beyond the example's databases (other kinds: in
:func:`_variants`); only there, since a doubled row or a column emptied of NULLs leaves the data's own rules
(unique numbers, say), where other near misses could differ from the gold without being wrong."""


def _repeats(values: list) -> bool:
    known = [v for v in values if v is not None]
    return len(set(known)) < len(known)


def _witness(dbs: list[sqlite3.Connection], gold_rows: list, query: str, ordered: bool) -> bool:
    """Whether ``query``'s rows differ from the gold's on one of ``dbs``."""
    return any(not _same(_rows(db, query), want, ordered) for db, want in zip(dbs, gold_rows))


def _rewrites(gold: str) -> list[tuple[str, str]]:
    """``(kind, query)``: the gold written otherwise, meaning the same (see the module docstring)."""
    forms = [
        ("trailing semicolon", f"{gold};"),
        ("keywords in lower case", _KEYWORDS.sub(lambda m: m[0].lower(), gold)),
    ]
    forms.append(("clauses on their own lines", _CLAUSE.sub(lambda m: f"\n{m[1]} ", gold)))
    forms.append(("<> for !=", _outside_literals(gold, lambda p: p.replace("!=", "<>"))))
    where = re.search(r" WHERE (.+?)(?= GROUP BY| ORDER BY| LIMIT|$)", gold)
    if where and " AND " in where[1] and " OR " not in where[1] and "BETWEEN" not in where[1]:
        terms = where[1].split(" AND ")
        forms.append(("AND terms reordered", gold.replace(where[1], " AND ".join(reversed(terms)))))
    tables = re.findall(r"\b(?:FROM|JOIN) (\w+)", gold)
    aliased = gold
    for i, table in enumerate(dict.fromkeys(tables), 1):
        aliased = re.sub(rf"\b(FROM|JOIN) {table}\b", rf"\1 {table} AS t{i}", aliased)
        aliased = _outside_literals(aliased, lambda p, table=table, i=i: re.sub(rf"\b{table}\.", f"t{i}.", p))
    forms.append(("table aliases", aliased))
    select = re.match(r"SELECT (DISTINCT )?(.+?) FROM ", gold)
    if select and "*" not in select[2] and "," not in select[2]:
        forms.append(("column alias", gold.replace(f"{select[2]} FROM ", f"{select[2]} AS result FROM ", 1)))
    return forms


def _near_misses(gold: str, tables: dict[str, list[str]]) -> list[tuple[str, str]]:
    """``(kind, query)``: the gold with one thing changed; ``tables`` gives columns to count for ``COUNT(*)``."""
    swaps = {">": ">=", ">=": ">", "<": "<=", "<=": "<", "=": "!=", "!=": "="}
    near = []
    for m in re.finditer(r"(?<![<>!=])(>=|<=|!=|>|<|=)(?!=)", gold):
        near.append(("comparison boundary moved", gold[: m.start()] + swaps[m[0]] + gold[m.end() :]))
    for m in re.finditer(r"(?<![\w.'])\d+(?![\w.'])", gold):
        for delta in (-1, 1):
            near.append(("a literal off by one", gold[: m.start()] + str(int(m[0]) + delta) + gold[m.end() :]))
    aggregate = re.search(r"\b(COUNT|SUM|AVG|MIN|MAX)\(", gold)
    if "SELECT DISTINCT " in gold:
        near.append(("DISTINCT removed", gold.replace("SELECT DISTINCT ", "SELECT ", 1)))
    elif "GROUP BY" not in gold and not aggregate:
        near.append(("DISTINCT added", gold.replace("SELECT ", "SELECT DISTINCT ", 1)))
    table = re.search(r" FROM (\w+)", gold)
    for m in re.finditer(r"COUNT\((?!DISTINCT)([^)]+)\)", gold):
        head, tail = gold[: m.start()], gold[m.end() :]
        if m[1] != "*":
            near.append(("COUNT(DISTINCT ...)", f"{head}COUNT(DISTINCT {m[1]}){tail}"))
            continue
        for column in tables.get(table[1] if table else "", [])[1:3]:
            near.append(("COUNT(column) for COUNT(*)", f"{head}COUNT({column}){tail}"))
            near.append(("COUNT(DISTINCT ...)", f"{head}COUNT(DISTINCT {column}){tail}"))
    pairs = [("IS NULL", "IS NOT NULL"), (" ASC", " DESC"), ("LEFT JOIN", "JOIN"), ("MAX(", "MIN("), ("SUM(", "AVG(")]
    for a, b in pairs + [(b, a) for a, b in pairs]:
        if a in gold and not (a == "IS NULL" and "IS NOT NULL" in gold):
            near.append((f"{a.strip()} as {b.strip()}", gold.replace(a, b, 1)))
    if " ORDER BY " in gold and " DESC" not in gold and " ASC" not in gold:
        near.append(("order reversed", re.sub(r"( ORDER BY [\w.()*]+)", r"\1 DESC", gold, count=1)))
    where = re.search(r" WHERE .+?(?= GROUP BY| ORDER BY| LIMIT|$)", gold)
    if where:
        near.append(("WHERE condition dropped", gold.replace(where[0], "", 1)))
    return near


def _data_near_misses(gold: str, specs: list[dict]) -> list[tuple[str, str]]:
    """``(kind, query)``: near misses that need the databases: a ``LIMIT`` that cuts the gold's answer short
    (at most as many rows as it has on the first database), and ``IS NULL`` or ``IS NOT NULL`` added on each
    column of a table the gold reads that holds a NULL in some database."""
    near = []
    if not re.search(r"\bLIMIT\b", gold, re.IGNORECASE):
        db = build_database(specs[0])
        first = _rows(db, gold)
        db.close()
        shown = len(first) if isinstance(first, list) else 0
        near += [("LIMIT that truncates", f"{gold} LIMIT {n}") for n in sorted({1, 2, 3, shown}) if n > 0]
    where = re.search(r" WHERE (.+?)(?= GROUP BY| ORDER BY| LIMIT|$)", gold)
    tables = re.findall(r"\b(?:FROM|JOIN) (\w+)", gold)
    qualify = len(set(tables)) > 1
    for table in dict.fromkeys(tables):
        for column in _nullable(specs, table):
            name = f"{table}.{column}" if qualify else column
            for test in ("IS NULL", "IS NOT NULL"):
                if where:
                    condition = f"({where[1]})" if " OR " in where[1].upper() else where[1]
                    query = gold.replace(where[0], f" WHERE {condition} AND {name} {test}", 1)
                else:
                    cut = re.search(r" (?:GROUP BY|ORDER BY|LIMIT) |$", gold).start()
                    query = f"{gold[:cut]} WHERE {name} {test}{gold[cut:]}"
                near.append((f"{test} added", query))
    return near


def _nullable(specs: list[dict], table: str) -> list[str]:
    """The columns of ``table`` that hold a NULL in one of the databases (its key columns left out)."""
    columns = _columns(specs[0]).get(table, [])
    held = {i for spec in specs for row in spec["rows"].get(table, []) for i, v in enumerate(row) if v is None}
    return [name for i, (name, key) in enumerate(columns) if i in held and not key and i > 0]


def cases(t: _Target) -> Cases:
    """Accept and reject sets of a SQL gold (see the module docstring)."""
    gold = t.slot.content.strip()
    specs = t.example.info["databases"]
    ordered = bool(t.example.info.get("ordered"))
    dbs = [build_database(spec) for spec in specs]
    want = [_rows(db, gold) for db in dbs]
    accept = [(k, q) for k, q in _rewrites(gold) if q != gold and not _witness(dbs, want, q, ordered)]
    contents = [*accept, ("```sql fence", f"```sql\n{gold}\n```")]
    witnesses: dict[str, list[tuple[sqlite3.Connection, Any]]] = {}
    reject = []
    near = _near_misses(gold, _tables(t)) + _data_near_misses(gold, specs)
    for query, kind in dict((q, k) for k, q in near if q != gold).items():
        if _witness(dbs, want, query, ordered):
            reject.append((kind, query))
            continue
        search = _SEARCHES.get(kind)
        pool = witnesses.setdefault(search.__name__ if search else "", [])
        if not pool:
            for variant in search(specs) if search else _variants(specs, gold):
                try:
                    db = build_database(variant)
                except sqlite3.Error:
                    continue
                pool.append((db, _rows(db, gold)))
        if _witness([db for db, _ in pool], [w for _, w in pool], query, ordered):
            reject.append((kind, query))
    return Cases(placed(t, contents, gold), placed(t, reject, gold))


def _tables(t: _Target) -> dict[str, list[str]]:
    """Each table's column names, from the first database's ``CREATE TABLE`` statements."""
    return {table: [name for name, _ in columns] for table, columns in _columns(t.example.info["databases"][0]).items()}


def random_answer(t: _Target, rng) -> Any:
    """A random column of a random table, filtered on a random column and value."""
    tables = _tables(t)
    table = rng.choice(sorted(tables))
    query = f"SELECT {rng.choice(tables[table])} FROM {table} WHERE {rng.choice(tables[table])} > {rng.randint(0, 500)}"
    return t.final(t.slot.fill(query))


def heuristic(t: _Target) -> Any:
    """``SELECT * FROM`` the first table."""
    return t.final(t.slot.fill(f"SELECT * FROM {next(iter(_tables(t)))}"))
