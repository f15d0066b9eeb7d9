"""model.dtype auto: bfloat16 only where a probe measures the step faster, cached per CPU and torch version,
logged in the run, and a run that resolves it to float32 trains exactly as a float32 run."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from rlhub import models
from rlhub.errors import ConfigError
from rlhub.models import AUTO_DTYPE_ENV, BF16_MIN_SPEEDUP, resolve_dtype
from rlhub.trainers.recipe import load_recipe


def figures(float32_s: float, bfloat16_s: float) -> dict:
    """What the probe's child process reports, with LoRA step times of ``float32_s`` and ``bfloat16_s``."""
    return {
        "threads": 2,
        "matmul_gflops": {"float32": 100.0, "bfloat16": 300.0},
        "step_s": {"float32": float32_s, "bfloat16": bfloat16_s},
        "sample_s": {"float32": float32_s / 2, "bfloat16": bfloat16_s / 2},
        "train_s": {"float32": float32_s / 2, "bfloat16": bfloat16_s / 2},
        "probe_s": 9.0,
        "measured": "2026-12-07 00:00:00",
    }


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A fresh cache, no $RLHUB_AUTO_DTYPE, and a stand-in probe: ``probe.step_s`` sets what it measures,
    ``probe.calls`` counts how often it ran."""

    class StandIn:
        step_s = (1.0, 0.5)
        calls = 0

        def __call__(self, threads: int) -> dict:
            self.calls += 1
            return figures(*self.step_s)

    stand_in = StandIn()
    monkeypatch.setenv("RLHUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(AUTO_DTYPE_ENV, raising=False)
    monkeypatch.setattr(models, "_run_probe", stand_in)
    return stand_in


@pytest.mark.parametrize(
    "bfloat16_s, expected",
    [
        (0.25, "bfloat16"),  # 4x faster (an AMX CPU)
        (1 / BF16_MIN_SPEEDUP, "bfloat16"),  # just at the margin
        (1 / (BF16_MIN_SPEEDUP - 0.05), "float32"),  # faster, but within the margin
        (1.0, "float32"),
        (4.0, "float32"),  # 4x slower (an AVX2-only CPU)
    ],
)
def test_auto_picks_bfloat16_only_when_its_step_is_faster_by_the_margin(probe, bfloat16_s, expected):
    probe.step_s = (1.0, bfloat16_s)
    choice = resolve_dtype("auto", "cpu")
    assert (choice.dtype, choice.reason, probe.calls) == (expected, "measured", 1)
    assert choice.probe["step_s"] == {"float32": 1.0, "bfloat16": bfloat16_s}


def test_the_probe_runs_once_per_cpu_and_torch_version(probe, monkeypatch):
    first = resolve_dtype("auto", "cpu")
    again = resolve_dtype("auto", "cpu")
    assert probe.calls == 1 and again.reason == "cached" and again.probe == first.probe
    monkeypatch.setattr(models, "cpu_identity", lambda: ("Intel(R) Xeon(R) Platinum 8480+", ["amx_bf16", "amx_tile"]))
    probe.step_s = (1.0, 0.2)
    assert resolve_dtype("auto", "cpu").dtype == "bfloat16" and probe.calls == 2
    monkeypatch.setattr(torch, "__version__", "9.9.9+cpu")
    assert resolve_dtype("auto", "cpu").reason == "measured" and probe.calls == 3
    assert resolve_dtype("auto", "cpu").reason == "cached" and probe.calls == 3


@pytest.mark.parametrize(
    "text",
    ["{not json", "", "[]", '{"step_s": {"float32": "fast"}}', json.dumps({**figures(1.0, 0.0), "cpu": "x"})],
    ids=["truncated", "empty", "a list", "wrong types", "another machine's key"],
)
def test_a_corrupt_cache_file_is_measured_again_not_crashed_on(probe, text):
    resolve_dtype("auto", "cpu")
    (path,) = (models.cache_root() / "dtype_probe").glob("*.json")
    path.write_text(text)
    assert resolve_dtype("auto", "cpu").reason == "measured" and probe.calls == 2
    assert json.loads(path.read_text())["step_s"] == {"float32": 1.0, "bfloat16": 0.5}  # rewritten whole


def test_a_failed_probe_keeps_float32_and_is_not_cached(probe, monkeypatch):
    def fails(threads: int) -> dict:
        raise models.RLHubError("it took over 120 s")

    monkeypatch.setattr(models, "_run_probe", fails)
    choice = resolve_dtype("auto", "cpu")
    assert choice.dtype == "float32" and "probe failed" in choice.reason and "120 s" in choice.reason
    assert not (models.cache_root() / "dtype_probe").exists()  # the next run measures again


def test_explicit_dtypes_gpus_and_the_override_are_not_measured(probe, monkeypatch):
    assert resolve_dtype("float32", "cpu").dtype == "float32" and resolve_dtype("bfloat16").dtype == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert (resolve_dtype("auto", "cuda").dtype, resolve_dtype("auto", torch.device("cuda", 0)).reason) == (
        "bfloat16",
        "cuda",
    )
    monkeypatch.setenv(AUTO_DTYPE_ENV, "float32")
    assert resolve_dtype("auto", "cpu").dtype == "float32"
    assert probe.calls == 0
    monkeypatch.setenv(AUTO_DTYPE_ENV, "fp8")
    with pytest.raises(ConfigError, match="set it to float32 or bfloat16"):
        resolve_dtype("auto", "cpu")


def test_auto_is_the_default_and_the_cpu_recipes_ask_for_it():
    from pathlib import Path

    recipes = Path(__file__).resolve().parents[1] / "recipes"
    assert load_recipe(None).model.dtype == "auto"
    for name in ("quickstart.yaml", "quickstart-ppo.yaml", "ifeval-quickstart.yaml", "sql-quickstart.yaml"):
        assert load_recipe(recipes / name).model.dtype == "auto", name
    assert load_recipe(recipes / "gsm8k-grpo-lora.yaml").model.dtype == "bfloat16"  # GPU recipes keep theirs


@pytest.mark.slow
def test_the_real_probe_leaves_the_callers_random_state_and_threads_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHUB_CACHE", str(tmp_path))
    monkeypatch.delenv(AUTO_DTYPE_ENV, raising=False)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy(), torch.get_num_threads())
    choice = resolve_dtype("auto", "cpu", threads=1)
    after = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy(), torch.get_num_threads())
    assert torch.equal(before[0], after[0]) and before[1] == after[1]
    assert np.array_equal(before[2], after[2]) and before[3] == after[3]
    probe = choice.probe
    assert choice.reason == "measured" and probe["threads"] == 1
    for key in ("matmul_gflops", "step_s", "sample_s", "train_s"):
        assert probe[key]["float32"] > 0 and probe[key]["bfloat16"] > 0
    assert choice.dtype == ("bfloat16" if models.prefers_bfloat16(probe) else "float32")


# --- in a run ------------------------------------------------------------------------------------------------
def _in(dtype: str, reward: str) -> dict:
    """A tiny run's overrides (tests/conftest.py) in ``dtype``; ``reward`` differs between a random model's
    completions, so every step updates the policy."""
    return {"model.dtype": dtype, "rewards": {reward: 1.0, "correct": 0.0, "format": 0.0}}


def _learning(run_dir) -> list[dict]:
    """Each step's rewards and losses from metrics.jsonl (timings left out)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    keep = ("reward", "rewards/", "losses/", "ratio/", "completions/")
    return [{k: v for k, v in row.items() if k.startswith(keep)} for row in rows if "reward" in row]


@pytest.mark.slow
def test_auto_resolved_to_float32_trains_step_for_step_as_float32(
    tiny_run, spread_reward, tmp_path, probe, monkeypatch, capsys
):
    probe.step_s = (1.0, 2.0)  # this machine's figures, as cached: bfloat16 twice as slow (an AVX2-only CPU)
    resolve_dtype("auto", "cpu")
    monkeypatch.setattr(models, "_run_probe", lambda threads: pytest.fail("the cached figures were measured again"))
    capsys.readouterr()
    tiny_run(tmp_path / "float32", 3, recipe_name="tiny", **_in("float32", spread_reward))
    tiny_run(tmp_path / "auto", 3, recipe_name="tiny", **_in("auto", spread_reward))

    expected, got = _learning(tmp_path / "float32"), _learning(tmp_path / "auto")
    assert len(got) == 3 and all(row["losses/policy"] != 0 for row in got) and len({r["reward"] for r in got}) > 1
    assert got == expected  # identical, not close
    # The choice and the rates behind it are in the run's summary, its recipe and one console line.
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    precision = summary["precision"]
    assert (precision["requested"], precision["dtype"], precision["reason"]) == ("auto", "float32", "cached")
    assert precision["probe"]["step_s"] == {"float32": 1.0, "bfloat16": 2.0}
    assert json.loads((tmp_path / "auto" / "recipe.json").read_text())["model"]["dtype"] == "float32"
    from pathlib import Path

    from rlhub.provenance import read_commit  # the summary also names the code that trained (env cards cite it)

    assert summary["commit"] == read_commit(Path(__file__).parent).label and len(summary["commit"]) >= 12
    explicit = json.loads((tmp_path / "float32" / "summary.json").read_text())["precision"]
    assert (explicit["dtype"], explicit["reason"], explicit["probe"]) == ("float32", "explicit", None)
    lines = [line for line in capsys.readouterr().err.splitlines() if "model.dtype auto ->" in line]
    assert len(lines) == 1 and "auto -> float32 (cached on" in lines[0] and "0.50x" in lines[0]


@pytest.mark.slow
def test_the_model_and_the_engine_get_the_concrete_dtype(
    tiny_model_dir, tiny_run, spread_reward, tmp_path, monkeypatch
):
    from rlhub.trainers import loop

    monkeypatch.setenv(AUTO_DTYPE_ENV, "bfloat16")
    seen = {}

    def recording_engine(settings, policy, tokenizer, generator=None, *, seed=0, dtype="auto"):
        seen.update(dtype=dtype, weights={p.dtype for p in policy.parameters() if not p.requires_grad})
        return make_engine(settings, policy, tokenizer, generator, seed=seed, dtype=dtype)

    make_engine = loop.make_engine
    monkeypatch.setattr(loop, "make_engine", recording_engine)
    result = tiny_run(tmp_path / "run", 1, recipe_name="tiny", **_in("auto", spread_reward))
    assert seen == {"dtype": "bfloat16", "weights": {torch.bfloat16}}
    assert result.summary["precision"]["reason"] == f"${AUTO_DTYPE_ENV}"

    model, _ = models.load_model_and_tokenizer(tiny_model_dir, dtype="auto", device="cpu")
    assert model.dtype == torch.bfloat16  # one meaning of auto for every loader, not "the checkpoint's dtype"
