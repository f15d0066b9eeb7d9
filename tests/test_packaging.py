"""A built wheel carries the registry, the recipes and every subpackage, and works outside the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_lists_envs_outside_the_checkout(tmp_path):
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(tmp_path.glob("rlhub-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "rlhub/_data/registry.yaml",
        "rlhub/_data/recipes/quickstart.yaml",
        "rlhub/_data/data/gsm8k/test.jsonl",  # the shipped data sets, each with its license
        "rlhub/_data/data/gsm8k/LICENSE",
        "rlhub/_data/data/bfcl/possible_answer/BFCL_v4_simple_python.json",
        "rlhub/_data/data/bfcl/LICENSE",
        "rlhub/envs/countdown.py",
        "rlhub/rewards/math.py",
        "rlhub/trainers/loop.py",
        "rlhub/sandbox/pool.py",
        "rlhub/integrations/trl.py",
        "rlhub/authoring/templates/tool_multiturn.py",  # rlhub new-env writes from these
    ):
        assert required in names, required
    # Every module of the checkout is in the wheel: a subpackage left out of pyproject's list would be missing.
    mapping = {"rlhub": "rlhub", "envs": "rlhub/envs", "rewards": "rlhub/rewards", "trainers": "rlhub/trainers"}
    sources = [
        f"{installed}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder, installed in mapping.items()
        for path in (ROOT / folder).rglob("*.py")
    ]
    assert not [s for s in sources if s not in names], "modules missing from the wheel: add their package to pyproject"
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    probe = (
        "import json, rlhub, rlhub.env.registry as r, rlhub.env.data as d; "
        "print(json.dumps([str(r.default_registry_path()), [s.id for s in rlhub.list_envs()], "
        "str(d.shipped_data_dir()), len(rlhub.make('gsm8k-v1').examples('test'))]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RLHUB_REGISTRY", "RLHUB_DATA")}
    # The editable install stays on sys.path; the wheel's copy goes first, so it is the one imported.
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(target)!r}); " + probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    registry_path, ids, data_dir, gsm8k_test = json.loads(out.stdout)
    assert registry_path.startswith(str(target)) and "countdown-v0" in ids
    assert data_dir.startswith(str(target)) and gsm8k_test == 1319
