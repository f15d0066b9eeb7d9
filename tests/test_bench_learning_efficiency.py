"""bench/learning_efficiency.py: its arms are valid recipes, its uniform arm is uniform, its statistics are right."""

from random import Random

import pytest

from bench.common import QUICKSTART
from bench.learning_efficiency import ARMS, ENV_SETTINGS, efficiency, paired_interval
from rlhub.trainers.curriculum import Curriculum
from rlhub.trainers.recipe import load_recipe


@pytest.mark.parametrize("env_id", list(ENV_SETTINGS))
@pytest.mark.parametrize("arm", list(ARMS))
def test_each_arm_is_a_valid_recipe_for_each_env(env_id, arm):
    recipe = load_recipe(QUICKSTART, [f"env.id={env_id}", *ARMS[arm]])
    assert recipe.env.id == env_id and recipe.training.curriculum is not None
    assert (recipe.algorithm.dynamic_sampling is not None) == (arm == "adaptive")


def test_the_uniform_arms_band_keeps_every_level_inside_whatever_its_rate():
    """band [0, 1] is how the uniform arm draws levels uniformly: no running rate can leave it."""
    (band,) = [o for o in ARMS["uniform"] if o.startswith("training.curriculum")]
    low, high = load_recipe(QUICKSTART, [band]).training.curriculum.band
    curriculum = Curriculum({1: None, 2: None, 3: None}, band=(low, high), ema_weight=0.5, explore=0.0, seed=0)
    curriculum.rates = {1: 1.0, 2: 0.0, 3: 0.5}
    drawn = [curriculum.choose(Random(i)) for i in range(600)]
    assert {level: drawn.count(level) for level in (1, 2, 3)} == pytest.approx({1: 200, 2: 200, 3: 200}, abs=45)


def test_paired_interval_is_the_mean_with_a_normal_interval():
    mean, low, high = paired_interval([1.0, 0.0, 0.0, 1.0])
    assert mean == 0.5 and low == pytest.approx(0.5 - 1.959964 * (1 / 3) ** 0.5 / 2) and high == pytest.approx(1 - low)


def test_efficiency_ratio_and_its_interval():
    ids = [f"e{i}" for i in range(200)]
    base = dict.fromkeys(ids, 0.0)
    uniform = {i: float(k % 10 == 0) for k, i in enumerate(ids)}  # +0.10
    adaptive = {i: float(k % 5 == 0) for k, i in enumerate(ids)}  # +0.20
    report = efficiency(base, uniform, adaptive, seed=0)
    ratio, low, high = report["ratio"]
    assert ratio == pytest.approx(2.0) and low < 2.0 < high
    assert report["gain_uniform"][0] == pytest.approx(0.1) and report["gain_adaptive"][0] == pytest.approx(0.2)
    assert report["gain_difference"][0] == pytest.approx(0.1) and report["gain_difference"][1] > 0


def test_no_ratio_when_uniform_sampling_gained_nothing():
    ids = [f"e{i}" for i in range(50)]
    base = {i: float(k % 2) for k, i in enumerate(ids)}
    report = efficiency(base, dict(base), {i: 1.0 for i in ids}, seed=0)
    assert report["ratio"] is None and "not defined" in report["ratio_note"]
    assert report["gain_difference"][0] == pytest.approx(0.5)


def test_an_arm_stops_only_once_its_budget_is_spent_and_its_last_counted_step_is_checkpointed(tmp_path):
    from bench.learning_efficiency import budget_spent

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"charts/step_time": 30.0, "reward": 0.1}\n{"eval/pass": 1}\n')
    assert not budget_spent(tmp_path, budget=60)  # 30 s trained
    metrics.write_text(metrics.read_text() + '{"charts/step_time": 40.0}\n{"charts/step_t')  # a line being written
    assert not budget_spent(tmp_path, budget=60)  # 70 s, but step 2 is not checkpointed yet
    for step in (1, 2):
        (tmp_path / "checkpoints" / f"step-{step:06d}").mkdir(parents=True)
        (tmp_path / "checkpoints" / f"step-{step:06d}" / "state.json").write_text("{}")
        (tmp_path / "checkpoints" / "latest").write_text(f"step-{step:06d}")
        assert budget_spent(tmp_path, budget=60) == (step == 2)


def _report(uniform_gain: float) -> dict:
    """A result as `main` writes it, for one env, with the statistics computed by `efficiency`."""
    ids = [f"e{i}" for i in range(100)]
    base = dict.fromkeys(ids, 0.0)
    uniform = {i: float(k < 100 * uniform_gain) for k, i in enumerate(ids)}
    adaptive = {i: float(k < 30) for k, i in enumerate(ids)}
    stats = efficiency(base, uniform, adaptive, seed=0)
    arms = {arm: {"steps": steps, "dtype": "float32"} for arm, steps in (("uniform", 18), ("adaptive", 12))}
    pass_at_1 = {"base": 0.0, "uniform": uniform_gain, "adaptive": 0.3}
    return {
        "budget_s": 600.0,
        "n": 100,
        "envs": {"arithmetic-v1": {"arms": arms, "pass_at_1": pass_at_1, **stats}},
        "machine": {"cpu": "AMD EPYC", "cpu_isa": ["avx2"]},
    }


def test_the_result_becomes_a_performance_table_row_with_its_ratio_steps_and_precision():
    from bench import report

    figures = report.figures("learning_efficiency", _report(0.2))
    (row,) = report.ROWS["learning_efficiency"](figures)
    assert "`arithmetic-v1`" in row.what and "600 s" in row.what and "100 test examples" in row.what
    assert row.anchor.startswith("uniform level sampling: 0.200, gain +0.200 [") and row.anchor.endswith("18 steps")
    assert "0.300, gain +0.300 [" in row.rlhub and row.rlhub.endswith("12 steps")
    assert row.ratio.startswith("1.50x [") and row.precision == "float32"
    (row,) = report.ROWS["learning_efficiency"](report.figures("learning_efficiency", _report(0.0)))
    assert row.ratio.startswith("not defined (uniform gained nothing); gain difference +0.300 [")


def test_every_benchmark_of_the_suite_has_headline_figures_and_table_rows():
    """A benchmark without them ran to its end and was then marked failed ("lacks a headline figure")."""
    from bench import report
    from bench.__main__ import BENCHMARKS

    assert set(BENCHMARKS) == set(report.FIGURES) == set(report.ROWS)


def test_refigure_recomputes_a_finished_run_marked_failed_for_its_figures(tmp_path):
    """`python -m bench --refigure`: what a 70-minute run measured is not lost when only its report step failed."""
    import json
    import subprocess
    import sys

    from bench.common import ROOT

    (tmp_path / "learning_efficiency.json").write_text(json.dumps(_report(0.2)))
    lost = {
        "status": "failed",
        "error": "learning_efficiency.json lacks a headline figure: KeyError()",
        "returncode": 0,
        "json": "learning_efficiency.json",
        "figures": None,
    }
    crashed = {"status": "failed", "error": "exit code 1", "returncode": 1, "json": "sandbox.json", "figures": None}
    (tmp_path / "summary.json").write_text(
        json.dumps({"quick": False, "benchmarks": {"learning_efficiency": lost, "sandbox": crashed}})
    )
    command = [sys.executable, "-m", "bench", "--refigure", "--out", str(tmp_path)]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 1 and "sandbox: its run did not finish" in out.stderr  # the crashed one stays failed
    entries = json.loads((tmp_path / "summary.json").read_text())["benchmarks"]
    assert entries["learning_efficiency"]["status"] == "ok" and entries["learning_efficiency"]["error"] is None
    figures = entries["learning_efficiency"]["figures"]
    assert figures["envs"]["arithmetic-v1"]["steps"] == {"uniform": 18, "adaptive": 12}
    assert entries["sandbox"] == crashed


def test_a_kept_workdir_reuses_finished_arms_and_evals(tmp_path, monkeypatch):
    """--workdir: a run cut off (the suite's time limit, a crash) resumes without training or evaluating again."""
    import json
    from argparse import Namespace

    from bench import learning_efficiency as le

    def must_not_run(command, log, stop_when=None):
        raise AssertionError(f"ran {command[3:5]} again")

    monkeypatch.setattr(le, "run", must_not_run)
    args = Namespace(budget=60.0, n=10, seed=0, overrides=[], model=None, recipe=str(QUICKSTART))
    out = tmp_path / "arithmetic-v1-uniform"
    (out / "checkpoints" / "step-000002" / "adapter").mkdir(parents=True)
    (out / "checkpoints" / "step-000002" / "state.json").write_text("{}")  # what marks a checkpoint complete
    (out / "metrics.jsonl").write_text('{"charts/step_time": 40.0}\n{"charts/step_time": 30.0}\n')
    (out / "recipe.json").write_text(json.dumps({"model": {"dtype": "float32"}}))
    arm = le.train_arm(args, "arithmetic-v1", "uniform", tmp_path)
    assert arm["steps"] == 2 and arm["step_s"] == 70.0 and arm["wall_s"] is None and arm["dtype"] == "float32"
    for level in range(1, 6):  # arithmetic-v1's five levels, 2 examples each
        folder = tmp_path / f"eval-base-arithmetic-v1-level{level}"
        folder.mkdir()
        records = [{"id": f"t{i}", "passed": float(level == 1)} for i in range(2)]
        (folder / "eval.json").write_text(json.dumps({"records": records}))
    passed = le.evaluate(args, "arithmetic-v1", "base-model", tmp_path, "base")
    assert passed == {f"{level}/t{i}": float(level == 1) for level in range(1, 6) for i in range(2)}
    (tmp_path / "eval-base-arithmetic-v1-level5" / "eval.json").unlink()  # an eval cut off runs again
    with pytest.raises(AssertionError, match="ran"):
        le.evaluate(args, "arithmetic-v1", "base-model", tmp_path, "base")
