"""scaffold-name-v0: passes ``rlhub validate``; right answers score 1.0, wrong ones 0.0; config is checked.

Add tests for what is special about your task: its answers are the true ones, its difficulty levels
differ, the reward refuses the hacks you can think of.
"""

from __future__ import annotations

import pytest

import rlhub
from rlhub.authoring.validate import validate_env
from rlhub.errors import ConfigError

ENV_ID = "scaffold-name-v0"


def test_passes_rlhub_validate():
    report = validate_env(ENV_ID, n=8)
    assert report.passed, [(c.name, c.detail) for c in report.checks if not c.passed]


def test_gold_scores_one_and_another_examples_answer_scores_zero():
    env = rlhub.make(ENV_ID)
    examples = env.examples("test", limit=8)
    for example in examples:
        assert env.score(env.gold_completion(example), example).rewards["correct"] == 1.0
    pairs = [(a, b) for a in examples for b in examples if a.answer != b.answer]
    assert pairs, "every example has the same answer: the task cannot tell a right answer from a wrong one"
    for a, b in pairs[:4]:  # a well-formed completion with the wrong answer
        assert env.score(env.gold_completion(a), b).rewards["correct"] == 0.0


def test_examples_depend_on_difficulty():
    easy = rlhub.make(ENV_ID, difficulty=1).examples("train", limit=8)
    hard = rlhub.make(ENV_ID, difficulty=3).examples("train", limit=8)
    assert [e.prompt for e in easy] != [e.prompt for e in hard]


def test_bad_config_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"difficulty must be in 1\.\.3"):
        rlhub.make(ENV_ID, difficulty=0)
