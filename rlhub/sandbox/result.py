"""What running a program in the sandbox returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "error", "timeout", "memory", "output_limit", "killed"]
"""How a program ended.

ok: exit code 0. error: non-zero exit code (an uncaught exception exits 1). timeout: wall-clock or
CPU-time limit reached. memory: an uncaught ``MemoryError`` (the address-space limit). output_limit:
stdout or stderr went over the cap; the program was stopped. killed: ended by a signal it did not
get from the sandbox's limits, or its worker died.
"""


@dataclass(frozen=True)
class ExecResult:
    """The outcome of one program.

    Attributes:
        status: How the program ended; see ``Status``.
        stdout: Standard output, decoded as UTF-8 (invalid bytes replaced), cut at the output cap.
        stderr: Standard error, likewise.
        returncode: The exit code, or minus the signal number that ended the program.
        wall_time: Seconds from the program's start to its end, as measured inside the sandbox.
        truncated: True if stdout or stderr was cut at the cap.
    """

    status: Status
    stdout: str
    stderr: str
    returncode: int
    wall_time: float
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """True if the program exited with code 0 within every limit."""
        return self.status == "ok"


@dataclass(frozen=True)
class Verdict:
    """Whether a solution passed its tests (see ``run_tests``); truthy when it did.

    Attributes:
        passed: True only if the program exited cleanly and its tests passed: converted asserts
            checked outside the sandbox on the calls' results, or asserts run in the sandbox
            followed by the run's secret token, which it prints only after the last test ran.
        result: The underlying run (for asserts run in the sandbox, the token line still in ``stdout``).
    """

    passed: bool
    result: ExecResult

    def __bool__(self) -> bool:
        return self.passed


@dataclass(frozen=True)
class CallOutcome:
    """What one call of ``run_calls`` gave.

    Attributes:
        ok: True if the call returned a value made only of exact built-in types.
        value: That value, rebuilt on the host (None when not ok).
        error: Why the call failed: the exception it raised, a result of another type, or not run.
    """

    ok: bool
    value: Any = None
    error: str = ""


@dataclass(frozen=True)
class CallResults:
    """The outcome of ``run_calls``: the program's run and one ``CallOutcome`` per call, in order.

    Attributes:
        result: The underlying run.
        calls: One outcome per call.
    """

    result: ExecResult
    calls: tuple[CallOutcome, ...]
