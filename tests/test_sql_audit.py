"""sql verifier against the audit's defect classes (issue 25): fenced answers, near misses passing, slow queries.

A query is right iff it gives the gold's result on every database of the example (Spider's test-suite
semantics), so equivalent rewrites must score 1.0 and near-miss wrong queries 0.0; and no completion may
hold the scorer much past the time limit, nor keep its reward by finishing late.
"""

from __future__ import annotations

import re
import time

import pytest

import rlhub
from rlhub.envs.sql import SCHEMAS
from rlhub.rewards.sql import QueryRefused, build_database, run_query, sql_execution

DB = {
    "ddl": ["CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, x INTEGER, y INTEGER)"],
    "rows": {"t": [[1, "a", 5, None], [2, "b", 3, 7], [3, "c", 9, None]]},
}
GOLD = "SELECT name FROM t WHERE y IS NULL"
SLOW = "printf('%.*c', 2000000000, 'x')"
"""One SQLite C call that runs for seconds (its loop goes on after the value outgrows the length limit)."""
ENV_ID = "sql-v2"
MAX_SCORING_S = 2.0
"""The most scoring one completion may take, whatever it runs."""


def score(query: str, gold: str = GOLD, databases=(DB,)) -> float:
    completion = f"<think>ok</think>\n<answer>{query}</answer>"
    return sql_execution([completion], answer=[gold], databases=[list(databases)])[0]


# --- 1. A fenced query inside the answer tags ------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        f"```sql\n{GOLD}\n```",
        f"\n```\n{GOLD};\n```\n",
        f"```SQL\n{GOLD}\n```",
        f"```sqlite\n{GOLD}\n```",
        f"```sql {GOLD} ```",
    ],
)
def test_one_fence_around_the_query_inside_the_answer_tags_is_graded(answer):
    env = rlhub.make(ENV_ID)
    example = env.examples("test", limit=1)[0]
    gold = example.answer
    completion = f"<think>Read the schema.</think>\n<answer>{answer.replace(GOLD, gold)}</answer>"
    assert env.score(completion, example).rewards == {"correct": 1.0, "format": 1.0}


@pytest.mark.parametrize(
    "completion",
    [
        f"<think>ok</think>\n```sql\n{GOLD}\n```",  # no answer tags: the prompt asks for them
        f"<think>ok</think>\n<answer>```sql\n{GOLD}\n```\n```sql\nSELECT name FROM t\n```</answer>",  # two fences
        f"<think>ok</think>\n<answer>Here it is:\n```sql\n{GOLD}\n```</answer>",  # prose beside the fence
        f"<think>ok</think>\n<answer>```sql\n{GOLD}</answer>",  # never closed
        f"<think>```sql\n{GOLD}\n```</think>\n<answer>SELECT name FROM t</answer>",  # the fence in the reasoning
    ],
)
def test_a_fence_is_no_answer_outside_the_tags_nor_beside_other_text(completion):
    assert sql_execution([completion], answer=[GOLD], databases=[[DB]]) == [0.0]


# --- 2. Near misses of the gold, and equivalent rewrites, on every family --------------------------------

NEAR_MISSES = {
    "boundary literal": {
        "filter": [
            "SELECT {L} FROM {T} WHERE {N} > {mid_plus_1}",
            "SELECT {L} FROM {T} WHERE {N} >= {mid_plus_2}",
            "SELECT {L} FROM {T} WHERE {N} > {mid_minus_1}",
        ],
        "having": [
            "SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT(*) >= 3",
            "SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT(*) >= 1",
        ],
    },
    ">= vs > (and = vs >=)": {
        "filter": ["SELECT {L} FROM {T} WHERE {N} >= {mid}"],
        "having": [
            "SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT(*) > 2",
            "SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT(*) = 2",
        ],
    },
    "DISTINCT": {
        "filter": ["SELECT DISTINCT {L} FROM {T} WHERE {N} > {mid}"],
        "filter_category": ["SELECT DISTINCT {L}, {N} FROM {T} WHERE {C} = '{cat}'"],
        "count": [
            "SELECT COUNT(DISTINCT {L}) FROM {T} WHERE {C} = '{cat}'",
            "SELECT COUNT(DISTINCT {N}) FROM {T} WHERE {C} = '{cat}'",
        ],
        "aggregate SUM": ["SELECT SUM(DISTINCT {N}) FROM {T} WHERE {C} = '{cat}'"],
        "aggregate AVG": ["SELECT AVG(DISTINCT {N}) FROM {T} WHERE {C} = '{cat}'"],
        "group_count": ["SELECT {C}, COUNT(DISTINCT {L}) FROM {T} GROUP BY {C}"],
        "having": ["SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT(DISTINCT {L}) >= 2"],
        "is_null": ["SELECT DISTINCT {L} FROM {T} WHERE {O} IS NULL"],
        "count_known": ["SELECT COUNT(DISTINCT {O}) FROM {T}"],
        "ordered": ["SELECT DISTINCT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N}"],
        "join_filter": ["SELECT DISTINCT {CH}.{CL} FROM {CH} JOIN {P} ON {CH}.{K} = {P}.id WHERE {P}.{PC} = '{cat}'"],
        "join_sum": ["SELECT {K}, SUM(DISTINCT {CN}) FROM {CH} GROUP BY {K}"],
        "join_max": [
            "SELECT DISTINCT {P}.id, {P}.{PL} FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id ORDER BY {CH}.{CN} DESC LIMIT 1"
        ],
    },
    "dropped or added IS NULL": {
        "is_null": ["SELECT {L} FROM {T}", "SELECT {L} FROM {T} WHERE {O} IS NULL OR {O} = {opt_lo}"],
        "left_join": [
            "SELECT {P}.id FROM {P} LEFT JOIN {CH} ON {CH}.{K} = {P}.id",
            "SELECT {P}.id FROM {P} LEFT JOIN {CH} ON {CH}.{K} = {P}.id WHERE {CH}.{CO} IS NULL",
        ],
        "count_known": ["SELECT COUNT(*) FROM {T}"],
        "count": ["SELECT COUNT({O}) FROM {T} WHERE {C} = '{cat}'"],
        "filter_category": ["SELECT {L}, {N} FROM {T} WHERE {C} = '{cat}' AND {O} IS NOT NULL"],
        "group_count": ["SELECT {C}, COUNT({O}) FROM {T} GROUP BY {C}"],
        "having": ["SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT({O}) >= 2"],
        "join_sum": ["SELECT {K}, SUM({CN}) FROM {CH} WHERE {CO} IS NOT NULL GROUP BY {K}"],
    },
    "wrong ORDER direction with LIMIT": {
        "top_k": ["SELECT {L}, {N} FROM {T} ORDER BY {N} ASC LIMIT {k}"],
        "join_max": ["SELECT {P}.id, {P}.{PL} FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id ORDER BY {CH}.{CN} LIMIT 1"],
        "aggregate MAX": ["SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} LIMIT 1"],
        "aggregate MIN": ["SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} DESC LIMIT 1"],
        "ordered": ["SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} DESC"],
    },
    "off-by-one LIMIT": {
        "top_k": [
            "SELECT {L}, {N} FROM {T} ORDER BY {N} DESC LIMIT {k_plus_1}",
            "SELECT {L}, {N} FROM {T} ORDER BY {N} DESC LIMIT {k_minus_1}",
            "SELECT {L}, {N} FROM {T} ORDER BY {N} DESC LIMIT {k} OFFSET 1",
        ],
        "join_max": ["SELECT {P}.id, {P}.{PL} FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id ORDER BY {CH}.{CN} DESC LIMIT 2"],
        "aggregate MAX": ["SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} DESC LIMIT 2"],
        "aggregate MIN": ["SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} LIMIT 1 OFFSET 1"],
    },
}
"""Wrong queries one edit away from the gold, by kind and (gold) family: each must score 0."""

REWRITES = {
    "filter": [
        "SELECT a.{L} AS who FROM {T} AS a WHERE a.{N} > {mid}",
        "SELECT {L} FROM {T} WHERE {N} >= {mid_plus_1}",
        "SELECT {L} FROM {T} WHERE {mid} < {N}",
        "SELECT {L} FROM {T} WHERE id IN (SELECT id FROM {T} WHERE NOT {N} <= {mid})",
    ],
    "filter_category": [
        "SELECT {N}, {L} FROM {T} WHERE {C} IN ('{cat}')",
        "SELECT x.{L} AS a, x.{N} AS b FROM {T} x WHERE NOT x.{C} <> '{cat}' ORDER BY b",
        "SELECT {L}, {N} FROM {T} WHERE NOT {C} != '{cat}'",
        "SELECT {L}, {N} FROM {T} WHERE {C} = '{cat}' OR {C} = '{cat}'",
    ],
    "count": [
        "SELECT COUNT(id) AS n FROM {T} WHERE '{cat}' = {C}",
        "SELECT SUM(CASE WHEN {C} = '{cat}' THEN 1 ELSE 0 END) FROM {T}",
        "SELECT COUNT(*) FROM (SELECT id FROM {T} WHERE {C} IN ('{cat}'))",
        "SELECT n FROM (SELECT {C} AS g, COUNT(*) AS n FROM {T} GROUP BY {C}) WHERE g = '{cat}'",
    ],
    "aggregate MAX": [
        "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} DESC LIMIT 1",
        "SELECT MAX(x.{N}) AS top FROM {T} AS x WHERE x.{C} IN ('{cat}')",
    ],
    "aggregate MIN": [
        "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} LIMIT 1",
        "SELECT MIN(x.{N}) AS low FROM {T} AS x WHERE NOT x.{C} <> '{cat}'",
    ],
    "aggregate SUM": [
        "SELECT TOTAL({N}) FROM {T} WHERE {C} = '{cat}'",
        "SELECT SUM(x.{N}) AS s FROM {T} AS x WHERE x.{C} IN ('{cat}')",
    ],
    "aggregate AVG": [
        "SELECT SUM({N}) * 1.0 / COUNT(*) FROM {T} WHERE {C} = '{cat}'",
        "SELECT AVG(x.{N}) AS mean FROM {T} AS x WHERE NOT x.{C} != '{cat}'",
    ],
    "group_count": [
        "SELECT {C}, COUNT(id) FROM {T} GROUP BY 1",
        "SELECT COUNT(*) AS n, {C} AS g FROM {T} GROUP BY {C} ORDER BY n DESC",
        "SELECT DISTINCT a.{C}, (SELECT COUNT(*) FROM {T} b WHERE b.{C} = a.{C}) FROM {T} a",
    ],
    "having": [
        "SELECT {C} FROM {T} GROUP BY {C} HAVING COUNT(*) > 1",
        "SELECT g FROM (SELECT {C} AS g, COUNT(*) AS n FROM {T} GROUP BY {C}) WHERE n >= 2",
        "SELECT DISTINCT a.{C} FROM {T} a JOIN {T} b ON a.{C} = b.{C} AND a.id < b.id",
    ],
    "is_null": [
        "SELECT {L} FROM {T} WHERE {O} ISNULL",
        "SELECT x.{L} AS n FROM {T} x WHERE NOT (x.{O} IS NOT NULL)",
        "SELECT {L} FROM {T} WHERE id NOT IN (SELECT id FROM {T} WHERE {O} IS NOT NULL)",
    ],
    "count_known": [
        "SELECT COUNT(*) FROM {T} WHERE {O} IS NOT NULL",
        "SELECT SUM({O} IS NOT NULL) AS known FROM {T}",
        "SELECT COUNT(*) - SUM(CASE WHEN {O} IS NULL THEN 1 ELSE 0 END) FROM {T}",
    ],
    "top_k": [
        "SELECT {L}, {N} FROM {T} ORDER BY -{N} LIMIT {k}",
        "SELECT x.{N}, x.{L} FROM {T} x ORDER BY x.{N} DESC LIMIT {k} OFFSET 0",
        "SELECT {L}, {N} FROM (SELECT * FROM {T} ORDER BY {N} DESC) LIMIT {k}",
    ],
    "ordered": [
        "SELECT {N} AS v FROM {T} WHERE {C} IN ('{cat}') ORDER BY 1",
        "SELECT x.{N} FROM {T} AS x WHERE '{cat}' = x.{C} ORDER BY -x.{N} DESC",
        "SELECT {N} FROM {T} WHERE {C} = '{cat}' ORDER BY {N} ASC, id",
    ],
    "join_filter": [
        "SELECT {CH}.{CL} FROM {CH}, {P} WHERE {P}.{PC} = '{cat}' AND {CH}.{K} = {P}.id",
        "SELECT {CL} FROM {CH} WHERE {K} IN (SELECT id FROM {P} WHERE {PC} = '{cat}')",
        "SELECT o.{CL} AS x FROM {P} AS q INNER JOIN {CH} AS o ON q.id = o.{K} WHERE q.{PC} = '{cat}'",
    ],
    "join_sum": [
        "SELECT {P}.id, SUM({CH}.{CN}) FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id GROUP BY {P}.id",
        "SELECT {K} AS id, TOTAL({CN}) AS s FROM {CH} GROUP BY 1",
        "SELECT q.id, (SELECT SUM(o.{CN}) FROM {CH} o WHERE o.{K} = q.id) FROM {P} q "
        "WHERE q.id IN (SELECT {K} FROM {CH})",
    ],
    "join_max": [
        "SELECT id, {PL} FROM {P} WHERE id = (SELECT {K} FROM {CH} ORDER BY {CN} DESC LIMIT 1)",
        "SELECT {P}.id, {P}.{PL} FROM {P} JOIN {CH} ON {CH}.{K} = {P}.id "
        "WHERE {CH}.{CN} = (SELECT MAX({CN}) FROM {CH})",
        "SELECT q.id AS i, q.{PL} AS n FROM {CH} o, {P} q WHERE o.{K} = q.id ORDER BY o.{CN} DESC LIMIT 1",
    ],
    "left_join": [
        "SELECT id FROM {P} WHERE id NOT IN (SELECT {K} FROM {CH})",
        "SELECT q.id FROM {P} q WHERE NOT EXISTS (SELECT 1 FROM {CH} o WHERE o.{K} = q.id)",
        "SELECT id FROM {P} EXCEPT SELECT {K} FROM {CH}",
    ],
}
"""Queries that mean the gold (on every database of the schema, where the gold's answer is not empty)."""


def names(example) -> dict:
    """The example's family (with the aggregate) and the names and literals the templates use."""
    gold, family = example.answer, example.info["family"]
    parent = next(iter(example.info["databases"][0]["rows"]))
    schema = next(s for s in SCHEMAS if s.parent.name == parent)
    p, c = schema.parent, schema.child
    t = p if re.search(r"FROM (\w+)", gold)[1] == p.name else c
    literal, number, limit = re.search(r"'([^']*)'", gold), re.search(r"> (\d+)", gold), re.search(r"LIMIT (\d+)", gold)
    if family == "aggregate":
        family += " " + re.match(r"SELECT (\w+)\(", gold)[1]
    mid, k = int(number[1]) if number else 0, int(limit[1]) if limit else 0
    return {
        "family": family,
        **{"T": t.name, "L": t.label, "C": t.category, "N": t.number, "O": t.optional, "opt_lo": t.optionals[0]},
        **{"P": p.name, "PL": p.label, "PC": p.category, "K": schema.key},
        **{"CH": c.name, "CL": c.label, "CN": c.number, "CO": c.optional},
        **{"cat": literal[1] if literal else "", "mid": mid, "k": k},
        **{"mid_plus_1": mid + 1, "mid_plus_2": mid + 2, "mid_minus_1": mid - 1, "k_plus_1": k + 1, "k_minus_1": k - 1},
    }


@pytest.fixture(scope="module")
def examples():
    """Every family, at the default size and at the smallest (where a random variant tells least apart)."""
    return rlhub.make(ENV_ID).examples("test", limit=300) + rlhub.make(ENV_ID, rows=6).examples("test", limit=300)


def scores(examples, templates: dict[str, list[str]]) -> list[tuple[str, float]]:
    """(query, score) for each template of each example's family."""
    env = rlhub.make(ENV_ID)
    cases = [(ex, t.format(**names(ex))) for ex in examples for t in templates.get(names(ex)["family"], [])]
    completions = [env.format_answer(query, reasoning="Work it out.") for _, query in cases]
    results = env.score_batch(completions, [ex for ex, _ in cases])
    return [(query, result.rewards["correct"]) for (_, query), result in zip(cases, results)]


@pytest.mark.parametrize("kind", list(NEAR_MISSES))
def test_near_misses_score_zero(examples, kind):
    graded = scores(examples, NEAR_MISSES[kind])
    assert len(graded) >= 40
    passed = [query for query, value in graded if value != 0.0]
    assert not passed, f"{len(passed)}/{len(graded)} near misses ({kind}) pass, e.g. {passed[:3]}"


def test_equivalent_rewrites_score_one_on_every_family(examples):
    graded = scores(examples, REWRITES)
    assert {names(ex)["family"].split()[0] for ex in examples} >= {f.split()[0] for f in REWRITES}
    failed = [query for query, value in graded if value != 1.0]
    assert not failed, f"{len(failed)}/{len(graded)} equivalent rewrites fail, e.g. {failed[:3]}"


def test_every_variant_database_gives_the_gold_an_answer(examples):
    for example in examples:
        for spec in example.info["databases"]:
            db = build_database(spec)
            rows = run_query(db, example.answer)
            db.close()
            assert rows and rows not in ([(0,)], [(None,)]), (example.id, example.answer, spec)


def _most_rows(example) -> int:
    """The most rows the question can answer with: 1 for one aggregate, one per category for a GROUP BY of the
    category, else more than any database holds."""
    gold, n = example.answer, names(example)
    if re.search(rf"GROUP BY {n['C']}\b", gold):
        return len(next(t for s in SCHEMAS for t in (s.parent, s.child) if t.name == n["T"]).categories)
    return 1 if re.match(r"SELECT (COUNT|SUM|AVG|MIN|MAX)\(", gold) and "GROUP BY" not in gold else 10**6


def test_a_limit_that_cuts_the_answer_short_scores_zero(examples):
    """``LIMIT n`` for every n below the most rows the question allows, up to the rows of the first database's
    answer and at least 4: the gold's answer outgrows it on some database (sql-v1's databases did not: one or
    two parents without a child on each, so a left_join cut to ``LIMIT 2`` passed)."""
    cases = []
    for example in examples:
        if " LIMIT " not in example.answer:
            db = build_database(example.info["databases"][0])
            shown = len(run_query(db, example.answer))
            db.close()
            top = min(max(shown, 4), _most_rows(example) - 1)
            cases += [(example, f"{example.answer} LIMIT {n}") for n in range(1, top + 1)]
    env = rlhub.make(ENV_ID)
    results = env.score_batch([env.format_answer(q) for _, q in cases], [ex for ex, _ in cases])
    passed = [(ex.id, q) for (ex, q), r in zip(cases, results) if r.rewards["correct"] != 0.0]
    assert len(cases) >= 500
    assert not passed, f"{len(passed)}/{len(cases)} truncating LIMITs pass, e.g. {passed[:3]}"


def test_a_condition_on_the_optional_column_added_scores_zero(examples):
    """``AND optional IS NULL`` (or ``IS NOT NULL``) added to a gold that does not read the optional column: some
    database has a NULL, and some a known value, where the answer is decided (the row of a MAX, the rows above a
    literal), so the rows change."""
    cases = []
    for example in examples:
        gold, column = example.answer, names(example)["O"]
        if "JOIN" in gold or column in gold:
            continue
        cut = re.search(r" (GROUP BY|ORDER BY|LIMIT) |$", gold).start()
        joiner = " AND " if " WHERE " in gold[:cut] else " WHERE "
        for test in ("IS NULL", "IS NOT NULL"):
            cases.append((example, f"{gold[:cut]}{joiner}{column} {test}{gold[cut:]}"))
    env = rlhub.make(ENV_ID)
    results = env.score_batch([env.format_answer(q) for _, q in cases], [ex for ex, _ in cases])
    passed = [(ex.id, q) for (ex, q), r in zip(cases, results) if r.rewards["correct"] != 0.0]
    assert len(cases) >= 500
    assert not passed, f"{len(passed)}/{len(cases)} added NULL conditions pass, e.g. {passed[:3]}"


def test_the_audit_measures_truncating_limits_and_added_null_conditions():
    """``rlhub validate --audit`` puts both kinds in sql's reject set (each with a witness database), and sql-v2
    scores every one 0."""
    from rlhub.authoring.audit.run import audit_env

    report = audit_env(ENV_ID, n=16)
    kinds = report.fp.kinds
    for kind in ("LIMIT that truncates", "IS NULL added", "IS NOT NULL added"):
        assert kinds.get(kind, [0, 0])[1] >= 10, (kind, kinds)
        assert kinds[kind][0] == 0, (kind, report.fp.examples)
    assert report.fn.failed == 0 and report.slowest_s < MAX_SCORING_S


# --- 3. Time: one long C call, and the gold with a slow call appended --------------------------------------

ATTACKS = [
    f"SELECT {SLOW} FROM t",
    f"SELECT {SLOW}, {SLOW}, {SLOW} FROM t",
    "SELECT format('%.*c', 2000000000, 'x') FROM t",
    f"SELECT id FROM t ORDER BY {SLOW}",
    f"SELECT * FROM t WHERE name = (SELECT {SLOW})",
    "SELECT length(zeroblob(2000000000)) FROM t",
    "SELECT length(randomblob(2000000000)) FROM t",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n, t",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 100000000) "
    "SELECT length(group_concat(i)) FROM n",
    "SELECT COUNT(*) FROM " + ", ".join(f"t t{i}" for i in range(14)),
    "SELECT COUNT(*) FROM t WHERE printf('%.*c', 90000, 'a') LIKE '" + "%a" * 40 + "%b'",
    "SELECT COUNT(*) FROM t WHERE printf('%.*c', 90000, 'a') GLOB '" + "*a" * 40 + "*b'",
    "SELECT length(replace(replace(replace(printf('%.*c', 90000, 'a'), 'a', 'aa'), 'a', 'aa'), 'a', 'aa')) FROM t",
]


@pytest.mark.slow
@pytest.mark.parametrize("query", ATTACKS)
def test_no_query_holds_the_scorer_past_the_limit(query):
    score("SELECT name FROM t")  # the worker's start is not the query's time
    start = time.monotonic()
    assert score(query, databases=(DB, DB, DB)) == 0.0
    assert time.monotonic() - start < MAX_SCORING_S


@pytest.mark.slow
def test_the_gold_with_a_slow_call_appended_scores_zero():
    slow_gold = f"{GOLD} AND {SLOW} IS NULL"  # NULL once the value outgrows SQLite's length limit: the gold's rows
    start = time.monotonic()
    assert score(slow_gold, databases=(DB, DB, DB)) == 0.0
    assert time.monotonic() - start < MAX_SCORING_S
    assert score(GOLD, databases=(DB, DB, DB)) == 1.0  # the killed worker was replaced


def test_a_query_that_ends_after_its_time_limit_is_refused():
    db = build_database(DB)
    with pytest.raises(QueryRefused, match="time limit"):
        run_query(db, GOLD, time_limit=0.0)
    assert run_query(db, GOLD, time_limit=1.0) == [("a",), ("c",)]


@pytest.mark.slow
def test_a_batch_with_attacks_scores_the_rest_as_usual():
    env = rlhub.make(ENV_ID)
    example = env.examples("test", limit=1)[0]
    table = next(iter(example.info["databases"][0]["rows"]))
    attacks = [f"SELECT {SLOW} FROM {table}", f"SELECT * FROM ({example.answer}) WHERE {SLOW} IS NULL"]
    completions = [env.format_answer(q) for q in [*attacks, example.answer, *attacks]]
    start = time.monotonic()
    correct = [s.rewards["correct"] for s in env.score_batch(completions, [example] * len(completions))]
    assert correct == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert time.monotonic() - start < MAX_SCORING_S * len(completions)
