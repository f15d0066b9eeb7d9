"""The hub benchmark: both arms measured in one run, the figures and the table's rows with the batch-64 target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a folder of the checkout, not an installed package
    sys.path.append(str(ROOT))

from bench import report  # noqa: E402
from bench.__main__ import BENCHMARKS  # noqa: E402

FIGURES = {
    "env": "hub-bench-v0",
    "rounds": 5,
    "in_process_per_s": {"1": 50000.0, "64": 40000.0},
    "sandbox_per_s": {"1": 500.0, "64": 24000.0},
    "ratio": {"1": 0.01, "64": 0.6},
    "sandbox_start_s": 1.5,
}


def test_rows_state_both_batch_sizes_and_judge_batch_64():
    one, sixty_four = report.ROWS["hub"](FIGURES)
    assert "batches of 1," in one[0] and list(one[1:5]) == [
        "in-process (trusted): 50,000/s",
        "in its sandbox: 500/s",
        "0.01x",
        "-",
    ]
    assert list(sixty_four[3:5]) == ["0.60x", "≥ 0.5x: met"]
    slow = {**FIGURES, "ratio": {"1": 0.01, "64": 0.3}}
    assert report.ROWS["hub"](slow)[1][4] == "≥ 0.5x: **not met**"


@pytest.mark.slow
def test_the_benchmark_measures_both_arms_in_one_run(tmp_path):
    from rlhub.sandbox import bwrap_problem

    if bwrap_problem():
        pytest.skip(f"the hub benchmark needs bwrap: {bwrap_problem()}")
    out = tmp_path / "hub.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.hub", "--budget", "0.05", "--rounds", "2", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["completions_per_s"]) == {"in-process", "sandbox"}
    assert all(len(rounds) == 2 for arm in result["completions_per_s_by_round"].values() for rounds in arm.values())
    assert set(result["ratio_sandbox_over_in_process"]) == {"1", "64"}
    assert all(ratio > 0 for ratio in result["ratio_sandbox_over_in_process"].values())
    assert (
        result["registry_load_s"]["entries from the cache"] < result["registry_load_s"]["entries read in the sandbox"]
    )
    assert result["machine"]["cpu"] and "cpu_isa" in result["machine"]
    figures = report.figures("hub", result)
    assert [row[3] for row in report.ROWS["hub"](figures)] == [
        f"{result['ratio_sandbox_over_in_process'][size]:.2f}x" for size in ("1", "64")
    ]
    assert "hub" in BENCHMARKS and "--budget" in BENCHMARKS["hub"].quick
