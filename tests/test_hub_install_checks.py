"""``rlhub hub install`` refuses a hub index entry whose rewards it could not check: an env with no frozen rollouts.

The package is real (scaffolded, built, uploaded to a ``pypiserver``) and listed on the hub index as a publisher
who skipped ``rlhub hub freeze`` would list it; install must refuse it in one line that names the package and the
fix, install nothing and write no lock.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_index import PASSWORD, USER, fresh_venv, in_venv, pypi_server, venv_site  # noqa: F401 (the pypi fixture)
from hub_packages import build_wheels, write_package

from rlhub.errors import RLHubError
from rlhub.hub.freeze import reward_hash
from rlhub.hub.index import FORMAT, add_version, write_index
from rlhub.hub.install import install
from rlhub.hub.lock import content_hashes, wheel_file_hashes

PACKAGE, ENV_ID = "rlhub-env-unfrozen", "unfrozen-v0"


def _entry(wheel: Path, index_url: str, rollouts: list[dict] | None) -> dict:
    """A hub index entry with true hashes for ``wheel`` and the given frozen rollouts (``None``: no key)."""
    code_hash, data_hash = content_hashes(wheel_file_hashes(wheel))
    entry = {
        "envs": [ENV_ID], "index_url": index_url, "code_hash": code_hash, "data_hash": data_hash,
        "wheel": {"filename": wheel.name, "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()},
        "reward_hash": reward_hash(rollouts or []), "validate": {"passed": True, "probes": {}},
    }  # fmt: skip
    if rollouts is not None:
        entry["rollouts"] = rollouts
    return entry


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unfrozen")
    source = write_package(root, "", "pass", {}, slug="unfrozen")
    return build_wheels([source], root / "wheels")[0]


def test_cli_install_refuses_an_entry_without_frozen_rollouts_and_installs_nothing(wheel, pypi, tmp_path):
    upload = [sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar"]
    done = subprocess.run([*upload, "--repository-url", pypi, "-u", USER, "-p", PASSWORD, str(wheel)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    index = {"format": FORMAT, "packages": {}}
    # What publish writes for an empty rollouts.jsonl: no rows, and the reward hash of no rows.
    add_version(index, PACKAGE, "0.1.0", "arithmetic", "MIT", _entry(wheel, pypi + "simple/", []))
    write_index(tmp_path / "index.json", index)
    python = fresh_venv(tmp_path / "venv")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RLHUB_")}, "WANDB_MODE": "offline"}
    hub = (tmp_path / "index.json").as_uri()
    out = in_venv(python, "-m", "rlhub", "hub", "install", ENV_ID, "--hub", hub, env=env, cwd=tmp_path, timeout=300)

    assert out.returncode != 0
    error = out.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert PACKAGE in error and ENV_ID in error and "rlhub hub freeze" in error and "no frozen rollouts" in error
    assert not list(venv_site(python).glob("rlhub_env_unfrozen*")), "a refused package stays installed"
    assert not (tmp_path / "rlhub.lock").exists()


@pytest.mark.parametrize(
    "rollouts, unchecked",
    [
        (None, ENV_ID),  # an entry without the key
        ([], ENV_ID),
        ([{"env": "other-v0", "split": "test", "index": 0, "kind": "gold", "completion": "1", "rewards": {}}], ENV_ID),
    ],
    ids=["no-key", "empty", "other-env-only"],
)
def test_install_refuses_before_pip_when_an_env_has_no_frozen_rollouts(wheel, tmp_path, rollouts, unchecked):
    # pip would fail on this index (it does not exist): the refusal must come first, from the entry itself.
    missing = (tmp_path / "no-such-index").as_uri()
    index = {"format": FORMAT, "packages": {}}
    add_version(index, PACKAGE, "0.1.0", "arithmetic", "MIT", _entry(wheel, missing, rollouts))
    write_index(tmp_path / "index.json", index)

    with pytest.raises(RLHubError, match="no frozen rollouts for") as caught:
        install(ENV_ID, (tmp_path / "index.json").as_uri(), tmp_path / "rlhub.lock")
    assert f"refused {PACKAGE} 0.1.0" in str(caught.value) and unchecked in str(caught.value)
    assert "rlhub hub freeze" in str(caught.value)
    assert not (tmp_path / "rlhub.lock").exists()
