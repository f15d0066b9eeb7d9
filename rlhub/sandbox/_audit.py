"""The audit hook of a test run: what code rewards never need and a forgery does, refused inside the sandbox.

A run with a token or calls is a test run: before its program starts, the zygote's child installs
``refusing_hook()``, which refuses frames (``sys._getframe``, ``tb_frame``, ``gi_frame``, tracing), the gc's
object lists, ``ctypes``, ``fork``/``exec``, and ``/proc/*/mem``. It is defence in depth, not the boundary: a
call's expected value never enters the sandbox, so a program that defeats the hook can only report values it
could have returned.

The zygote defines this module from the source the host ships in its config (``config.sandbox_sources``), so it
imports nothing.
"""

from __future__ import annotations

REFUSED_EVENTS = frozenset(
    {
        "sys._current_frames",
        "sys.settrace",
        "sys.setprofile",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "os.fork",
        "os.forkpty",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.system",
        "subprocess.Popen",
        "pty.spawn",
    }
)
"""Audit events a test run's program may not raise: frames, the gc's view of every object, new processes."""
FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})


class Refused(ValueError):
    """Raised by the audit hook. A ValueError, as ``sys._getframe`` raises for a stack too shallow:
    ``namedtuple``, ``typing`` and ``logging`` then carry on without the caller's frame."""


def refusing_hook():
    """The audit hook of a test run's child (see the module docstring).

    Everything it consults is bound in its closure, not looked up in this module's globals, which a
    program can reach (through ``object.__subclasses__()`` and a function's ``__globals__``) and rebind.
    """
    refused, frame_attributes, kind, text, raw = REFUSED_EVENTS, FRAME_ATTRIBUTES, type, str, bytes
    refuse = Refused

    def hook(event: str, args: tuple) -> None:
        if event in refused or event.startswith("ctypes."):
            raise refuse(f"the sandbox refuses {event} in a test run")
        if event == "sys._getframe":
            raise refuse("the sandbox refuses frame access in a test run")
        if event == "object.__getattr__" and args[1] in frame_attributes:
            raise refuse(f"the sandbox refuses {args[1]} in a test run")
        if event == "open" and kind(args[0]) in (text, raw):
            path = args[0] if kind(args[0]) is text else args[0].decode("utf-8", "replace")
            if path.startswith("/proc/") and (path.endswith("/mem") or "/map_files" in path):
                raise refuse("the sandbox refuses opening process memory in a test run")

    return hook
