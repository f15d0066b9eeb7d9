"""Loading environment data from a local path, an ``RLHUB_DATA`` folder, the shipped copy, or the hub.

Every environment that reads data takes ``path=`` (a file or a folder holding ``<split>.jsonl``) and
``dataset=`` (an HF dataset id, used when online). Without ``path``, each folder listed in the
``RLHUB_DATA`` environment variable (``os.pathsep``-separated) is searched for ``<data_name>/``, then
the data rlhub ships (``data/`` at the repository root, ``rlhub/_data/data/`` in a wheel), then the hub.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rlhub.errors import DataNotFound, RLHubError


def _read_file(file: Path) -> list[dict[str, Any]]:
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".json":
        stripped = text.lstrip()
        if stripped.startswith("["):
            return json.loads(text)
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RLHubError(f"{file}:{lineno}: not valid JSON ({exc.msg}); expected one JSON object per line")
    return records


def _split_file(folder: Path, *splits: str | None) -> Path | None:
    for split in filter(None, splits):
        for name in (f"{split}.jsonl", f"{split}.json"):
            if (folder / name).is_file():
                return folder / name
    return None


def shipped_data_dir() -> Path:
    """The folder of data sets that ship with rlhub (GSM8K, BFCL), each with its license."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "_data" / "data"
    return packaged if packaged.is_dir() else package.parent / "data"


def data_search_path() -> list[Path]:
    """Where ``<data_name>/`` folders are looked for: each ``RLHUB_DATA`` entry, then the shipped data."""
    raw = os.environ.get("RLHUB_DATA", "")
    return [Path(p) for p in raw.split(os.pathsep) if p] + [shipped_data_dir()]


def load_records(
    *,
    path: str | None,
    dataset: str | None,
    split: str,
    data_name: str,
    dataset_config: str | None = None,
    dataset_split: str | None = None,
) -> list[dict[str, Any]]:
    """Load one split's records as dicts.

    Args:
        path: A ``.jsonl``/``.json`` file (it serves every split) or a folder with ``<split>.jsonl``.
        dataset: An HF dataset id, loaded with ``datasets.load_dataset`` when no local data is found.
        split: ``"train"`` or ``"test"``.
        data_name: The folder name looked up under each ``RLHUB_DATA`` entry and the shipped data (e.g. ``"gsm8k"``).
        dataset_config: The HF dataset config name (e.g. ``"main"`` for GSM8K).
        dataset_split: The HF split to read for ``split`` (defaults to ``split``); a local folder
            without ``<split>.jsonl`` is read from ``<dataset_split>.jsonl`` too.

    Raises:
        RLHubError: with the fix, when nothing can be loaded.
    """
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            return _read_file(p)
        if p.is_dir():
            f = _split_file(p, split, dataset_split)
            if f is None:
                raise RLHubError(f"{p} has no {split}.jsonl; put one there or pass path= to a .jsonl file")
            return _read_file(f)
        raise RLHubError(f"data path {p} does not exist; pass path= to a .jsonl file or a folder of <split>.jsonl")
    for root in data_search_path():
        folder = root / data_name
        if folder.is_dir():
            f = _split_file(folder, split, dataset_split)
            if f is not None:
                return _read_file(f)
    if dataset is None:
        raise DataNotFound(
            f"no data for {data_name!r} ({split}): pass path=/local/{data_name} "
            f"or set RLHUB_DATA to a folder holding {data_name}/"
        )
    return _load_hf(dataset, dataset_config, dataset_split or split, data_name)


def _load_hf(dataset: str, config: str | None, split: str, data_name: str) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise RLHubError(
            f"loading {dataset!r} from the hub needs `pip install datasets`; or pass path= to local {data_name} data"
        )
    offline = any(
        os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )
    if not offline and not hub_reachable():
        raise DataNotFound(
            f"no local {data_name} data and the Hugging Face hub is unreachable (no network?): pass path= to a "
            f"local {data_name} JSONL or folder, or set RLHUB_DATA to a folder holding {data_name}/"
        )
    try:
        ds = datasets.load_dataset(dataset, config, split=split)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataNotFound(
            f"could not load HF dataset {dataset!r} split {split!r} ({first}); offline? pass path= to local "
            f"{data_name} data or set RLHUB_DATA"
        )
    return [dict(r) for r in ds]


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub (``HF_ENDPOINT``, default huggingface.co) opens within ``timeout``.

    Checked before ``datasets.load_dataset``, whose retries otherwise take ~25 s to fail on a machine without
    network; with ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` set, the datasets cache is used and no check is made.
    """
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False
