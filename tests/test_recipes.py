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
        load_recipe(RECIPES[0], ["algorithm.group_size=0"])
    with pytest.raises(ConfigError, match=r"--set expects key\.sub=value"):
        load_recipe(RECIPES[0], ["training.max_steps"])


def test_a_dict_of_dotted_keys_overrides_as_set_strings_do():
    strings = ["training.max_steps=3", "env.config={difficulty: 2}", "rewards={format: 0.5}", "env.config.extra=1"]
    dotted = {"training.max_steps": 3, "env.config": {"difficulty": 2}, "rewards": {"format": 0.5}}
    dotted["env.config.extra"] = 1  # a later key writes into an earlier key's value, as --set does
    assert load_recipe(RECIPES[0], dotted) == load_recipe(RECIPES[0], strings)
    assert dotted["env.config"] == {"difficulty": 2}, "the caller's values are not changed"
    # Values are used as given, not parsed as YAML: the string "null" stays a string.
    assert load_recipe(None, {"logging.run_name": "null"}).logging.run_name == "null"


@pytest.mark.parametrize(
    "key, value",
    [
        ("algorithm.group_size", 0),  # out of range
        ("training.max_stepz", 3),  # unknown key
        ("training.max_steps.inner", 3),  # not a section
        ("sft.samples", 4),  # a model validator's rule
    ],
)
def test_a_dict_override_fails_with_the_error_of_its_set_string(key, value):
    with pytest.raises(ConfigError) as from_string:
        load_recipe(RECIPES[0], [f"{key}={value}"])
    with pytest.raises(ConfigError) as from_dict:
        load_recipe(RECIPES[0], {key: value})
    assert str(from_dict.value) == str(from_string.value)


@pytest.mark.parametrize("overrides", ["training.max_steps=3", {3: 1}, {" ": 1}], ids=["a bare string", "int", "blank"])
def test_malformed_overrides_say_what_form_they_take(overrides):
    with pytest.raises(ConfigError, match=r"key\.sub=value strings or a dict|dotted names such as training\.max_steps"):
        load_recipe(None, overrides)


def test_load_recipe_example_in_its_docstring_runs():
    """trainers/recipe.py is not among scripts/test.sh's doctest modules: its example runs here."""
    import doctest

    from rlhub.trainers import recipe

    failures, tried = doctest.testmod(recipe, optionflags=doctest.ELLIPSIS)
    assert tried and not failures


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_trains_one_step_on_a_tiny_model(path, tiny_model_dir, tmp_path):
    """Each recipe's algorithm, critic, LoRA and env settings run as written; only size and device change."""
    import json

    from rlhub.trainers.loop import train

    recipe = load_recipe(path)
    shrink = {
        "model.name": tiny_model_dir,
        "model.dtype": "float32",
        "training.mixed_precision": "no",
        "training.max_steps": 1,
        "training.prompts_per_step": 2,
        "training.micro_batch_size": recipe.algorithm.group_size,
        "training.max_new_tokens": 8,
        "training.output_dir": str(tmp_path / "run"),
        "logging.wandb": False,
        "eval.every": 0,
    }
    if recipe.critic.model:
        shrink["critic.model"] = shrink["model.name"]
    if recipe.generation.backend == "vllm":  # a GPU recipe's sampler: the policy samples itself here
        shrink["generation.backend"] = "hf"
    result = train(load_recipe(path, shrink), progress=False)
    run, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoints" / "step-000001"
    assert result.steps == 1 and (ckpt / "state.json").is_file()
    (row,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"reward"' in line]
    # The recipe's algorithm is the one that ran: PPO trains and saves a critic, a KL term shows when beta > 0.
    ppo = recipe.algorithm.name == "ppo"
    assert (ckpt / "critic.pt").is_file() == ppo and ("values/mean" in row) == ppo
    assert ("losses/kl" in row) == (recipe.algorithm.beta > 0)
    assert json.loads((run / "recipe.json").read_text())["algorithm"] == recipe.algorithm.model_dump()
    adapter = json.loads((ckpt / "adapter" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (recipe.lora.r, recipe.lora.alpha)
