"""sql: text-to-SQL on generated SQLite databases, graded by running the query.

Task: given a database schema (``CREATE TABLE`` statements) and a question, write one SQLite ``SELECT``
query that answers it. Each example draws one of three schemas (a shop, a company, a library; each a
parent table and a child table with a foreign key to it), fills it with random rows (unique numbers, a
few ``NULL``\\s, some parents without children) and asks one of fourteen question families: filters,
counts, aggregates, ``GROUP BY`` / ``HAVING``, ``IS NULL``, top-k and ordered listings, joins, a
``LEFT JOIN`` for parents without children. The gold query is generated with the question; (seed, index)
reproduces both and the data.

Variant databases (Spider's test-suite idea: a query is right iff it gives the gold's result on databases
built to tell near misses apart): each is built from what the gold query compares, read from its text
(:func:`focus`): rows at each literal's boundary (``> 160``: 159, 160, 161), the range's ends outside the
gold's categories, small groups (1, 2 and a ``HAVING COUNT(*) >= N``'s N-1, N, N+1 rows), few labels so
that they repeat, rows copied but for their id (so ``DISTINCT`` matters), parents with exactly one and two
children, NULLs in every category, only NULLs or none, and no ties in an ORDER BY key under a LIMIT (its
gold answer would depend on how SQLite breaks them). Each is redrawn until the gold's answer on it is not
empty (see :func:`fill_variant`).

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


def fill_variant(rng: Random, schema: Schema, rows: int, focus: Focus, nulls: str) -> dict:
    """A database of ``schema`` built to tell the gold query from its near misses.

    In each table: rows at every boundary the gold compares (``x > 40``: 39, 40, 41), in the gold's
    categories where it names some, and the range's ends outside them; small groups (one category of each
    of ``focus.group_sizes`` rows, one label each); few labels, so they repeat; the optional column filled
    as ``nulls`` says; then a few rows copied but for the id, so that ``DISTINCT`` matters. One or two
    parents have no child, others exactly one or two (see :func:`_parent_ids`), and child ids never equal
    parent ids, so that a join on the wrong key finds nothing.
    """
    parents, small = _variant_rows(rng, schema.parent, max(6, rows // 2), focus, nulls, first_id=1)
    _copy_rows(rng, parents, schema.parent, focus, {p[0] for p in parents if p[2] in small})
    children, small = _variant_rows(rng, schema.child, rows, focus, nulls, first_id=len(parents) + 1)
    keys, few = _parent_ids(rng, schema, parents, children)
    children = [[*row, key] for row, key in zip(children, keys)]
    _copy_rows(rng, children, schema.child, focus, {c[0] for c in children if c[2] in small or c[-1] in few})
    return {"ddl": ddl(schema), "rows": {schema.parent.name: parents, schema.child.name: children}}


def _parent_ids(rng: Random, schema: Schema, parents: list[list], children: list[list]) -> tuple[list[int], set[int]]:
    """A parent per child, and the parents whose number of children must stay as it is.

    One or two parents have no child; one has the child at the top of the children's range and a low one
    before it (so that a ``DISTINCT`` keeping each parent's first child ranks this parent low), another
    only the child at the bottom; the parents at the ends of their own range (which a query ordering by the
    wrong table's column would pick) have the others.
    """
    at_ends = [p[0] for p in parents if p[3] in schema.parent.numbers]
    middle = rng.sample([p[0] for p in parents if p[0] not in at_ends], len(parents) - len(at_ends))
    fixed = middle[rng.randint(1, 2) if len(middle) >= 4 else 1 :]  # the rest of the middle has no child
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
    null = _null_rows(rng, nulls, [category for category, _ in cells])
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


def _null_rows(rng: Random, nulls: str, categories: list[str]) -> set[int]:
    """The rows whose optional value is NULL: all, none, or in each category of 2+ rows some but not all."""
    if nulls != "mixed":
        return set(range(len(categories))) if nulls == "all" else set()
    chosen: set[int] = set()
    for category in dict.fromkeys(categories):
        rows = [i for i, c in enumerate(categories) if c == category]
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


@dataclass
class SQLConfig(EnvConfig):
    rows: int = 12
    """Rows of each child table (parent tables get half as many, at least 4)."""
    variants: int = 2
    """Extra databases (same schema, other rows) the query must also answer correctly; 0 grades on one. They
    hold at least 12 child and 6 parent rows (room for their boundary rows, small groups and copies)."""

    def validate(self) -> None:
        super().validate()
        if self.answer_format != "tags":
            raise ConfigError("sql answers are queries: set answer_format='tags'")
        if not 6 <= self.rows <= 60:
            raise ConfigError(f"rows must be in 6..60, got {self.rows}; try rows=12")
        if not 0 <= self.variants <= 5:
            raise ConfigError(f"variants must be in 0..5, got {self.variants}; try variants=2")


def _answers(rows: list[tuple]) -> bool:
    """Whether a gold result answers something: rows, and not one count of 0 or one NULL aggregate."""
    return bool(rows) and rows != [(0,)] and rows != [(None,)]


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
        """Variant database ``i``, by :func:`fill_variant`: NULL and known optional values in every category
        when ``i`` is even, only NULLs when ``i`` is 1 (or 5), none when it is 3 (another profile where the
        gold's answer would be empty); redrawn until the gold's answer on it is not empty and, if ten draws
        allow, differs from ``want``, so that a hard-coded answer fails."""
        extremes = ["all", "none"] if i % 4 == 1 else ["none", "all"]
        for nulls in ["mixed", *extremes] if i % 2 == 0 else [*extremes, "mixed"]:
            answered = None
            for _ in range(10):
                other = fill_variant(rng, schema, max(12, self.config.rows), where, nulls)
                rows = _rows(other, gold)
                if _answers(rows):
                    if not same_result(rows, want, ordered):
                        return other
                    answered = answered or other
            if answered:
                return answered
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


__all__ = ["QueryRefused", "SQLConfig", "SQLEnv"]
