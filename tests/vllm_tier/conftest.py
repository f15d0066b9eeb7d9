"""The vLLM tier: tests against a real vLLM server (its CPU build) that scripts/test-vllm.sh starts.

The script exports ``RLHUB_VLLM_URL`` (the server), ``RLHUB_VLLM_MODEL`` (its served name) and
``RLHUB_VLLM_PYTHON`` (the interpreter of vLLM's own virtualenv). Without them, or without an answering
server, every test here fails: this tier is run on purpose, so a missing server is an error, not a skip.
"""

from __future__ import annotations

import os

import pytest

from rlhub.generation._http import HTTPError, request_json

HOW = "run this tier with scripts/test-vllm.sh, which builds vLLM's environment and starts the server"


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set; {HOW}", pytrace=False)
    return value


@pytest.fixture(scope="session")
def vllm_url() -> str:
    """The running server's root URL (no ``/v1``), checked to answer."""
    url = _env("RLHUB_VLLM_URL").rstrip("/")
    try:
        request_json("GET", f"{url}/v1/models", timeout=30)
    except HTTPError as exc:
        pytest.fail(f"no vLLM server answers at {url} ({exc}); {HOW}", pytrace=False)
    return url


@pytest.fixture(scope="session")
def served_model(vllm_url) -> str:
    """The base model's name on the server."""
    return _env("RLHUB_VLLM_MODEL")


@pytest.fixture(scope="session")
def vllm_python() -> str:
    """The Python of vLLM's virtualenv (vllm importable, rlhub on its path)."""
    return _env("RLHUB_VLLM_PYTHON")


@pytest.fixture(scope="session")
def model_dir():
    """The converted embedded SmolLM2-135M-Instruct, the checkpoint the server serves."""
    from rlhub.models import convert_embedded

    return convert_embedded()
