"""sql-v2's variant databases: rows built from what the gold query compares, to tell it from its near misses.

:func:`focus` reads the literals, counts and ordering from the gold's text; :func:`fill_variant` builds a
database of the same schema around them (see the module docstring of ``rlhub.envs.sql``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from random import Random

from rlhub.envs._sql_schemas import Schema, Table, ddl

_OP = r"(?:<=|>=|<>|!=|==|=|<|>)"
_COMPARISON = re.compile(rf"(?:(\w+)\.)?(\w+)\s*{_OP}\s*(-?\d+|'(?:[^']|'')*')")
_COUNT_COMPARISON = re.compile(rf"COUNT\([^)]*\)\s*{_OP}\s*(\d+)", re.IGNORECASE)
_ORDER_BY = re.compile(r"^SELECT\s+(.*?)\s+FROM\b.*\bORDER BY\s+((?:\w+\.)?\w+)", re.IGNORECASE | re.DOTALL)
NULL_PROFILES = ("mixed", "all", "none")
"""How a variant fills the optional columns: NULL and not in every category, only NULLs, or none."""


@dataclass(frozen=True)
class Focus:
    """What a gold query compares, read from its text; columns are ``(table, column)`` pairs."""

    numbers: dict[tuple[str, str], set[int]]
    """The integers each column is compared with."""
    texts: dict[tuple[str, str], set[str]]
    """The strings each column is compared with."""
    group_sizes: tuple[int, ...]
    """Sizes of small groups: 1 and 2, and N-1, N and N+1 for a ``COUNT(...) >= N``."""
    unique: set[tuple[str, str]]
    """Columns that get no ties: an ORDER BY key under a LIMIT or beside other selected columns, whose ties
    would leave the gold's own answer to how SQLite breaks them."""

    def boundary(self, t: Table, column: str) -> list[int]:
        """The values at the edge of each comparison: ``age > 40`` gives 39, 40 and 41."""
        return sorted({v + d for v in self.numbers.get((t.name, column), ()) for d in (-1, 0, 1)})


def focus(schema: Schema, gold: str) -> Focus:
    """Read from ``gold`` the literals, counts and ordering that its variant databases must test."""
    tables = [t for t in (schema.parent, schema.child) if re.search(rf"\b{t.name}\b", gold)]

    def columns(qualified: str) -> list[tuple[str, str]]:
        table, _, name = qualified.rpartition(".")
        return [(t.name, name) for t in tables if table in ("", t.name) and name in _columns(t)]

    numbers: dict[tuple[str, str], set[int]] = {}
    texts: dict[tuple[str, str], set[str]] = {}
    for table, name, literal in _COMPARISON.findall(gold):
        for column in columns(f"{table}.{name}" if table else name):
            if literal.startswith("'"):
                texts.setdefault(column, set()).add(literal[1:-1].replace("''", "'"))
            else:
                numbers.setdefault(column, set()).add(int(literal))
    sizes = {1, 2} | {int(n) + d for n in _COUNT_COMPARISON.findall(gold) for d in (-1, 0, 1)}
    order = _ORDER_BY.search(gold)
    unique = set(columns(order[2])) if order and (" LIMIT " in gold.upper() or order[1] != order[2]) else set()
    return Focus(numbers, texts, tuple(sorted(n for n in sizes if n > 0)), unique)


def _columns(t: Table) -> tuple[str, ...]:
    return (t.label, t.category, t.number, t.optional)


def fill_variant(rng: Random, schema: Schema, rows: int, focus: Focus, nulls: str, wide: bool = False) -> dict:
    """A database of ``schema`` built to tell the gold query from its near misses.

    In each table: rows at every boundary the gold compares (``x > 40``: 39, 40, 41), in the gold's
    categories where it names some, and the range's ends outside them; small groups (one category of each
    of ``focus.group_sizes`` rows, one label each); few labels, so they repeat; the optional column filled
    as ``nulls`` says; then a few rows copied but for the id, so that ``DISTINCT`` matters. One or two
    parents have no child, others exactly one or two (see :func:`_parent_ids`), and child ids never equal
    parent ids, so that a join on the wrong key finds nothing.

    A ``wide`` database answers with as many rows as it can, so that a ``LIMIT`` cutting the answer short
    shows: no small groups (every category is large, so a ``HAVING`` keeps them all) and half the parents in
    the middle of their range without a child.
    """
    focus = replace(focus, group_sizes=()) if wide else focus
    parents, small = _variant_rows(rng, schema.parent, max(6, rows // 2), focus, nulls, first_id=1)
    _copy_rows(rng, parents, schema.parent, focus, {p[0] for p in parents if p[2] in small})
    children, small = _variant_rows(rng, schema.child, rows, focus, nulls, first_id=len(parents) + 1)
    keys, few = _parent_ids(rng, schema, parents, children, wide)
    children = [[*row, key] for row, key in zip(children, keys)]
    _copy_rows(rng, children, schema.child, focus, {c[0] for c in children if c[2] in small or c[-1] in few})
    return {"ddl": ddl(schema), "rows": {schema.parent.name: parents, schema.child.name: children}}


def _parent_ids(
    rng: Random, schema: Schema, parents: list[list], children: list[list], wide: bool
) -> tuple[list[int], set[int]]:
    """A parent per child, and the parents whose number of children must stay as it is.

    One or two parents have no child (half of those in the middle of their range when ``wide``); one has
    the child at the top of the children's range and a low one before it (so that a ``DISTINCT`` keeping
    each parent's first child ranks this parent low), another only the child at the bottom; the parents at
    the ends of their own range (which a query ordering by the wrong table's column would pick) have the
    others.
    """
    at_ends = [p[0] for p in parents if p[3] in schema.parent.numbers]
    middle = rng.sample([p[0] for p in parents if p[0] not in at_ends], len(parents) - len(at_ends))
    childless = len(middle) // 2 if wide else rng.randint(1, 2) if len(middle) >= 4 else 1
    fixed = middle[childless:]  # the rest of the middle has no child
    ends = [i for i, row in enumerate(children) if row[3] in schema.child.numbers]
    ends.sort(key=lambda i: -children[i][3])
    rest = rng.sample([i for i in range(len(children)) if i not in ends], len(children) - len(ends))
    before_top = [i for i in rest if ends and i < ends[0]]
    if before_top:  # the top child's sibling: the lowest child before it
        rest.remove(sibling := min(before_top, key=lambda i: children[i][3]))
        rest.insert(0, sibling)
    queue = ends[:1] + rest[:1] + ends[1:] + rest[1:]
    keys: dict[int, int] = {}
    for parent in [*fixed[:1] * 2, *fixed[1:2], *at_ends]:
        if queue:
            keys[queue.pop(0)] = parent
    pool = at_ends + fixed[2:] or fixed
    keys.update((i, rng.choice(pool)) for i in queue)
    return [keys[i] for i in range(len(children))], set(fixed[:2])


def _variant_rows(
    rng: Random, t: Table, n: int, focus: Focus, nulls: str, first_id: int
) -> tuple[list[list], set[str]]:
    """``n`` rows of ``t`` (see :func:`fill_variant`), and the categories of the small groups."""
    wanted = focus.texts.get((t.name, t.category), set())
    others = [c for c in t.categories if c not in wanted]
    rng.shuffle(others)
    labels = sorted({*rng.sample(t.labels, 2), *focus.texts.get((t.name, t.label), ())})
    cells, budget = [], n - max(3, n // 2)  # (category, label) per row; most rows stay out of small groups
    for size, category in zip(focus.group_sizes, others if wanted else others[:-1]):  # keep a category free
        if size > budget:
            break
        cells += [(category, rng.choice(labels))] * size
        budget -= size
    small = {category for category, _ in cells}
    free = [c for c in t.categories if c not in small]
    big = sorted(wanted) or [c for c in others if c not in small] or free
    cells += [(rng.choice(big if rng.random() < 0.75 else free), rng.choice(labels)) for _ in range(n - len(cells))]
    rng.shuffle(cells)
    # boundary values go in the gold's categories, the range's ends outside them, both out of small groups
    spots = rng.sample(range(n), n)
    inside = sorted(spots, key=lambda i: (cells[i][0] not in wanted, cells[i][0] in small))
    outside = sorted(spots, key=lambda i: (cells[i][0] in wanted, cells[i][0] in small))
    numbers = _place(rng, n, t.numbers, focus.boundary(t, t.number), inside, outside)
    null = _null_rows(rng, nulls, [category for category, _ in cells], numbers)
    known = [i for i in range(n) if i not in null]
    order = rng.sample(range(len(known)), len(known))
    optionals = dict(zip(known, _place(rng, len(known), t.optionals, focus.boundary(t, t.optional), order, order)))
    rows = [[first_id + i, label, category, numbers[i], optionals.get(i)] for i, (category, label) in enumerate(cells)]
    return rows, small


def _place(
    rng: Random, n: int, bounds: tuple[int, int], boundary: list[int], near_first: list[int], ends_first: list[int]
) -> list[int]:
    """``n`` values in ``bounds``, distinct where the range allows: each of ``boundary`` at the first free
    position in ``near_first``, the range's ends at the first free ones in ``ends_first``, random values
    elsewhere."""
    values: dict[int, int] = {}
    wishes = [(v, near_first) for v in boundary] + [(v, ends_first) for v in bounds if v not in boundary]
    for value, order in wishes:
        spot = next((i for i in order if i not in values), None)
        if spot is not None:
            values[spot] = value
    taken = set(values.values())
    for i in range(n):
        if i not in values:
            values[i] = _draw(rng, bounds, taken)
    return [values[i] for i in range(n)]


def _draw(rng: Random, bounds: tuple[int, int], taken: set[int]) -> int:
    """A random value in ``bounds``, not in ``taken`` while the range has others; added to ``taken``."""
    value = rng.randint(*bounds)
    while value in taken and len(taken) <= bounds[1] - bounds[0]:
        value = rng.randint(*bounds)
    taken.add(value)
    return value


def _null_rows(rng: Random, nulls: str, categories: list[str], numbers: list[int]) -> set[int]:
    """The rows whose optional value is NULL: all, none, or ``mixed``: in each category of 2+ rows some but not
    all, and in one of 3+ rows never the rows of its highest and lowest number, the rows a ``MAX``, a ``MIN``
    or a ``> literal`` decides on (so that a condition ``optional IS NULL`` added to such a query shows)."""
    if nulls != "mixed":
        return set(range(len(categories))) if nulls == "all" else set()
    chosen: set[int] = set()
    for category in dict.fromkeys(categories):
        rows = [i for i, c in enumerate(categories) if c == category]
        if len(rows) >= 3:
            ends = {min(rows, key=numbers.__getitem__), max(rows, key=numbers.__getitem__)}
            middle = [i for i in rows if i not in ends]
            chosen.update(rng.sample(middle, rng.randint(1, len(middle))))
        else:
            chosen.update(rng.sample(rows, rng.randint(1, len(rows) - 1) if len(rows) > 1 else rng.randint(0, 1)))
    return chosen


def _copy_rows(rng: Random, rows: list[list], t: Table, focus: Focus, fixed: set[int]) -> None:
    """Append copies of a few rows but for the id (and a number that must stay unique), so DISTINCT matters.

    Copied: the rows just past each boundary the gold compares, and one row with a known and one with a
    NULL optional value (in the gold's categories where it names some, in different categories where
    possible); no row whose id is in ``fixed`` (those of small groups, whose sizes must stay).
    """
    free = [r for r in rows if r[0] not in fixed]
    edges = {v + d for v in focus.numbers.get((t.name, t.number), ()) for d in (-1, 1)}
    wanted = focus.texts.get((t.name, t.category), set())
    sources = [r for r in free if r[3] in edges]
    for null in (False, True):  # one copy per category where possible: two would leave an AVG as it was
        candidates = [r for r in free if (r[4] is None) == null]
        candidates = [r for r in candidates if r[2] not in {s[2] for s in sources}] or candidates
        if candidates:
            sources.append(rng.choice([r for r in candidates if r[2] in wanted] or candidates))
    taken = {r[3] for r in rows}
    for source in list({id(r): r for r in sources}.values()):
        copy = [rows[-1][0] + 1, *source[1:]]
        if (t.name, t.number) in focus.unique:
            copy[3] = _draw(rng, t.numbers, taken)
        rows.append(copy)
