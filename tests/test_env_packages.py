"""Environment packages: an env in a pip package of its own, installed from a local folder, is listed
with its source, validates, passes its own test and trains; the run records its id, source and hash."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from rlhub.authoring.scaffold import new_env
from rlhub.env.registry import EnvSpec
from rlhub.errors import RLHubError

ENV_ID = "pkg-demo-v0"
SOURCE = "pip:rlhub-env-pkg-demo==1.2.3"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The scaffolded package, at version 1.2.3, pip-installed from its folder into a target on PYTHONPATH."""
    root = tmp_path_factory.mktemp("envpkg")
    env_id, _ = new_env("pkg-demo", "math", package=root / "src")
    assert env_id == ENV_ID
    pyproject = root / "src" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "1.2.3"'))
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q"]
    install = subprocess.run([*pip, "--target", str(root / "site"), str(root / "src")], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k != "RLHUB_REGISTRY"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root / "site"), os.environ.get("PYTHONPATH")]))
    return root, env


def rlhub(*args, env, cwd=None, timeout=300):
    return subprocess.run(
        [shutil.which("rlhub"), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


def test_envs_list_shows_the_package_env_and_where_it_comes_from(installed):
    _, env = installed
    listed = {d["id"]: d for d in json.loads(rlhub("envs", "list", "--json", env=env).stdout)}
    assert listed[ENV_ID]["source"] == SOURCE and listed[ENV_ID]["domain"] == "math"
    assert listed["arithmetic-v1"]["source"] == "rlhub"
    table = rlhub("envs", "list", "--domain", "math", env={**env, "COLUMNS": "250"})
    assert table.returncode == 0 and re.search(rf"{ENV_ID} .* {re.escape(SOURCE)}", table.stdout)
    without = json.loads(rlhub("envs", "list", "--json", env={**env, "PYTHONPATH": ""}).stdout)
    assert ENV_ID not in {d["id"] for d in without}  # it comes from the package, nowhere else


def test_package_env_passes_validate_and_its_own_test(installed):
    root, env = installed
    out = rlhub("validate", ENV_ID, "--json", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert json.loads(out.stdout)[0]["passed"]
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True,
        text=True,
        cwd=root / "src",
        env=env,
        timeout=300,
    )
    assert tests.returncode == 0 and "4 passed" in tests.stdout, tests.stdout[-2000:]


def test_package_env_trains_and_the_run_records_source_and_code_hash(installed, tiny_model_dir, tmp_path):
    _, env = installed
    recipe = {
        "model": {"name": tiny_model_dir},
        "env": {"id": ENV_ID},
        "algorithm": {"group_size": 4},
        "training": {
            "max_steps": 2,
            "prompts_per_step": 2,
            "micro_batch_size": 4,
            "max_new_tokens": 8,
            "save_every": 1,
            "output_dir": str(tmp_path / "run"),
        },
        "logging": {"wandb": True, "completions_every": 1},
    }
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))  # JSON is YAML
    out = rlhub("train", str(tmp_path / "recipe.yaml"), "--no-plot", env={**env, "WANDB_MODE": "offline"})
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "checkpoints" / "step-000002" / "adapter" / "adapter_model.safetensors").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "rewards/correct/mean" in r] == [1, 2]

    # The W&B config names the env exactly. Offline, it is in the run's log, each value stored as JSON text.
    log = next((run / "wandb").glob("offline-run-*/run-*.wandb")).read_bytes()
    start = log.index(b"{", log.index(b"env_spec"))
    recorded, _ = json.JSONDecoder().raw_decode(log[start:].decode("utf-8", errors="replace"))
    probe = f"from rlhub.env.registry import get_spec; print(get_spec({ENV_ID!r}).code_hash())"
    code_hash = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env).stdout.strip()
    assert (recorded["id"], recorded["version"], recorded["source"]) == (ENV_ID, 0, SOURCE)
    assert re.fullmatch(r"[0-9a-f]{16}", code_hash) and recorded["code_hash"] == code_hash


DATA_ENV = """
from rlhub.envs.arithmetic import ArithmeticEnv


class DataDemoEnv(ArithmeticEnv):
    data_files = ("data/words.txt",)
"""


def test_code_hash_covers_the_data_files_an_env_declares(tmp_path, monkeypatch):
    (tmp_path / "data_demo_env.py").write_text(DATA_ENV)
    (tmp_path / "data").mkdir()
    words = tmp_path / "data" / "words.txt"
    words.write_text("alpha\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = EnvSpec("data-demo-v0", "data_demo_env:DataDemoEnv", 0, "math", "d", "MIT", config={"difficulty": 1})
    first = spec.code_hash()
    assert spec.code_hash() == first  # stable while nothing changes
    words.write_text("alpha\nbeta\n")
    assert spec.code_hash() != first  # a data edit is a different env
    words.unlink()
    with pytest.raises(RLHubError, match=r"'data-demo-v0': declared data file 'data/words.txt' unreadable"):
        spec.code_hash()


def test_package_files_are_a_complete_installable_project(tmp_path):
    _, written = new_env("word-count", "code", multi_turn=True, package=tmp_path / "pkg")
    names = sorted(str(p.relative_to(tmp_path / "pkg")) for p in written)
    assert names == [
        "README.md",
        "pyproject.toml",
        "rlhub_env_word_count/__init__.py",
        "rlhub_env_word_count/rlhub.toml",
        "rlhub_env_word_count/word_count.py",
        "tests/test_word_count.py",
    ]
    pyproject = (tmp_path / "pkg" / "pyproject.toml").read_text()
    assert '[project.entry-points."rlhub.envs"]\nword-count = "rlhub_env_word_count:ENVS"' in pyproject
    namespace: dict = {}
    exec((tmp_path / "pkg" / "rlhub_env_word_count" / "__init__.py").read_text(), namespace)
    (entry,) = namespace["ENVS"]
    assert entry["entry_point"] == "rlhub_env_word_count.word_count:WordCountEnv" and entry["domain"] == "code"
    assert "multi-turn" in entry["tags"] and entry["config"] == {"difficulty": 1, "max_turns": 4}
