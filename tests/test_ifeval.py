"""ifeval-v1 and its checkers: each checker on edge cases, gold follows every constraint, task-free output earns 0."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import rlhub
from rlhub.errors import ConfigError
from rlhub.rewards.ifeval import CHECKERS, all_followed, follows, fraction_followed, on_task, sentences, words

CASES = [
    # (constraint, text, followed)
    ({"kind": "word_count", "relation": "at least", "n": 3}, "Don't stop now", True),  # don't is one word
    ({"kind": "word_count", "relation": "at least", "n": 3}, "Two words", False),
    ({"kind": "word_count", "relation": "at most", "n": 2}, "", False),  # an empty answer follows nothing
    ({"kind": "word_count", "relation": "at most", "n": 2}, "one, two... three", False),
    ({"kind": "word_count", "relation": "less than", "n": 2}, "--- *** !!!", True),  # punctuation is no word
    ({"kind": "sentence_count", "relation": "exactly", "n": 3}, "One. Two! Three?", True),
    ({"kind": "sentence_count", "relation": "exactly", "n": 2}, "One... and more. Trailing words", True),
    ({"kind": "sentence_count", "relation": "at most", "n": 1}, "Wow!!! ?!", True),  # punctuation runs: one
    ({"kind": "sentence_count", "relation": "at least", "n": 1}, "", False),
    ({"kind": "paragraph_count", "n": 2}, "First.\n\n  \n\nSecond.\n", True),  # blank lines of spaces
    ({"kind": "paragraph_count", "n": 2}, "First.\nStill first.", False),
    ({"kind": "paragraph_count", "n": 1}, "\n\nOnly one.\n\n", True),
    ({"kind": "include_keywords", "keywords": ["river", "Moon"]}, "The RIVER and the moon.", True),
    ({"kind": "include_keywords", "keywords": ["river"]}, "Rivers flow.", False),  # whole words only
    ({"kind": "forbidden_words", "forbidden": ["very"]}, "Every verse.", True),  # 'very' inside 'every'
    ({"kind": "forbidden_words", "forbidden": ["very"]}, "Very good.", False),
    ({"kind": "keyword_frequency", "keyword": "map", "relation": "at least", "n": 2}, "Map. map! maps", True),
    ({"kind": "keyword_frequency", "keyword": "map", "relation": "at least", "n": 3}, "Map. map! maps", False),
    ({"kind": "letter_frequency", "letter": "z", "relation": "at least", "n": 3}, "Zig zaG fizz", True),
    ({"kind": "letter_frequency", "letter": "z", "relation": "less than", "n": 2}, "Zz", False),
    ({"kind": "letter_frequency", "letter": "q", "relation": "less than", "n": 1}, "", False),
    ({"kind": "lowercase"}, "all quiet, 42 times.", True),
    ({"kind": "lowercase"}, "all quiet but One", False),
    ({"kind": "lowercase"}, "123 !!!", False),  # no letter at all does not count as lowercase
    ({"kind": "uppercase"}, "LOUD, 42 TIMES.", True),
    ({"kind": "uppercase"}, "LOUD ß", False),  # 'ß'.upper() is 'SS'
    ({"kind": "no_commas"}, "No commas here.", True),
    ({"kind": "no_commas"}, "A full-width comma，here", False),
    ({"kind": "json_format"}, '  {"a": [1, 2]}  ', True),
    ({"kind": "json_format"}, '```json\n{"a": 1}\n```', True),
    ({"kind": "json_format"}, '"just a string"', False),
    ({"kind": "json_format"}, '{"a": 1} and more', False),
    ({"kind": "json_format"}, "[" * 5000 + "]" * 5000, False),  # too deep for the parser: no JSON, no crash
    ({"kind": "bullets", "n": 2}, "Intro\n* one\n  - two\n**bold** line", True),
    ({"kind": "bullets", "n": 2}, "* one\n*two\n-three", False),  # a marker needs a space after it
    ({"kind": "sections", "n": 2}, "SECTION 1\nFirst part.\nSECTION 2\nSecond part.", True),
    ({"kind": "sections", "n": 2}, "SECTION 1\nFirst part.\nSECTION 3\nThird part.", False),  # numbered in order
    ({"kind": "sections", "n": 2}, "SECTION 1\nFirst part.\nSECTION 2\n", False),  # an empty section
    ({"kind": "sections", "n": 1}, "Intro. SECTION 1 inline", False),  # a marker starts a line
    ({"kind": "title"}, "<<A Day Out>>\nText.", True),
    ({"kind": "title"}, "<<>> and << >>", False),
    ({"kind": "quotation"}, ' "Quoted text." ', True),
    ({"kind": "quotation"}, '""', False),
    ({"kind": "quotation"}, '"Unclosed', False),
    ({"kind": "start_phrase", "phrase": "Great question."}, "\n Great question. Then more.", True),
    ({"kind": "start_phrase", "phrase": "Great question."}, "great question. Then more.", False),
    ({"kind": "end_phrase", "phrase": "See you soon."}, "Bye for now. See you soon.\n", True),
    ({"kind": "end_phrase", "phrase": "See you soon."}, "See you soon. Bye.", False),
    ({"kind": "postscript"}, "Main text.\n\nP.S. One more thing.", True),
    ({"kind": "postscript"}, "P.S. Only a postscript.", False),  # nothing before it
    ({"kind": "postscript"}, "Main text. P.S. inline", False),  # it starts a line
    ({"kind": "placeholders", "n": 2}, "Meet at [place] on [date].", True),
    ({"kind": "placeholders", "n": 2}, "Meet at [place] on [ ] or [\n].", False),
    ({"kind": "highlights", "n": 2}, "A *bold* and **very bold** claim.", True),
    ({"kind": "highlights", "n": 1}, "Stars * around spaces * and 2 * 3 * 4", False),
]


def test_every_kind_has_cases():
    assert {c["kind"] for c, _, _ in CASES} == set(CHECKERS)


@pytest.mark.parametrize(
    ("constraint", "text", "followed"), CASES, ids=lambda v: v["kind"] if isinstance(v, dict) else ""
)
def test_checker(constraint, text, followed):
    assert follows(text, constraint) is followed


LONG_OUTPUTS = {
    "an unclosed bracket": "[" + "a " * 25_000,
    "an unclosed title": "<<" + "a " * 25_000,
    "blank lines": "\n" * 50_000,
    "a run of stops": "!" * 50_000 + "x",
    "abbreviations": "Dr. " * 25_000,
}


@pytest.mark.parametrize("text", LONG_OUTPUTS.values(), ids=LONG_OUTPUTS.keys())
def test_every_checker_takes_linear_time_on_long_degenerate_output(text):
    rules = {rule["kind"]: rule for rule, _, _ in CASES}
    start = time.perf_counter()
    for rule in rules.values():
        follows(text, rule)
    assert time.perf_counter() - start < 3.0  # ifeval-v1 took 7-86 s on some of these (quadratic regexes)


def test_words_and_sentences():
    assert words("It's 5 o'clock, isn’t it?") == ["It's", "5", "o'clock", "isn’t", "it"]
    assert sentences("Dr. Who. P.S. Hi") == ["Dr. Who.", "P.S. Hi"]  # an abbreviation's dot ends no sentence


def test_content_check():
    text = "The bicycle changed how cities grew and it still shapes the streets where we live today."
    assert on_task(text, "bicycle")
    assert not on_task(text, "volcano")  # off topic
    assert not on_task("Bicycle bicycle bicycle.", "bicycle")  # too short to be the task
    request = "Write a short essay on the bicycle and how the bicycle changed how cities grew over time."
    assert not on_task(f"Sure. {request}", "bicycle", request)  # an echo of the request
    assert on_task(text, "bicycle", request)  # sharing a few words is no echo


def test_rewards_strict_and_fraction_and_not_applicable():
    rules = [{"kind": "no_commas"}, {"kind": "uppercase"}, {"kind": "word_count", "relation": "at least", "n": 3}]
    texts = ["<think>Plan, then shout.</think>THREE LOUD WORDS", "Three, quiet words", "NO, LOUD"]
    assert all_followed(texts, constraints=[rules] * 3) == [1.0, 0.0, 0.0]
    assert fraction_followed(texts, constraints=[rules] * 3) == [1.0, 1 / 3, 1 / 3]
    assert all_followed(["x"], constraints=[[]]) == [None]
    on = all_followed(["SHORT AND LOUD"], constraints=[rules], topic=["bicycle"], request=[""])
    assert on == [0.0] and fraction_followed(["SHORT AND LOUD"], constraints=[rules], topic=["bicycle"]) == [0.0]


def test_env_gold_follows_every_constraint_and_conflicts_never_meet():
    from rlhub.envs.ifeval import _clash

    env = rlhub.make("ifeval-v1")
    examples = env.examples("test", limit=300)
    kinds = {rule["kind"] for ex in examples for rule in ex.info["constraints"]}
    assert kinds == set(CHECKERS)
    assert {len(ex.info["constraints"]) for ex in examples} == {1, 2, 3}
    for ex in examples:
        names = [rule["kind"] for rule in ex.info["constraints"]]
        assert not any(_clash(a, b) for a in names for b in names if a != b), names
        assert env.score(env.gold_completion(ex), ex).rewards == {"all_followed": 1.0, "fraction_followed": 1.0}


def test_task_free_output_earns_nothing_only_because_of_the_content_check():
    strict = rlhub.make("ifeval-v1", max_constraints=1)
    loose = rlhub.make("ifeval-v1", max_constraints=1, content_check=False)
    for ex in strict.examples("train", limit=40):
        completions = [c for probe in strict.probes(ex) for c in probe.completions]
        assert len(completions) == 6 and {strict.score(c, ex).reward for c in completions} == {0.0}
    # Without the check, constraint-only output can win: the off-topic gold follows the same constraints.
    bare = [ex for ex in loose.examples("train", limit=40) if ex.info["constraints"][0]["kind"] == "no_commas"]
    assert bare and loose.score("{}", bare[0]).reward == 1.0
    assert loose.probes(bare[0]) == []


def test_env_is_reproducible_and_config_is_validated():
    a = rlhub.make("ifeval-v1").examples("train", limit=5, seed=7)
    b = rlhub.make("ifeval-v1").examples("train", limit=5, seed=7)
    assert [(x.prompt, x.answer, x.info) for x in a] == [(x.prompt, x.answer, x.info) for x in b]
    assert rlhub.make("ifeval-v1", fraction_weight=0.5).rubric.weights["fraction_followed"] == 0.5
    with pytest.raises(ConfigError, match="min_constraints <= max_constraints"):
        rlhub.make("ifeval-v1", min_constraints=3, max_constraints=2)
    with pytest.raises(ConfigError, match="fraction_weight must be >= 0"):
        rlhub.make("ifeval-v1", fraction_weight=-1)


def test_validate_passes():
    from rlhub.authoring.validate import validate_env

    report = validate_env("ifeval-v1", n=8)
    assert "constraints without the task" in {c.name for c in report.checks}
    assert report.passed, [c for c in report.checks if not c.passed]


def test_grpo_two_steps_on_ifeval(tiny_model_dir, tmp_path):
    from rlhub.trainers.loop import train
    from rlhub.trainers.recipe import load_recipe

    out = tmp_path / "run"
    values = {
        "model.name": tiny_model_dir,
        "model.dtype": "float32",
        "model.gradient_checkpointing": False,
        "training.mixed_precision": "no",
        "env.id": "ifeval-v1",
        "env.config": {"fraction_weight": 0.5, "content_check": False},
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
    for name in ("all_followed", "fraction_followed"):
        assert 0.0 <= rows[0][f"rewards/{name}/mean"] <= 1.0
    assert rows[0]["rewards/errors"] == 0.0
    assert Path(result.summary["checkpoint"], "adapter").is_dir()
