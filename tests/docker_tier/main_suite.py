"""Collect tests of the main suite again in the docker tier, running on the docker backend."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def load(name: str):
    """A fresh copy of ``tests/<name>.py`` imported with RLHUB_SANDBOX=docker.

    A copy of its own, so that its module-level choices (``BACKEND``) are docker's here and the
    main suite's module, if loaded in the same process, keeps its own.
    """
    spec = importlib.util.spec_from_file_location(f"docker_tier_{name}", TESTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    previous = os.environ.get("RLHUB_SANDBOX")
    os.environ["RLHUB_SANDBOX"] = "docker"
    try:
        spec.loader.exec_module(module)
    finally:
        if previous is None:
            del os.environ["RLHUB_SANDBOX"]
        else:
            os.environ["RLHUB_SANDBOX"] = previous
    return module


def reused_tests(module, leave_out: set[str]) -> dict:
    """The ``test_*`` functions of ``module`` but those in ``leave_out``, for a ``globals().update``."""
    return {name: test for name, test in vars(module).items() if name.startswith("test_") and name not in leave_out}
