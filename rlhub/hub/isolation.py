"""Which env packages run isolated, and the registry's two entries into the sandbox: loading and making envs.

Every env from a pip package (an ``rlhub.envs`` entry point outside rlhub) runs in a sandbox behind the
capabilities its manifest declares, unless its distribution is named in ``$RLHUB_TRUST`` (comma-separated);
a trusted package runs in the trainer's process, and that choice is logged. rlhub's own envs always run
in-process.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import re
from typing import Any

from rlhub.errors import RLHubError
from rlhub.hub.manifest import Capabilities, installed_manifest
from rlhub.hub.sandbox import EnvSandbox, SandboxPlan

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
    """Whether envs from ``source`` run in a sandbox: every package's but those named in ``$RLHUB_TRUST``."""
    package = package_of(source)
    if package is None:
        return False
    trusted = {_canonical(name) for name in os.environ.get(TRUST_VARIABLE, "").split(",") if name.strip()}
    if _canonical(package) in trusted:
        _log_trust(package)
        return False
    return True


@functools.cache
def _log_trust(package: str) -> None:
    log.warning(
        "environment package %r runs in-process, trusted by $%s: its code has this process's files, "
        "environment variables and network",
        package,
        TRUST_VARIABLE,
    )


def _capabilities(entry_point: importlib.metadata.EntryPoint) -> tuple[Capabilities, tuple[str, ...] | None]:
    manifest = installed_manifest(entry_point)
    if manifest is None:
        return Capabilities(), None
    return manifest.capabilities, manifest.envs


def sandboxed_entries(entry_point: importlib.metadata.EntryPoint) -> list[dict[str, Any]]:
    """The registry entries of an isolated package's entry point, loaded in its sandbox (its import runs there).

    Raises:
        CapabilityViolation: Importing it tried something its manifest does not declare.
        RLHubError: It registers an env its manifest does not list.
    """
    capabilities, declared = _capabilities(entry_point)
    entries = SandboxPlan(entry_point.dist, entry_point, capabilities).entries()
    if not isinstance(entries, list):
        raise RLHubError(f"entry point {entry_point.value!r} gave {type(entries).__name__}, not a list of entries")
    for entry in entries:
        env_id = entry.get("id") if isinstance(entry, dict) else None
        if declared is not None and env_id not in declared:
            raise RLHubError(
                f"environment package {entry_point.dist.name!r} registers {env_id!r}, which its rlhub.toml does "
                f"not list (envs = {list(declared)}): add it there"
            )
        _entry_points[env_id] = entry_point
    return entries


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
    dist = importlib.metadata.distribution(package_of(spec.source))
    h = hashlib.sha256()
    for file in sorted(dist.files or [], key=str):
        if "__pycache__" in file.parts or file.name in ("RECORD", "INSTALLER", "direct_url.json"):
            continue
        try:
            h.update(str(file).encode() + b"\0" + dist.locate_file(file).read_bytes())
        except OSError as exc:
            raise RLHubError(f"environment package {dist.name!r}: installed file {file} unreadable: {exc}")
    h.update(json.dumps(spec.config, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]
