"""Test set-up: offline data locations, offline W&B, and small shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / "tests" / "data"

# GSM8K and BFCL ship in data/ and are found without set-up; the MATH and MBPP fixtures are test files.
os.environ["RLHUB_DATA"] = str(TEST_DATA)
os.environ.setdefault("WANDB_MODE", "offline")
# Nothing in the tests may reach a model or dataset hub (this machine has no route to one).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# model.dtype: auto resolves to float32 without measuring, so no test depends on this machine's bf16 speed
# (tests/test_dtype_auto.py unsets it where it tests the probe itself).
os.environ.setdefault("RLHUB_AUTO_DTYPE", "float32")
os.environ.pop("WANDB_API_KEY", None)


@pytest.fixture
def registry_file(tmp_path, monkeypatch):
    """Write a registry YAML and point rlhub at it; returns a writer function."""
    from rlhub.env import registry

    def write(text: str) -> Path:
        path = tmp_path / "registry.yaml"
        path.write_text(text)
        monkeypatch.setenv("RLHUB_REGISTRY", str(path))
        registry.clear_cache()
        return path

    yield write
    registry.clear_cache()


# --- a tiny training run ---------------------------------------------------------------------------------------
SPREAD_REWARD = """
def vowel_share(completions, **kwargs):
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [sum(ch in "aeiou" for ch in t) / max(len(t), 1) for t in texts]
"""
"""A reward with spread on random text (the share of vowels), so a tiny random model's groups do not tie."""

TINY_RECIPE = {
    "env.id": "arithmetic-v1",
    "env.config": {"difficulty": 1},
    "algorithm.group_size": 4,
    "training.prompts_per_step": 2,
    "training.micro_batch_size": 4,
    "training.max_new_tokens": 8,
    "training.learning_rate": 1e-2,
    "training.save_every": 0,
    "logging.wandb": False,
}
"""What every tiny run shares, as dotted recipe overrides; a test's own overrides go on top."""


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A saved tiny random model (tests/tiny_models.py, seed 0) that recipes name as model.name."""
    from tiny_models import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0))


@pytest.fixture
def spread_reward(tmp_path, monkeypatch) -> str:
    """SPREAD_REWARD as an importable module, here and in the processes a test starts; returns its name."""
    (tmp_path / "spread_reward.py").write_text(SPREAD_REWARD)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    return "spread_reward:vowel_share"


@pytest.fixture
def tiny_settings(tiny_model_dir):
    """``settings(out, steps=2, **overrides)``: the dotted overrides of a tiny run writing to ``out``.

    For the ``--set`` arguments of a run through the CLI; in-process runs take :func:`tiny_run`.
    """

    def settings(out: Path, steps: int = 2, **overrides) -> dict:
        return {
            "model.name": tiny_model_dir,
            **TINY_RECIPE,
            "training.max_steps": steps,
            "training.output_dir": str(out),
            **overrides,
        }

    return settings


@pytest.fixture
def tiny_run(tiny_settings):
    """``run(out, steps=2, *, resume=False, recipe_name="recipe", **overrides)``: train a tiny recipe in-process.

    Overrides are dotted recipe keys (``**{"algorithm.name": "ppo"}``) on top of :data:`TINY_RECIPE`; the run
    writes to ``out`` and its ``RunResult`` is returned.
    """
    from rlhub.trainers.loop import train
    from rlhub.trainers.recipe import load_recipe

    def run(out: Path, steps: int = 2, *, resume: bool = False, recipe_name: str = "recipe", **overrides):
        recipe = load_recipe(None, tiny_settings(out, steps, **overrides))
        return train(recipe, recipe_name=recipe_name, progress=False, resume=resume)

    return run
