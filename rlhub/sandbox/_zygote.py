"""The warm worker that runs inside each sandbox and forks one fresh child per program.

It runs as a standalone script, ``python -I -S -B -X utf8 _zygote.py CONFIG_JSON`` (under bwrap, as a
docker container's main process, or on the host) and imports only the standard library. Paying
for the sandbox and the interpreter once per worker instead of once per program is what makes the
pool fast: a program costs one ``fork()``.

Protocol, on the zygote's stdin and stdout: frames of a 4-byte big-endian length followed by UTF-8
JSON. The zygote first sends ``{"ready": true, ...}``; then, for each request ``{"code", "stdin",
"files", "timeout", "memory_mb", "max_output", "token", "calls"}`` (``code`` is a list of ``[filename,
source]`` segments run in one namespace; ``token`` is printed last, only if every segment ran to
its end; ``calls``, if not null, is a list of expressions evaluated after the segments, each result
reported through the strict serializer ``encode_value``), it replies ``{"status", "stdout",
"stderr", "returncode", "wall_time", "truncated", "results"}``: ``results`` is what the child wrote
on its results pipe (one JSON line per call, ``{"i": index, "v": encoded}`` or ``{"i": index,
"error": text}``), cut at ``max_output``, or null when there were no calls.
If it cannot clean up after a program, it sends ``{"retired": reason}`` and exits: the request
the host sends next was not run. EOF on stdin shuts it down.

Each program's child is forked as soon as the previous program is cleaned up, before its request
arrives. It starts a new session, drops to the worker's uid when the zygote may (``config["uid"]``),
waits for its request, writes its files into a fresh private directory, sets rlimits, then runs the
code with ``exec`` in a new ``__main__`` module, its stdout and stderr going to pipes that the
zygote reads up to a cap. Once the child has exited (or hit its wall-clock limit or the output
cap), the zygote kills every other process the program left, and empties the scratch directories.
When the zygote is PID 1 of its own PID namespace (bwrap ``--as-pid-1``, docker), ``kill(-1)``
reaches every such process and none can signal the zygote, since a namespace's init ignores
signals from inside it; on the host it is a child subreaper and sweeps its descendants instead.

A run with a token or calls is a test run: before its program starts, the child installs the audit
hook of ``_audit.py``. The framing and the strict serializer are ``_protocol.py``; the preloaded modules are
imported by ``rlhub/resolve.py``'s ``resolve_module``. The host ships these three in the config, and this script
defines them before anything else (``_shipped_module``). The host does not import this script.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import json
import linecache
import math
import os
import resource
import select
import shutil
import signal
import sys
import time
import traceback
import types

REPORT_FD = 3
RESULTS_FD = 4
MEMORY_ERROR_MARK = b"M"
SETUP_FAILED_EXIT = 126

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
IPC_RMID = 0
SYS_KEYCTL = 250  # the x86_64 number; other architectures skip the keyring reset
KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_CLEAR = 7
KEY_SPEC_USER_KEYRING = -4
KEY_SPEC_USER_SESSION_KEYRING = -5

_SOURCES = json.loads(sys.argv[-1])["sources"]


def _shipped_module(name: str) -> types.ModuleType:
    """The module ``name``, defined from the source the host put in the config: ``{"sources": {name: [file, source]}}``.

    The sandbox holds no rlhub (bwrap binds this script alone, docker runs it as ``python3 -c``), and importing
    rlhub would cost a second per worker; the modules it needs are standalone files the host reads for it
    (``rlhub.sandbox.config.sandbox_sources``). They stay out of ``sys.modules``, so programs never see them.
    """
    filename, source = _SOURCES[name]
    module = types.ModuleType(name)
    module.__file__ = filename
    exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)
    return module


protocol = _shipped_module("_protocol")
resolve_module = _shipped_module("resolve").resolve_module
refusing_hook = _shipped_module("_audit").refusing_hook
_type = type  # bound before any program runs: a program may rebind builtins
_libc = None


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _keyctl(*args: int) -> None:
    """Best effort: seccomp (docker's default profile) may refuse keyctl, which is fine."""
    _libc.syscall(SYS_KEYCTL, *[ctypes.c_long(a) for a in args])


# ----------------------------------------------------------------------------- the child


def set_program_limits(timeout: float, memory_mb: int, config: dict) -> None:
    """A program's rlimits: CPU a second past its timeout, address space, file size, open files, no core files or
    message queues, and processes when ``config`` caps them (also used by the workspace server)."""
    cpu_seconds = math.ceil(timeout) + 1
    memory_bytes = memory_mb * 1024 * 1024
    limits = {
        resource.RLIMIT_CPU: (cpu_seconds, cpu_seconds + 1),
        resource.RLIMIT_AS: (memory_bytes, memory_bytes),
        resource.RLIMIT_FSIZE: (config["max_file_bytes"],) * 2,
        resource.RLIMIT_NOFILE: (config["max_open_files"],) * 2,
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_MSGQUEUE: (0, 0),
    }
    if config["max_processes"] is not None:
        limits[resource.RLIMIT_NPROC] = (config["max_processes"],) * 2
    for which, limit in limits.items():
        resource.setrlimit(which, limit)


def _child(config: dict, request_r: int, out_w: int, err_w: int, report_w: int, results_w: int) -> None:
    """Set up the forked child, wait for its request, and run the program; never returns.

    The child is forked ahead of its request (see ``Spare``); the setup that does not depend
    on the request is done while it waits.
    """
    try:
        # All four are >= 5 (the zygote's protocol holds fds 3 and 4, which these dup2 calls close).
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(report_w, REPORT_FD)
        os.dup2(results_w, RESULTS_FD)
        os.setsid()
        uid = config["uid"]
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        # After the uid change, which resets both: die with the zygote, and be dumpable (the
        # zygote is not, so that a program cannot ptrace it).
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _prctl(PR_SET_DUMPABLE, 1)
        if os.uname().machine == "x86_64":
            # A fresh session keyring, and nothing left in the uid's keyrings by an earlier program.
            _keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0)
            _keyctl(KEYCTL_CLEAR, KEY_SPEC_USER_KEYRING)
            _keyctl(KEYCTL_CLEAR, KEY_SPEC_USER_SESSION_KEYRING)

        request = json.loads(protocol.read_to_end(request_r))
        workdir = config["workdir"]
        os.mkdir(workdir, 0o700)
        for relative, content in request["files"].items():
            path = os.path.join(workdir, relative)
            if not os.path.realpath(path).startswith(workdir + os.sep):
                raise ValueError(f"file path {relative!r} leaves the working directory")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(content)
        os.chdir(workdir)

        stdin_fd = os.memfd_create("stdin")
        protocol.write_all(stdin_fd, request["stdin"].encode())
        os.lseek(stdin_fd, 0, os.SEEK_SET)
        os.dup2(stdin_fd, 0)
        os.closerange(RESULTS_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])

        set_program_limits(request["timeout"], request["memory_mb"], config)

        request_code = request["code"]
        sys.argv = [request_code[0][0]]
        sys.path.insert(0, workdir)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    except BaseException as exc:  # any setup failure is reported as the program's error
        os.write(2, f"sandbox setup failed: {exc!r}\n".encode())
        os._exit(SETUP_FAILED_EXIT)
    calls, token, isolate = request.get("calls"), request["token"], request.get("isolate")
    del request
    _run_program(request_code, token, calls, isolate)


def _run_program(segments: list, token: str | None, calls: list[str] | None, isolate: list[str] | None) -> None:
    """Run each ``(filename, source)`` segment in turn in one ``__main__`` namespace; never returns.

    Segments are compiled separately, so one cannot swallow the next (say, by ending inside an
    open string); all are compiled before any runs. Then each of ``calls`` is evaluated and its
    result, or the name of the exception it raised, written to ``RESULTS_FD``. With ``isolate`` (names
    of the solution's functions), the first segment, the solution, runs in a process of its own
    (``_serve_solution``) and the others here, where each name is bound, before the last segment
    runs, to a proxy that calls the solution's function through the strict serializer. Exits the
    way the interpreter would.
    """
    run, evaluate = exec, eval  # bound before any program code runs: a program may rebind builtins
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    exit_code, completed = 0, False
    try:
        compiled = []
        for number, (filename, source) in enumerate(segments):
            if number == 0:  # the program's own lines, for its tracebacks; not the tests', which it could read
                linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            compiled.append(compile(source, filename, "exec", dont_inherit=True))
        expressions = [compile(call, f"<call {i}>", "eval", dont_inherit=True) for i, call in enumerate(calls or ())]
        proxies = None
        if isolate is not None:
            proxies = _start_solution_process(compiled.pop(0), isolate)
        elif token is not None or calls is not None:
            sys.addaudithook(refusing_hook())
        for number, code in enumerate(compiled):
            if proxies is not None and number == len(compiled) - 1:
                main.__dict__.update(proxies)
            run(code, main.__dict__)
        for index, expression in enumerate(expressions):
            _report_call(index, evaluate, expression, main.__dict__)
        completed = True
    except SystemExit as exc:
        exit_code = _system_exit_code(exc)
    except MemoryError:
        main.__dict__.clear()  # free what the program holds so the traceback can be printed
        os.write(REPORT_FD, MEMORY_ERROR_MARK)
        exit_code = _print_uncaught()
    except BaseException:  # an uncaught exception is the program's error
        exit_code = _print_uncaught()

    # What Py_FinalizeEx does: join non-daemon threads, run atexit handlers, flush. The zygote
    # does not import threading: its at-fork handler alone would add ~130 page faults per program.
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        atexit._run_exitfuncs()
    except BaseException:
        exit_code = exit_code or _print_uncaught()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if not getattr(stream, "closed", False):
                stream.flush()
        except BaseException:
            exit_code = exit_code or 120
    if completed and exit_code == 0 and token:
        # Written only here, after the last statement ran: proof that the code was not cut short.
        try:
            os.write(1, f"\n{token}\n".encode())
        except OSError:
            pass
    os._exit(exit_code)


def _start_solution_process(code, names: list[str]) -> dict:
    """Fork the process that runs the solution and serves calls to it; return a proxy per name."""
    calls_r, calls_w = os.pipe()
    replies_r, replies_w = os.pipe()
    _prctl(PR_SET_DUMPABLE, 0)  # the solution's process (same uid) may not read this one's memory
    pid = os.fork()
    if pid == 0:
        os.close(calls_w)
        os.close(replies_r)
        _serve_solution(code, calls_r, replies_w)
    os.close(calls_r)
    os.close(replies_w)

    def proxy(name: str):
        def call(*args, **kwargs):
            request = json.dumps(
                {"name": name, "args": protocol.encode_value(list(args)), "kwargs": protocol.encode_value(kwargs)}
            )
            protocol.write_all(calls_w, protocol.frame_bytes(request.encode()))
            payload = protocol.read_frame(replies_r)
            if payload is None:
                raise RuntimeError(f"the solution's process ended before {name} returned")
            reply = json.loads(payload)
            if "error" in reply:
                raise RuntimeError(f"{name} failed: {reply['error']}")
            return protocol.decode_value(reply["v"])

        call.__name__ = call.__qualname__ = name
        return call

    return {name: proxy(name) for name in names}


def _serve_solution(code, calls_r: int, replies_w: int) -> None:
    """In the solution's process: run it, then answer calls until EOF; never returns."""
    sys.addaudithook(refusing_hook())
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    except BaseException:  # the solution's own failure: the tests' calls then fail
        os._exit(_print_uncaught())
    while (payload := protocol.read_frame(calls_r)) is not None:
        request = json.loads(payload)
        try:
            function = main.__dict__[request["name"]]
            result = function(*protocol.decode_value(request["args"]), **protocol.decode_value(request["kwargs"]))
            reply = json.dumps({"v": protocol.encode_value(result)}, separators=(",", ":"))
        except BaseException as exc:  # reported to the tests as the call's failure
            reply = json.dumps({"error": f"{_type(exc).__name__}"})
        protocol.write_all(replies_w, protocol.frame_bytes(reply.encode()))
    os._exit(0)


def _report_call(index: int, evaluate, expression, namespace: dict) -> None:
    """Evaluate one call and write its result line; an exception, or a result that is not made of
    exact built-in types, is reported as an error."""
    try:
        line = {"i": index, "v": protocol.encode_value(evaluate(expression, namespace))}
    except BaseException as exc:  # the call's own failure, reported rather than raised
        line = {"i": index, "error": f"{_type(exc).__name__}: {exc}"[:200]}
    try:
        data = json.dumps(line, separators=(",", ":")).encode()
    except BaseException:  # e.g. an int too long to write: the call failed
        data = json.dumps({"i": index, "error": "the result could not be written"}).encode()
    protocol.write_all(RESULTS_FD, data + b"\n")


def _system_exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    try:
        print(exc.code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def _print_uncaught() -> int:
    exc_type, value, tb = sys.exc_info()
    try:
        value.__traceback__ = tb = tb.tb_next  # hide this module's frame
        if sys.excepthook is sys.__excepthook__:
            # The C hook reads source lines from disk; this one finds them in linecache.
            traceback.print_exception(exc_type, value, tb)
        else:
            sys.excepthook(exc_type, value, tb)
    except BaseException:  # e.g. the audit hook refused the traceback's frames: the exception alone
        try:
            os.write(2, f"{exc_type.__name__}: {value}\n".encode("utf-8", "backslashreplace"))
        except BaseException:
            os.write(2, f"{exc_type.__name__}\n".encode())
    return 1


# ----------------------------------------------------------------------------- the zygote


class Spare:
    """A child forked ahead of its request, so that the fork is off the program's critical path."""

    child = staticmethod(_child)
    """What the forked child runs (``_child``); a subclass sets up its child otherwise (the workspace server's)."""

    def __init__(self, config: dict) -> None:
        self.results_r, results_w = os.pipe()
        request_r, self.request_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self.report_r, report_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                for fd in (self.request_w, self.out_r, self.err_r, self.report_r, self.results_r):
                    os.close(fd)  # the request's EOF comes only once no writer is left
                self.child(config, request_r, out_w, err_w, report_w, results_w)
            finally:
                os._exit(SETUP_FAILED_EXIT)
        for fd in (request_r, out_w, err_w, report_w, results_w):
            os.close(fd)
        for fd in (self.out_r, self.err_r, self.report_r, self.results_r):
            os.set_blocking(fd, False)

    def start(self, payload: bytes) -> None:
        """Hand the child its request."""
        try:
            protocol.write_all(self.request_w, payload)
        except BrokenPipeError:
            pass  # its setup failed; it said why on its stderr
        os.close(self.request_w)

    def close(self) -> None:
        for fd in (self.out_r, self.err_r, self.report_r, self.results_r):
            os.close(fd)


def _kill_everything_else() -> None:
    """Kill and reap every process the program left behind, wherever it moved to."""
    if os.getpid() == 1:
        # kill(-1) from a namespace's init signals every other process in it, atomically
        # with respect to fork, so not even a fork bomb outruns it.
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
    # On the host (no PID namespace): orphans are reparented to us, the subreaper; sweep by generation.
    children_file = f"/proc/self/task/{os.getpid()}/children"
    for _ in range(10_000):
        with open(children_file) as handle:
            children = [int(pid) for pid in handle.read().split()]
        if not children:
            return
        for pid in children:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _clean_scratch(config: dict) -> bool:
    """Remove the working directory, empty the scratch directories and SysV IPC.

    Returns:
        False if something could not be removed.
    """
    clean = True
    try:
        shutil.rmtree(config["workdir"])
    except FileNotFoundError:
        pass
    except (OSError, RecursionError):
        clean = False
    for directory in config["scratch"]:
        for entry in os.scandir(directory):
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except (OSError, RecursionError):
                clean = False
    if config["private_ipc"]:
        for kind, control in (("shm", _libc.shmctl), ("msg", _libc.msgctl), ("sem", _libc.semctl)):
            with open(f"/proc/sysvipc/{kind}") as handle:
                ids = [int(line.split()[1]) for line in handle.readlines()[1:]]
            for ipc_id in ids:
                # semctl(id, semnum, cmd) takes the command third; the others take it second.
                args = (ipc_id, 0, IPC_RMID) if kind == "sem" else (ipc_id, IPC_RMID, None)
                if control(*args) != 0:
                    clean = False
    return clean


def _supervise(pid: int, out_r: int, err_r: int, results_r: int, deadline: float, max_output: int):
    """Collect the child's output and call results until it exits, runs out of time, or writes too much."""
    outputs = {out_r: bytearray(), err_r: bytearray(), results_r: bytearray()}
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    for fd in (out_r, err_r, results_r, pidfd):
        poller.register(fd, select.POLLIN)
    verdict, exited = None, False
    try:
        while not exited and verdict is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                verdict = "timeout"
                break
            for fd, _event in poller.poll(remaining * 1000):
                if fd == pidfd:
                    exited = True
                elif not _read_some(fd, outputs[fd]):
                    poller.unregister(fd)
            if any(len(data) > max_output for data in outputs.values()):
                verdict = "output_limit"
    finally:
        os.close(pidfd)
    return outputs[out_r], outputs[err_r], outputs[results_r], verdict, exited


def _read_some(fd: int, into: bytearray) -> bool:
    """Append what is available on ``fd``; return False at EOF."""
    try:
        data = os.read(fd, 1 << 16)
    except BlockingIOError:
        return True
    into += data
    return bool(data)


def run_one(payload: bytes, child: Spare) -> dict:
    """Run one program in ``child`` and return the reply message."""
    request = json.loads(payload)
    pid, out_r, err_r, report_r, results_r = child.pid, child.out_r, child.err_r, child.report_r, child.results_r
    started = time.monotonic()
    child.start(payload)
    deadline = started + request["timeout"]
    max_output = request["max_output"]
    stdout, stderr, results, verdict, exited = _supervise(pid, out_r, err_r, results_r, deadline, max_output)
    wall_time = time.monotonic() - started
    returncode = -signal.SIGKILL
    if exited:
        returncode = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    _kill_everything_else()
    # Every writer is dead now, so what is left in the pipes is bounded by their buffers.
    for fd, data in ((out_r, stdout), (err_r, stderr), (results_r, results)):
        while _read_some(fd, data) and len(data) <= max_output:
            pass
    try:
        memory_error = os.read(report_r, 1) == MEMORY_ERROR_MARK
    except BlockingIOError:
        memory_error = False
    child.close()

    truncated = len(stdout) > max_output or len(stderr) > max_output
    if verdict is not None:
        status = verdict
    elif truncated:
        status = "output_limit"
    elif memory_error:
        status = "memory"
    elif returncode == 0:
        status = "ok"
    elif returncode == -signal.SIGXCPU:
        status = "timeout"
    elif returncode < 0:
        status = "killed"
    else:
        status = "error"
    return {
        "status": status,
        "stdout": bytes(stdout[:max_output]).decode("utf-8", "replace"),
        "stderr": bytes(stderr[:max_output]).decode("utf-8", "replace"),
        "returncode": returncode,
        "wall_time": wall_time,
        "truncated": truncated,
        "results": None if request.get("calls") is None else bytes(results[:max_output]).decode("utf-8", "replace"),
    }


def prepare_programs(config: dict) -> None:
    """Set up, once before the first fork, what every program inherits: ``sys.path``, its standard streams and
    the preloaded modules (the workspace server's programs too).

    The preloaded modules are rlhub's list of standard-library modules (``config.PRELOAD``), imported through
    the one resolver, ``rlhub/resolve.py``'s ``resolve_module``, defined here from its shipped source.
    """
    sys.path.extend(config["site_packages"])
    # The programs' standard streams, made once: after a child's dup2 calls, fds 0-2 are its own.
    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(  # noqa: SIM115
        2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1
    )
    for module in config["preload"]:
        resolve_module(module, what="a module the sandbox preloads")
    gc.freeze()  # keep the preloaded heap shared copy-on-write with every child


def main(argv: list[str]) -> None:
    global _libc
    config = json.loads(argv[-1])
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.syscall.restype = ctypes.c_long
    # Move the protocol off fds 0/1 so that children never inherit it.
    requests = os.dup(0)
    replies = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.chdir("/")
    config["workdir"] = os.path.realpath(config["workdir"])
    os.environ.update(HOME=config["workdir"], TMPDIR=config["workdir"], PWD=config["workdir"])
    prepare_programs(config)

    protocol.write_all(replies, protocol.encode_frame({"ready": True, "pid": os.getpid(), "uid": config["uid"]}))
    child = Spare(config)
    while (payload := protocol.read_frame(requests)) is not None:
        protocol.write_all(replies, protocol.encode_frame(run_one(payload, child)))
        # Cleaning up after the reply keeps it off the program's critical path. If it fails,
        # whatever request comes next is answered with "retired", for the host to send elsewhere.
        if not _clean_scratch(config):
            protocol.write_all(replies, protocol.encode_frame({"retired": "its scratch could not be emptied"}))
            break
        child = Spare(config)
    _kill_everything_else()


if __name__ == "__main__":
    try:
        main(sys.argv)
    except BrokenPipeError:  # the host went away; the PID namespace dies with us
        sys.exit(0)
