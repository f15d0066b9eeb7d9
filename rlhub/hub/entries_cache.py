"""Isolated env packages' registry entries, kept on disk so that loading the registry starts no sandbox for them.

Reading an isolated package's entries imports its code, which happens only in its sandbox: about half a second
per package, on every registry load. What a sandbox returned is stored in one JSON file per package entry point,
``<cache>/hub-entries/<package>.<entry point>.json``, with the key it was read under (a hash of the package's
installed files, see :func:`rlhub.hub.isolation.sandboxed_entries`). A stored file is used only under that exact
key and for that package: one that does not parse, holds another key or names another package is ignored, and the
next sandboxed read replaces it. Files are replaced atomically, so a reader never sees half of one. The cache
folder is ``rlhub.models.cache_root()``: ``$RLHUB_CACHE``, else ``$XDG_CACHE_HOME/rlhub``, else ``~/.cache/rlhub``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

FOLDER = "hub-entries"
log = logging.getLogger(__name__)


def cache_folder() -> Path:
    """Where the entries are kept: ``hub-entries/`` in rlhub's cache folder."""
    from rlhub.models import cache_root

    return cache_root() / FOLDER


def _path(package: str, entry_point: str) -> Path:
    return cache_folder() / (re.sub(r"[^\w.-]", "_", f"{package}.{entry_point}") + ".json")


def read(package: str, entry_point: str, key: str) -> list[dict[str, Any]] | None:
    """The entries stored for ``package``'s entry point named ``entry_point`` under ``key``.

    Returns:
        The entries, or None when none are stored under this key (missing, unreadable, or another key's).
    """
    try:
        stored = json.loads(_path(package, entry_point).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or (stored.get("package"), stored.get("key")) != (package, key):
        return None
    entries = stored.get("entries")
    return entries if isinstance(entries, list) else None


def write(package: str, entry_point: str, key: str, entries: list[dict[str, Any]]) -> None:
    """Store ``entries`` under ``key``, replacing what was stored for this entry point.

    A cache folder that cannot be written is logged and left alone: the next load reads the entries in the
    sandbox again.
    """
    path = _path(package, entry_point)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False, encoding="utf-8"
        ) as file:
            temporary = file.name
            json.dump({"package": package, "entry_point": entry_point, "key": key, "entries": entries}, file)
        os.replace(temporary, path)
        temporary = None
    except OSError as exc:
        log.warning("cannot cache the registry entries of %r in %s: %s", package, path.parent, exc)
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
