"""Where workers run: the ``Backend`` protocol and the table of backends by name.

A backend starts one zygote (``_zygote.py``) per call to ``start()`` and returns the channel to it;
the pool does the rest, identically for every backend. Each backend is a module of its own
(``bwrap_backend``, ``docker_backend``, ``subprocess_backend``) named in :data:`BACKENDS` and loaded
through ``rlhub.resolve`` when chosen; what they share is in ``config``.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Protocol

from rlhub.errors import RLHubError
from rlhub.resolve import resolve
from rlhub.sandbox.bwrap_backend import bwrap_problem, bwrap_python_command
from rlhub.sandbox.channel import Channel
from rlhub.sandbox.config import PYTHON_FLAGS, ZYGOTE_PATH, zygote_config

# PYTHON_FLAGS, ZYGOTE_PATH, zygote_config and bwrap_python_command are here for importers outside this
# package (tests, bench), which found them in this module when it held every backend.
__all__ = [
    "BACKENDS",
    "PYTHON_FLAGS",
    "SANDBOX_BACKENDS",
    "ZYGOTE_PATH",
    "Backend",
    "bwrap_problem",
    "bwrap_python_command",
    "make_backend",
    "resolve_backend",
    "zygote_config",
]

logger = logging.getLogger("rlhub.sandbox")

BACKENDS = {
    "bwrap": "rlhub.sandbox.bwrap_backend:BwrapBackend",
    "docker": "rlhub.sandbox.docker_backend:DockerBackend",
    "subprocess": "rlhub.sandbox.subprocess_backend:SubprocessBackend",
}
"""Backend classes by name. ``make_backend`` passes each the pool's settings its constructor names:
``max_processes`` and ``image``."""
SANDBOX_BACKENDS = tuple(BACKENDS)

_warned_not_isolated = False


class Backend(Protocol):
    """What a pool needs of a backend; ``isolated``: whether programs are contained (``make_backend`` warns if not)."""

    name: str
    isolated: bool

    def start(self) -> Channel:
        """Start one zygote and return the channel to it (before its ready message)."""

    def close(self) -> None:
        """Release what the backend holds once every worker is gone."""


def resolve_backend(name: str | None) -> str:
    """The backend to use: ``name``, else $RLHUB_SANDBOX, else bwrap if it works here, else subprocess."""
    name = name or os.environ.get("RLHUB_SANDBOX") or "auto"
    if name == "auto":
        return "bwrap" if bwrap_problem() is None else "subprocess"
    if name not in BACKENDS:
        raise RLHubError(
            f"unknown sandbox backend {name!r}: use one of {', '.join(SANDBOX_BACKENDS)} or 'auto' "
            "(argument backend= or env var RLHUB_SANDBOX)"
        )
    return name


def make_backend(name: str | None, *, max_processes: int, docker_image: str) -> Backend:
    """Instantiate the backend ``resolve_backend(name)`` picks; warn, once per process, if it is not isolated.

    Args:
        name: A key of :data:`BACKENDS`, "auto", or None (see ``resolve_backend``).
        max_processes: RLIMIT_NPROC for programs, for the backends that take it.
        docker_image: The image, for the backends that take one.

    Returns:
        The backend.

    Raises:
        RLHubError: The name is unknown, or the backend cannot run here.
    """
    global _warned_not_isolated
    backend_class = resolve(BACKENDS[resolve_backend(name)], what="sandbox backend")
    settings = {"max_processes": max_processes, "image": docker_image}
    accepted = inspect.signature(backend_class).parameters
    backend = backend_class(**{key: value for key, value in settings.items() if key in accepted})
    if not backend.isolated and not _warned_not_isolated:
        logger.warning("rlhub.sandbox: the %s backend is NOT isolated; install bubblewrap", backend.name)
        _warned_not_isolated = True
    return backend
