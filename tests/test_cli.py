"""The `rlhub` console script, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

RLHUB = shutil.which("rlhub")


def run(*args, env=None, timeout=120):
    assert RLHUB, "the rlhub console script is not installed: pip install -e ."
    return subprocess.run(
        [RLHUB, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def test_envs_list_table_and_json():
    out = run("envs", "list")
    assert out.returncode == 0
    for env_id in ("arithmetic-v1", "countdown-v0", "gsm8k-v1", "math-v1"):
        assert env_id in out.stdout
    data = json.loads(run("envs", "list", "--json").stdout)
    by_id = {d["id"]: d for d in data}
    assert by_id["gsm8k-v1"]["domain"] == "math" and by_id["gsm8k-v1"]["source"] == "rlhub"


def test_envs_show_prints_config_rubric_and_prompt():
    out = run("envs", "show", "countdown-v0")
    assert out.returncode == 0
    assert "max_numbers" in out.stdout and "correct" in out.stdout and "<answer>" in out.stdout


def test_validate_passes_and_reports_json():
    out = run("validate", "arithmetic-v1", "countdown-v0", "--json", "-n", "4")
    assert out.returncode == 0, out.stderr
    reports = json.loads(out.stdout)
    assert [r["env_id"] for r in reports] == ["arithmetic-v1", "countdown-v0"]
    assert all(r["passed"] for r in reports)


def test_validate_all_lists_envs_without_local_data_but_a_named_one_fails(tmp_path):
    registry = tmp_path / "registry.yaml"
    entry = "  - {{id: {id}, entry_point: {ep}, version: 1, domain: math, description: d, license: l, config: {cfg}}}\n"
    registry.write_text(
        "envs:\n"
        + entry.format(id="arithmetic-v1", ep="rlhub.envs.arithmetic:ArithmeticEnv", cfg="{}")
        + entry.format(id="math-v1", ep="rlhub.envs.competition_math:MathEnv", cfg="{dataset: HuggingFaceH4/MATH-500}")
    )
    env = {"RLHUB_REGISTRY": str(registry), "RLHUB_DATA": str(tmp_path), "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = run("validate", "--all", "-n", "2", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "arithmetic-v1: passed" in out.stdout
    assert "not validated, no data on this machine: math-v1" in " ".join(out.stdout.split())
    named = run("validate", "math-v1", "-n", "2", env=env)
    assert named.returncode == 1 and "FAILED" in named.stdout


def test_unknown_env_is_one_line_and_nonzero():
    out = run("envs", "show", "gsm9k-v0")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown environment 'gsm9k-v0'" in lines[0] and "gsm8k-v1" in lines[0]
    assert "Traceback" not in out.stderr


def test_malformed_registry_is_one_line_naming_entry(tmp_path):
    bad = tmp_path / "registry.yaml"
    bad.write_text(
        "envs:\n  - id: broken-v0\n    entry_point: rlhub.envs.arithmetic:ArithmeticEnv\n    version: 0\n"
        "    description: x\n    license: MIT\n"
    )
    out = run("envs", "list", env={"RLHUB_REGISTRY": str(bad)})
    assert out.returncode == 1
    lines = [line for line in out.stderr.strip().splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "entry 'broken-v0': missing field 'domain'" in lines[0]


def test_recipe_typo_fails_fast_naming_the_key(tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("training:\n  max_stepz: 3\n")
    out = run("train", str(recipe))
    assert out.returncode == 1 and "unknown recipe key 'training.max_stepz'" in out.stderr
    # Fast because the recipe is checked before torch/transformers are imported (measured: see README).
    probe = (
        "import sys\nfrom rlhub.cli import main\n"
        f"try:\n    main(['train', {str(recipe)!r}])\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert res.stdout.split() == ["1", "False", "False"], res.stdout + res.stderr


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "rlhub", "envs", "list", "--json"], capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)


@pytest.mark.parametrize("args", [("validate",), ("train", "no/such/recipe.yaml")])
def test_usage_errors_exit_nonzero(args):
    out = run(*args)
    assert out.returncode != 0 and out.stderr.strip()


@pytest.mark.parametrize("preset, expected", [(None, "20000"), ("300000", "300000")])
def test_cli_bounds_openmp_spinning_before_torch_loads_and_keeps_a_users_value(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if preset is not None:
        env["GOMP_SPINCOUNT"] = preset
    code = "import os, sys, rlhub.cli; print('torch' in sys.modules, os.environ['GOMP_SPINCOUNT'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    # libgomp reads the variable when torch is first imported: it must not be imported before the CLI sets it.
    assert proc.stdout.split() == ["False", expected]
