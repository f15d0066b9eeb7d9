"""Difficulty curricula (training.curriculum): levels sampled by their running pass rates, resumed exactly."""

from __future__ import annotations

import dataclasses
import json
from random import Random

import pytest
from test_dynamic_sampling import groups_by_step, run_tiny, tie_rewards  # noqa: F401  (a fixture)

import rlhub
from rlhub.errors import ConfigError
from rlhub.trainers.curriculum import Curriculum, check_supported, levels_of
from rlhub.trainers.loop import PromptStream
from rlhub.trainers.recipe import load_recipe
from rlhub.types import Example


def level_streams(levels=(1, 2, 3), n=20) -> dict[int, PromptStream]:
    return {k: PromptStream([Example(f"l{k}/{i}", [], str(k)) for i in range(n)], seed=0) for k in levels}


def one_process(values):
    return values


def solved(example, rng: Random) -> bool:
    """Level 1 is always solved, level 3 never, level 2 half the time."""
    level = int(example.answer)
    return level == 1 or (level == 2 and rng.random() < 0.5)


def run_draws(curriculum: Curriculum, draws: int, seed: int = 0) -> list[dict[str, float]]:
    rng, logged = Random(seed), []
    for _ in range(draws):
        rows = [ex for ex in curriculum.take(8) for _ in range(4)]  # 4 completions per prompt
        curriculum.observe(rows, [solved(ex, rng) for ex in rows], one_process)
        logged.append(curriculum.metrics())
    return logged


def test_the_sampler_concentrates_on_the_level_inside_the_band():
    curriculum = Curriculum(level_streams(), band=(0.1, 0.9), ema_weight=0.3, explore=0.05, seed=0)
    logged = run_draws(curriculum, 40)
    share = sum(m["curriculum/level_2/share"] for m in logged[5:]) / len(logged[5:])
    assert share > 0.85, f"level 2 drew {share:.0%} of the prompts after warm-up"
    last = logged[-1]
    assert last["curriculum/level_1/pass_rate"] > 0.9 and last["curriculum/level_3/pass_rate"] < 0.1
    assert 0.2 < last["curriculum/level_2/pass_rate"] < 0.8


@pytest.mark.parametrize("rates, expected", [((1.0, 0.95, 0.0), 2), ((0.0, 0.0, 0.0), 1), ((1.0, 1.0, 0.05), 3)])
def test_with_no_level_inside_the_band_it_takes_the_nearest(rates, expected):
    curriculum = Curriculum(level_streams(), band=(0.1, 0.9), ema_weight=0.3, explore=0.0, seed=0)
    curriculum.rates = dict(zip(curriculum.levels, rates))
    assert {curriculum.choose(Random(i)) for i in range(20)} == {expected}


def test_state_round_trips_through_json_and_continues_identically():
    def fresh():
        return Curriculum(level_streams(), band=(0.1, 0.9), ema_weight=0.3, explore=0.2, seed=3)

    straight = fresh()
    run_draws(straight, 6)
    saved = json.loads(json.dumps(straight.state_dict()))
    assert saved["position"] == 6 * 8
    resumed = fresh()
    resumed.load_state_dict(saved)
    assert run_draws(resumed, 5, seed=1) == run_draws(straight, 5, seed=1)
    assert [ex.id for ex in resumed.take(8)] == [ex.id for ex in straight.take(8)]


def test_levels_attribute_lists_the_difficulties_the_config_accepts():
    for env_id in ("arithmetic-v1", "codegen-v0", "calculator-v1", "sql-v2", "sql-mcp-v1"):
        env = rlhub.make(env_id)
        levels = levels_of(env)
        assert levels and list(levels) == list(range(1, len(levels) + 1))
        for level in levels:
            dataclasses.replace(env.config, difficulty=level).validate()
        with pytest.raises(ConfigError):
            dataclasses.replace(env.config, difficulty=levels[-1] + 1).validate()


def test_an_env_without_levels_is_refused_in_one_line():
    recipe = load_recipe(None, ["env.id=gsm8k-v1", "training.curriculum={}", "training.micro_batch_size=4"])
    with pytest.raises(ConfigError, match="no difficulty levels") as caught:
        check_supported(recipe, rlhub.make("gsm8k-v1"), served=False)
    assert "\n" not in str(caught.value)


def test_a_bad_band_is_a_clear_recipe_error():
    with pytest.raises(ConfigError, match=r"curriculum\.band"):
        load_recipe(None, ["training.curriculum={band: [0.9, 0.1]}"])


def test_resume_is_exact_with_curriculum_and_dynamic_sampling(tiny_run, tie_rewards, tmp_path):  # noqa: F811
    extra = {
        "rewards": {tie_rewards[0]: 1.0},
        "env.config": {},
        "algorithm.dynamic_sampling": {"max_draws": 3},
        "training.curriculum": {"explore": 0.5},
    }
    straight = run_tiny(tiny_run, tmp_path / "straight", 3, **extra)
    run_tiny(tiny_run, tmp_path / "split", 1, **extra)
    resumed = run_tiny(tiny_run, tmp_path / "split", 3, resume=True, **extra)
    # What the sampler decides and what it drew (the hack watch's windows are not part of the checkpoint).
    kept = ("reward", "completions/", "rewards/", "sampling/", "curriculum/", "losses/")
    sampled = lambda rows: {s: {k: v for k, v in r.items() if k.startswith(kept)} for s, r in rows.items()}
    assert sampled(resumed) == sampled(straight)
    assert groups_by_step(tmp_path / "split") == groups_by_step(tmp_path / "straight")
    assert sum(straight[1][f"curriculum/level_{k}/share"] for k in range(1, 6)) == pytest.approx(1.0)
    state = json.loads((tmp_path / "split/checkpoints/step-000003/state.json").read_text())
    assert set(state["curriculum"]) == {"rates", "positions", "draws"} and state["curriculum"]["draws"] >= 3
    digest = lambda d: (d / "final-params-rank0.sha256").read_text()
    assert digest(tmp_path / "split") == digest(tmp_path / "straight")
