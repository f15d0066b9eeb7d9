"""trainer_vs_trl's per-arm figures: achieved TFLOP/s from useful FLOPs, peak memory, dtype, the matmul ceiling."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a folder of the checkout, not an installed package
    sys.path.append(str(ROOT))

from bench.common import TrainerRun, matmul_tflops  # noqa: E402
from bench.trainer_vs_trl import summarize  # noqa: E402


def test_achieved_tflops_counts_the_timed_steps_only():
    steps = [
        {"step": i, "samples": 16, "turn_s": t, "step_s": t, "reward": 0.5, "mean_length": 20.0, "max_rss_mb": rss}
        for i, (t, rss) in enumerate([(30.0, 900.0), (2.0, 1200.0), (3.0, 1100.0)], start=1)
    ]
    run = TrainerRun("rlhub", {"settings": {"dtype": "bfloat16"}}, steps)
    got = summarize(run, warmup=1, flops_per_step=[9e12, 4e12, 6e12])
    assert got["achieved_tflops"] == pytest.approx((4 + 6) / 5)  # the warm-up's 9e12 FLOPs and 30 s are left out
    assert got["peak_rss_mb"] == 1200.0 and got["dtype"] == "bfloat16"
    assert summarize(run, warmup=1)["achieved_tflops"] is None


def test_matmul_ceiling_is_measured_for_both_dtypes():
    got = matmul_tflops(threads=1, size=128, seconds=0.01)
    assert set(got) == {"float32", "bfloat16"} and all(v > 0 for v in got.values())
