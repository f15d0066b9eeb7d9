"""What every backend starts its zygotes with: the zygote file, the interpreter's flags, and the zygote's config.

Each backend (``bwrap_backend``, ``docker_backend``, ``subprocess_backend``) takes its shared settings from
here, so that no backend imports another, nor the table of them in ``backends``.
"""

from __future__ import annotations

import functools
import itertools
import os
from pathlib import Path

ZYGOTE_PATH = Path(__file__).with_name("_zygote.py")
SHIPPED_MODULES = {
    "_protocol": Path(__file__).with_name("_protocol.py"),
    "_audit": Path(__file__).with_name("_audit.py"),
    "resolve": Path(__file__).parents[1] / "resolve.py",
}
"""The standalone modules the zygote defines from their source (see ``sandbox_sources``)."""
PYTHON_FLAGS = ["-I", "-S", "-B", "-X", "utf8"]
"""Isolated (no PYTHON* env vars, no user site), no ``site`` (its .pth files would run host hooks in
every sandbox; site-packages go on sys.path through the config instead), no .pyc writes, UTF-8.
For the host's interpreter, which the bwrap and subprocess backends run."""
IMAGE_PYTHON_FLAGS = [flag for flag in PYTHON_FLAGS if flag != "-S"]
"""``PYTHON_FLAGS`` but ``-S``, for a docker image's own interpreter: its ``site`` puts the image's
site-packages on sys.path (the zygote config names none there), and its .pth hooks are the image's, not the host's."""

PRELOAD = (
    *("array", "bisect", "collections", "copy", "dataclasses", "datetime", "decimal", "fractions", "functools"),
    *("heapq", "itertools", "json", "math", "operator", "random", "re", "statistics", "string"),
    *("textwrap", "typing", "unittest"),
)
"""Standard-library modules every zygote imports once, so that programs get them for free: a
program doing ``from typing import List`` and ``import json`` costs 3-4 ms of CPU instead of 10-12,
one importing unittest 4 instead of 20-24 (measured here); a trivial one costs the same."""

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_OPEN_FILES = 256
WORKER_UID_BASE = 1_000_000_000
"""When the host runs as root, programs run as a host uid that nothing else uses, a fresh one per
worker: RLIMIT_NPROC counts processes per host uid (and does not hold root at all), so the cap
then covers exactly one worker's programs, and a program cannot signal or ptrace its zygote
(uid 0) or another worker's programs."""

BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "USER": "sandbox",
    "LOGNAME": "sandbox",
    # One thread per numeric library: the sandbox shares few cores, and thread arenas eat address space.
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

_worker_serial = itertools.count()


def zygote_config(
    *,
    uid: int | None,
    max_processes: int | None,
    workdir: str,
    scratch: list[str],
    private_ipc: bool,
    site_packages: list[str],
) -> dict:
    """The JSON config a zygote takes on its command line (see ``_zygote.py``).

    Args:
        uid: The uid programs run as, or None to keep the zygote's.
        max_processes: RLIMIT_NPROC for programs, or None for no cap.
        workdir: Where each program's private working directory is made.
        scratch: Directories emptied after each program.
        private_ipc: Whether the zygote owns its IPC namespace (and so removes programs' SysV IPC objects).
        site_packages: Directories added to ``sys.path`` (``site`` does not run under ``PYTHON_FLAGS``).

    Returns:
        The config, with the limits, the preloaded modules and the shipped modules' sources every backend shares.
    """
    return {
        "uid": uid,
        "max_processes": max_processes,
        "workdir": workdir,
        "scratch": scratch,
        "private_ipc": private_ipc,
        "site_packages": site_packages,
        "preload": list(PRELOAD),
        "max_file_bytes": MAX_FILE_BYTES,
        "max_open_files": MAX_OPEN_FILES,
        "sources": sandbox_sources(),
    }


@functools.cache
def sandbox_sources() -> dict[str, list[str]]:
    """The source of each of ``SHIPPED_MODULES``, as ``{name: [filename, source]}``, for the zygote's config.

    The zygote runs where rlhub is not importable: alone under bwrap, as ``python3 -c`` in a container. Its config
    carries these modules to it, one mechanism for every backend, instead of a bind or a copy per backend.
    """
    root = ZYGOTE_PATH.parents[2]
    return {
        name: [str(path.relative_to(root)), path.read_text(encoding="utf-8")] for name, path in SHIPPED_MODULES.items()
    }


def next_worker_uid() -> int:
    """A host uid for the next worker's programs, unused by this process's other workers."""
    # Spread by host pid so that two processes' pools do not share uids.
    return WORKER_UID_BASE + (os.getpid() % 100_000) * 1000 + next(_worker_serial) % 1000
