"""Every shipped recipe validates and names a registered env; CLI-style overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest

import rlhub
import rlhub.rewards
from rlhub.errors import ConfigError
from rlhub.trainers.recipe import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_recipes_are_shipped():
    assert {p.name for p in RECIPES} >= {"quickstart.yaml", "r1-zero-countdown.yaml", "gsm8k-grpo-lora.yaml"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_validates_and_its_env_exists(path):
    recipe = load_recipe(path)
    env = rlhub.make(recipe.env.id, **recipe.env.config)
    assert set(recipe.rewards) <= set(env.rubric.names) | set(rlhub.rewards.REWARDS)


def test_overrides_and_errors():
    recipe = load_recipe(RECIPES[0], ["training.max_steps=3", "env.config={difficulty: 2}"])
    assert recipe.training.max_steps == 3 and recipe.env.config == {"difficulty": 2}
    with pytest.raises(ConfigError, match=r"recipe key 'algorithm\.group_size'"):
        load_recipe(RECIPES[0], ["algorithm.group_size=1"])
    with pytest.raises(ConfigError, match=r"--set expects key\.sub=value"):
        load_recipe(RECIPES[0], ["training.max_steps"])
