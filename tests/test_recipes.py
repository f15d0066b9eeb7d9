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


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_trains_one_step_on_a_tiny_model(path, tmp_path):
    """Each recipe's algorithm, critic, LoRA and env settings run as written; only size and device change."""
    import json

    from tiny_models import save_tiny_model

    from rlhub.trainers.loop import train

    recipe = load_recipe(path)
    shrink = {
        "model.name": str(save_tiny_model(tmp_path / "model")),
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
    result = train(load_recipe(path, [f"{k}={json.dumps(v)}" for k, v in shrink.items()]), progress=False)
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
