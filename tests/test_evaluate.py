"""`rlhub eval` through the console script, on a tiny model."""

from __future__ import annotations

import json
import shutil
import subprocess

from rlhub.evaluate import pass_at_k


def test_pass_at_k_matches_brute_force():
    from itertools import combinations

    samples = [True, False, False, True, False]
    for k in (1, 2, 3):
        subsets = list(combinations(samples, k))
        assert abs(pass_at_k(5, 2, k) - sum(any(s) for s in subsets) / len(subsets)) < 1e-12


def test_eval_cli_reports_metrics_and_writes_records(tmp_path):
    from rlhub.models import save_tiny_model

    model = save_tiny_model(tmp_path / "model")
    out = tmp_path / "eval"
    proc = subprocess.run(
        [
            shutil.which("rlhub"),
            "eval",
            "arithmetic-v0",
            "--model",
            str(model),
            "-n",
            "3",
            "--k",
            "2",
            "--max-new-tokens",
            "4",
            "--json",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["examples"] == 3 and result["samples_per_example"] == 2
    assert set(result["pass_at_k"]) == {"pass@1", "pass@2"} and set(result["rewards"]) == {"correct", "format"}
    records = json.loads((out / "eval.json").read_text())["records"]
    assert len(records) == 6 and all(r["length"] <= 4 for r in records)
