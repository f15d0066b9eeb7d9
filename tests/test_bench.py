"""The benchmark suite's plumbing: turn-taking between trainer processes, the figures, the README table.

No timings are asserted: these check that the machinery measures what it says, on stand-in trainers
and sample results, in a few seconds.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a folder of the checkout, not an installed package
    sys.path.append(str(ROOT))

from bench import common, report  # noqa: E402
from bench.common import TrainerRun, TrainerSettings, take_turns  # noqa: E402
from bench.learning_curves import curve_figures  # noqa: E402
from bench.learning_curves import summarize as summarize_curve  # noqa: E402
from bench.trainer_vs_trl import summarize as summarize_speed  # noqa: E402

STAND_IN = '''
import time


def train(settings, workdir, turns):
    """Sleeps 0.1 s x step number per step; the reward is the step number over 10."""
    turns.ready(settings={"name": "stand-in"})
    for step in range(1, settings.max_steps + 1):
        started = time.time()
        time.sleep(0.1 * step)
        turns.step({"step": step, "samples": 4, "step_s": 0.1 * step, "reward": step / 10, "started": started})
'''


@pytest.fixture
def stand_in(tmp_path, monkeypatch) -> str:
    """A trainer module the child processes can import: ``stand_in_trainer:train``."""
    (tmp_path / "stand_in_trainer.py").write_text(STAND_IN)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return "stand_in_trainer:train"


@pytest.mark.slow
def test_take_turns_alternates_trainers_step_by_step(stand_in, tmp_path):
    settings = TrainerSettings(max_steps=10)
    runs = take_turns({"a": (stand_in, settings), "b": (stand_in, settings)}, tmp_path, steps=3)
    assert [len(r.steps) for r in runs.values()] == [3, 3]
    assert runs["a"].ready["settings"] == {"name": "stand-in"}
    starts = sorted((s["started"], name) for name, r in runs.items() for s in r.steps)
    assert [name for _, name in starts] == ["a", "b", "b", "a", "a", "b"]
    for run in runs.values():
        assert run.stopped == "3 steps done"
        # Each turn is timed from "go" to the report: at least the step's sleep, and the elapsed time adds up.
        assert all(s["turn_s"] >= s["step_s"] for s in run.steps)
        assert run.elapsed_s == pytest.approx(sum(s["turn_s"] for s in run.steps))
        assert run.steps[-1]["elapsed_s"] == pytest.approx(run.elapsed_s)


# The child's turn clock (time.perf_counter) is a fake that only a step's work moves: step n "takes"
# 0.1 x n s, whatever the machine's load. The third step either ends late or never reports (LAST_STEP).
FAKE_CLOCK_STAND_IN = """
import os
import time

now = [0.0]
time.perf_counter = lambda: now[0]


def train(settings, workdir, turns):
    turns.ready(settings={"name": "fake-clock"})
    for step in range(1, settings.max_steps + 1):
        if step == 3 and os.environ["LAST_STEP"] == "hang":
            time.sleep(3600)
        now[0] += 0.1 * step
        turns.step({"step": step, "samples": 4, "step_s": 0.1 * step, "reward": step / 10, "started": now[0]})
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "last_step, stopped",
    [
        ("late", "budget reached during a step (it ended late, not counted)"),
        ("hang", "budget reached during a step (cut off, not counted)"),
    ],
)
def test_take_turns_cuts_off_the_step_running_at_the_budget(last_step, stopped, tmp_path, monkeypatch):
    # Steps take 0.1, 0.2, 0.3 s: the first two end by 0.3 s, the third would end at 0.6 s, past 0.45 s.
    (tmp_path / "fake_clock_trainer.py").write_text(FAKE_CLOCK_STAND_IN)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    settings = TrainerSettings(max_steps=10, environment={"LAST_STEP": last_step})
    started = time.perf_counter()
    runs = take_turns({"a": ("fake_clock_trainer:train", settings)}, tmp_path, budget_s=0.45)
    assert [(s["step"], s["turn_s"], s["elapsed_s"]) for s in runs["a"].steps] == [
        (1, pytest.approx(0.1), pytest.approx(0.1)),
        (2, pytest.approx(0.2), pytest.approx(0.3)),
    ]
    assert runs["a"].elapsed_s == 0.45 and runs["a"].stopped == stopped
    assert time.perf_counter() - started < 120  # a step that never reports is killed, not waited an hour for


@pytest.mark.slow
def test_take_turns_stops_at_the_trainers_own_end(stand_in, tmp_path):
    runs = take_turns({"a": (stand_in, TrainerSettings(max_steps=2))}, tmp_path, steps=5)
    assert len(runs["a"].steps) == 2
    assert runs["a"].stopped == "finished its max_steps"


def test_a_crashing_trainer_fails_with_its_log(tmp_path, monkeypatch):
    (tmp_path / "crashing_trainer.py").write_text(
        "def train(settings, workdir, turns):\n    raise ValueError('boom')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"exited \(code 1\)[\s\S]*ValueError: boom"):
        take_turns({"a": ("crashing_trainer:train", TrainerSettings())}, tmp_path, steps=1)


def test_curve_figures_hold_each_reward_over_its_step():
    points = [(10.0, 0.2), (30.0, 0.6), (70.0, 1.0)]
    got = curve_figures(points, budget=80.0)
    # 0.2 over [0, 10], 0.6 over [10, 30], 1.0 over [30, 70] and held to 80: (2 + 12 + 40 + 10) / 80.
    assert got["auc_per_s"] == pytest.approx(64 / 80)
    assert got["reward_at_budget"] == 1.0  # only the step ending at 70 s lies in the last quarter (60, 80]
    assert curve_figures([], budget=80.0) == {"reward_at_budget": None, "auc_per_s": None}


def step(n: int, turn_s: float, reward: float) -> dict:
    return {"step": n, "samples": 16, "turn_s": turn_s, "step_s": turn_s - 0.1, "reward": reward, "mean_length": 20.0}


def test_speed_summary_leaves_the_warmup_out_of_the_timing_but_not_the_reward():
    run = TrainerRun("rlhub", {"settings": {}}, [step(1, 30.0, 0.0), step(2, 4.0, 0.5), step(3, 4.0, 1.0)])
    got = summarize_speed(run, warmup=1)
    assert got["steps_timed"] == 2
    assert got["s_per_step"] == pytest.approx(4.0)
    assert got["samples_per_s"] == pytest.approx(32 / 8.0)
    assert got["mean_reward"] == pytest.approx(0.5)


def test_learning_summary_counts_steps_and_samples():
    steps = [{**step(i, 10.0, r), "elapsed_s": 10.0 * i} for i, r in enumerate([0.1, 0.3, 0.5], start=1)]
    got = summarize_curve(TrainerRun("trl", {"settings": {}}, steps, 40.0, "budget reached"), budget=40.0)
    assert (got["steps"], got["samples"], got["first_reward"]) == (3, 48, 0.1)
    assert got["auc_per_s"] == pytest.approx((1 + 3 + 5 + 5) / 40)
    assert [p["elapsed_s"] for p in got["curve"]] == [10.0, 20.0, 30.0]


# --- the summary and the README table ------------------------------------------------------------------
FIGURES = {
    "trainer_vs_trl": {
        "prompts": 2,
        "group": 8,
        "max_new_tokens": 48,
        "steps_timed": 4,
        "warmup_steps": 1,
        "threads": 2,
        "trl_version": "1.16.0",
        "rlhub_samples_per_s": 1.6,
        "trl_samples_per_s": 0.4,
        "rlhub_s_per_step": 10.0,
        "trl_s_per_step": 40.0,
        "samples_per_s_ratio": 4.0,
        "rlhub_mean_reward": 0.45,
        "trl_mean_reward": 0.5,
    },
    "learning_curves": {
        "budget_s": 300.0,
        "prompts": 4,
        "group": 8,
        "max_new_tokens": 64,
        "rlhub_steps": 25,
        "rlhub_reward_at_budget": 0.9,
        "rlhub_auc_per_s": 0.8,
        "trl_steps": 4,
        "trl_reward_at_budget": 0.5,
        "trl_auc_per_s": 0.4,
        "png": "learning_curves.png",
    },
    "sandbox": {"n": 1000, "workers": 2, "pool_per_s": 350.0, "bwrap_per_s": 100.0, "bare_per_s": 200.0},
    "math_verification": {
        "pairs": 3449,
        "math_equal_per_s": 5500.0,
        "math_equal_batch_per_s": 8500.0,
        "math_verify_per_s": 650.0,
        "math_equal_accuracy": 0.9997,
        "math_verify_accuracy": 0.966,
        "agreement": 0.97,
    },
    "overhead": {
        "steps_timed": 2,
        "arithmetic_reward_share": 0.00004,
        "arithmetic_reward_ms_per_step": 0.6,
        "codegen_reward_share": 0.08,
        "codegen_reward_ms_per_sample": 60.0,
        "beta": 0.04,
        "peak_rss_compared": "first step (same completions)",
        "peak_rss_mb": 2400.0,
        "peak_rss_kl_mb": 2500.0,
        "peak_rss_kl_delta_mb": 100.0,
        "kl_s_per_step_ratio": 1.3,
    },
}
SUMMARY = {
    "date": "2026-11-22",
    "quick": False,
    "machine": {
        "cpu": "AMD EPYC",
        "cores_usable": 2,
        "ram_gb": 23.4,
        "python": "3.11.7",
        "torch": "2.13.0+cpu",
        "git_commit": "0123456789abcdef",
        "git_dirty": False,
    },
    "benchmarks": {
        name: {"status": "ok", "date": "2026-11-22", "wall_s": 120.0, "git_commit": "0123456789abcdef", "figures": f}
        for name, f in FIGURES.items()
    },
}


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| what")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_render_table_states_each_figure_ratio_and_target():
    text = report.render_table(SUMMARY)
    assert text.startswith(report.TABLE_START) and text.rstrip().endswith(report.TABLE_END)
    assert (
        "2026-11-22, last on AMD EPYC, ISA not recorded, 2 cores, 23 GB RAM" in text
        and "commit 0123456" in text
        and "10 min" in text
    )
    rows = table_rows(text)
    assert len(rows) == 9 and all(len(r) == 7 for r in rows)
    speed, reward, learning, pool, bare, math_speed, math_accuracy, reward_share, memory = rows
    assert speed[1:5] == [
        "TRL 1.16.0 `GRPOTrainer`: 0.40/s (40.0 s/step)",
        "1.60/s (10.0 s/step)",
        "4.0x",
        "≥ 1.5x: met",
    ]
    assert reward[3:5] == ["-0.050 (difference)", "≥ TRL's: **not met**"]
    assert learning[3] == "2.00x (time-averaged reward)"
    assert learning[2] == "reward 0.90 at the budget, 0.80 averaged over it, 25 steps"
    assert learning[1] == "TRL: reward 0.50 at the budget, 0.40 averaged over it, 4 steps"
    assert learning[0].endswith("300 s of training each ([curves](bench/results/learning_curves.png))")
    assert pool[2:5] == ["warm bwrap pool: 350/s", "3.5x", "≥ 400/s: **not met**"]
    assert bare[3] == "1.8x"
    assert math_speed[3:5] == ["8.5x; 13.1x", "≥ 5x: met"]
    assert math_accuracy[2:5] == ["`math_equal`: 99.97% (verdicts agree on 97.00%)", "+3.37 points", "not lower: met"]
    assert reward_share[2] == (  # figures without an env id were measured on arithmetic-v0
        "`arithmetic-v0`: < 0.01% (0.6 ms/step); `codegen-v0` (tests in the sandbox): 8.00% (60 ms/completion)"
    )
    assert memory[0].endswith("first step (same completions)")
    assert memory[1:4] == [
        "beta=0: 2,400 MiB",
        "beta=0.04 (KL to the adapter-off base model): 2,500 MiB",
        "+100 MiB; step time 1.30x",
    ]


def _arm(samples_per_s: float, reward: float, tflops: float, rss: float, dtype: str) -> dict:
    return {
        "samples_per_s": samples_per_s,
        "s_per_step": 16 / samples_per_s,
        "mean_reward": reward,
        "achieved_tflops": tflops,
        "peak_rss_mb": rss,
        "dtype": dtype,
    }


def test_the_bf16_arm_and_the_matmul_ceiling_get_their_rows():
    """Issue 15: rlhub in bf16 against rlhub in float32, and the fraction of the bf16 matmul rate reached."""
    result = {
        "settings": {
            "prompts_per_step": 2,
            "group_size": 8,
            "max_new_tokens": 48,
            "steps_timed": 4,
            "warmup_steps": 1,
            "torch_threads": 2,
            "versions": {"trl": "1.16.0"},
        },
        "machine": {"matmul_tflops": {"float32": 0.2, "bfloat16": 0.5}},
        "results": {
            "rlhub": _arm(3.2, 0.5, 0.05, 1500.0, "bfloat16"),
            "rlhub_fp32": _arm(1.6, 0.45, 0.025, 2500.0, "float32"),
            "trl": _arm(0.4, 0.4, 0.01, 9000.0, "float32"),
        },
        "ratios_rlhub_over_trl": {"samples_per_s": 8.0},
        "ratios_rlhub_over_rlhub_fp32": {"samples_per_s": 2.0},
    }
    f = report.figures("trainer_vs_trl", result)
    assert (f["fp32_ratio"], f["rlhub_tflops"], f["trl_peak_rss_mb"]) == (2.0, 0.05, 9000.0)
    summary = copy.deepcopy(SUMMARY)
    summary["benchmarks"]["trainer_vs_trl"]["figures"] = f
    rows = table_rows(report.render_table(summary))
    assert len(rows) == 12
    speed, ceiling, memory = rows[2:5]
    assert speed[0].startswith("same steps, rlhub in bfloat16 against rlhub in float32")
    assert speed[1:5] == [
        "rlhub float32: 1.60/s (10.0 s/step), reward 0.450",
        "3.20/s, reward 0.500",
        "2.00x",
        "≥ 2.5x: **not met**",
    ]
    assert ceiling[2:5] == ["0.050 TFLOP/s", "10.0% of the bf16 rate", "≥ 20%: **not met**"]
    assert memory[1:3] == ["rlhub float32: 2,500 MiB; TRL: 9,000 MiB", "1,500 MiB"]
    del result["results"]["rlhub_fp32"]  # a result from before the third arm: the rows are left out
    assert "fp32_ratio" not in report.figures("trainer_vs_trl", result)


def test_the_micro_batch_row_states_both_sizes_and_the_memory_target():
    summary = copy.deepcopy(SUMMARY)
    micro = {"micro_batch_size": 4, "micro_batch_compared": "first step", "peak_rss_mb16_mb": 4500.0}
    summary["benchmarks"]["overhead"]["figures"].update(micro, mb16_s_per_step_ratio=1.25)
    row = table_rows(report.render_table(summary))[-1]
    assert row[1:5] == [
        "16 (before): 4,500 MiB",
        "4 (the recipe now): 2,400 MiB",
        "0.53x the memory; step time 0.80x",
        "≤ 1.5 GiB: **not met**",
    ]
    summary["benchmarks"]["overhead"]["figures"].update(peak_rss_mb=1500.0, micro_batch_size=None)
    row = table_rows(report.render_table(summary))[-1]
    assert row[2] == "the recipe's (now): 1,500 MiB" and row[4] == "≤ 1.5 GiB: met"


def test_a_failed_benchmark_is_one_row_with_its_last_error_line():
    summary = copy.deepcopy(SUMMARY)
    summary["benchmarks"]["sandbox"] = {
        "status": "failed",
        "date": "2026-11-22",
        "wall_s": 1.0,
        "error": "a\nneeds bwrap",
    }
    rows = table_rows(report.render_table(summary))
    assert len(rows) == 8
    assert ["`sandbox`", "-", "failed: needs bwrap", "-", "-", "-", "-"] in rows


def test_quick_results_say_so():
    assert "Quick mode" in report.render_table({**SUMMARY, "quick": True})
    assert "Quick mode" not in report.render_table(SUMMARY)


def test_readme_block_is_found_between_the_markers():
    block = report.render_table(SUMMARY)
    assert report.readme_block(f"## Performance\n\n{block}\n## Layout\n") == block
    assert report.readme_block("## Performance\n\n| what | anchor |\n") is None


def test_table_command_prints_the_rendered_summary(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--table", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == report.render_table(SUMMARY)
    missing = subprocess.run(
        [sys.executable, "-m", "bench", "--table", "--out", str(tmp_path / "none")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "run `python -m bench` first" in missing.stderr


@pytest.mark.slow
def test_suite_runs_a_benchmark_in_its_own_process_and_merges_the_summary(tmp_path):
    from rlhub.sandbox import bwrap_problem

    if bwrap_problem():
        pytest.skip(f"the sandbox benchmark needs bwrap: {bwrap_problem()}")
    kept = {"status": "ok", "date": "2026-01-01", "wall_s": 5.0, "figures": FIGURES["math_verification"]}
    (tmp_path / "summary.json").write_text(json.dumps({"quick": True, "benchmarks": {"math_verification": kept}}))
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "sandbox", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["benchmarks"]) == ["sandbox", "math_verification"]  # the suite's order; the old entry kept
    assert summary["benchmarks"]["math_verification"] == kept
    entry = summary["benchmarks"]["sandbox"]
    assert entry["status"] == "ok" and entry["command"] == "python -m bench.sandbox --n 100"
    assert entry["peak_rss_mb"] > 0 and entry["figures"]["n"] == 100 and entry["figures"]["pool_per_s"] > 0
    assert summary["quick"] and summary["machine"]["cores"] >= 1
    assert (tmp_path / "sandbox.json").is_file() and "warm pool" in (tmp_path / entry["log"]).read_text()
    assert "Quick mode" in report.render_table(summary)


def test_readme_performance_table_matches_the_checked_in_results():
    summary_path = ROOT / "bench" / "results" / "summary.json"
    if not summary_path.is_file():
        pytest.skip("bench/results/summary.json is not checked in yet: run `python -m bench`")
    summary = json.loads(summary_path.read_text())
    assert not summary["quick"], "bench/results/summary.json holds a --quick run; run the full `python -m bench`"
    readme = (ROOT / "README.md").read_text()
    block = report.readme_block(readme)
    assert block is not None, "README.md has no Performance table block; paste the output of `python -m bench --table`"
    for marker in (report.TABLE_START, report.TABLE_END):
        # A pasted block once left two stray end markers below the table, which the check above never reads.
        assert readme.count(marker) == 1, f"README.md has {readme.count(marker)} of {marker!r}; keep exactly one"
    assert block == report.render_table(summary), "README's Performance table is stale: paste `python -m bench --table`"


def test_the_table_names_the_cpus_instruction_sets_when_recorded():
    # "AMD EPYC" alone covered AVX2-only and AVX512-BF16 machines, where bf16 runs 4x slower or 1.6x faster.
    assert report.cpu_label({"cpu": "AMD EPYC", "cpu_isa": ["avx2", "avx512_bf16", "avx512f"]}) == (
        "AMD EPYC, AVX-512+BF16"
    )
    assert report.cpu_label({"cpu": "AMD EPYC"}) == "AMD EPYC, ISA not recorded"
    assert "cpu_isa" in common.machine_info()


def test_reported_settings_name_the_precision_auto_resolved_to(monkeypatch):
    """The overhead rows once said "auto" in the precision column: a report states the dtype the run trained in."""
    from rlhub.trainers.recipe import load_recipe

    monkeypatch.setenv("RLHUB_AUTO_DTYPE", "float32")
    assert common.describe(load_recipe(common.QUICKSTART, ["model.dtype=auto"]))["dtype"] == "float32"
    monkeypatch.setenv("RLHUB_AUTO_DTYPE", "bfloat16")
    assert common.describe(load_recipe(common.QUICKSTART, ["model.dtype=auto"]))["dtype"] == "bfloat16"
    assert common.describe(load_recipe(common.QUICKSTART, ["model.dtype=float32"]))["dtype"] == "float32"
