"""``rlhub.lock``: the env packages a project installed from the hub, pinned to the bytes that were validated.

A TOML file that ``rlhub hub install`` writes and ``rlhub hub sync`` installs from, one table per package::

    [[package]]
    name = "rlhub-env-word-count"
    version = "0.1.0"
    envs = ["word-count-v0"]
    index_url = "https://hub.example.org/simple/"
    wheel_sha256 = "..."
    code_hash = "..."       # sha256 over its installed Python files
    data_hash = "..."       # sha256 over its other installed files (manifest, data)
    reward_hash = "..."     # sha256 over the rewards its code gives the published frozen rollouts
    trust = "sandbox"       # or "in-process"

    [package.files]
    "rlhub_env_word_count/__init__.py" = "<sha256>"

It is written by hand, sorted, with nothing from the machine in it, so two syncs of one lock write the same
bytes. ``rlhub.make("word-count-v0@0.1.0")`` checks the installed files against it (:func:`check_locked`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from rlhub.errors import RLHubError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LOCK_FILE = "rlhub.lock"
LOCK_VARIABLE = "RLHUB_LOCK"
TRUST_LEVELS = ("sandbox", "in-process")
FIELDS = ("name", "version", "envs", "index_url", "wheel_sha256", "code_hash", "data_hash", "reward_hash", "trust")
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
HEADER = "# rlhub.lock: env packages installed from the hub, pinned (rlhub hub sync installs exactly these).\n"


def default_lock_path() -> Path:
    """``$RLHUB_LOCK``, else ``rlhub.lock`` in the working directory."""
    return Path(os.environ.get(LOCK_VARIABLE) or LOCK_FILE)


# --- hashes ---------------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_content(path: str) -> bool:
    """Whether a file a wheel installs is the package's content (not metadata, bytecode or scripts)."""
    parts = path.split("/")
    return not (parts[0].endswith((".dist-info", ".data")) or "__pycache__" in parts or path.endswith(".pyc"))


def wheel_file_hashes(wheel: Path) -> dict[str, str]:
    """sha256 of each content file in a wheel, by its installed path."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        return {n: _sha256(archive.read(n)) for n in sorted(archive.namelist()) if _is_content(n) and n[-1] != "/"}


def installed_file_hashes(name: str) -> dict[str, str]:
    """sha256 of each content file an installed distribution has, by its installed path.

    Raises:
        RLHubError: It is not installed, or a file it lists is unreadable.
    """
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise RLHubError(f"environment package {name!r} is not installed; run `rlhub hub sync` or `rlhub hub install`")
    hashes = {}
    for file in dist.files or []:
        if _is_content(file.as_posix()):
            try:
                hashes[file.as_posix()] = _sha256(Path(dist.locate_file(file)).read_bytes())
            except OSError:
                hashes[file.as_posix()] = "missing"
    return dict(sorted(hashes.items()))


def content_hashes(files: dict[str, str]) -> tuple[str, str]:
    """The code hash (its Python files) and data hash (every other file) of a package's file hashes."""

    def combined(paths: list[str]) -> str:
        return _sha256("".join(f"{p}\0{files[p]}\n" for p in sorted(paths)).encode())[:16]

    code = [p for p in files if p.endswith(".py")]
    return combined(code), combined([p for p in files if not p.endswith(".py")])


# --- the file -------------------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string with ASCII escapes is a TOML basic string


def _toml_key(key: str) -> str:
    return key if BARE_KEY.match(key) else json.dumps(key)


def render_lock(packages: list[dict[str, Any]]) -> str:
    """The lock's text: packages sorted by name, fields in :data:`FIELDS` order, files sorted."""
    out = [HEADER, "version = 1\n"]
    for package in sorted(packages, key=lambda p: p["name"]):
        out.append("\n[[package]]\n")
        out += [f"{field} = {_toml_value(package[field])}\n" for field in FIELDS]
        out.append("\n[package.files]\n")
        out += [f"{_toml_key(path)} = {_toml_value(sha)}\n" for path, sha in sorted(package["files"].items())]
    return "".join(out)


def read_lock(path: Path) -> list[dict[str, Any]]:
    """The packages of a lock file (none if it does not exist).

    Raises:
        RLHubError: It is not a lock this version of rlhub reads.
    """
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RLHubError(f"{path}: not a readable lock ({exc}); restore it from version control")
    packages = data.get("package", [])
    for package in packages:
        missing = [field for field in (*FIELDS, "files") if field not in package]
        if missing or package["trust"] not in TRUST_LEVELS:
            raise RLHubError(f"{path}: package {package.get('name')!r} lacks {missing or 'a valid trust'}; "
                             "reinstall it with `rlhub hub install`")  # fmt: skip
    return packages


def write_lock(path: Path, packages: list[dict[str, Any]]) -> None:
    """Write ``packages`` to ``path`` (byte for byte the same for the same packages)."""
    path.write_text(render_lock(packages), encoding="utf-8")


def record(path: Path, package: dict[str, Any]) -> None:
    """Add ``package`` to the lock at ``path``, replacing any earlier entry of the same name."""
    others = [p for p in read_lock(path) if p["name"] != package["name"]]
    write_lock(path, [*others, package])


# --- the check behind rlhub.make("NAME@VERSION") --------------------------------------------------------


def check_locked(env_ref: str, lock_path: str | Path | None = None) -> str:
    """Check that the package serving ``ENV_ID@VERSION`` is installed exactly as the lock pins it.

    Args:
        env_ref: ``word-count-v0@0.1.0``: an env id and the version of the package that serves it.
        lock_path: The lock; default :func:`default_lock_path`.

    Returns:
        The env id, for ``make``.

    Raises:
        RLHubError: One line: the lock does not pin that env at that version, or an installed file differs
            from the lock (naming the file).
    """
    env_id, _, version = env_ref.partition("@")
    path = Path(lock_path) if lock_path is not None else default_lock_path()
    pinned = [p for p in read_lock(path) if env_id in p["envs"]]
    if not pinned:
        raise RLHubError(f"{env_ref}: {path} pins no package serving {env_id!r}; run `rlhub hub install {env_ref}`")
    package = pinned[0]
    if package["version"] != version:
        raise RLHubError(f"{env_ref}: {path} pins {package['name']} {package['version']}, not {version}; "
                         f"use {env_id}@{package['version']} or `rlhub hub install {env_ref}`")  # fmt: skip
    installed = importlib.metadata.version(package["name"]) if _installed(package["name"]) else None
    if installed != version:
        raise RLHubError(f"{env_ref}: {package['name']} {installed or '(not installed)'} is installed, the lock "
                         f"pins {version}; run `rlhub hub sync`")  # fmt: skip
    files = installed_file_hashes(package["name"])
    for file in sorted(set(files) | set(package["files"])):
        if files.get(file) != package["files"].get(file):
            what = "is not in the lock" if file not in package["files"] else "differs from the lock"
            what = "is missing" if files.get(file) in (None, "missing") else what
            raise RLHubError(f"{env_ref}: installed file {file} of {package['name']} {what}; "
                             "reinstall it with `rlhub hub sync`")  # fmt: skip
    return env_id


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
