"""Learning direction: each algorithm, run through the real loop on a tiny model, raises a reward it can learn.

The other trainer tests check that the adapter moved; a sign error between advantages and loss would move
it too. Here a tiny model is given one token ("7") whose output embedding is large enough that the model
samples it now and then, and the reward is the share of "7" in the completion: a direction the LoRA
adapter finds in a few steps. Seeded, so each run is the same run.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from rlhub.trainers.recipe import load_recipe

SEVEN_REWARD = """
def seven_share(completions, **kwargs):
    out = []
    for c in completions:
        text = c if isinstance(c, str) else c[-1]["content"]
        out.append(text.count("7") / max(len(text), 1))
    return out
"""
STEPS, WINDOW = 15, 5


@pytest.fixture(scope="module")
def seven_model(tmp_path_factory):
    """A tiny model whose "7" logit is large in some contexts and small in others (a learnable direction)."""
    from tiny_models import tiny_model

    model, tokenizer = tiny_model(seed=0)
    seven = tokenizer.convert_tokens_to_ids("7")
    emb = model.get_input_embeddings().weight
    direction = torch.randn(emb.shape[1], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        emb[seven] = 11.0 * direction / direction.norm()  # tied: the output row too; logit 11 * cos(h, direction)
    folder = tmp_path_factory.mktemp("seven") / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def seven_reward(tmp_path, monkeypatch):
    (tmp_path / "seven_reward.py").write_text(SEVEN_REWARD)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    return "seven_reward:seven_share"


def learning_run(model_dir: str, reward: str, out, algorithm: str, steps: int = STEPS, **extra) -> list[float]:
    from rlhub.trainers.loop import train

    values = {
        "model.name": model_dir,
        "env.id": "arithmetic-v1",
        "env.config": {"difficulty": 1},
        "rewards": {reward: 1.0, "correct": 0.0, "format": 0.0},
        "algorithm.name": algorithm,
        "algorithm.group_size": 4,
        "training.max_steps": steps,
        "training.prompts_per_step": 2,
        "training.micro_batch_size": 8,
        "training.max_new_tokens": 8,
        "training.learning_rate": 1e-3,
        "training.num_threads": 1,
        "training.save_every": 0,
        "training.output_dir": str(out),
        "logging.wandb": False,
        "logging.completions_every": 0,
        **extra,
    }
    train(load_recipe(None, values), progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r[f"rewards/{reward}/mean"] for r in rows if f"rewards/{reward}/mean" in r]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "reinforce_pp", "ppo"])
def test_reward_rises(algorithm, seven_model, seven_reward, tmp_path):
    curve = learning_run(seven_model, seven_reward, tmp_path / "run", algorithm)
    first, last = sum(curve[:WINDOW]) / WINDOW, sum(curve[-WINDOW:]) / WINDOW
    assert len(curve) == STEPS
    assert last > first + 0.1, f"{algorithm}: reward went {first:.3f} -> {last:.3f} over {STEPS} steps"


def seven_share(records) -> float:
    return sum(r["completion"].count("7") / max(len(r["completion"]), 1) for r in records) / len(records)


@pytest.mark.slow
def test_eval_of_a_run_adapter_uses_the_run_env_config_and_the_adapter(
    seven_model, seven_reward, tmp_path, monkeypatch
):
    """README's first eval example: ``rlhub eval <env> --model <run>/checkpoints/step-N/adapter``."""
    from click.testing import CliRunner

    import rlhub.evaluate
    from rlhub.cli import main

    out = tmp_path / "run"
    curve = learning_run(seven_model, seven_reward, out, "grpo", steps=2, **{"training.learning_rate": 1e-2})
    assert len(curve) == 2
    adapter = out / "checkpoints" / "step-000002" / "adapter"
    configs = []
    real = rlhub.evaluate.evaluate_env
    monkeypatch.setattr(
        rlhub.evaluate, "evaluate_env", lambda *a, **kw: configs.append(kw["env_config"]) or real(*a, **kw)
    )

    def evaluate(model: str, folder: str) -> list[dict]:
        args = ["eval", "arithmetic-v1", "--model", model, "-n", "4", "--max-new-tokens", "8", "--json"]
        result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / folder), "--no-plot"])
        assert result.exit_code == 0, result.output
        return json.loads((tmp_path / folder / "eval.json").read_text())["records"]

    trained, base = evaluate(str(adapter), "adapter"), evaluate(seven_model, "base")
    # The adapter folder's run trained on difficulty 1 (the env's default is 2): eval used the run's config.
    assert configs == [{"difficulty": 1}, {}]
    # Greedy completions of the same prompts: the adapter's say "7" more than the base model's.
    assert [r["id"] for r in trained] == [r["id"] for r in base]
    assert seven_share(trained) > seven_share(base) + 0.2, (seven_share(trained), seven_share(base))
