"""Loading the registry reads an unchanged isolated package's entries from the cache, without starting its sandbox.

One real package is built and pip-installed once; each test works on its own copy of the installed folder, with
its own cache folder, and counts the sandboxes started to read entries.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hub_packages import install_packages, write_package

from rlhub.env import registry
from rlhub.hub import entries_cache
from rlhub.hub.sandbox import SandboxPlan, bwrap_problem

pytestmark = pytest.mark.skipif(bwrap_problem() is not None, reason=f"bubblewrap unusable: {bwrap_problem()}")
ENV_ID = "cached-v0"
PACKAGE = "rlhub-env-cached"
MODULE = "rlhub_env_cached"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cached")
    install_packages([write_package(root, "", "pass", {}, slug="cached")], root / "site")
    return root / "site"


@pytest.fixture
def site(installed, tmp_path, monkeypatch) -> Path:
    """A copy of the installed package on sys.path, a fresh cache folder, and the registry reloaded each time."""
    site = tmp_path / "site"
    shutil.copytree(installed, site)
    monkeypatch.delenv("RLHUB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(site))
    registry.clear_cache()
    yield site
    registry.clear_cache()


@pytest.fixture
def sandbox_starts(monkeypatch) -> list[str]:
    """The packages whose sandbox started to read registry entries, one item per start."""
    started, entries = [], SandboxPlan.entries

    def counted(plan):
        started.append(plan.package)
        return entries(plan)

    monkeypatch.setattr(SandboxPlan, "entries", counted)
    return started


def load() -> registry.EnvSpec:
    registry.clear_cache()
    return registry.get_spec(ENV_ID)


def cache_file() -> Path:
    (path,) = entries_cache.cache_folder().glob(f"{PACKAGE}.*.json")
    return path


def test_a_second_load_starts_no_sandbox(site, sandbox_starts, tmp_path):
    first = load()
    assert load() == first
    assert sandbox_starts == [PACKAGE]  # the second load read the entries from the cache
    assert first.source == f"pip:{PACKAGE}==0.1.0"
    assert cache_file().parent == tmp_path / "cache" / "rlhub" / "hub-entries"  # $XDG_CACHE_HOME is honoured


def test_editing_an_installed_file_reads_the_entries_in_the_sandbox_again(site, sandbox_starts):
    assert load().description.startswith("Compute a * b + c")
    init = site / MODULE / "__init__.py"
    init.write_text(init.read_text().replace('"description": "Compute', '"description": "Edited: compute'))
    assert load().description.startswith("Edited: compute")
    assert sandbox_starts == [PACKAGE, PACKAGE]
    (site / MODULE / "env.py").write_text((site / MODULE / "env.py").read_text() + "# any file counts\n")
    load()
    assert len(sandbox_starts) == 3


SMUGGLED = {
    "id": "smuggled-v0",
    "entry_point": "os:system",
    "version": 0,
    "domain": "math",
    "description": "not from the package",
    "license": "MIT",
}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda stored: {**stored, "key": "0" * 64, "entries": [SMUGGLED]},  # stored for other installed files
        lambda stored: {**stored, "package": "rlhub-env-other", "entries": [SMUGGLED]},  # another package's
        lambda stored: {**stored, "entries": {"envs": [SMUGGLED]}},  # not a list of entries
        lambda stored: json.dumps(stored)[:40],  # cut short
    ],
    ids=["other-key", "other-package", "not-a-list", "truncated"],
)
def test_a_cache_file_is_used_only_under_its_own_key_and_package(site, sandbox_starts, tamper):
    load()
    path = cache_file()
    tampered = tamper(json.loads(path.read_text()))
    path.write_text(tampered if isinstance(tampered, str) else json.dumps(tampered))
    spec = load()
    assert sandbox_starts == [PACKAGE, PACKAGE]  # ignored: the entries were read in the sandbox again
    assert spec.entry_point == f"{MODULE}.env:PackageEnv"
    assert "smuggled-v0" not in registry.load_registry()
    stored = json.loads(path.read_text())  # and the file holds what the sandbox returned
    assert (stored["package"], [e["id"] for e in stored["entries"]]) == (PACKAGE, [ENV_ID])
    load()
    assert len(sandbox_starts) == 2


def test_an_unwritable_cache_folder_only_costs_the_sandbox(site, sandbox_starts, monkeypatch, tmp_path, caplog):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))
    assert load().id == ENV_ID
    assert load().id == ENV_ID
    assert sandbox_starts == [PACKAGE, PACKAGE]
    assert "cannot cache the registry entries of 'rlhub-env-cached'" in caplog.text


def test_an_editable_install_is_not_cached(site, sandbox_starts):
    # An editable install's code lives outside its installed files: hashing those says nothing about the code.
    (dist_info,) = site.glob("rlhub_env_cached-*.dist-info")
    (dist_info / "direct_url.json").write_text(json.dumps({"url": "file:///src", "dir_info": {"editable": True}}))
    load()
    load()
    assert sandbox_starts == [PACKAGE, PACKAGE]
    assert list(entries_cache.cache_folder().glob("*.json")) == []
