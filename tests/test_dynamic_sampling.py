"""Dynamic sampling (algorithm.dynamic_sampling): groups whose rewards tie never reach the update."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from rlhub.errors import ConfigError
from rlhub.trainers import sampling
from rlhub.trainers.recipe import load_recipe

G = 4

# Prompts whose answer is odd always tie (0.5 for every completion); the others get a
# reward with spread on random text (the share of vowels).
TIE_REWARD = """
def tie_unless_even(completions, answer, **kwargs):
    out = []
    for c, a in zip(completions, answer):
        text = c if isinstance(c, str) else c[-1]["content"]
        out.append(0.5 if int(a) % 2 else sum(ch in "aeiou" for ch in text) / max(len(text), 1))
    return out


def always_tie(completions, **kwargs):
    return [0.25 for _ in completions]
"""


@pytest.fixture
def tie_rewards(tmp_path, monkeypatch):
    (tmp_path / "tie_rewards.py").write_text(TIE_REWARD)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "tie_rewards:tie_unless_even", "tie_rewards:always_tie"


def run_tiny(tiny_run, out: Path, steps: int, resume: bool = False, **extra):
    """A tiny run (tests/conftest.py), each step checkpointed and its groups logged; its metrics by step."""
    settings = {"algorithm.group_size": G, "training.save_every": 1, "logging.completions_every": 1}
    settings["monitor.rescore"] = 0
    tiny_run(out, steps, resume=resume, **settings, **extra)
    return {r["step"]: r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "reward" in r}


def groups_by_step(out: Path) -> dict[int, list[list[float]]]:
    """Each step's groups' rewards, from the completions table (G rows per prompt, in order)."""
    rows = defaultdict(list)
    for row in map(json.loads, (out / "completions.jsonl").read_text().splitlines()):
        rows[row["step"]].append(row["reward"])
    return {step: [r[i : i + G] for i in range(0, len(r), G)] for step, r in rows.items()}


def test_no_tied_group_reaches_the_update(tiny_run, tie_rewards, tmp_path):
    out = tmp_path / "run"
    rows = run_tiny(tiny_run, out, 2, rewards={tie_rewards[0]: 1.0}, **{"algorithm.dynamic_sampling": {"max_draws": 8}})
    for step, groups in groups_by_step(out).items():
        assert len(groups) == 2, step
        assert all(len(set(g)) > 1 for g in groups), f"step {step} trained on a tied group: {groups}"
    assert all(r["charts/zero_advantage_groups"] == 0.0 for r in rows.values())
    assert max(r["sampling/draws_per_step"] for r in rows.values()) > 1
    assert max(r["sampling/zero_variance_share"] for r in rows.values()) > 0


def test_max_draws_bounds_the_draws_and_pads_with_tied_groups(tiny_run, tie_rewards, tmp_path):
    out = tmp_path / "run"
    rows = run_tiny(tiny_run, out, 2, rewards={tie_rewards[1]: 1.0}, **{"algorithm.dynamic_sampling": {"max_draws": 3}})
    assert [r["sampling/draws_per_step"] for r in rows.values()] == [3.0, 3.0]
    assert [r["sampling/zero_variance_share"] for r in rows.values()] == [1.0, 1.0]
    assert [len(g) for g in groups_by_step(out).values()] == [2, 2]  # the step keeps its size
    state = json.loads((out / "checkpoints/step-000002/state.json").read_text())
    assert state["position"] == 2 * 3 * 2  # steps x draws x prompts: every drawn prompt is consumed


def test_off_by_default_draws_once_per_step(tiny_run, tie_rewards, tmp_path):
    default = run_tiny(tiny_run, tmp_path / "default", 2, rewards={tie_rewards[0]: 1.0})
    once = {"algorithm.dynamic_sampling": {"max_draws": 1}}
    one_draw = run_tiny(tiny_run, tmp_path / "one", 1, rewards={tie_rewards[0]: 1.0}, **once)
    assert not any(k.startswith("sampling/") for r in default.values() for k in r)
    state = json.loads((tmp_path / "default/checkpoints/step-000002/state.json").read_text())
    assert state["position"] == 2 * 2
    # One draw samples the prompts, with the same RNG, that the run without dynamic sampling trains on.
    assert one_draw[1]["sampling/draws_per_step"] == 1.0
    rewards = lambda out: sorted(r for g in groups_by_step(out)[1] for r in g)
    assert rewards(tmp_path / "one") == rewards(tmp_path / "default")


def test_resume_continues_exactly(tiny_run, tie_rewards, tmp_path):
    extra = {"rewards": {tie_rewards[0]: 1.0}, "algorithm.dynamic_sampling": {"max_draws": 4}}
    straight = run_tiny(tiny_run, tmp_path / "straight", 3, **extra)
    run_tiny(tiny_run, tmp_path / "split", 1, **extra)
    resumed = run_tiny(tiny_run, tmp_path / "split", 3, resume=True, **extra)
    keys = ("reward", "sampling/draws_per_step", "sampling/zero_variance_share", "completions/mean_length")
    assert [[r[k] for k in keys] for r in resumed.values()] == [[r[k] for k in keys] for r in straight.values()]
    digest = lambda d: (d / "final-params-rank0.sha256").read_text()
    assert digest(tmp_path / "split") == digest(tmp_path / "straight")


# --- the sampler alone, on scripted draws ------------------------------------------------------------
def scripted(batches: list[list[list[float]]]):
    """A draw function returning, in turn, batches of groups with the given rewards."""
    from rlhub.generation.rollout import Completion

    calls = iter(batches)

    def draw() -> sampling.Groups:
        groups = next(calls)
        completions = [
            Completion(prompt_index=i, token_ids=[i], logprobs=[0.0], text=f"{r}", finished=True)
            for i, g in enumerate(groups)
            for r in g
        ]
        rewards = torch.tensor([r for g in groups for r in g])
        examples = [f"prompt {g}" for g in groups]
        return sampling.Groups(examples, [[i] for i in range(len(groups))], completions, list(rewards), rewards)

    return draw


def one_process(values):
    return values


def test_fill_keeps_unequal_groups_first_and_repoints_completions():
    tied, a, b = [1.0, 1.0], [0.0, 1.0], [0.5, 0.0]
    draw = scripted([[tied, a], [tied, tied], [b, tied]])
    groups, metrics = sampling.fill(draw, size=2, group_size=2, max_draws=5, all_sum=one_process)
    assert groups.rewards.view(-1, 2).tolist() == [a, b]
    assert metrics == {"sampling/draws_per_step": 3.0, "sampling/zero_variance_share": 4 / 6}
    assert [groups.examples[c.prompt_index] for c in groups.completions] == [f"prompt {a}"] * 2 + [f"prompt {b}"] * 2


def test_fill_stops_at_max_draws_and_pads_with_ties():
    tied, a = [1.0, 1.0], [0.0, 1.0]
    draw = scripted([[tied, tied], [a, tied], [a, a]])
    groups, metrics = sampling.fill(draw, size=2, group_size=2, max_draws=2, all_sum=one_process)
    assert groups.rewards.view(-1, 2).tolist() == [a, tied]
    assert metrics["sampling/draws_per_step"] == 2.0


def test_fill_draws_again_while_another_process_is_short():
    a = [0.0, 1.0]
    draw = scripted([[a, a], [a, a], [a, a]])
    short_elsewhere = iter([1.0, 0.0])  # the other process is short after the first draw, full after the second

    def two_processes(values):
        if len(values) == 1:
            return [values[0] + next(short_elsewhere)]
        return [2 * v for v in values]

    groups, metrics = sampling.fill(draw, size=2, group_size=2, max_draws=5, all_sum=two_processes)
    assert metrics["sampling/draws_per_step"] == 2.0 and len(groups.examples) == 2


@pytest.mark.parametrize(
    "settings, fix",
    [
        ({"algorithm.group_size": 1, "algorithm.name": "ppo"}, "group_size"),
        ({"training.max_off_policy_steps": 1}, "max_off_policy_steps=0"),
    ],
)
def test_unsupported_combinations_are_refused_in_one_line(settings, fix):
    values = {"algorithm.dynamic_sampling": {"max_draws": 2}, "training.micro_batch_size": 4, **settings}
    recipe = load_recipe(None, values)
    with pytest.raises(ConfigError, match=fix) as caught:
        sampling.check_supported(recipe)
    assert "\n" not in str(caught.value)
