"""The hub index: one static JSON document that says which env packages exist, and what each version proved.

``rlhub hub publish`` writes it (a file; serve it from any static host), ``search``, ``info``, ``install`` and
``sync`` read it from an http(s) or file URL (``--hub URL`` or ``$RLHUB_HUB``). Its shape::

    {"format": "rlhub-hub/1",
     "packages": {"rlhub-env-word-count": {
         "name": "rlhub-env-word-count", "summary": "...", "license": "Apache-2.0", "envs": ["word-count-v0"],
         "versions": {"0.1.0": {
             "envs": [...], "index_url": "https://.../simple/",
             "wheel": {"filename": "...whl", "sha256": "..."}, "sdist": {"filename": "...", "sha256": "..."},
             "code_hash": "...", "data_hash": "...", "reward_hash": "...",
             "validate": {"passed": true, "probes": {"answer spam": {"correct": 0.0, "total": 0.1}, ...}},
             "rollouts": [...], "card": {...}}}}}}

``rollouts`` are the frozen rollouts with the rewards that version gave them: the next version's drift gate
re-scores them (see :mod:`rlhub.hub.freeze`). ``card`` (the env card's measured figures) is there when measured.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from rlhub.errors import RLHubError

FORMAT = "rlhub-hub/1"
HUB_VARIABLE = "RLHUB_HUB"
ENV_REF = re.compile(r"^(?P<name>[^@\s]+?)(?:@(?P<version>[^@\s]+))?$")


def canonical(name: str) -> str:
    """A distribution name as the index keys it (PEP 503: ``Word_Count`` -> ``word-count``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def hub_url(url: str | None) -> str:
    """The hub index's URL: ``url``, else ``$RLHUB_HUB``; a bare path becomes a file URL."""
    url = url or os.environ.get(HUB_VARIABLE)
    if not url:
        raise RLHubError(f"no hub index given: pass --hub URL or set ${HUB_VARIABLE} (an http(s) or file URL)")
    return url if "://" in url else Path(url).resolve().as_uri()


def local_path(url: str) -> Path:
    """The file behind a file URL (or path); publishing writes the index there."""
    if "://" not in url:
        return Path(url)
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "file":
        raise RLHubError(f"publish writes the hub index as a file, not to {url}: pass a path or a file:// URL")
    return Path(urllib.request.url2pathname(parsed.path))


def read_index(url: str) -> dict[str, Any]:
    """The index at ``url`` (http(s) or file); an absent file reads as an empty index.

    Raises:
        RLHubError: It cannot be fetched or is not an rlhub hub index.
    """
    url = hub_url(url)
    if url.startswith("file:") and not local_path(url).exists():
        return {"format": FORMAT, "packages": {}}
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            index = json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise RLHubError(f"cannot read the hub index at {url}: {exc}; check --hub / ${HUB_VARIABLE}")
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise RLHubError(f'{url} is not a hub index (no "format": {FORMAT!r}); check --hub / ${HUB_VARIABLE}')
    return index


def write_index(path: Path, index: dict[str, Any]) -> None:
    """Write ``index`` sorted and indented, so that a diff shows what one publish added."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def sorted_versions(package: dict[str, Any]) -> list[str]:
    """A package entry's versions, oldest first (PEP 440 order)."""

    def key(version: str) -> tuple:
        try:
            return (1, Version(version))
        except InvalidVersion:
            return (0, version)

    return sorted(package["versions"], key=key)


def find(index: dict[str, Any], ref: str) -> tuple[dict[str, Any], str]:
    """The package entry and version that ``NAME[@VERSION]`` names (the newest without ``@VERSION``).

    ``NAME`` is a package (``rlhub-env-word-count``) or one of its env ids (``word-count-v0``).

    Raises:
        RLHubError: No such package or version on the index; names the close ones.
    """
    match = ENV_REF.match(ref)
    if match is None:
        raise RLHubError(f"{ref!r} is not NAME or NAME@VERSION (e.g. word-count-v0@0.1.0)")
    name, version = match["name"], match["version"]
    packages = index["packages"]
    found = packages.get(canonical(name)) or next((p for p in packages.values() if name in p.get("envs", ())), None)
    if found is None:
        raise RLHubError(f"no package or env {name!r} on the hub index; try `rlhub hub search {name.split('-')[0]}`")
    versions = sorted_versions(found)
    if version is None:
        # An env id names the newest version that still serves it; a package name, the newest of all.
        serving = [v for v in versions if name in found["versions"][v]["envs"]] or versions
        return found, serving[-1]
    if version not in found["versions"]:
        raise RLHubError(f"{found['name']} has no version {version!r} on the hub index; it has {', '.join(versions)}")
    return found, version


def search(index: dict[str, Any], words: list[str]) -> list[dict[str, Any]]:
    """The package entries whose name, env ids or summary hold every word (case-insensitive), sorted by name."""
    wanted = [w.lower() for w in words]
    found = []
    for package in index["packages"].values():
        text = " ".join([package["name"], *package.get("envs", ()), package.get("summary", "")]).lower()
        if all(word in text for word in wanted):
            found.append(package)
    return sorted(found, key=lambda p: p["name"])


def add_version(index: dict[str, Any], name: str, version: str, summary: str, license: str, entry: dict) -> None:
    """Record ``entry`` as ``name``'s ``version``; the package's summary, license and envs become this version's."""
    package = index["packages"].setdefault(canonical(name), {"name": name, "versions": {}})
    package.update(summary=summary, license=license, envs=list(entry["envs"]))
    package["versions"][version] = entry
