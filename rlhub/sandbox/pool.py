"""A pool of warm sandbox workers that runs programs concurrently, replacing workers that die."""

from __future__ import annotations

import ast
import json
import math
import os
import posixpath
import secrets
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from rlhub.arithmetic import parse
from rlhub.errors import RLHubError
from rlhub.sandbox._protocol import decode_value
from rlhub.sandbox.backends import Backend, make_backend
from rlhub.sandbox.channel import Channel, WorkerLost
from rlhub.sandbox.checks import CallCheck, convert
from rlhub.sandbox.docker_backend import DEFAULT_IMAGE
from rlhub.sandbox.result import CallOutcome, CallResults, ExecResult, Verdict
from rlhub.sandbox.workers import WorkerPool

DEFAULT_MAX_OUTPUT = 1_000_000
STARTUP_TIMEOUT = 60.0
REPLY_GRACE = 5.0
"""Seconds past a program's own timeout before a silent worker counts as wedged and is replaced."""
CLOSE_TIMEOUT = 2.0
PROGRAM_KEYS = frozenset({"code", "stdin", "files"})


class _Worker:
    """One warm zygote, started on first use and restarted after it is lost."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._channel: Channel | None = None

    def ensure_started(self) -> None:
        if self._channel is not None:
            return
        channel = self._backend.start()
        try:
            ready = channel.recv(time.monotonic() + STARTUP_TIMEOUT)
        except WorkerLost as lost:
            details = channel.diagnostics() or "it wrote nothing to stderr"
            channel.close(0)
            raise RLHubError(f"a {self._backend.name} sandbox worker failed to start ({lost}): {details}") from None
        if not ready.get("ready"):
            channel.close(0)
            raise RLHubError(f"a {self._backend.name} sandbox worker sent {ready!r} instead of its ready message")
        self._channel = channel

    def run(self, request: dict) -> tuple[ExecResult, str | None]:
        """The program's result, and what it wrote on its results pipe (None without calls)."""
        if self._channel is not None and not self._channel.alive():
            self.close(0)  # it died while idle: replace it before the program starts
        self.ensure_started()
        started = time.monotonic()
        deadline = started + request["timeout"] + REPLY_GRACE
        try:
            self._channel.send(request, deadline)
            reply = self._channel.recv(deadline)
            if "retired" in reply:  # it did not run this request: run it on a fresh worker
                self.close(CLOSE_TIMEOUT)
                self.ensure_started()
                self._channel.send(request, deadline)
                reply = self._channel.recv(deadline)
        except WorkerLost as lost:
            details = self._channel.diagnostics()
            self.close(0)
            lost_result = ExecResult(
                status=lost.status,
                stdout="",
                stderr=f"rlhub.sandbox: worker lost: {lost}" + (f"\n{details}" if details else ""),
                returncode=-signal.SIGKILL,
                wall_time=time.monotonic() - started,
            )
            return lost_result, None
        results = reply.pop("results", None)
        return ExecResult(**reply), results

    def request_exit(self) -> None:
        if self._channel is not None:
            self._channel.request_exit()

    def close(self, timeout: float) -> None:
        if self._channel is not None:
            self._channel.close(timeout)
            self._channel = None


class _Zygotes(WorkerPool[_Worker]):
    """The pool's workers; each restarts its own zygote when lost, so every release is healthy."""

    def __init__(self, backend: Backend, size: int) -> None:
        super().__init__(size, name="sandbox worker")
        self.backend = backend

    def start_worker(self) -> _Worker:
        return _Worker(self.backend)

    def stop_worker(self, worker: _Worker) -> None:
        worker.close(CLOSE_TIMEOUT)

    def stop_workers(self, workers) -> None:
        workers = list(workers)
        for worker in workers:  # all asked first, so they exit in parallel
            worker.request_exit()
        for worker in workers:
            worker.close(CLOSE_TIMEOUT)


class SandboxPool:
    """Warm sandboxed workers; each program gets a fresh process and directory in one of them.

    Thread-safe: concurrent ``run`` calls use different workers, waiting when all are busy. A
    worker that dies or stops answering is replaced on its next use. Use it as a context manager,
    or call ``close()``; either way nothing it started is left running. Not fork-safe: use a pool
    only in the process that made it.

    Args:
        workers: Number of workers (programs running at once); defaults to the usable CPU count.
        backend: "bwrap", "docker", "subprocess", "auto", a ``Backend`` instance, or None for
            $RLHUB_SANDBOX, else "auto" (bwrap if it works here, else subprocess).
        max_output: Cap, in bytes, on each of stdout and stderr; past it the program is stopped.
        max_processes: Processes plus threads a program may have at once (bwrap and docker).
        docker_image: The image docker workers run.

    Raises:
        RLHubError: The backend is unknown or unusable here.
    """

    def __init__(
        self,
        workers: int | None = None,
        backend: str | Backend | None = None,
        *,
        max_output: int = DEFAULT_MAX_OUTPUT,
        max_processes: int = 64,
        docker_image: str = DEFAULT_IMAGE,
    ) -> None:
        if backend is None or isinstance(backend, str):
            backend = make_backend(backend, max_processes=max_processes, docker_image=docker_image)
        self.backend = backend
        self.workers = workers or len(os.sched_getaffinity(0))
        self.max_output = max_output
        self._zygotes = _Zygotes(backend, self.workers)
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def run(
        self,
        code: str,
        *,
        stdin: str = "",
        timeout: float = 5.0,
        memory_mb: int = 512,
        files: dict[str, str] | None = None,
    ) -> ExecResult:
        """Run ``code`` as a fresh ``python`` program's ``__main__``.

        Args:
            code: Python source.
            stdin: The program's standard input.
            timeout: Wall-clock seconds; CPU time is capped a second above it.
            memory_mb: Address-space limit of each of the program's processes.
            files: ``{relative_path: content}`` written into the program's working directory.

        Returns:
            The outcome; a program's failure is reported there, never raised.
        """
        return self._execute([["main.py", code]], stdin, timeout, memory_mb, files, token=None)[0]

    def run_tests(
        self,
        code: str,
        test_code: str,
        *,
        stdin: str = "",
        timeout: float = 5.0,
        memory_mb: int = 512,
        files: dict[str, str] | None = None,
        isolate: Sequence[str] | None = None,
        test_prelude: str = "",
    ) -> Verdict:
        """Run ``code`` then ``test_code`` (plain statements, e.g. asserts), and say whether the tests passed.

        When every statement of ``test_code`` is an assert that converts (see ``rlhub.sandbox.checks``:
        ``assert f(2) == 4``, ``assert abs(f(x) - 0.5) < 1e-6``), the asserts never enter the sandbox:
        it evaluates their calls (``run_calls``) and this process checks the results, so neither a
        forged "pass" nor an object whose comparisons lie can pass.

        Otherwise both are compiled, separately, before either runs, in one namespace. The run passes
        only if it ends with status ok and a fresh random token, which the sandbox prints after the
        last statement of ``test_code`` has run. So a solution that exits early (``sys.exit(0)``,
        ``os._exit(0)``), prints a fake token or "All tests passed", or rebinds ``AssertionError`` or
        other builtins fails. The token is held only in the harness's frames, and an audit hook in the
        test run refuses frame and gc introspection, ``ctypes``, new processes and ``/proc/*/mem``, so
        a solution cannot dig it out by the usual routes. That is defence in depth, not a boundary,
        and it does nothing against objects whose comparisons lie.

        With ``isolate`` (the names of the solution's functions the tests call), that boundary holds
        for any test code: the solution runs in a process of its own and the tests in another, where
        each name is a proxy whose arguments and result cross through the strict serializer. The
        solution cannot see the token or the tests, return a lying object, or rebind what the tests
        use; tests that pass other objects to the solution, or read its other globals, fail.

        Args:
            code: The solution.
            test_code: The tests, run after ``code`` in its namespace.
            stdin, timeout, memory_mb, files: As for ``run``.
            isolate: Run the tests apart from the solution, calling these functions of it.
            test_prelude: With ``isolate``: trusted code the tests' process runs first (say, the helpers
                the tests use), before the proxies are bound.

        Returns:
            A Verdict, truthy if the tests passed.
        """
        checks = as_checks(test_code)
        if checks is not None:
            calls = [call for check in checks for call in check.calls]
            segments = [["main.py", code]]
            result, raw = self._execute(segments, stdin, timeout, memory_mb, files, token=None, calls=calls)
            outcomes, start, passed = _call_outcomes(raw, len(calls)), 0, result.status == "ok"
            for check in checks:
                got = outcomes[start : start + len(check.calls)]
                start += len(check.calls)
                passed = passed and all(o.ok for o in got) and check.passes([o.value for o in got])
            return Verdict(passed=passed, result=result)
        token = secrets.token_hex(16)
        segments = [["main.py", code], ["tests.py", test_code]]
        if isolate is not None:
            if not all(isinstance(name, str) and name.isidentifier() for name in isolate):
                raise ValueError(f"isolate must be a list of function names, got {isolate!r}")
            segments[1:1] = [["prelude.py", test_prelude]]
            isolate = list(isolate)
        result = self._execute(segments, stdin, timeout, memory_mb, files, token=token, isolate=isolate)[0]
        return Verdict(passed=result.status == "ok" and result.stdout.endswith(f"\n{token}\n"), result=result)

    def run_calls(
        self,
        code: str,
        calls: Sequence[str],
        *,
        setup: str = "",
        timeout: float = 5.0,
        memory_mb: int = 512,
        files: dict[str, str] | None = None,
    ) -> CallResults:
        """Run ``code`` (then ``setup``), then evaluate each of ``calls`` and return what each gave.

        Each call is an expression (``"add(1, 2)"``), evaluated in the program's namespace after the
        program ran to its end. Its result comes back through a strict serializer: only values made
        of exactly bool, int, float, str, None, list, tuple, dict and set (no subclasses) are
        reported; any other result, like an exception, is a failed call. The expected values stay
        with the caller, who compares, so a program can neither see them nor lie about equality.
        Calls run in order in one process, within ``timeout`` all together; a call cut short by the
        timeout and those after it are failed calls.

        Args:
            code: The solution.
            calls: Expressions to evaluate, in order.
            setup: Statements run after ``code`` and before the calls (say, a test's setup code).
            timeout, memory_mb, files: As for ``run``.

        Returns:
            The program's run and one ``CallOutcome`` per call.
        """
        calls = list(calls)
        if not all(isinstance(call, str) for call in calls):
            raise ValueError("calls must be expression strings such as 'add(1, 2)'")
        segments = [["main.py", code]] + ([["setup.py", setup]] if setup else [])
        result, raw = self._execute(segments, "", timeout, memory_mb, files, token=None, calls=calls)
        return CallResults(result=result, calls=_call_outcomes(raw, len(calls)))

    def run_batch(
        self, programs: Iterable[str | dict], *, timeout: float = 5.0, memory_mb: int = 512
    ) -> list[ExecResult]:
        """Run many programs concurrently on the pool's workers.

        Args:
            programs: Each a code string or a dict with "code" and optionally "stdin" and "files".
            timeout, memory_mb: As for ``run``, for every program.

        Returns:
            One result per program, in the order given.
        """
        jobs = [_as_job(program) for program in programs]
        return list(self._pool_threads().map(lambda job: self.run(**job, timeout=timeout, memory_mb=memory_mb), jobs))

    def warm(self) -> None:
        """Start every worker now (in parallel) rather than on first use."""
        workers = [self._zygotes.acquire() for _ in range(self.workers)]
        try:
            list(self._pool_threads().map(_Worker.ensure_started, workers))
        finally:
            for worker in workers:
                self._zygotes.release(worker)

    def close(self) -> None:
        """Stop every worker, after letting running programs finish; the pool is unusable after."""
        if not self._zygotes.close(wait=True):
            return
        self.backend.close()
        if self._executor is not None:
            self._executor.shutdown()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _execute(
        self, segments, stdin, timeout, memory_mb, files, token, calls=None, isolate=None
    ) -> tuple[ExecResult, str | None]:
        request = {
            "code": segments,
            "stdin": stdin,
            "files": _checked_files(files),
            "timeout": timeout,
            "memory_mb": memory_mb,
            "max_output": self.max_output,
            "token": token,
            "calls": calls,
            "isolate": isolate,
        }
        _check_request(request)
        worker = self._zygotes.acquire()
        try:
            return worker.run(request)
        finally:
            self._zygotes.release(worker)

    def _pool_threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="rlhub-sandbox")
            return self._executor


def as_checks(test_code: str) -> list[CallCheck] | None:
    """``test_code`` as converted asserts, if every one of its statements converts; else None."""
    try:
        statements = parse(test_code, "exec").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    checks = [convert(ast.unparse(statement)) for statement in statements]
    if not checks or any(check is None for check in checks):
        return None
    return checks


def _call_outcomes(raw: str | None, count: int) -> tuple[CallOutcome, ...]:
    """Parse the results pipe: the first well-formed line for each call index counts."""
    found: dict[int, CallOutcome] = {}
    for line in (raw or "").splitlines():
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if type(entry) is not dict or type(entry.get("i")) is not int or not 0 <= entry["i"] < count:
            continue
        if entry["i"] in found:
            continue
        if "v" in entry:
            try:
                found[entry["i"]] = CallOutcome(True, decode_value(entry["v"]))
            except (ValueError, RecursionError):
                found[entry["i"]] = CallOutcome(False, error="a malformed result")
        else:
            found[entry["i"]] = CallOutcome(False, error=str(entry.get("error"))[:200])
    missing = CallOutcome(False, error="not run: the program ended or ran out of time first")
    return tuple(found.get(i, missing) for i in range(count))


def _as_job(program: str | dict) -> dict:
    if isinstance(program, str):
        return {"code": program}
    if not isinstance(program, dict) or "code" not in program or not PROGRAM_KEYS.issuperset(program):
        raise ValueError(f"a program is a code string or a dict with keys {sorted(PROGRAM_KEYS)}, got {program!r}")
    return dict(program)


def _checked_files(files: dict[str, str] | None) -> dict[str, str]:
    files = files or {}
    for path, content in files.items():
        normal = posixpath.normpath(path) if isinstance(path, str) else ""
        if normal in ("", ".", "..") or normal.startswith(("/", "../")):
            raise ValueError(f"files keys must be relative paths inside the working directory, got {path!r}")
        if not isinstance(content, str):
            raise ValueError(f"files[{path!r}] must be a str, got {type(content).__name__}")
    return dict(files)


def _check_request(request: dict) -> None:
    for filename, source in request["code"]:
        if not isinstance(source, str):
            raise ValueError(f"{filename}: code must be a str, got {type(source).__name__}")
    if not isinstance(request["stdin"], str):
        raise ValueError(f"stdin must be a str, got {type(request['stdin']).__name__}")
    timeout = request["timeout"]
    if not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    memory_mb = request["memory_mb"]
    if not isinstance(memory_mb, int) or memory_mb <= 0:
        raise ValueError(f"memory_mb must be a positive int, got {memory_mb!r}")
