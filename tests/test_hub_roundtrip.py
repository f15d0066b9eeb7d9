"""The hub round trip against a real package index: scaffold, freeze, publish, search, install, validate, train,
eval; the drift gate; ``sync`` reproducing a lock byte for byte; a tampered install refused by ``make``.

A real ``pypiserver`` runs on 127.0.0.1 with an upload password. Installs go into fresh virtualenvs that see
rlhub and its dependencies from the test's environment, so only the env package itself is installed there.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hub_index import PASSWORD, USER, fresh_venv, in_venv, pypi_server  # noqa: F401 (the pypi fixture)
from test_env_packages import rlhub

from rlhub.hub.sandbox import bwrap_problem

pytestmark = pytest.mark.skipif(bwrap_problem() is not None, reason=f"bubblewrap unusable: {bwrap_problem()}")
PACKAGE, ENV_ID = "rlhub-env-hub-demo", "hub-demo-v0"
MODULE_FILE = "rlhub_env_hub_demo/hub_demo.py"


@pytest.fixture(scope="module")
def hub_env():
    """The environment of every rlhub command: offline W&B, no extra registry, no trust or hub settings."""
    drop = ("RLHUB_REGISTRY", "RLHUB_TRUST", "RLHUB_HUB", "RLHUB_LOCK")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "WANDB_MODE": "offline"}


@pytest.fixture(scope="module")
def published(pypi, hub_env, tmp_path_factory):
    """hub-demo scaffolded with ``rlhub new-env --package``, frozen and published as 0.1.0: (folder, hub index)."""
    root = tmp_path_factory.mktemp("hub")
    source, index = root / "src", root / "index.json"
    assert rlhub("new-env", "hub-demo", "--domain", "math", "--package", str(source), env=hub_env).returncode == 0
    frozen = rlhub("hub", "freeze", str(source), env=hub_env)
    assert frozen.returncode == 0, frozen.stderr[-2000:]
    assert publish(source, index, pypi, hub_env).returncode == 0
    return source, index


def publish(source: Path, index: Path, pypi: str, env: dict) -> subprocess.CompletedProcess:
    args = ["hub", "publish", str(source), "--hub", str(index), "--repository-url", pypi, "--no-build-isolation"]
    return rlhub(*args, env={**env, "TWINE_USERNAME": USER, "TWINE_PASSWORD": PASSWORD})


@pytest.fixture(scope="module")
def installed(published, hub_env, tmp_path_factory):
    """hub-demo-v0@0.1.0 installed with ``rlhub hub install`` into a fresh virtualenv: (python, its project)."""
    _, index = published
    project = tmp_path_factory.mktemp("project")
    python = fresh_venv(project / "venv")
    out = in_venv(python, "-m", "rlhub", "hub", "install", f"{ENV_ID}@0.1.0", "--hub", index.as_uri(), env=hub_env,
                  cwd=project)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return python, project


def test_publish_then_search_and_info_show_the_version(published, hub_env):
    source, index = published
    found = json.loads(rlhub("hub", "search", "hub", "demo", "--json", "--hub", str(index), env=hub_env).stdout)
    assert [(p["name"], p["versions"], p["envs"]) for p in found] == [(PACKAGE, ["0.1.0"], [ENV_ID])]
    assert json.loads(rlhub("hub", "search", "nothing-like-it", "--json", env={**hub_env, "RLHUB_HUB": str(index)})
                      .stdout) == []  # fmt: skip
    info = json.loads(rlhub("hub", "info", ENV_ID, "--json", "--hub", index.as_uri(), env=hub_env).stdout)
    assert info["name"] == PACKAGE and info["version"] == "0.1.0" and info["validate"]["passed"]
    assert info["wheel"]["filename"] == "rlhub_env_hub_demo-0.1.0-py3-none-any.whl"
    assert all(re.fullmatch(r"[0-9a-f]{16}", info[h]) for h in ("code_hash", "data_hash", "reward_hash"))
    probes = info["validate"]["probes"]
    assert probes["expression echo"]["correct"] == 0.0 and probes["answer spam"]["correct"] == 0.0
    frozen = [json.loads(line) for line in (source / "rollouts.jsonl").read_text().splitlines()]
    kinds = {(r["kind"], r["rewards"]["correct"]) for r in frozen}
    assert kinds == {("gold", 1.0), ("near-miss", 0.0), ("garbage", 0.0)}
    missing = rlhub("hub", "info", "no-such-env-v0", "--hub", str(index), env=hub_env)
    assert missing.returncode == 1 and "no package or env 'no-such-env-v0' on the hub index" in missing.stderr


@pytest.mark.slow
def test_installed_package_validates_trains_and_evaluates_in_a_fresh_venv(installed, hub_env, tmp_path):
    from tiny_models import save_tiny_model

    python, project = installed
    lock = (project / "rlhub.lock").read_text()
    assert f'name = "{PACKAGE}"\nversion = "0.1.0"\nenvs = ["{ENV_ID}"]' in lock and 'trust = "sandbox"' in lock
    assert f'"{MODULE_FILE}" = "' in lock
    site = next((project / "venv" / "lib").glob("*/site-packages"))
    listed = in_venv(python, "-m", "pip", "list", "--path", str(site), env=hub_env, cwd=project).stdout
    assert PACKAGE in listed and "torch" not in listed  # only the env package went into the venv

    validated = in_venv(python, "-m", "rlhub", "validate", ENV_ID, "-n", "4", "--json", env=hub_env, cwd=project)
    assert validated.returncode == 0 and json.loads(validated.stdout)[0]["passed"], validated.stderr[-2000:]

    model = save_tiny_model(tmp_path / "tiny", seed=0)
    recipe = {
        "model": {"name": str(model)},
        "env": {"id": ENV_ID},
        "algorithm": {"group_size": 2},
        "training": {"max_steps": 2, "prompts_per_step": 2, "micro_batch_size": 4, "max_new_tokens": 8,
                     "output_dir": str(tmp_path / "run")},
    }  # fmt: skip
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))  # JSON is YAML
    train = ["-m", "rlhub", "train", str(tmp_path / "recipe.yaml"), "--no-plot"]
    trained = in_venv(python, *train, env=hub_env, cwd=project)
    assert trained.returncode == 0, trained.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "rewards/correct/mean" in r] == [1, 2]

    args = ["-m", "rlhub", "eval", ENV_ID, "--model", str(model), "-n", "2", "--max-new-tokens", "4", "--json"]
    evaluated = in_venv(python, *args, env=hub_env, cwd=project)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert set(json.loads(evaluated.stdout)["rewards"]) == {"correct", "format"}


@pytest.mark.slow
def test_sync_in_a_second_fresh_venv_reproduces_the_lock_byte_for_byte(installed, hub_env, tmp_path):
    _, first = installed
    python = fresh_venv(tmp_path / "venv")
    shutil.copy(first / "rlhub.lock", tmp_path / "rlhub.lock")
    synced = in_venv(python, "-m", "rlhub", "hub", "sync", env=hub_env, cwd=tmp_path)
    assert synced.returncode == 0, synced.stderr[-2000:]
    assert (tmp_path / "rlhub.lock").read_bytes() == (first / "rlhub.lock").read_bytes()
    made = in_venv(python, "-c", f"import rlhub; print(repr(rlhub.make('{ENV_ID}@0.1.0')))", env=hub_env, cwd=tmp_path)
    assert made.returncode == 0 and f"SandboxedEnv('{ENV_ID}', package='{PACKAGE}')" in made.stdout, made.stderr


@pytest.mark.slow
def test_make_refuses_a_pinned_env_whose_installed_file_changed(installed, hub_env):
    python, project = installed
    make = ["-c", f"import rlhub; rlhub.make('{ENV_ID}@0.1.0').close(); print('made')"]
    assert in_venv(python, *make, env=hub_env, cwd=project).stdout.strip() == "made"
    site = next((project / "venv" / "lib").glob("*/site-packages"))
    module = site / MODULE_FILE
    original = module.read_text()
    try:
        module.write_text(original.replace("numbers_only=True", "numbers_only=False"))
        refused = in_venv(python, *make, env=hub_env, cwd=project)
        assert refused.returncode == 1
        last = refused.stderr.strip().splitlines()[-1]
        assert re.search(rf"{ENV_ID}@0.1.0: installed file {MODULE_FILE} of {PACKAGE} differs from the lock", last)
        wrong = in_venv(python, "-c", f"import rlhub; rlhub.make('{ENV_ID}@9.9.9')", env=hub_env, cwd=project)
        assert f"rlhub.lock pins {PACKAGE} 0.1.0, not 9.9.9" in wrong.stderr
    finally:
        module.write_text(original)


STRICT_FORMAT = """
        def strict_layout(completions, **kwargs):
            return [value or None for value in layout(completions, **kwargs)]

        return Rubric({"correct": (correct, 1.0), "format": (strict_layout, self.config.format_weight)})"""


@pytest.mark.slow
def test_drift_gate_refuses_a_changed_reward_under_the_same_id_and_accepts_a_bumped_one(published, pypi, hub_env):
    source, index = published
    changed = source.parent / "changed"
    shutil.copytree(source, changed, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    module, pyproject = changed / MODULE_FILE, changed / "pyproject.toml"
    text = module.read_text()
    rubric = re.search(r"\n +return Rubric\(.*\)", text)[0]
    module.write_text(text.replace(rubric, STRICT_FORMAT))  # garbage's format reward: 0.0 -> None
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.2.0"'))
    assert rlhub("hub", "freeze", str(changed), env=hub_env).returncode == 0  # re-freezing hides nothing

    refused = publish(changed, index, pypi, hub_env)
    assert refused.returncode == 1
    assert re.search(rf"refused: {ENV_ID}: rewards format changed on 3 of 9 frozen rollouts since 0.1.0, under the "
                     r"same id; .*register hub-demo-v1", refused.stderr.replace("\n", "")), refused.stderr  # fmt: skip
    assert "0.2.0" not in json.loads(index.read_text())["packages"][PACKAGE]["versions"]

    for path in (changed / "rlhub_env_hub_demo" / "__init__.py", changed / "rlhub_env_hub_demo" / "rlhub.toml"):
        path.write_text(path.read_text().replace(ENV_ID, "hub-demo-v1").replace('"version": 0,', '"version": 1,'))
    assert rlhub("hub", "freeze", str(changed), env=hub_env).returncode == 0
    accepted = publish(changed, index, pypi, hub_env)
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    package = json.loads(index.read_text())["packages"][PACKAGE]
    assert sorted(package["versions"]) == ["0.1.0", "0.2.0"] and package["envs"] == ["hub-demo-v1"]
    again = publish(changed, index, pypi, hub_env)
    assert again.returncode == 1 and "0.2.0 is not newer than 0.2.0 on the hub index" in again.stderr


def test_lock_is_valid_sorted_toml_whatever_the_file_names(tmp_path):
    from rlhub.hub.lock import read_lock, render_lock

    package = {
        "name": "rlhub-env-odd", "version": "1.0", "envs": ["odd-v0"], "index_url": "http://x/simple/",
        "wheel_sha256": "ab" * 32, "code_hash": "c" * 16, "data_hash": "d" * 16, "reward_hash": "e" * 16,
        "trust": "in-process", "files": {'odd/z "quoted".txt': "1", "odd/é.py": "2", "odd/a.py": "3"},
    }  # fmt: skip
    text = render_lock([{**package, "name": "rlhub-env-zzz"}, package])
    path = tmp_path / "rlhub.lock"
    path.write_text(text)
    assert read_lock(path) == [package, {**package, "name": "rlhub-env-zzz"}]  # sorted by name, values intact
    assert text.isascii() and text.index('"odd/a.py"') < text.index('"odd/z') < text.index('"odd/\\u00e9.py"')
    assert render_lock(read_lock(path)) == text


def test_check_locked_names_the_changed_or_missing_file(tmp_path):
    from rlhub.errors import RLHubError
    from rlhub.hub.lock import check_locked, installed_file_hashes, write_lock

    files = installed_file_hashes("passlib")  # any installed distribution stands in for an env package
    changed = sorted(files)[3]
    package = {
        "name": "passlib", "version": importlib.metadata.version("passlib"), "envs": ["stand-in-v0"],
        "index_url": "", "wheel_sha256": "", "code_hash": "", "data_hash": "", "reward_hash": "", "trust": "sandbox",
    }  # fmt: skip
    lock = tmp_path / "rlhub.lock"
    write_lock(lock, [{**package, "files": files}])
    assert check_locked(f"stand-in-v0@{package['version']}", lock) == "stand-in-v0"
    write_lock(lock, [{**package, "files": {**files, changed: "0" * 64}}])
    with pytest.raises(RLHubError, match=rf"installed file {re.escape(changed)} of passlib differs from the lock"):
        check_locked(f"stand-in-v0@{package['version']}", lock)
    write_lock(lock, [{**package, "files": {**files, "passlib/gone.py": "0" * 64}}])
    with pytest.raises(RLHubError, match=r"installed file passlib/gone.py of passlib is missing"):
        check_locked(f"stand-in-v0@{package['version']}", lock)
    with pytest.raises(RLHubError, match=r"pins no package serving 'other-v0'"):
        check_locked("other-v0@1.0", lock)


def test_the_index_reads_over_http_as_from_a_file(published):
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from rlhub.hub.index import find, read_index

    _, index = published
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(index.parent))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            over_http = read_index(f"http://127.0.0.1:{server.server_address[1]}/{index.name}")
        finally:
            server.shutdown()
    assert over_http == read_index(str(index)) == read_index(index.as_uri())
    assert find(over_http, f"{PACKAGE}@0.1.0")[1] == "0.1.0"


def _row(env_id: str, kind: str, correct: float | None) -> dict:
    return {
        "env": env_id,
        "split": "test",
        "index": 0,
        "kind": kind,
        "completion": "x",
        "rewards": {"correct": correct},
    }


def test_drift_gate_counts_changed_rollouts_and_needs_a_successor_for_a_dropped_id():
    from rlhub.hub.publish import drift_problems

    published = [_row("a-v0", "gold", 1.0), _row("a-v0", "garbage", 0.0), _row("b-v2", "gold", 1.0)]
    same = [dict(r) for r in published]
    assert drift_problems(published, same, ("a-v0", "b-v2"), "1.0") == []
    changed = [_row("a-v0", "gold", 1.0), _row("a-v0", "garbage", 0.5), {**published[2], "rewards": None}]
    problems = drift_problems(published, changed, ("a-v0", "b-v3"), "1.0")  # b-v2 gone, b-v3 succeeds it
    assert problems == [
        "a-v0: rewards correct changed on 1 of 2 frozen rollouts since 1.0, under the same id; changed rewards are "
        "a new version: register a-v1 and run `rlhub hub freeze`"
    ]
    dropped = drift_problems(published, changed, ("a-v0",), "1.0")
    assert (
        dropped[1]
        == "b-v2 (published in 1.0) is no longer served and has no higher -vN; keep it or register its successor"
    )
