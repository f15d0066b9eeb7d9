"""Hack watch (trainers/monitor.py): each signal fires on a scripted run that shows it, once, and not on honest ones."""

from __future__ import annotations

import json
import logging
import os
from types import SimpleNamespace

import pytest

from rlhub.trainers.monitor import HackWatch
from rlhub.trainers.recipe import MonitorSection


class FakeEnv:
    """A rubric of correct + format; scores are whatever ``table`` says for a completion text."""

    def __init__(self, table=None, probes=None, drift: bool = False):
        self.rubric = SimpleNamespace(names=["correct", "format"])
        self.table = table or {}
        self._probes = probes
        self.drift = drift
        self.calls = 0

    def score_batch(self, completions, rows):
        self.calls += 1
        out = []
        for c in completions:
            correct, fmt = self.table.get(c, (0.0, 1.0))
            if self.drift:  # a reward with state: each call pays a little more
                correct += 0.1 * self.calls
            out.append(SimpleNamespace(reward=correct + 0.5 * fmt, rewards={"correct": correct, "format": fmt}))
        return out

    def __getattr__(self, name):
        if name == "probes" and self._probes is not None:
            return self._probes
        raise AttributeError(name)


def rows(n):
    return [SimpleNamespace(id=f"ex{i}") for i in range(n)]


def step_metrics(fmt=0.5, correct=0.2, length=30.0, clipped=0.0, reward=0.5):
    return {
        "reward": reward,
        "rewards/format/mean": fmt,
        "rewards/correct/mean": correct,
        "completions/mean_length": length,
        "completions/clipped_ratio": clipped,
    }


def quiet_step(watch, metrics):
    """One step with distinct, deterministic, zero-reward completions (only the metric signals can fire)."""
    texts = [f"answer {i}" for i in range(4)]
    scores = [SimpleNamespace(reward=0.0, rewards={"correct": 0.0, "format": 0.0}) for _ in texts]
    return watch.step(metrics, texts, rows(4), scores)


@pytest.fixture
def alerts():
    return []


def make_watch(alerts, env=None, **config):
    return HackWatch(MonitorSection(**config), env or FakeEnv(), alert=lambda title, text: alerts.append(title))


def test_format_rising_alone_fires_once(alerts, caplog):
    watch = make_watch(alerts)
    with caplog.at_level(logging.WARNING, logger="rlhub.trainers.monitor"):
        out = [quiet_step(watch, step_metrics(fmt=min(1.0, 0.4 + 0.1 * i), correct=0.2)) for i in range(12)]
    assert [o["monitor/format_only"] for o in out][:9] == [0.0] * 9
    assert out[-1]["monitor/format_only"] == 1.0
    assert alerts == ["rlhub hack watch: format_only"]  # warned once, though it stayed tripped
    assert sum("format_only" in r.message for r in caplog.records) == 1


def test_format_rising_with_correctness_is_quiet(alerts):
    watch = make_watch(alerts)
    out = [quiet_step(watch, step_metrics(fmt=min(1.0, 0.4 + 0.1 * i), correct=0.05 * i)) for i in range(12)]
    assert all(o["monitor/format_only"] == 0.0 for o in out) and not alerts


def test_length_collapse_and_length_at_limit(alerts):
    watch = make_watch(alerts)
    lengths = [40.0] * 5 + [30.0, 20.0, 10.0, 8.0, 6.0, 5.0, 5.0]
    out = [quiet_step(watch, step_metrics(length=n)) for n in lengths]
    assert out[-1]["monitor/length_collapse"] == 1.0 and out[4]["monitor/length_collapse"] == 0.0
    watch = make_watch(alerts)
    out = [quiet_step(watch, step_metrics(clipped=c)) for c in [0.1, 0.5, 0.95, 1.0, 1.0, 1.0, 0.9]]
    assert out[3]["monitor/length_at_limit"] == 0.0 and out[-1]["monitor/length_at_limit"] == 1.0
    assert alerts == ["rlhub hack watch: length_collapse", "rlhub hack watch: length_at_limit"]


def test_one_completion_for_many_prompts(alerts):
    watch = make_watch(alerts)
    same = "<answer>7</answer>"
    texts = [same, same + " ", "other", " " + same]  # whitespace does not hide a repeat
    scores = [SimpleNamespace(reward=0.0, rewards={"correct": 0.0, "format": 0.0})] * 4
    assert watch.step(step_metrics(), texts, rows(4), scores)["monitor/repeated_completion"] == 1.0
    watch = make_watch(alerts)
    # Repeats within one prompt's group (G samples of one prompt) are normal.
    group = [SimpleNamespace(id="ex0")] * 4 + [SimpleNamespace(id=f"ex{i}") for i in (1, 2, 3)]
    texts = [same] * 4 + ["a", "b", "c"]
    scores = [SimpleNamespace(reward=0.0, rewards={"correct": 0.0, "format": 0.0})] * 7
    assert watch.step(step_metrics(), texts, group, scores)["monitor/repeated_completion"] == 0.0


def test_rescore_catches_a_reward_with_state(alerts):
    honest = FakeEnv(table={"good": (1.0, 1.0)})
    watch = make_watch(alerts, env=honest)
    scores = honest.score_batch(["good", "x"], rows(2))
    assert watch.step(step_metrics(), ["good", "x"], rows(2), scores)["monitor/rescore_mismatch"] == 0.0
    drifting = FakeEnv(table={"good": (1.0, 1.0)}, drift=True)
    watch = make_watch(alerts, env=drifting)
    scores = drifting.score_batch(["good", "x"], rows(2))
    assert watch.step(step_metrics(), ["good", "x"], rows(2), scores)["monitor/rescore_mismatch"] == 1.0
    assert alerts == ["rlhub hack watch: rescore_mismatch"]


def test_rescore_catches_a_paid_probe(alerts):
    from rlhub.env import Probe

    hack = "<answer>3 + 4</answer>"
    env = FakeEnv(table={hack: (1.0, 1.0)}, probes=lambda row: [Probe("expression echo", [hack], about="echo")])
    watch = make_watch(alerts, env=env)
    scores = env.score_batch([hack, "y"], rows(2))
    out = watch.step(step_metrics(), [hack, "y"], rows(2), scores)
    assert out["monitor/rescore_mismatch"] == 1.0
    # The same probe, scored 0 as it should be: quiet.
    env = FakeEnv(table={hack: (0.0, 1.0)}, probes=lambda row: [Probe("expression echo", [hack])])
    watch = make_watch([], env=env)
    scores = env.score_batch([hack, "y"], rows(2))
    assert watch.step(step_metrics(), [hack, "y"], rows(2), scores)["monitor/rescore_mismatch"] == 0.0


def test_training_reward_up_while_eval_falls(alerts):
    watch = make_watch(alerts)
    assert watch.eval(0, {"eval/pass@1": 0.5}) == {"monitor/reward_up_eval_down": 0.0}
    for r in (0.2, 0.3):
        quiet_step(watch, step_metrics(reward=r))
    assert watch.eval(2, {"eval/pass@1": 0.5})["monitor/reward_up_eval_down"] == 0.0
    for r in (0.6, 0.7):
        quiet_step(watch, step_metrics(reward=r))
    assert watch.eval(4, {"eval/pass@1": 0.3})["monitor/reward_up_eval_down"] == 1.0
    assert alerts == ["rlhub hack watch: reward_up_eval_down"]


def test_disabled_watch_logs_nothing(alerts):
    watch = make_watch(alerts, enabled=False)
    assert quiet_step(watch, step_metrics()) == {}
    assert watch.eval(0, {"eval/pass@1": 0.1}) == {}


# --- through the real loop ---------------------------------------------------------------------------
DRIFTING_REWARD = """
CALLS = [0]

def drifting(completions, **kwargs):
    CALLS[0] += 1
    return [0.5 + 0.001 * CALLS[0] for _ in completions]
"""


@pytest.fixture
def drifting_reward(tmp_path, monkeypatch):
    (tmp_path / "monitor_drifting_reward.py").write_text(DRIFTING_REWARD)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    return "monitor_drifting_reward:drifting"


def watched_run(tiny_run, tmp_path, reward: str, caplog):
    """A tiny run (tests/conftest.py) on ``reward`` at the default learning rate, its hack watch's warnings caught."""
    values = {
        "rewards": {reward: 1.0},
        "training.micro_batch_size": 8,
        "training.learning_rate": 1e-5,
        "logging.completions_every": 0,
    }
    with caplog.at_level(logging.WARNING, logger="rlhub.trainers.monitor"):
        result = tiny_run(tmp_path / "run", **values)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return result, metrics


def test_the_loop_warns_on_a_reward_with_state(drifting_reward, tiny_run, tmp_path, caplog):
    result, metrics = watched_run(tiny_run, tmp_path, drifting_reward, caplog)
    assert [m["monitor/rescore_mismatch"] for m in metrics] == [1.0, 1.0]
    assert sum("hack watch: rescore_mismatch" in r.message for r in caplog.records) == 1
    assert result.summary["hack_watch"] == "rescore_mismatch"


def test_the_loop_is_quiet_on_an_honest_reward(spread_reward, tiny_run, tmp_path, caplog):
    result, metrics = watched_run(tiny_run, tmp_path, spread_reward, caplog)
    assert all(m["reward"] > 0 for m in metrics)  # so the top completions were re-scored
    assert all(m[f"monitor/{name}"] == 0.0 for m in metrics for name in ("rescore_mismatch", "repeated_completion"))
    assert "hack_watch" not in result.summary
    assert not [r for r in caplog.records if "hack watch" in r.message]


def test_a_resumed_watch_continues_the_run_it_was_saved_from(alerts):
    """The checkpoint holds the watch's history, evals and warnings (JSON): after a resume its windows
    fire at the same step as an uninterrupted run's, and a signal warned before the crash is not warned again."""
    series = [step_metrics(fmt=min(1.0, 0.4 + 0.1 * i), correct=0.2) for i in range(16)]
    whole = make_watch(alerts)
    expected = [quiet_step(whole, m)["monitor/format_only"] for m in series]
    assert expected.index(1.0) == 9  # fires after the crash point below, so only a carried history sees it

    first = make_watch(alerts)
    for m in series[:8]:
        quiet_step(first, m)
    saved = json.loads(json.dumps(first.state_dict()))
    resumed = make_watch(alerts)
    resumed.load_state_dict(saved)
    assert [quiet_step(resumed, m)["monitor/format_only"] for m in series[8:]] == expected[8:]
    fresh = make_watch(alerts)  # what resuming did before: the first window restarts at the crash
    assert 1.0 not in [quiet_step(fresh, m)["monitor/format_only"] for m in series[8:]]

    alerts.clear()
    again = make_watch(alerts)
    again.load_state_dict(json.loads(json.dumps(resumed.state_dict())))
    quiet_step(again, series[-1])
    assert alerts == []  # format_only was warned before the resume
    make_watch(alerts).load_state_dict(None)  # a checkpoint from before the watch was stored
