"""``rlhub hub install NAME[@VERSION]`` and ``rlhub hub sync``: env packages from the hub, pinned in ``rlhub.lock``.

Install takes the version from the hub index and pip-installs exactly its wheel: ``--require-hashes`` with the
wheel's sha256 from the index, ``--no-deps`` (an env package's dependencies must already be installed: rlhub
itself, and what its README names). It then checks the installed files against the index's code and data
hashes, re-scores the published frozen rollouts against the index's reward hash (an entry without frozen
rollouts for every env it serves is refused before anything is installed), runs ``rlhub validate`` on
every env (in the sandbox, as training will), and records the package in the lock. A package that fails any
check is refused in one line (a capability violation named as the sandbox named it) and leaves nothing: it is
uninstalled (or the version the lock pins is put back) and the lock is not touched. ``sync`` installs what
the lock pins, checks every file against it, and writes the lock again (the same bytes when all is well).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rlhub.errors import RLHubError
from rlhub.hub.freeze import last_line
from rlhub.hub.index import canonical, find, read_index
from rlhub.hub.lock import TRUST_LEVELS, content_hashes, installed_file_hashes, read_lock, record, write_lock


def pip_install(name: str, version: str, wheel_sha256: str, index_url: str) -> None:
    """pip-install exactly ``name==version``, the wheel whose sha256 is ``wheel_sha256``, from ``index_url``."""
    with tempfile.TemporaryDirectory(prefix="rlhub-install-") as folder:
        requirements = Path(folder) / "requirements.txt"
        requirements.write_text(f"{name}=={version} --hash=sha256:{wheel_sha256}\n", encoding="utf-8")
        command = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
        command += ["--force-reinstall", "--only-binary", ":all:", "--require-hashes", "--index-url", index_url]
        done = subprocess.run([*command, "-r", str(requirements)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RLHubError(f"pip could not install {name}=={version} from {index_url}: {last_line(done.stderr)}")
    importlib.invalidate_caches()


def _check_requirements(name: str) -> None:
    """Refuse an installed package whose own requirements are not installed (pip ran with ``--no-deps``)."""
    from packaging.requirements import Requirement

    for text in importlib.metadata.requires(name) or []:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            found = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            found = None
        if found is None or not requirement.specifier.contains(found, prereleases=True):
            raise RLHubError(f"{name} needs {requirement} ({found or 'not installed'} here): "
                             f"pip install '{requirement}' first, then install it again")  # fmt: skip


def _fresh_registry() -> None:
    from rlhub.env import registry

    registry.clear_cache()


def _check_loads(name: str) -> None:
    """Refuse a package that the registry leaves out: loading its entries failed (here or in its sandbox).

    The registry's warning about it is held back: the refusal says the same, in install's one line.
    """
    from rlhub.env import registry

    def not_about_it(record: logging.LogRecord) -> bool:
        return canonical(getattr(record, "package", "")) != canonical(name)

    registry.log.addFilter(not_about_it)
    try:
        broken = registry.broken_packages()
    finally:
        registry.log.removeFilter(not_about_it)
    for package in broken:
        if canonical(package.name) == canonical(name):
            raise package.error.with_traceback(None)  # as it failed: a capability violation stays one


def _check_frozen(name: str, version: str, entry: dict[str, Any]) -> None:
    """Refuse an index entry with an env that no frozen rollout covers: install could not check its rewards."""
    frozen = {row.get("env") for row in entry.get("rollouts") or ()}
    unchecked = [env_id for env_id in entry["envs"] if env_id not in frozen]
    if unchecked or not entry["envs"]:
        raise RLHubError(
            f"refused {name} {version}: its hub index entry has no frozen rollouts for "
            f"{', '.join(unchecked) or 'any env'}, so its rewards cannot be checked here; nothing installed. "
            "Its publisher must run `rlhub hub freeze DIR` and publish a new version"
        )


def _check_against_index(name: str, version: str, entry: dict[str, Any]) -> dict[str, str]:
    files = installed_file_hashes(name)
    code_hash, data_hash = content_hashes(files)
    if (code_hash, data_hash) != (entry["code_hash"], entry["data_hash"]):
        raise RLHubError(
            f"{name} {version} installed with code/data hashes {code_hash}/{data_hash}, the hub index says "
            f"{entry['code_hash']}/{entry['data_hash']}: the index and the package disagree"
        )
    return files


def _check_rewards(name: str, version: str, entry: dict[str, Any]) -> None:
    from rlhub.hub.freeze import rescore, reward_hash

    found = reward_hash(rescore(entry["rollouts"]))
    if found != entry["reward_hash"]:
        raise RLHubError(f"{name} {version} gives its published rollouts other rewards here (reward hash {found}, "
                         f"the hub index says {entry['reward_hash']}); do not train on it: report it")  # fmt: skip


def _validate(name: str, envs: list[str]) -> None:
    from rlhub.authoring.validate import validate_env

    for env_id in envs:
        report = validate_env(env_id)
        failed = [c.name for c in report.checks if not c.passed]
        if failed:
            raise RLHubError(f"{name}: {env_id} fails {', '.join(failed)} here; not recorded in the lock "
                             f"(`rlhub validate {env_id}` shows why)")  # fmt: skip


def _undo_install(name: str, lock_path: Path) -> str:
    """Put back what the lock pins for ``name`` (uninstall it if it pins none); says what it did."""
    pinned = next((p for p in read_lock(lock_path) if canonical(p["name"]) == canonical(name)), None)
    if pinned is not None:
        pip_install(name, pinned["version"], pinned["wheel_sha256"], pinned["index_url"])
        undone = f"reinstalled {pinned['version']} as {lock_path} pins it"
    else:
        command = [sys.executable, "-m", "pip", "uninstall", "-y", "-q", "--disable-pip-version-check", name]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RLHubError(f"{name} failed its checks and pip could not uninstall it: {last_line(done.stderr)}; "
                             f"run `pip uninstall {name}` before using rlhub again")  # fmt: skip
        undone = "uninstalled it"
    importlib.invalidate_caches()
    _fresh_registry()
    return undone


def install(ref: str, hub: str, lock_path: Path, trust: str = "sandbox", validate: bool = True) -> dict[str, Any]:
    """Install ``NAME[@VERSION]`` from the hub index at ``hub``, check it, validate it and pin it in the lock.

    Args:
        ref: A package or env id, with ``@VERSION`` of the package or without (the newest).
        hub: The hub index's URL.
        lock_path: The lock to record it in.
        trust: ``sandbox`` (default) or ``in-process``.
        validate: Run ``rlhub validate`` on each env before recording it.

    Returns:
        The lock entry written.
    """
    if trust not in TRUST_LEVELS:
        raise RLHubError(f"trust must be one of {TRUST_LEVELS}, got {trust!r}")
    package, version = find(read_index(hub), ref)
    entry = package["versions"][version]
    name = package["name"]
    _check_frozen(name, version, entry)
    pip_install(name, version, entry["wheel"]["sha256"], entry["index_url"])
    try:
        files = _check_against_index(name, version, entry)
        _check_requirements(name)
        _fresh_registry()
        _check_loads(name)
        _check_rewards(name, version, entry)
        if validate:
            _validate(name, entry["envs"])
    except BaseException as exc:
        # A package that fails its checks must not stay importable: every later registry load would run it.
        undone = _undo_install(name, lock_path)
        if not isinstance(exc, RLHubError):
            raise
        reason = " ".join(str(exc).split())
        raise RLHubError(f"refused {name} {version}: {reason}; {undone}, nothing recorded in {lock_path}") from exc
    locked = {
        "name": name,
        "version": version,
        "envs": sorted(entry["envs"]),
        "index_url": entry["index_url"],
        "wheel_sha256": entry["wheel"]["sha256"],
        "code_hash": entry["code_hash"],
        "data_hash": entry["data_hash"],
        "reward_hash": entry["reward_hash"],
        "trust": trust,
        "files": files,
    }
    record(lock_path, locked)
    return locked


def sync(lock_path: Path) -> list[dict[str, Any]]:
    """Install every package the lock pins, check each installed file against it, and write it again.

    Returns:
        The lock's packages.
    """
    packages = read_lock(lock_path)
    if not packages:
        raise RLHubError(f"{lock_path} pins no packages; `rlhub hub install NAME` adds one")
    synced = []
    for package in packages:
        pip_install(package["name"], package["version"], package["wheel_sha256"], package["index_url"])
        files = installed_file_hashes(package["name"])
        changed = sorted(p for p in set(files) | set(package["files"]) if files.get(p) != package["files"].get(p))
        if changed:
            raise RLHubError(f"{package['name']} {package['version']} installed file {changed[0]} differs from "
                             f"{lock_path}; the wheel on {package['index_url']} is not the one locked")  # fmt: skip
        synced.append({**package, "files": files})
    write_lock(lock_path, synced)
    _fresh_registry()
    return synced
