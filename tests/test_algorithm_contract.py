"""The algorithm contract (trainers/algorithm.py): the example algorithm in docs/training.md trains in the real loop."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from rlhub.errors import ConfigError
from rlhub.trainers.recipe import load_recipe

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "training.md"


def guide_example() -> str:
    text = GUIDE.read_text()
    match = re.search(r"<!-- example-algorithm -->\n```python\n(.*?)```", text, re.S)
    assert match, "docs/training.md lost its <!-- example-algorithm --> block"
    return match.group(1)


def test_guide_example_is_about_twenty_lines():
    code = [line for line in guide_example().splitlines() if line.strip()]
    assert len(code) <= 22


@pytest.fixture
def example_module(tmp_path, monkeypatch):
    (tmp_path / "readme_sign_algorithm.py").write_text(guide_example())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    return "readme_sign_algorithm:SignAdvantage"


def test_guide_example_algorithm_trains_two_steps(example_module, tiny_run, spread_reward, tmp_path):
    out = tmp_path / "run"
    values = {
        "rewards": {spread_reward: 1.0, "correct": 0.0, "format": 0.0},
        "algorithm.name": example_module,
        "training.micro_batch_size": 8,
        "logging.completions_every": 1,
    }
    result = tiny_run(out, **values)
    assert result.steps == 2
    rows = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    advantages = [r["advantage"] for r in rows]
    # The example's advantages, not GRPO's: every one is -1, 0 or +1, and the step had some signal.
    assert advantages and set(advantages) <= {-1.0, 0.0, 1.0}
    assert any(a != 0 for a in advantages)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("losses/grad_norm", 0) > 0 for m in metrics)


def test_algorithms_satisfy_the_contract():
    from rlhub.trainers.algorithm import ALGORITHMS, Algorithm, load_algorithm

    for name in ALGORITHMS:
        recipe = load_recipe(None, {"algorithm.name": name})
        assert isinstance(load_algorithm(recipe), Algorithm), name


def test_a_class_without_the_contract_is_refused_in_one_line(tmp_path, monkeypatch):
    from rlhub.trainers.algorithm import load_algorithm

    (tmp_path / "not_an_algorithm.py").write_text("class Thing:\n    def __init__(self, config):\n        pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = load_recipe(None, ['algorithm.name="not_an_algorithm:Thing"'])
    with pytest.raises(
        ConfigError, match=r"lacks advantages, loss.*subclass rlhub\.trainers\.algorithm\.PolicyGradient"
    ):
        load_algorithm(recipe)
