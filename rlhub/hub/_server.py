"""Runs inside the sandbox (``python -I -S rlhub_hub_server.py CONFIG``): an env package behind its capabilities.

Standard library only until the config's paths are on ``sys.path``. PID 1 binds the listeners of the declared
network's relay (``rlhub.hub.egress``, loaded from its file), forks and only waits; the child drops to the
sandbox's uid, sets the rlimits, makes rlhub and the package importable, installs the audit hook that names
capability violations and starts the relay, then either prints the package's registry entries
(``mode: entries``) or serves one env over the rlhub-env/1 protocol on the listening socket the host passed in
(``mode: serve``).

The audit hook does not confine anything (bubblewrap and the rlimits do); it turns an attempt into a named
violation: the host gets one instead of a reward, even when the env's code catches the error it raises.
"""

import asyncio
import importlib.abc
import importlib.machinery
import importlib.util
import json
import math
import os
import resource
import sys
import threading
import time

VIOLATION_EXIT = 3
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
PATH_WRITES = {"os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.symlink", "os.link", "os.chmod", "os.chown"}
PATH_WRITES |= {"os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move"}
PROCESS_STARTS = {"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system", "os.exec", "subprocess.Popen"}
NETWORK = {"socket.connect", "socket.sendto", "socket.sendmsg"}

violations: list = []
_local = threading.local()


def violation(capability: str, detail: str) -> PermissionError:
    """Record a violation; the error to raise where it happened."""
    violations.append({"capability": capability, "detail": detail})
    return PermissionError(f"rlhub capability violation ({capability}): {detail}")


def _under(path: str, roots) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _connectable(config: dict) -> tuple[set, str]:
    """The addresses a connect may name (each declared pair, as its name and as its relay's loopback address,
    and the relay's unix sockets, which reach only the declared pairs), and the declared pairs in words."""
    routes = config.get("egress", {}).get("routes", [])
    allowed = {(r[key], r["port"]) for r in routes for key in ("host", "address")}
    allowed |= {("localhost", r["port"]) for r in routes if r["address"] == "127.0.0.1"}  # as /etc/hosts says
    allowed |= {os.path.join(config["egress"]["folder"], r["socket"]) for r in routes}
    return allowed, str([f"{r['host']}:{r['port']}" for r in routes]) if routes else "none"


def _address_key(address):
    """A connect's address as :func:`_connectable` lists them (names in lower case); None for any other kind."""
    if isinstance(address, tuple) and len(address) == 2 and isinstance(address[0], str):
        return address[0].lower(), address[1] if isinstance(address[1], int) else None
    return os.fsdecode(address) if isinstance(address, (str, bytes)) else None


def guard(config: dict):
    """The audit hook for ``config``'s capabilities."""
    readable, writable, denied = config["readable"], config["writable"], config["denied"]
    connectable, declared = _connectable(config)
    started = [0]

    def check_path(raw, writes: bool) -> None:
        path = os.path.realpath(os.fsdecode(raw))
        if _under(path, denied) or not _under(path, readable + writable):
            raise violation("filesystem", f"{'write to' if writes else 'read of'} {path}, outside the env's view")
        if writes and not _under(path, writable) and path != "/dev/null":
            raise violation("filesystem", f"write to {path}; declared writable: {writable}")

    def hook(event: str, args: tuple) -> None:
        if getattr(_local, "busy", False):
            return
        _local.busy = True
        try:
            if event == "open" and args[0] is not None and not isinstance(args[0], int):
                path, mode, flags = args
                check_path(path, any(c in mode for c in "wax+") if mode else bool(flags & WRITE_FLAGS))
            elif event in PATH_WRITES:
                for path in args[:2] if event in ("os.rename", "os.symlink", "os.link", "shutil.move") else args[:1]:
                    if isinstance(path, (str, bytes, os.PathLike)):
                        check_path(path, True)
            elif event == "socket.connect" and _address_key(args[1]) in connectable:
                pass
            elif event in NETWORK:
                raise violation("network", f"{event} to {args[1]!r}; declared network (TCP only): {declared}")
            elif event in PROCESS_STARTS:
                started[0] += 1
                if started[0] > config["processes"]:
                    raise violation("processes", f"started more than {config['processes']} processes")
        finally:
            _local.busy = False

    return hook


class _MappedPackages(importlib.abc.MetaPathFinder):
    """Packages that live outside every directory on ``sys.path`` (an editable rlhub): name -> folder."""

    def __init__(self, folders: dict) -> None:
        self.folders = folders

    def find_spec(self, name, path=None, target=None):
        folder = self.folders.get(name)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            name, os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
        )


def confine(config: dict) -> None:
    """Drop privileges, set the limits, make imports work and install the audit hook."""
    if config["uid"] is not None:
        os.setgroups([])
        os.setgid(config["uid"])
        os.setuid(config["uid"])
    os.makedirs(config["workdir"], exist_ok=True)
    for path in config["writable"]:
        os.makedirs(path, exist_ok=True)
    os.chdir(config["workdir"])
    os.environ.update(config["environ"])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if config["uid"] is not None:
        # Counted per uid; the uid is this sandbox's alone (and root would not be held at all).
        resource.setrlimit(resource.RLIMIT_NPROC, (config["processes"], config["processes"]))
    memory = config["memory_mb"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    limit_cpu(config["cpu_seconds"])
    sys.path[:0] = config["sys_path"]
    sys.meta_path.insert(0, _MappedPackages(config["modules"]))
    sys.addaudithook(guard(config))


def limit_cpu(seconds: float) -> None:
    """Allow ``seconds`` more CPU time from now (SIGXCPU, which ends the process, past it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    resource.setrlimit(resource.RLIMIT_CPU, (math.ceil(usage.ru_utime + usage.ru_stime + seconds), -1))


def load_entries(config: dict) -> list:
    """The package's registry entries, as its entry point gives them (a list, a YAML path, or a callable)."""
    import importlib.metadata
    from pathlib import Path

    import yaml

    point = importlib.metadata.EntryPoint(config["entry_point"], config["entry_value"], "rlhub.envs")
    obj = point.load()
    obj = obj() if callable(obj) else obj
    if isinstance(obj, (str, Path)):
        obj = yaml.safe_load(Path(obj).read_text(encoding="utf-8"))
    return obj.get("envs") if isinstance(obj, dict) else obj


def guarded_env(env, bound: float, memory_mb: int):
    """``env`` with its reward functions and scores checked: non-finite or out-of-bound rewards, memory errors."""
    from rlhub.rewards.rubric import WeightedReward

    def check(name, value):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and abs(value) <= bound):
            raise violation(
                "reward", f"reward {name!r} returned {value!r}; rewards must be finite and within ±{bound:g}"
            )

    def guarded(item):
        def reward(completions, **columns):
            try:
                values = item.fn(completions, **columns)
            except MemoryError:
                raise violation("memory", f"reward {item.name!r} ran out of its {memory_mb} MiB")
            for value in values:
                check(item.name, value)
            return values

        return WeightedReward(item.name, reward, item.weight)

    env.rubric.items = [guarded(item) for item in env.rubric.items]
    score_batch = env.score_batch

    def checked_score_batch(completions, examples):
        scores = score_batch(completions, examples)
        for score in scores:
            for name, value in score.rewards.items():
                check(name, value)
        return scores

    env.score_batch = checked_score_batch
    return env


class Enforced:
    """ASGI middleware: each request gets the CPU budget anew, and one that recorded a violation (even one the
    env's code caught) is answered 403 with the violation instead of its response.

    A plain ASGI layer rather than ``@app.middleware``: that one costs a task and a stream per request, as much
    as scoring a small batch.
    """

    def __init__(self, app, cpu_seconds: float, memory_mb: int) -> None:
        self.app, self.cpu_seconds, self.memory_mb = app, cpu_seconds, memory_mb
        self.one_at_a_time: asyncio.Lock | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.one_at_a_time is None:
            self.one_at_a_time = asyncio.Lock()
        # Requests run one at a time: the CPU budget and the violations list are the process's, so two requests
        # at once would share a budget and could take or clear each other's violation.
        async with self.one_at_a_time:
            await self._handle(scope, receive, send)

    async def _handle(self, scope, receive, send) -> None:
        limit_cpu(self.cpu_seconds)
        del violations[:]
        held = []  # the response waits until the request is done: a violation found at its end replaces it

        async def hold(message) -> None:
            held.append(message)

        try:
            await self.app(scope, receive, hold)
        except Exception as exc:
            if isinstance(exc, MemoryError):
                violation("memory", f"{scope['path']} ran out of its {self.memory_mb} MiB")
            if not violations:
                raise
        if violations:
            from fastapi.responses import JSONResponse

            answer = JSONResponse({"detail": violations[0]["detail"], "violation": violations[0]}, status_code=403)
            return await answer(scope, receive, send)
        for message in held:
            await send(message)


class CoalescedWrites:
    """A transport whose writes made in one turn of the event loop leave in one system call.

    uvicorn writes a response's head and its body apart. Each write wakes the host's client: it reads the head,
    finds no body yet and sleeps again, and the server, preempted by the client it woke, waits in between. One
    write per answer halves those wake-ups (at batch 64 here: 2.0 context switches per call down to 1.2, and
    0.5-0.8 ms less waiting in the server's writes).

    Args:
        transport: The connection's transport; everything but ``write`` and ``close`` goes to it unchanged.
        loop: The event loop that runs the connection.
    """

    def __init__(self, transport, loop) -> None:
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        """Write what this turn's writes left, as one write."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


def one_write_http_protocol():
    """uvicorn's HTTP protocol (httptools, else h11) on a :class:`CoalescedWrites` transport."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Protocol
    except ImportError:  # no httptools: uvicorn's pure-Python parser
        from uvicorn.protocols.http.h11_impl import H11Protocol as Protocol

    class OneWriteProtocol(Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(CoalescedWrites(transport, self.loop))

    return OneWriteProtocol


def serve(config: dict, entries: list) -> None:
    import gc
    import socket

    import uvicorn

    from rlhub.env.registry import parse_registry
    from rlhub.errors import ConfigError
    from rlhub.serve.server import create_app

    specs = {spec.id: spec for spec in parse_registry(entries, f"package {config['entry_point']}", "sandbox")}
    spec = specs[config["env_id"]]

    def make_env():
        return guarded_env(spec.make(**config["overrides"]), config["reward_bound"], config["memory_mb"])

    try:
        app = create_app(make_env, spec.id, inline=True)  # one request at a time (Enforced): no thread hop
    except ConfigError as exc:  # a bad config is the caller's error, raised as such on the host
        print(json.dumps({"config_error": str(exc)}))
        sys.exit(VIOLATION_EXIT + 1)

    app.add_middleware(Enforced, cpu_seconds=config["cpu_seconds"], memory_mb=config["memory_mb"])
    listener = socket.socket(fileno=config["socket_fd"])
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, http=one_write_http_protocol())
    )
    # What is alive now (the app, the env, the imported modules) lives as long as the server: full collections,
    # which a request's garbage triggers every few hundred requests, then skip it (0.1-0.2 ms per call at batch 64).
    gc.freeze()
    server.run(sockets=[listener])


def watch(child: int, lifeline: int | None) -> None:
    """PID 1's loop: exit with the child's status, or at once when the host's end of the lifeline closes.

    PID 1 exiting ends every process in the sandbox's PID namespace, so nothing outlives the host. bwrap's
    parent-death signal does the same while PID 1 keeps its credentials (only its child changes uid); the
    lifeline does not depend on that, and a killed host sends no other signal.
    """
    import select

    poller = select.poll()
    if lifeline is not None:
        poller.register(lifeline, select.POLLIN | select.POLLHUP)
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
        if lifeline is not None and poller.poll(200):  # never written to: readable means closed
            os._exit(137)
        if lifeline is None:
            time.sleep(0.2)


def load_egress(path: str):
    """The module ``rlhub.hub.egress``, from its file (importing ``rlhub.hub`` would import far more)."""
    spec = importlib.util.spec_from_file_location("rlhub_hub_egress", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    # The sandbox's PID 1 ignores signals it does not handle (SIGXCPU included), and loses bwrap's
    # parent-death signal when it changes uid: so PID 1 only watches, and a child does the work.
    config = json.loads(sys.argv[1])
    lifeline = config.get("lifeline_fd")
    egress, listeners = None, []
    if "egress" in config:  # bound here: only PID 1 may hold the right to bind ports below 1024
        egress = load_egress(config["egress"]["module"])
        listeners = egress.bind_inside(config["egress"]["routes"])
    child = os.fork()
    if child:
        for listener in listeners:
            listener.close()  # the child's now
        watch(child, lifeline)
    if lifeline is not None:
        os.close(lifeline)  # only PID 1 watches it
    confine(config)
    if egress is not None:  # before the package's import, which may connect
        egress.relay_inside(config["egress"]["routes"], listeners, config["egress"]["folder"])
    try:
        entries = load_entries(config)
    except Exception as exc:
        if not violations:
            raise
        print(f"(loading raised {exc!r})", file=sys.stderr)
    if violations:
        print(json.dumps({"violations": violations}))
        sys.exit(VIOLATION_EXIT)
    if config["mode"] == "entries":
        print(json.dumps({"entries": entries}, default=str))
        return
    serve(config, entries)


if __name__ == "__main__":
    main()
