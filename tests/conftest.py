"""Test set-up: offline data locations, offline W&B, and small shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / "tests" / "data"

# GSM8K and BFCL ship in data/ and are found without set-up; the MATH and MBPP fixtures are test files.
os.environ["RLHUB_DATA"] = str(TEST_DATA)
os.environ.setdefault("WANDB_MODE", "offline")
# Nothing in the tests may reach a model or dataset hub (this machine has no route to one).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# model.dtype: auto resolves to float32 without measuring, so no test depends on this machine's bf16 speed
# (tests/test_dtype_auto.py unsets it where it tests the probe itself).
os.environ.setdefault("RLHUB_AUTO_DTYPE", "float32")
os.environ.pop("WANDB_API_KEY", None)


@pytest.fixture
def registry_file(tmp_path, monkeypatch):
    """Write a registry YAML and point rlhub at it; returns a writer function."""
    from rlhub.env import registry

    def write(text: str) -> Path:
        path = tmp_path / "registry.yaml"
        path.write_text(text)
        monkeypatch.setenv("RLHUB_REGISTRY", str(path))
        registry.clear_cache()
        return path

    yield write
    registry.clear_cache()
