"""Asynchronous off-policy training (training.max_off_policy_steps), run through the real loop on a tiny model.

The generation worker is a real process; a scripted engine (``slow_engine``) makes each of its batches take
a known extra time, so overlap with training is visible in the worker's and the trainer's own intervals.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import pytest
from test_learning import STEPS, WINDOW, learning_run, seven_model, seven_reward  # noqa: F401 (fixtures)

from rlhub.errors import ConfigError
from rlhub.trainers import async_rollout
from rlhub.trainers.async_rollout import AsyncRollout
from rlhub.trainers.recipe import load_recipe

pytestmark = pytest.mark.slow  # each run starts a generation worker process that loads the model
GENERATION_S = 0.5  # the scripted engine's extra time per batch


def slow_engine(recipe):
    """The worker's real engine, each batch slowed by GENERATION_S (runs in the worker process)."""
    engine, policy = async_rollout.policy_engine(recipe)
    generate = engine.generate

    def slowed(*args, **kwargs):
        time.sleep(GENERATION_S)
        return generate(*args, **kwargs)

    engine.generate = slowed
    return engine, policy


@pytest.fixture
def trained_ids(monkeypatch):
    """The example ids of each batch the async loop trains on, in order."""
    seen: list[list[str]] = []
    real = AsyncRollout.next_batch

    def spy(self):
        examples, prompt_ids, completions = real(self)
        seen.append([ex.id for ex in examples])
        return examples, prompt_ids, completions

    monkeypatch.setattr(AsyncRollout, "next_batch", spy)
    return seen


def run(tiny_run, reward: str, out: Path, steps: int, resume: bool = False, **extra) -> list[dict]:
    """A tiny run (tests/conftest.py) on ``reward`` alone, on one torch thread; its rows with a reward."""
    rewards = {reward: 1.0, "correct": 0.0, "format": 0.0}
    settings = {"training.num_threads": 1, "logging.completions_every": 0}
    tiny_run(out, steps, resume=resume, rewards=rewards, **settings, **extra)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"reward"' in line]


def digest(out: Path) -> str:
    return (out / "final-params-rank0.sha256").read_text()


def stream_ids(n: int, seed: int = 0) -> list[str]:
    """The first ``n`` example ids of the training stream, as the synchronous loop takes them."""
    import rlhub
    from rlhub.trainers.loop import PromptStream

    env = rlhub.make("arithmetic-v1", difficulty=1)
    return [ex.id for ex in PromptStream(env.examples("train", seed=seed), seed=seed).take(n)]


def test_k0_is_the_synchronous_loop(tiny_run, spread_reward, tmp_path):
    plain = run(tiny_run, spread_reward, tmp_path / "plain", 3)
    zero = run(tiny_run, spread_reward, tmp_path / "zero", 3, **{"training.max_off_policy_steps": 0})
    assert digest(tmp_path / "plain") == digest(tmp_path / "zero")
    assert [r["reward"] for r in plain] == [r["reward"] for r in zero]
    assert not any(key.startswith("async/") for r in zero for key in r)


@pytest.mark.parametrize("k", [1, 2])
def test_async_overlaps_generation_with_training_and_bounds_staleness(
    k, tiny_run, spread_reward, tmp_path, monkeypatch, trained_ids
):
    monkeypatch.setattr(async_rollout, "WORKER_ENGINE", "test_async:slow_engine")
    steps = 4
    rows = run(tiny_run, spread_reward, tmp_path / "run", steps, **{"training.max_off_policy_steps": k})
    assert len(rows) == steps
    # Batch s was sampled with version max(0, s - k): as stale as allowed, never more.
    assert [r["async/staleness_max"] for r in rows] == [float(min(s, k)) for s in range(steps)]
    assert all(r["async/dropped"] == 0 for r in rows)
    # Every batch took the scripted engine's time, and the worker sampled while the trainer trained.
    assert all(r["async/generation_s"] >= GENERATION_S for r in rows)
    assert sum(r["async/overlap_s"] for r in rows) > 0
    assert rows[0]["async/overlap_s"] == 0  # nothing was training before the first batch
    # Stale samples are reweighted: importance weights are logged for every step.
    assert all(0 < r["async/is_weight_mean"] <= 2.0 for r in rows)
    assert [i for batch in trained_ids for i in batch] == stream_ids(steps * 2)
    assert digest(tmp_path / "run")


def test_async_run_is_reproducible(tiny_run, spread_reward, tmp_path):
    first = run(tiny_run, spread_reward, tmp_path / "a", 3, **{"training.max_off_policy_steps": 1})
    second = run(tiny_run, spread_reward, tmp_path / "b", 3, **{"training.max_off_policy_steps": 1})
    assert digest(tmp_path / "a") == digest(tmp_path / "b")  # the schedule does not depend on timing
    assert [r["reward"] for r in first] == [r["reward"] for r in second]
    run(tiny_run, spread_reward, tmp_path / "sync", 3)
    assert digest(tmp_path / "sync") != digest(tmp_path / "a")  # stale samples: another trajectory


def test_stale_batches_are_dropped_and_counted(tiny_run, spread_reward, tmp_path, monkeypatch, trained_ids):
    # Three batches queued ahead with k = 1: every other batch arrives two versions old.
    from rlhub.trainers import loop

    monkeypatch.setattr(loop, "AsyncRollout", functools.partial(AsyncRollout, lookahead=3))
    steps = 5
    rows = run(tiny_run, spread_reward, tmp_path / "run", steps, **{"training.max_off_policy_steps": 1})
    per_batch = 2 * 4  # prompts_per_step x group_size
    assert [r["async/dropped"] for r in rows] == [0, 0, per_batch, 0, per_batch]
    assert all(r["async/staleness_max"] <= 1 for r in rows)
    # Dropped prompts are skipped, not trained on later: batches 2 and 5 of the stream are missing.
    stream = stream_ids(7 * 2)
    batches = [stream[i : i + 2] for i in range(0, len(stream), 2)]
    assert trained_ids == [batches[i] for i in (0, 1, 3, 4, 6)]
    state = json.loads((tmp_path / "run" / "checkpoints" / f"step-{steps:06d}" / "state.json").read_text())
    assert state["position"] == 7 * 2


def test_async_resume_neither_loses_nor_repeats_samples(tiny_run, spread_reward, tmp_path, monkeypatch, trained_ids):
    async_ = {"training.max_off_policy_steps": 1}
    run(tiny_run, spread_reward, tmp_path / "run", 2, **async_)
    # The worker had sampled ahead, but the checkpoint counts only the batches trained on.
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-000002" / "state.json").read_text())
    assert state["position"] == 2 * 2
    rows = run(tiny_run, spread_reward, tmp_path / "run", 4, resume=True, **async_)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [i for batch in trained_ids for i in batch] == stream_ids(4 * 2)
    # The resumed worker starts from the checkpoint's weights: its first batch is fresh again.
    assert [r["async/staleness_max"] for r in rows] == [0.0, 1.0, 0.0, 1.0]


def test_ppo_and_multi_turn_refuse_async(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="ppo"):
        load_recipe(None, ["algorithm.name=ppo", "training.max_off_policy_steps=1"])
    with pytest.raises(ConfigError, match="vllm_mode=server"):
        load_recipe(
            None, ["generation.backend=vllm", "generation.vllm_mode=colocate", "training.max_off_policy_steps=1"]
        )
    from rlhub.trainers.loop import train

    recipe = load_recipe(
        None,
        [
            f"model.name={tiny_model_dir}",
            "env.id=calculator-v1",
            "training.max_off_policy_steps=1",
            f"training.output_dir={tmp_path / 'run'}",
            "logging.wandb=false",
        ],
    )
    with pytest.raises(ConfigError, match="multi-turn"):
        train(recipe, progress=False)


def test_async_with_a_vllm_server_samples_each_batch_with_its_version(tiny_run, spread_reward, tmp_path):
    from fake_http import fake_server
    from test_backends import vllm_routes

    state: dict = {}
    with fake_server(vllm_routes(state)) as server:
        state["release"] = server.release
        server_mode = {
            "generation.backend": "vllm",
            "generation.vllm_mode": "server",
            "generation.base_url": server.url,
            "training.max_off_policy_steps": 1,
        }
        rows = run(tiny_run, spread_reward, tmp_path / "run", 3, **server_mode)
    assert [r["async/staleness_max"] for r in rows] == [0.0, 1.0, 1.0]
    # One request per prompt: batches 0 and 1 (two prompts each) sampled with the adapter of version 0, batch 2
    # with version 1's, loaded after it. (The trainer's own engine loads one only before an in-loop evaluation.)
    used = [body["model"] for body in server.bodies("/v1/completions")]
    loaded = [body["lora_name"] for body in server.bodies("/v1/load_lora_adapter")]
    assert len(set(used[:4])) == 1 and len(set(used[4:6])) == 1 and used[4] != used[0]
    assert loaded.index(used[0]) < loaded.index(used[4])
    assert len(loaded) == len(set(loaded)) == 2  # versions 1 and 2, each once: only the worker's engine follows steps


def test_async_grpo_raises_a_learnable_reward(seven_model, seven_reward, tmp_path):  # noqa: F811
    """test_learning's task (the share of "7" in the completion) with one step of staleness."""
    curve = learning_run(seven_model, seven_reward, tmp_path / "run", "grpo", **{"training.max_off_policy_steps": 1})
    first, last = sum(curve[:WINDOW]) / WINDOW, sum(curve[-WINDOW:]) / WINDOW
    assert len(curve) == STEPS
    assert last > first + 0.1, f"async grpo: reward went {first:.3f} -> {last:.3f} over {STEPS} steps"
