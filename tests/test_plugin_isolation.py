"""One broken env package must not break the registry: the others load, and its error is reported, not hidden.

Each test installs a real distribution (a package folder and its ``.dist-info`` with an ``rlhub.envs`` entry
point) on ``sys.path``; the registry finds it through ``importlib.metadata`` as it finds any pip package.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rlhub
from rlhub.env import registry
from rlhub.errors import RLHubError
from rlhub.hub.sandbox import bwrap_problem

PACKAGE, MODULE, ENV_ID = "rlhub-env-broken", "rlhub_env_broken", "broken-v0"
ENTRY = (
    '{"id": %r, "entry_point": "rlhub.envs.arithmetic:ArithmeticEnv", "version": 0, "domain": "math", '
    '"description": "from a package", "license": "MIT"}'
)
BROKEN = {
    # How the package breaks: its __init__.py, and what its error must say.
    "raises-on-import": ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
    "exits-on-import": ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    "malformed-entry": (f"ENVS = [{{'id': {ENV_ID!r}, 'domain': 'math'}}]\n", "missing field"),
    "not-a-list": ("ENVS = 42\n", "'envs:' list"),
    "clashing-id": (f"ENVS = [{ENTRY % ENV_ID}, {ENTRY % 'countdown-v0'}]\n", "'countdown-v0', which rlhub"),
}


def install_package(site: Path, init: str, manifest: bool = True) -> None:
    """Write ``rlhub-env-broken`` 0.1.0 into ``site`` as pip would: its package, dist-info and entry point."""
    package, info = site / MODULE, site / f"{MODULE}-0.1.0.dist-info"
    package.mkdir(parents=True)
    info.mkdir()
    (package / "__init__.py").write_text(init)
    files = [f"{MODULE}/__init__.py"]
    if manifest:
        (package / "rlhub.toml").write_text(f'envs = ["{ENV_ID}"]\nlicense = "MIT"\n')
        files.append(f"{MODULE}/rlhub.toml")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[rlhub.envs]\nbroken = {MODULE}:ENVS\n")
    files += [f"{info.name}/{name}" for name in ("METADATA", "entry_points.txt", "RECORD")]
    (info / "RECORD").write_text("".join(f"{name},,\n" for name in files))


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site folder on ``sys.path``, a trusted ``rlhub-env-broken`` (loaded in-process), a fresh registry."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(tmp_path)  # no rlhub.lock of the working tree's
    monkeypatch.setenv("RLHUB_TRUST", PACKAGE)
    monkeypatch.setattr(registry, "_warned", set(), raising=False)
    registry.clear_cache()
    yield folder
    sys.modules.pop(MODULE, None)
    registry.clear_cache()


def broken_warnings(caplog) -> list[str]:
    """The registry's warnings about the broken package."""
    found = [r for r in caplog.records if r.name == registry.__name__ and r.levelno == logging.WARNING]
    return [r.getMessage() for r in found if PACKAGE in r.getMessage()]


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_a_broken_package_leaves_the_others_working_and_is_logged_once(site, caplog, how):
    init, error = BROKEN[how]
    install_package(site, init)
    caplog.set_level(logging.WARNING)

    env = rlhub.make("arithmetic-v1")
    example = env.examples("test", limit=1)[0]
    assert env.score(env.gold_completion(example), example).rewards["correct"] == 1.0
    registry.clear_cache()  # install and sync reload the registry: the same package is not logged again
    assert rlhub.make("countdown-v0").env_id == "countdown-v0"  # rlhub's own, whoever else claims the id

    [warning] = broken_warnings(caplog)
    assert error in warning and f"pip uninstall {PACKAGE}" in warning
    [package] = registry.broken_packages()
    assert (package.name, package.envs) == (PACKAGE, (ENV_ID,))


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_making_an_env_of_the_broken_package_shows_its_error(site, how):
    init, error = BROKEN[how]
    install_package(site, init)
    with pytest.raises(RLHubError) as caught:
        rlhub.make(ENV_ID)
    message = str(caught.value)
    assert "unknown environment" not in message
    assert PACKAGE in message and error in message


def test_without_a_manifest_an_unknown_id_names_the_broken_package(site):
    install_package(site, BROKEN["raises-on-import"][0], manifest=False)
    with pytest.raises(RLHubError, match="unknown environment") as caught:
        rlhub.make(ENV_ID)
    assert f"{PACKAGE!r} (entry point" in str(caught.value) and "boom at import" in str(caught.value)
    assert rlhub.make("arithmetic-v1").env_id == "arithmetic-v1"


def test_a_package_that_fails_in_its_sandbox_leaves_the_others_working(site, monkeypatch, caplog):
    from rlhub.hub import isolation

    def violation(entry_point):
        raise RLHubError(f"{entry_point.dist.name} tried to write outside its sandbox (filesystem)")

    monkeypatch.delenv("RLHUB_TRUST")
    monkeypatch.setattr(isolation, "sandboxed_entries", violation)
    install_package(site, f"ENVS = [{ENTRY % ENV_ID}]\n")
    caplog.set_level(logging.WARNING)

    assert rlhub.make("arithmetic-v1").env_id == "arithmetic-v1"
    [warning] = broken_warnings(caplog)
    assert "outside its sandbox (filesystem)" in warning
    with pytest.raises(RLHubError, match="outside its sandbox"):
        rlhub.make(ENV_ID)


def test_cli_lists_the_other_envs_and_shows_the_broken_package(site, tmp_path):
    install_package(site, BROKEN["raises-on-import"][0])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path]), "RLHUB_TRUST": PACKAGE}

    def cli(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "rlhub", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)

    listed = cli("envs", "list", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "arithmetic-v1" in listed.stdout and ENV_ID not in listed.stdout
    assert f"{PACKAGE!r} (entry point" in listed.stderr and "boom at import" in listed.stderr
    assert f"pip uninstall {PACKAGE}" in listed.stderr
    shown = cli("envs", "show", ENV_ID)
    assert shown.returncode == 1
    assert "boom at import" in shown.stderr and f"pip uninstall {PACKAGE}" in shown.stderr


@pytest.mark.skipif(bwrap_problem() is not None, reason=f"bubblewrap unusable: {bwrap_problem()}")
def test_a_package_is_not_called_trusted_inside_its_sandbox_and_the_host_logs_it_isolated(
    tmp_path, monkeypatch, caplog
):
    from hub_packages import install_packages, write_package

    # Its import imports rlhub (whose registry finds the package again, inside the sandbox), then fails.
    init = "import rlhub\nraise RuntimeError('broken at import')\n"
    source = write_package(tmp_path, "", "pass", {}, init=init, slug="sandboxed-broken")
    install_packages([source], tmp_path / "site")
    os.chmod(tmp_path, 0o755)  # the sandbox's own uid reads the installed package
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delenv("RLHUB_TRUST", raising=False)
    monkeypatch.setattr(registry, "_warned", set(), raising=False)
    caplog.set_level(logging.INFO)
    registry.clear_cache()
    try:
        with pytest.raises(RLHubError, match="broken at import") as caught:
            rlhub.make("sandboxed-broken-v0")
    finally:
        sys.modules.pop("rlhub_env_sandboxed_broken", None)
        registry.clear_cache()
    # The sandbox's output reaches this error: it must not say that anyone trusted the package.
    assert "trusted by" not in str(caught.value) and "runs in-process" not in str(caught.value)
    logged = [r.getMessage() for r in caplog.records if "'rlhub-env-sandboxed-broken'" in r.getMessage()]
    assert any("runs isolated" in message for message in logged), logged
    assert not any("runs in-process" in message for message in logged), logged
