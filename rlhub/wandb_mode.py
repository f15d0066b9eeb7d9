"""W&B without an account: runs go offline unless credentials are found (training and ``rlhub eval`` alike)."""

from __future__ import annotations

import os
from pathlib import Path


def has_wandb_credentials() -> bool:
    """An API key in the environment or an api.wandb.ai entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def offline_unless_credentials() -> bool:
    """Default ``WANDB_MODE`` to offline when there are no credentials; return whether runs are offline."""
    if not has_wandb_credentials():
        os.environ.setdefault("WANDB_MODE", "offline")
    return os.environ.get("WANDB_MODE") in ("offline", "dryrun")
