"""The Performance table names, per row, the CPU (and its matrix unit) and the precision that produced it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import common, report

ROOT = Path(__file__).resolve().parent.parent
EPYC_BF16 = {"cpu": "AMD EPYC", "cpu_isa": ["avx2", "avx512_bf16", "avx512f"], "cpu_capability": "AVX512"}


def cpu_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def test_machine_info_records_the_matrix_isa(monkeypatch):
    import torch

    for name in common.ISA_LIMITS:
        monkeypatch.delenv(name, raising=False)
    info = common.machine_info()
    assert info["cpu"] and info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    wanted = {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    assert wanted & set(info["cpu_isa"]) == wanted & cpu_flags()
    assert info["cpu_isa_limits"] == {}  # native: nothing capped


@pytest.mark.skipif("avx2" not in cpu_flags(), reason="needs an AVX2 CPU to cap to AVX2")
def test_a_process_capped_to_avx2_records_the_cap():
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    code = "import json; from bench.common import cpu_info; print(json.dumps(cpu_info()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["cpu_capability"] == "AVX2"
    assert info["cpu_isa_limits"] == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert "emulated" in report.cpu_label(info) and report.cpu_label(info).split(", ")[1].startswith("AVX2")


@pytest.mark.parametrize(
    ("flags", "label"),
    [
        (["amx_bf16", "amx_tile", "avx2", "avx512_bf16", "avx512f"], "AMX-BF16"),
        (["avx2", "avx512_bf16", "avx512f"], "AVX-512+BF16"),
        (["avx2", "avx512f"], "AVX-512"),
        (["avx2"], "AVX2"),
        ([], "no AVX2"),
    ],
)
def test_the_cpu_cell_names_the_best_matrix_unit(flags, label):
    assert report.cpu_label({"cpu": "AMD EPYC", "cpu_isa": flags}) == f"AMD EPYC, {label}"


def test_the_cpu_cell_says_when_the_isa_was_not_recorded_or_was_capped():
    assert report.cpu_label({"cpu": "AMD EPYC"}) == "AMD EPYC, ISA not recorded"
    assert report.cpu_label(None) == report.cpu_label({}) == "not recorded"
    capped = {**EPYC_BF16, "cpu_capability": "AVX2", "cpu_isa_limits": {"ATEN_CPU_CAPABILITY": "avx2"}}
    assert report.cpu_label(capped) == "AMD EPYC, AVX2 emulated on AVX-512+BF16"


def test_figures_keep_the_cpu_their_result_recorded():
    rates = dict.fromkeys((report.SANDBOX_POOL, report.SANDBOX_BASELINE, report.SANDBOX_BARE), 1.0)
    result = {"n": 10, "workers": 2, "programs_per_s": rates}
    assert "cpu" not in report.figures("sandbox", result)  # a benchmark that records no machine
    recorded = report.figures("sandbox", {**result, "machine": {**EPYC_BF16, "cores": 2, "git_commit": "abc"}})
    assert recorded["cpu"] == EPYC_BF16


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


@pytest.fixture
def summary() -> dict:
    """The checked-in summary (figures from before the CPU was recorded), its trainer comparison re-recorded."""
    path = ROOT / "bench" / "results" / "summary.json"
    if not path.is_file():
        pytest.skip("bench/results/summary.json is not checked in")
    summary = copy.deepcopy(json.loads(path.read_text()))
    figures = summary["benchmarks"]["trainer_vs_trl"]["figures"]
    figures.update(cpu=EPYC_BF16, rlhub_dtype="bfloat16", trl_dtype="float32")
    summary["machine"].update(EPYC_BF16)
    summary["benchmarks"]["sandbox"]["figures"].pop("cpu", None)  # a result from before the CPU was recorded
    overhead = summary["benchmarks"]["overhead"]["figures"]  # and one from before the dtype was recorded too
    overhead.pop("cpu", None)
    overhead["dtype"] = None
    return summary


def test_every_row_names_its_cpu_and_precision(summary):
    rows = table_rows(report.render_table(summary))
    header, body = rows[0], rows[1:]
    assert header[-2:] == ["CPU", "precision"]
    assert body and all(len(row) == len(header) for row in body)
    by_what = {row[0]: row for row in body}
    trainer = next(row for what, row in by_what.items() if what.startswith("GRPO training, completions/s"))
    assert trainer[-2:] == ["AMD EPYC, AVX-512+BF16", "rlhub bfloat16; TRL float32"]
    same_steps = next(row for what, row in by_what.items() if what.startswith("same steps, rlhub in"))
    assert same_steps[-1] == "rlhub bfloat16 against float32"
    # results written before the CPU and the dtype were recorded say so; rows without a model have no dtype
    overhead = next(row for what, row in by_what.items() if what.startswith("reward time / step time"))
    assert overhead[-2:] == ["not recorded", "not recorded"]
    sandbox = next(row for what, row in by_what.items() if what.startswith("isolated Python programs/s"))
    assert sandbox[-2:] == ["not recorded", "-"]


def test_a_float32_default_arm_is_reported_as_a_replicate_without_the_bf16_target(summary):
    summary["benchmarks"]["trainer_vs_trl"]["figures"].update(rlhub_dtype="float32")
    rows = table_rows(report.render_table(summary))
    same_steps = next(row for row in rows[1:] if row[0].startswith("same steps, rlhub's default"))
    assert "a replicate" in same_steps[0] and same_steps[4] == "-"
    assert same_steps[-1] == "rlhub float32 against float32"


def test_a_failed_benchmark_row_fills_every_column(summary):
    summary["benchmarks"]["sandbox"] = {"status": "timeout", "error": "killed after 600 s"}
    row = next(r for r in table_rows(report.render_table(summary)) if r[0] == "`sandbox`")
    assert len(row) == 7 and row[2] == "timeout: killed after 600 s"
