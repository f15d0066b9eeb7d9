"""bench/step_profile.py on a tiny model: the record's fields, and phases that add up to the step."""

from __future__ import annotations

import json

import pytest

from bench import report, step_profile
from bench.common import TrainerSettings

PHASES = {"generation", "reward", "forward", "backward", "optimizer", "other"}


def vowel_share(completions, **kwargs):
    """A reward with spread on a random model's text, so micro-batches have advantages and run."""
    return [sum(ch in "aeiou" for ch in c) / max(len(c), 1) for c in completions]


@pytest.fixture(scope="module")
def record(tmp_path_factory, tiny_model_dir):
    settings = TrainerSettings(
        prompts=2,
        group=4,
        max_new_tokens=8,
        micro_batch=4,
        threads=1,
        overrides=[
            f"model.name={tiny_model_dir}",
            "model.dtype=float32",
            'env.config={"difficulty": 1}',
            'rewards={"test_step_profile:vowel_share": 1.0}',
        ],
    )
    return step_profile.profile(settings, tmp_path_factory.mktemp("run"), steps=2, warmup=1, ops=5, matmul_s=0.2)


def test_phases_add_up_to_each_step(record):
    for step in record["steps"]:
        phases = step["phases_s"]
        assert set(phases) == PHASES
        assert sum(phases.values()) == pytest.approx(step["step_s"], rel=1e-9)
        # "other" is what the timers did not see: it may not be negative (no phase is counted twice).
        assert phases["other"] >= -0.01 * step["step_s"]
        assert all(phases[name] > 0 for name in ("generation", "reward", "forward", "backward", "optimizer"))
        model = step["model_calls_s"]
        assert 0 < model["generation"] <= phases["generation"] and 0 < model["forward"] <= phases["forward"]
    shares = [p["share"] for p in record["phases"].values()]
    assert sum(shares) == pytest.approx(1.0)


def test_the_record_counts_flops_and_compares_them_with_the_matmul_rate(record):
    weights = sum(record["matmul_weights"].values())
    step = record["steps"][-1]
    assert step["tokens"]["forward"] == step["tokens"]["backward"] > 0
    # prompts are counted once per step: each of the 2 prompts' tokens, plus the 8 completions' tokens
    assert step["tokens"]["generation"] == step["tokens"]["forward"]
    assert step["flop"]["forward"] == 2 * weights * step["tokens"]["forward"]
    # the model runs every token but each completion's last (predicted from the one before), padding included
    assert step["model_positions"]["forward"] >= step["tokens"]["forward"] - 2 * 4
    assert record["settings"]["dtype"] == "float32" and record["threads"] == 1
    assert record["matmul_tflops"]["float32"] > 0 and record["achieved_tflops"] > 0
    assert record["fraction_of_float32"] == pytest.approx(
        record["achieved_tflops"] / record["matmul_tflops"]["float32"]
    )
    bf16_faster = record["matmul_tflops"]["bfloat16"] > record["matmul_tflops"]["float32"]
    assert (record["fraction_of_bfloat16"] is not None) == bf16_faster
    assert record["phases"]["reward"]["tflops"] is None and record["phases"]["forward"]["tflops"] > 0
    assert record["cpu"] and record["cpu_capability"] and "cpu_isa" in record
    assert len(record["operators"]["ops"]) == 5 and 0 <= record["operators"]["matrix_share_of_self_time"] <= 1
    json.dumps(record)


def test_the_summary_table_shows_both_runs_with_their_cpu_and_precision(record):
    emulated = {**record, "cpu_capability": "AVX2", "cpu_isa_limits": step_profile.ISA_RUNS["avx2"]}
    result = {"benchmark": "step_profile", "machine": {}, "runs": {"native": record, "avx2": emulated}}
    rows = report.ROWS["step_profile"](report.figures("step_profile", result))
    assert len(rows) == 2 and all(row.precision == "float32" for row in rows)
    assert "emulated" in rows[1].cpu and "AVX2" in rows[1].cpu
    assert rows[0].ratio.startswith(f"{record['fraction_of_float32']:.1%} of float32")
    assert rows[0].target == "-" and "on AVX2" in rows[1].target  # the target is for AVX2 machines
