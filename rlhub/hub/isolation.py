"""Which env packages run isolated, and the registry's two entries into the sandbox: loading and making envs.

Every env from a pip package (an ``rlhub.envs`` entry point outside rlhub) runs in a sandbox behind the
capabilities its manifest declares, unless its distribution is named in ``$RLHUB_TRUST`` (comma-separated);
a trusted package runs in the trainer's process. Either choice is logged, once per package. rlhub's own envs
always run in-process, and so does the package inside its own sandbox (where no other package is visible).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import sys
from typing import Any

from rlhub.errors import RLHubError
from rlhub.hub import entries_cache
from rlhub.hub.manifest import Capabilities, installed_manifest
from rlhub.hub.sandbox import SERVER_IN_SANDBOX, SERVER_PATH, EnvSandbox, SandboxPlan

TRUST_VARIABLE = "RLHUB_TRUST"
log = logging.getLogger(__name__)
_entry_points: dict[str, importlib.metadata.EntryPoint] = {}
"""The entry point each isolated env id was loaded from."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def package_of(source: str) -> str | None:
    """The distribution name in a spec's source (``pip:NAME==VERSION``), None for rlhub's own envs."""
    return source.removeprefix("pip:").partition("==")[0] if source.startswith("pip:") else None


def isolated(source: str) -> bool:
    """Whether envs from ``source`` run in a sandbox: every package's but those named in ``$RLHUB_TRUST`` and
    those the lock (``rlhub.lock``, or ``$RLHUB_LOCK``) pins at this version with ``trust = "in-process"``."""
    package = package_of(source)
    if package is None or _in_own_sandbox():
        return False
    trusted = {_canonical(name) for name in os.environ.get(TRUST_VARIABLE, "").split(",") if name.strip()}
    if _canonical(package) in trusted:
        _log_trust(package, f"${TRUST_VARIABLE}")
        return False
    version = source.partition("==")[2]
    if version and (_canonical(package), version) in _lock_trusted():
        _log_trust(package, "rlhub.lock (trust = in-process)")
        return False
    _log_isolated(package)
    return True


def _in_own_sandbox() -> bool:
    """Whether this process is an env package's sandbox server (:mod:`rlhub.hub._server`).

    There the package already runs isolated, and the sandbox masks every other env package: its code is
    imported in that process, and nobody trusted it.
    """
    return sys.argv[:1] == [SERVER_IN_SANDBOX]


def _lock_trusted() -> set[tuple[str, str]]:
    """(package, version) pairs the lock marks ``trust = "in-process"``; re-read when the lock file changes."""
    from rlhub.hub.lock import default_lock_path

    path = default_lock_path()
    try:
        stat = path.stat()
    except OSError:
        return set()
    return _read_lock_trusted(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.cache
def _read_lock_trusted(path: str, mtime_ns: int, size: int) -> set[tuple[str, str]]:
    from pathlib import Path

    from rlhub.hub.lock import read_lock

    return {(_canonical(p["name"]), p["version"]) for p in read_lock(Path(path)) if p["trust"] == "in-process"}


@functools.cache
def _log_trust(package: str, by: str) -> None:
    log.warning(
        "environment package %r runs in-process, trusted by %s: its code has this process's files, "
        "environment variables and network",
        package,
        by,
    )


@functools.cache
def _log_isolated(package: str) -> None:
    log.info("environment package %r runs isolated, in a sandbox with only the capabilities its rlhub.toml declares",
             package)  # fmt: skip


def _capabilities(entry_point: importlib.metadata.EntryPoint) -> tuple[Capabilities, tuple[str, ...] | None]:
    manifest = installed_manifest(entry_point)
    if manifest is None:
        return Capabilities(), None
    return manifest.capabilities, manifest.envs


def sandboxed_entries(entry_point: importlib.metadata.EntryPoint) -> list[dict[str, Any]]:
    """The registry entries of an isolated package's entry point, loaded in its sandbox (its import runs there).

    The entries are cached on disk (:mod:`rlhub.hub.entries_cache`) under a hash of the package's installed files:
    while those are unchanged, a load costs hashing them instead of starting a sandbox.

    Raises:
        CapabilityViolation: Importing it tried something its manifest does not declare.
        RLHubError: It registers an env its manifest does not list.
    """
    capabilities, declared = _capabilities(entry_point)
    key = _entries_key(entry_point)
    package = entry_point.dist.name
    entries = None if key is None else entries_cache.read(package, entry_point.name, key)
    fresh = entries is None
    if fresh:
        entries = SandboxPlan(entry_point.dist, entry_point, capabilities).entries()
    if not isinstance(entries, list):
        raise RLHubError(f"entry point {entry_point.value!r} gave {type(entries).__name__}, not a list of entries")
    for entry in entries:
        env_id = entry.get("id") if isinstance(entry, dict) else None
        if declared is not None and env_id not in declared:
            raise RLHubError(
                f"environment package {package!r} registers {env_id!r}, which its rlhub.toml does "
                f"not list (envs = {list(declared)}): add it there"
            )
        _entry_points[env_id] = entry_point
    if fresh and key is not None:
        entries_cache.write(package, entry_point.name, key, entries)
    return entries


def _entries_key(entry_point: importlib.metadata.EntryPoint) -> str | None:
    """What an entry point's entries are cached under: a hash of its package's installed files, the entry point,
    the Python version and the sandbox server that reads them. None (not cached) for a package whose installed
    files do not hold its code (an editable install), or that has a file it cannot read."""
    dist = entry_point.dist
    try:
        editable = json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable")
    except (ValueError, AttributeError):
        editable = True  # pip's record of where it came from does not parse: do not rely on its files either
    if editable or dist.read_text("RECORD") is None:
        return None
    try:
        h = _files_hash(dist)
    except RLHubError:  # an installed file it cannot read: the sandbox says what that breaks
        return None
    for part in (entry_point.name, entry_point.value, sys.version, SERVER_PATH.read_text(encoding="utf-8")):
        h.update(b"\0" + part.encode())
    return h.hexdigest()


def make_sandboxed(spec, overrides: dict[str, Any]):
    """Start ``spec``'s env in its package's sandbox; the client env (``SandboxedEnv``)."""
    from rlhub.hub.client import SandboxedEnv

    entry_point = _entry_points.get(spec.id)
    if entry_point is None:
        raise RLHubError(f"environment {spec.id!r} was not loaded from an isolated package in this process")
    json.dumps(overrides)  # what cannot travel to the sandbox fails here, with the value's type
    capabilities, _ = _capabilities(entry_point)
    sandbox = EnvSandbox(SandboxPlan(entry_point.dist, entry_point, capabilities), spec.id, overrides)
    try:
        return SandboxedEnv(sandbox, spec.id)
    except BaseException:
        sandbox.stop()
        raise


def installed_hash(spec) -> str:
    """sha256 over an isolated package's installed files (bytes, not import) and ``spec``'s default config."""
    h = _files_hash(importlib.metadata.distribution(package_of(spec.source)))
    h.update(json.dumps(spec.config, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _files_hash(dist: importlib.metadata.Distribution):
    """A sha256 object fed with each installed file's path and bytes (bytecode and pip's records left out)."""
    h = hashlib.sha256()
    for file in sorted(dist.files or [], key=str):
        if "__pycache__" in file.parts or file.name in ("RECORD", "INSTALLER", "direct_url.json"):
            continue
        try:
            h.update(str(file).encode() + b"\0" + dist.locate_file(file).read_bytes())
        except OSError as exc:
            raise RLHubError(f"environment package {dist.name!r}: installed file {file} unreadable: {exc}")
    return h
