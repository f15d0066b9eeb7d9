"""trainer_vs_trl always reports: an arm that runs out of its budget (or dies) says so beside the others' figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a folder of the checkout, not an installed package
    sys.path.append(str(ROOT))

from bench import report, trainer_vs_trl  # noqa: E402
from bench.__main__ import BENCHMARKS  # noqa: E402
from bench.common import LOAD_TIMEOUT_S  # noqa: E402

# Stand-in trainers on a fake turn clock that only a step moves: a "fast" step takes 0.1 s, a "slow" one 0.2 s,
# whatever the machine's load. Each reports the model.dtype its arm was given.
STAND_INS = """
import time

now = [0.0]
time.perf_counter = lambda: now[0]


def _train(settings, turns, seconds, crash_at=None):
    dtype = [o.split("=", 1)[1] for o in settings.overrides if o.startswith("model.dtype=")][-1]
    turns.ready(settings={"dtype": dtype})
    for step in range(1, settings.max_steps + 1):
        if step == crash_at:
            raise MemoryError("out of memory")
        now[0] += seconds
        turns.step({"step": step, "samples": 4, "step_s": seconds, "reward": 0.5, "mean_length": 10.0})


def fast(settings, workdir, turns):
    _train(settings, turns, 0.1)


def slow(settings, workdir, turns):
    _train(settings, turns, 0.2)


def crashes(settings, workdir, turns):
    _train(settings, turns, 0.1, crash_at=2)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "trl, steps_run, stopped",
    [
        ("slow", 2, "budget reached during a step (it ended late, not counted)"),  # 0.2 + 0.2 + 0.2 > 0.45 s
        ("crashes", 1, "exited during step 2: trl exited (code 1) mid-run"),
    ],
)
def test_an_arm_that_runs_out_is_reported_beside_the_others_figures(trl, steps_run, stopped, tmp_path, monkeypatch):
    (tmp_path / "stand_in_trainers.py").write_text(STAND_INS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("RLHUB_AUTO_DTYPE", "bfloat16")  # what --dtype auto resolves to, without measuring
    monkeypatch.setattr(
        trainer_vs_trl,
        "ARM_TRAINERS",
        {"rlhub": "stand_in_trainers:fast", "rlhub_fp32": "stand_in_trainers:fast", "trl": f"stand_in_trainers:{trl}"},
    )
    monkeypatch.setattr(trainer_vs_trl, "matmul_tflops", lambda threads: {"float32": 0.1, "bfloat16": 0.3})
    monkeypatch.setattr(trainer_vs_trl, "work_per_token", lambda recipe, n: (1_000_000, [20] * n))
    path = tmp_path / "out.json"
    argv = ["--steps", "2", "--warmup", "1", "--threads", "1", "--budget", "0.45", "--json", str(path)]
    out = trainer_vs_trl.main(argv)

    assert json.loads(path.read_text()) == json.loads(json.dumps(out))
    results = out["results"]
    for name in ("rlhub", "rlhub_fp32"):  # 3 steps x 0.1 s: done within 0.45 s, figures intact
        arm = results[name]
        assert (arm["complete"], arm["steps_run"], arm["stopped"]) == (True, 3, "3 steps done")
        assert arm["samples_per_s"] == pytest.approx(4 / 0.1) and arm["mean_reward"] == 0.5
    assert (results["trl"]["complete"], results["trl"]["steps_run"]) == (False, steps_run)
    assert results["trl"]["stopped"].startswith(stopped)
    assert out["ratios_rlhub_over_rlhub_fp32"]["samples_per_s"] == pytest.approx(1.0)
    assert out["arms_complete"] is False and out["targets"]["reward_not_lower_met"] is None
    # --dtype auto: resolved once, by the recipes' resolver, and the arm trained in the dtype the JSON names.
    assert results["rlhub"]["dtype"] == results["rlhub"]["settings"]["dtype"] == "bfloat16"
    assert out["settings"]["rlhub_dtype"]["requested"] == "auto" and out["settings"]["dtype"] == "bfloat16"

    figures = report.figures("trainer_vs_trl", out)
    assert figures["rlhub_samples_per_s"] == pytest.approx(40.0)
    assert figures["stopped_arms"] == {"trl": f"{steps_run} of 3 steps: {results['trl']['stopped'].splitlines()[0]}"}
    rows = report.rows({"benchmarks": {"trainer_vs_trl": {"status": "ok", "figures": figures}}})
    assert rows[-1][:3] == ("`trl` arm stopped early", "-", figures["stopped_arms"]["trl"])
    assert rows[1].target == "≥ TRL's: n/a"  # rewards after different numbers of steps are not compared


def test_the_suite_gives_trainer_vs_trl_more_time_than_its_arms_budgets():
    """A budget, not the suite's kill, ends a slow arm, so the benchmark still writes its figures."""
    bench = BENCHMARKS["trainer_vs_trl"]
    budgets = len(trainer_vs_trl.ARMS) * trainer_vs_trl.ARM_BUDGET_S
    assert "--budget" not in bench.full and bench.timeout_s >= budgets + LOAD_TIMEOUT_S + trainer_vs_trl.SET_UP_S
    assert trainer_vs_trl.parse_args([]).dtype == "auto"
