"""The docker tier: tests that need a running Docker engine and the locally built images.

scripts/test-docker.sh sets it up and runs it with RLHUB_REQUIRE_DOCKER=1, under which a missing
engine or image fails every test here instead of skipping it. Run elsewhere without that variable,
the tier skips, saying why.
"""

from __future__ import annotations

import os

import pytest

IMAGE_VARIABLE = "RLHUB_SANDBOX_IMAGE"


def _unavailable(reason: str):
    if os.environ.get("RLHUB_REQUIRE_DOCKER") == "1":
        pytest.fail(f"the docker tier needs {reason}; run it through scripts/test-docker.sh", pytrace=False)
    pytest.skip(f"{reason} (scripts/test-docker.sh sets it up)")


@pytest.fixture(scope="session")
def docker_client():
    """A docker SDK client to a live engine."""
    try:
        import docker
    except ImportError:
        _unavailable("the docker SDK (pip install -e '.[docker]')")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        _unavailable(f"a running Docker engine ({exc})")
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client) -> str:
    """The tag of the locally built Python image the sandbox runs programs in."""
    tag = os.environ.get(IMAGE_VARIABLE)
    if not tag:
        _unavailable(f"${IMAGE_VARIABLE} naming the image built by scripts/docker_images.py")
    import docker

    try:
        docker_client.images.get(tag)
    except docker.errors.ImageNotFound:
        _unavailable(f"the image {tag} (build it: python3 scripts/docker_images.py)")
    return tag


@pytest.fixture(autouse=True)
def docker_sandbox(sandbox_image, monkeypatch):
    """Every test of the tier needs the engine and image; default pools are docker ones."""
    monkeypatch.setenv("RLHUB_SANDBOX", "docker")
    return sandbox_image
