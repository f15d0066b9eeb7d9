"""Which code made a result: the git commit of the checkout a file lives in, and whether it had changes.

Runs, benchmarks and stored measurements record it so a figure traces back to its code. One reader for all
of them; each keeps the form its files already hold (the full hash, or ``Commit.label``'s short one).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_S = 10.0
"""How long one git command may take before the commit counts as unknown."""


@dataclass(frozen=True)
class Commit:
    """A checkout's HEAD commit."""

    sha: str
    """The full hash."""
    dirty: bool | None
    """Whether tracked files differ from the commit (untracked files do not count); None: git could not say."""

    @property
    def label(self) -> str:
        """The hash shortened to 12 characters, with ``+dirty`` when tracked files differ: ``0123456789ab+dirty``."""
        return self.sha[:12] + ("+dirty" if self.dirty else "")


def _git(folder: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def read_commit(folder: str | Path) -> Commit | None:
    """The HEAD commit of the git checkout holding ``folder``.

    Args:
        folder: Any folder inside the checkout.

    Returns:
        The commit, or None when ``folder`` is in no checkout, git is not installed or it does not answer in time.
    """
    sha = _git(Path(folder), "rev-parse", "HEAD")
    if not sha:
        return None
    status = _git(Path(folder), "status", "--porcelain", "--untracked-files=no")
    return Commit(sha, bool(status) if status is not None else None)
