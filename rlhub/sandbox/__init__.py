"""Run untrusted Python programs isolated and fast, for code rewards.

    >>> from rlhub.sandbox import run_python
    >>> run_python("print(sum(range(10)))").stdout  # doctest: +SKIP
    '45\\n'

Speed comes from warm workers: each is one long-lived sandbox running a small Python "zygote"
that forks a fresh child per program, so a program costs a ``fork()``, not a sandbox and an
interpreter start. The child gets a new session, a fresh empty working directory, rlimits (CPU
time, address space, processes, file size, open files) and a clean ``__main__``; when it ends
everything it started is killed and its files are removed.

Backends (``backend=`` or env var RLHUB_SANDBOX; by default bwrap when it works here, else
subprocess):

- ``bwrap``: each worker is a bubblewrap sandbox: no network, new PID/IPC/UTS namespaces, read-only
  system directories, private /tmp, no home directory, a cleared environment, and, when run as
  root, programs running as a uid of their own without capabilities. Install: ``apt-get install
  -y bubblewrap``.
- ``docker``: each worker is a container (no network, read-only root, memory/pids/CPU caps) from a
  local engine through the docker SDK; see ``docker_backend`` for how far it was tested.
- ``subprocess``: plain host processes with rlimits; NOT isolated, and says so in a warning.

What programs see: the interpreter running rlhub (its standard library, and its base
installation's site-packages, without running their .pth files; a virtualenv's packages only
with the subprocess backend), common standard-library modules already imported (see
``config.PRELOAD``), ``sys.argv == ["main.py"]``, and one hash seed per worker rather than per
program. Known gaps: no seccomp filter (the kernel's whole syscall surface is reachable, user
namespaces included), no cgroup memory cap under bwrap (the address-space limit is per process,
so 64 processes may each use ``memory_mb``), and ``run_tests`` runs a solution and its asserts in
one process, guarded by an audit hook rather than a boundary (see ``SandboxPool.run_tests``).
``run_calls`` is the boundary for function-call tests: the sandbox returns each call's result through a
strict serializer and the caller compares it with an expected value the program never sees.

A module-level pool per backend is created on first use and shut down at exit; create a
``SandboxPool`` for control over its size and caps.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterable

from rlhub.sandbox.backends import SANDBOX_BACKENDS, resolve_backend
from rlhub.sandbox.bwrap_backend import bwrap_problem
from rlhub.sandbox.pool import SandboxPool
from rlhub.sandbox.result import CallOutcome, CallResults, ExecResult, Status, Verdict

__all__ = [
    "SANDBOX_BACKENDS",
    "CallOutcome",
    "CallResults",
    "ExecResult",
    "SandboxPool",
    "Status",
    "Verdict",
    "bwrap_problem",
    "default_pool",
    "run_calls",
    "run_python",
    "run_python_batch",
    "run_tests",
    "shutdown_default_pools",
]

_default_pools: dict[str, SandboxPool] = {}
_default_pools_lock = threading.Lock()


def default_pool(backend: str | None = None) -> SandboxPool:
    """The shared pool for ``backend`` (resolved as in ``SandboxPool``), created on first use."""
    name = resolve_backend(backend)
    with _default_pools_lock:
        if name not in _default_pools:
            _default_pools[name] = SandboxPool(backend=name)
        return _default_pools[name]


def run_python(
    code: str,
    *,
    stdin: str = "",
    timeout: float = 5.0,
    memory_mb: int = 512,
    files: dict[str, str] | None = None,
    backend: str | None = None,
) -> ExecResult:
    """Run one Python program in the sandbox.

    Args:
        code: Python source, run as ``__main__``.
        stdin: The program's standard input.
        timeout: Wall-clock seconds; CPU time is capped a second above it.
        memory_mb: Address-space limit of each of the program's processes.
        files: ``{relative_path: content}`` written into the program's working directory.
        backend: "bwrap", "docker", "subprocess" or "auto"; default $RLHUB_SANDBOX, else "auto".

    Returns:
        An ExecResult; the program's own failures are reported there, never raised.
    """
    return default_pool(backend).run(code, stdin=stdin, timeout=timeout, memory_mb=memory_mb, files=files)


def run_python_batch(
    programs: Iterable[str | dict],
    *,
    timeout: float = 5.0,
    memory_mb: int = 512,
    backend: str | None = None,
) -> list[ExecResult]:
    """Run many programs concurrently, one per worker at a time.

    Args:
        programs: Each a code string or a dict with "code" and optionally "stdin" and "files".
        timeout, memory_mb, backend: As for ``run_python``, for every program.

    Returns:
        One ExecResult per program, in the order given.
    """
    return default_pool(backend).run_batch(programs, timeout=timeout, memory_mb=memory_mb)


def run_tests(
    code: str,
    test_code: str,
    *,
    stdin: str = "",
    timeout: float = 5.0,
    memory_mb: int = 512,
    files: dict[str, str] | None = None,
    backend: str | None = None,
) -> Verdict:
    """Run a solution and its tests; see ``SandboxPool.run_tests`` for what counts as passing.

    Returns:
        A Verdict, truthy if the tests ran to their end with status ok.
    """
    pool = default_pool(backend)
    return pool.run_tests(code, test_code, stdin=stdin, timeout=timeout, memory_mb=memory_mb, files=files)


def run_calls(
    code: str,
    calls: Iterable[str],
    *,
    setup: str = "",
    timeout: float = 5.0,
    memory_mb: int = 512,
    files: dict[str, str] | None = None,
    backend: str | None = None,
) -> CallResults:
    """Run a solution, then evaluate each call; see ``SandboxPool.run_calls``.

    Returns:
        The run and one ``CallOutcome`` (ok, value, error) per call; compare the values yourself.
    """
    pool = default_pool(backend)
    return pool.run_calls(code, list(calls), setup=setup, timeout=timeout, memory_mb=memory_mb, files=files)


def shutdown_default_pools() -> None:
    """Close the module-level pools (done automatically at exit)."""
    with _default_pools_lock:
        pools = list(_default_pools.values())
        _default_pools.clear()
    for pool in pools:
        pool.close()


def _forget_default_pools() -> None:
    """In a forked child: the parent's workers are not ours to use or stop."""
    global _default_pools_lock
    _default_pools_lock = threading.Lock()
    _default_pools.clear()


atexit.register(shutdown_default_pools)
os.register_at_fork(after_in_child=_forget_default_pools)
