"""sql-v2 and its reward: gold scores 1, hacks and writes score 0, the database never changes, training runs."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

import rlhub
from rlhub.errors import ConfigError, RLHubError
from rlhub.rewards.sql import QueryRefused, build_database, run_query, same_result, sql_execution

DB = {
    "ddl": ["CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, x INTEGER, y INTEGER)"],
    "rows": {"t": [[1, "a", 5, None], [2, "b", 3, 7], [3, "c", 9, None]]},
}
OTHER = {"ddl": DB["ddl"], "rows": {"t": [[1, "d", 1, 2], [2, "e", 8, None]]}}
ENV_ID = "sql-v2"
EXAMPLES_SHA256 = {
    12: "a0268a30ccf8e0637822a422227c733897af1cff8ba8148b82183b2716348dd7",
    6: "fbf96344eb244f572188b51be985b01ac7f284d78a4fa308a8a934d06e8e3c8d",
}
"""sql-v1's first 150 train and 150 test examples (id, prompt, gold, first database, ordered, family) at
``rows=12`` and ``rows=6``, hashed on sql-v1 (commit b3703af): sql-v2 changed only the variant databases."""


def answer(query: str) -> str:
    return f"<think>ok</think>\n<answer>{query}</answer>"


def score(query: str, gold: str, ordered: bool = False, databases=(DB,)) -> float:
    return sql_execution([answer(query)], answer=[gold], databases=[list(databases)], ordered=[ordered])[0]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT name FROM t WHERE y IS NULL",
        "select t.name as who from t where t.y is null;",
        "SELECT name FROM t WHERE id IN (1, 3)",  # a different query, same rows: execution accuracy
        "SELECT name FROM t WHERE y IS NULL ORDER BY name DESC",  # order ignored unless asked for
    ],
)
def test_equivalent_queries_score_one(query):
    assert score(query, "SELECT name FROM t WHERE y IS NULL") == 1.0


def test_columns_compare_without_names_or_order_and_numbers_by_value():
    assert score("SELECT x, name FROM t", "SELECT name AS n, x AS v FROM t") == 1.0
    assert score("SELECT AVG(x) * 1.0 FROM t", "SELECT SUM(x) / 3.0 FROM t") == 1.0
    assert score("SELECT 17.0 / 3 + MIN(x) - 3 FROM t", "SELECT 17.0 / 3 FROM t LIMIT 1") == 1.0
    assert score("SELECT name, x, x FROM t", "SELECT name, x FROM t") == 0.0  # an extra column
    assert score("SELECT CAST(x AS TEXT) FROM t", "SELECT x FROM t") == 0.0  # '5' is not 5
    assert score("SELECT name FROM t WHERE y = NULL", "SELECT name FROM t WHERE y IS NULL") == 0.0


def test_order_counts_only_when_the_question_asks_for_it():
    gold = "SELECT name FROM t ORDER BY x DESC"
    assert score("SELECT name FROM t ORDER BY x", gold, ordered=False) == 1.0
    assert score("SELECT name FROM t ORDER BY x", gold, ordered=True) == 0.0
    assert score("SELECT name FROM t ORDER BY x DESC", gold, ordered=True) == 1.0


def test_rows_compare_as_multisets():
    assert same_result([(1,), (1,)], [(1,)]) is False
    assert same_result([(1,), (2,)], [(2,), (1,)]) is True
    assert same_result([], []) is True and same_result([(1,)], []) is False


def test_hard_coded_rows_fail_on_the_variant_databases():
    gold = "SELECT name FROM t WHERE y IS NULL"
    assert score("VALUES ('a'), ('c')", gold) == 0.0  # reads no table
    pasted = "SELECT * FROM (VALUES ('a'), ('c')) WHERE EXISTS (SELECT 1 FROM t)"
    assert score(pasted, gold) == 1.0  # one database cannot tell ...
    assert score(pasted, gold, databases=(DB, OTHER)) == 0.0  # ... a second one can
    assert score(gold, gold, databases=(DB, OTHER)) == 1.0


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM t",
        "UPDATE t SET x = 0",
        "INSERT INTO t VALUES (9, 'z', 1, 1)",
        "DROP TABLE t",
        "CREATE TABLE u (a)",
        "CREATE TEMP TABLE u AS SELECT * FROM t",
        "PRAGMA query_only = OFF",
        "SELECT load_extension('evil')",
        "SELECT * FROM t; DELETE FROM t",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n, t",
        "SELECT length(randomblob(1000000000)) FROM t",
        "SELECT a.id FROM t a, t b, t c, t d, t e, t f, t g",  # 2187 rows: over the result limit
        "",
        "SELEC name FROM t",
        "SELECT '\ud800' FROM t",
        "SELECT name FROM t WHERE name = '\x00'",
    ],
)
def test_writes_and_runaway_queries_are_refused_and_leave_the_database_unchanged(query, tmp_path):
    path = tmp_path / "shop.db"
    build = build_database(DB)
    build.backup(disk := sqlite3.connect(path))
    disk.close()
    before = path.read_bytes()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(QueryRefused):
        run_query(db, query)
    assert db.execute("SELECT COUNT(*), SUM(x) FROM t").fetchall() == [(3, 17)]
    db.close()
    assert path.read_bytes() == before
    assert score(query, "SELECT name FROM t") == 0.0


def test_attach_never_creates_a_file(tmp_path):
    db = build_database(DB)
    target = tmp_path / "stolen.db"
    with pytest.raises(QueryRefused, match="not authorized"):
        run_query(db, f"ATTACH DATABASE '{target}' AS stolen")
    assert not target.exists()
    assert run_query(db, "SELECT COUNT(*) FROM t") == [(3,)]  # the guards are lifted after each query


def test_missing_columns_are_not_applicable():
    assert sql_execution([answer("SELECT 1 FROM t")], answer=[None], databases=[[DB]]) == [None]
    assert sql_execution([answer("SELECT 1 FROM t")], answer=["SELECT 1 FROM t"], databases=[[]]) == [None]


def test_env_gold_scores_one_and_every_family_has_rows():
    env = rlhub.make(ENV_ID)
    examples = env.examples("test", limit=120)
    assert len({ex.info["family"] for ex in examples}) == 14
    for ex in examples:
        assert len(ex.info["databases"]) == 4
        assert run_query(build_database(ex.info["databases"][0]), ex.answer)
        assert env.score(env.gold_completion(ex), ex).rewards["correct"] == 1.0
    ordered = [ex for ex in examples if ex.info["ordered"]]
    assert ordered and all("ORDER BY" in ex.answer for ex in ordered)
    assert any(None in row for ex in examples for rows in ex.info["databases"][0]["rows"].values() for row in rows)


@pytest.mark.parametrize("rows", sorted(EXAMPLES_SHA256))
def test_examples_are_sql_v1s_but_for_the_variant_databases(rows):
    env = rlhub.make(ENV_ID, rows=rows)
    digest = hashlib.sha256()
    for split in ("train", "test"):
        for ex in env.examples(split, limit=150):
            shown = [ex.id, ex.prompt, ex.answer, ex.info["databases"][0], ex.info["ordered"], ex.info["family"]]
            digest.update(json.dumps(shown).encode())
    assert digest.hexdigest() == EXAMPLES_SHA256[rows]


def test_old_versions_fail_naming_the_new_one():
    for old, new in (("sql-v1", "sql-v2"), ("sql-mcp-v0", "sql-mcp-v1")):
        with pytest.raises(RLHubError, match=f"Use '{new}'"):
            rlhub.make(old)


def test_env_is_reproducible_and_config_is_validated():
    a = rlhub.make(ENV_ID).examples("train", limit=5, seed=3)
    b = rlhub.make(ENV_ID).examples("train", limit=5, seed=3)
    assert [(x.prompt, x.answer, x.info) for x in a] == [(x.prompt, x.answer, x.info) for x in b]
    assert len(rlhub.make(ENV_ID, variants=0).examples("train", limit=1)[0].info["databases"]) == 1
    with pytest.raises(ConfigError, match=r"rows must be in 6\.\.60"):
        rlhub.make(ENV_ID, rows=2)
    with pytest.raises(ConfigError, match=r"variants must be in 0\.\.5"):
        rlhub.make(ENV_ID, variants=9)
    with pytest.raises(ConfigError, match="answer_format='tags'"):
        rlhub.make(ENV_ID, answer_format="boxed")


def test_validate_passes_with_every_probe():
    from rlhub.authoring.validate import validate_env

    report = validate_env(ENV_ID, n=4)
    names = {c.name for c in report.checks if c.kind == "probe"}
    assert {"select every row", "gold rows as VALUES", "UNION of candidates", "writes refused"} <= names
    assert report.passed, [c for c in report.checks if not c.passed]


def test_grpo_two_steps_on_sql(tiny_model_dir, tmp_path):
    from rlhub.trainers.loop import train
    from rlhub.trainers.recipe import load_recipe

    out = tmp_path / "run"
    values = {
        "model.name": tiny_model_dir,
        "model.dtype": "float32",
        "model.gradient_checkpointing": False,
        "training.mixed_precision": "no",
        "env.id": ENV_ID,
        "env.config": {"rows": 6, "prompt_style": "user"},
        "algorithm.group_size": 4,
        "training.max_steps": 2,
        "training.prompts_per_step": 2,
        "training.micro_batch_size": 4,
        "training.max_new_tokens": 8,
        "training.output_dir": str(out),
        "logging.wandb": False,
        "eval.every": 0,
    }
    result = train(load_recipe(None, values), progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2] and result.summary["steps"] == 2
    assert rows[0]["rewards/correct/mean"] == 0.0 and rows[0]["rewards/errors"] == 0.0  # random text is no query
    assert Path(result.summary["checkpoint"], "adapter").is_dir()


def test_a_pause_in_the_thread_clock_never_refuses_a_gold_query(monkeypatch):
    """The limit reads the thread's CPU time, which counts a garbage collection that runs mid-query (over a second
    in a large process): examples must still be made, while a model's query keeps its 1 s limit."""
    import itertools

    import rlhub.rewards.sql as sql_rewards

    clock = itertools.count(step=1.5)  # each reading 1.5 s after the last: a pause inside every query
    monkeypatch.setattr(sql_rewards.time, "thread_time", lambda: next(clock))
    examples = rlhub.make("sql-v2").examples("train", limit=3)
    assert len(examples) == 3 and all(example.answer for example in examples)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(QueryRefused, match="time limit"):
        run_query(db, "SELECT x FROM t")


@pytest.mark.parametrize("level", [1, 2, 3])
def test_a_level_asks_only_its_families_and_its_gold_scores_one(level):
    from rlhub.envs._sql_questions import LEVELS

    env = rlhub.make(ENV_ID, difficulty=level, few_shot=1)
    examples = env.examples("test", limit=30)
    assert {ex.info["family"] for ex in examples} == set(LEVELS[level])  # every family of the level, no other
    for ex in examples[:6]:
        assert env.score(env.gold_completion(ex), ex).rewards["correct"] == 1.0
    demo = env.demo_examples(1)[0]  # the few-shot turn solves a question of the same level
    assert demo.info["family"] in LEVELS[level] and demo.answer in examples[0].prompt[2]["content"]


def test_the_levels_cover_every_family_once_and_are_validated():
    from rlhub.envs._sql_questions import LEVELS

    families = [f for level in sorted(LEVELS) for f in LEVELS[level]]
    assert len(families) == len(set(families)) == 14 and rlhub.make(ENV_ID).levels == (1, 2, 3)
    with pytest.raises(ConfigError, match=r"difficulty must be in 0\.\.3"):
        rlhub.make(ENV_ID, difficulty=4)
