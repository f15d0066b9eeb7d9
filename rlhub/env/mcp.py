"""Tools from a Model Context Protocol server: :class:`McpToolBox`, a :class:`ToolBox` whose tools a server runs.

The server is a command rlhub starts (stdio transport) or a URL (streamable HTTP). Its ``list_tools`` gives the
schemas (in ``ToolBox.schemas``' shape, so prompts and chat templates show them as any tool's); ``call`` forwards
a call with a timeout, and every failure (an ``isError`` result, a protocol error, a timeout, a server that
died) comes back as an error message to the model, counted in :class:`ToolStats` as ``ToolBox`` counts them.

A started server runs in a new session, in an environment holding only what its :class:`McpServer` spec
passes (and ``PATH``), under limits on address space, CPU seconds and processes. rlhub stops it (SIGTERM to
its process group, SIGKILL after :data:`STOP_GRACE_S`) on :meth:`McpToolBox.close`, on the env's ``close()``
and at interpreter exit; a server that died is started again by the next call.

The ``mcp`` client is asyncio code: each toolbox runs it on a private event loop in its own thread, so
``call`` is a plain blocking method, safe from any thread.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import copy
import importlib.util
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from rlhub.env.tools import ToolBox, ToolResult, ToolStats
from rlhub.errors import ConfigError, RLHubError

log = logging.getLogger(__name__)

STOP_GRACE_S = 2.0
"""Seconds a server has to exit after SIGTERM before its process group is killed."""

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""The longest JSON-RPC line read from a stdio server."""

_LAUNCHER = """\
import json, os, resource, sys
limits, argv, env = json.loads(sys.argv[1])
for name, value in limits.items():
    resource.setrlimit(getattr(resource, name), (value, value))
os.execvpe(argv[0], argv, env)
"""
"""Sets the server's limits, then becomes the server (same pid): run by ``python -I -S -c``, so it imports
nothing of the trainer's and is quick."""


class McpUnavailable(RLHubError):
    """The MCP server could not be started or reached."""


@dataclass
class McpServer:
    """How to reach an MCP server: a ``command`` rlhub starts (stdio) or a ``url`` (streamable HTTP)."""

    command: str | None = None
    """The executable of a stdio server (found on ``PATH``), e.g. ``"python"`` or ``"npx"``."""
    args: list[str] = field(default_factory=list)
    """Its arguments."""
    env: dict[str, str] = field(default_factory=dict)
    """Its whole environment, with ``PATH`` added from rlhub's when missing: nothing else of the trainer's
    environment (``WANDB_API_KEY``, ``HF_TOKEN``, ...) reaches the server."""
    cwd: str | None = None
    """Its working directory (default: rlhub's)."""
    url: str | None = None
    """The endpoint of a streamable HTTP server (e.g. ``http://127.0.0.1:8000/mcp``), instead of a command."""
    memory_mb: int = 2048
    """Address space a stdio server may map (RLIMIT_AS)."""
    cpu_seconds: int = 3600
    """CPU seconds a stdio server may use in its life (RLIMIT_CPU); past them it is killed and restarted."""
    processes: int = 64
    """Processes and threads a stdio server may start beyond those its user runs already (RLIMIT_NPROC
    counts per user; root is exempt)."""

    def validate(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ConfigError("an MCP server needs a command (stdio) or a url (streamable HTTP), not both or none")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"MCP server url must start with http:// or https://, got {self.url!r}")
        if min(self.memory_mb, self.cpu_seconds, self.processes) < 1:
            raise ConfigError("MCP server memory_mb, cpu_seconds and processes must be positive")

    @property
    def label(self) -> str:
        return self.url or " ".join([os.path.basename(self.command or ""), *self.args])[:120]


class McpToolBox(ToolBox):
    """The tools of one MCP server, called like a :class:`ToolBox`'s.

    The server starts on first use (``schemas``, ``tools`` or ``call``).

    Args:
        server: The server (an :class:`McpServer` or its fields as a dict).
        timeout: Seconds a call may take; a slower one answers the model with an error.
        start_timeout: Seconds the server may take to start and list its tools.
        max_result_chars: Results longer than this are cut, as ``ToolBox`` cuts them.
        meta: ``_meta`` sent with every call: context for the server that the model neither sees nor sets.

    Example:
        >>> box = McpToolBox(McpServer(command="python", args=["-m", "my_server"]))  # doctest: +SKIP
        >>> box.call("add", {"a": 1, "b": 2}).content  # doctest: +SKIP
        '3'
    """

    def __init__(
        self,
        server: McpServer | dict,
        *,
        timeout: float = 30.0,
        start_timeout: float = 60.0,
        max_result_chars: int = 2000,
        meta: dict[str, Any] | None = None,
    ):
        if importlib.util.find_spec("mcp") is None:
            raise ConfigError("tools from MCP servers need the mcp package: pip install 'rlhub[mcp]'")
        self.server = server if isinstance(server, McpServer) else McpServer(**server)
        self.server.validate()
        self.timeout = timeout
        self.max_result_chars = max_result_chars
        self.meta = dict(meta or {})
        self._client = _Client(self.server, start_timeout)

    def with_meta(self, meta: dict[str, Any]) -> McpToolBox:
        """This toolbox (the same server) sending ``meta`` too with each call, e.g. the episode's database."""
        view = copy.copy(self)
        view.meta = {**self.meta, **meta}
        return view

    @property
    def tools(self) -> dict[str, Any]:
        """The server's tools by name (``mcp`` ``Tool`` objects)."""
        return self._client.connection().tools

    @property
    def schemas(self) -> list[dict[str, Any]]:
        return [_schema(tool) for tool in self.tools.values()]

    @property
    def pid(self) -> int | None:
        """The process id of a running stdio server."""
        return self._client.pid

    @property
    def server_losses(self) -> int:
        """How often the server died under this toolbox (each loss answered a call with an error)."""
        return self._client.losses

    def call(self, name: str, arguments: dict[str, Any], stats: ToolStats | None = None) -> ToolResult:
        stats = stats if stats is not None else ToolStats()
        stats.calls += 1
        stats.per_tool[name] = stats.per_tool.get(name, 0) + 1
        try:
            connection = self._client.connection()
        except McpUnavailable as exc:
            return self._error(stats, name, str(exc))
        if connection.ended():  # died since the last call: this call says so, the next one restarts it
            self._client.discard(connection)
            return self._error(stats, name, connection.lost_message(name))
        if name not in connection.tools:
            return self._error(stats, name, f"unknown tool {name!r}; available: {', '.join(connection.tools)}")
        try:
            text, failed = self._client.run(connection.call(name, arguments, self.meta, self.timeout), self.timeout + 5)
        except concurrent.futures.TimeoutError:
            text, failed = f"{name} timed out after {self.timeout:g} s", True
        if failed:
            if connection.ended():
                self._client.discard(connection)
            return self._error(stats, name, text)
        if len(text) > self.max_result_chars:
            text = text[: self.max_result_chars] + " [truncated]"
        return ToolResult(name, text, False)

    def close(self) -> None:
        """Stop the server (a stdio server's whole process group) and the event loop; idempotent."""
        self._client.close()


def _schema(tool: Any) -> dict[str, Any]:
    """A tool's schema in the ``tools=`` shape of chat templates, without pydantic's ``title`` noise."""
    parameters = {k: v for k, v in (tool.input_schema or {}).items() if k != "title"}
    properties = {
        name: {k: v for k, v in spec.items() if k != "title"} if isinstance(spec, dict) else spec
        for name, spec in parameters.get("properties", {}).items()
    }
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description or "",
            "parameters": {**parameters, "type": "object", "properties": properties},
        },
    }


def _text(result: Any) -> str:
    """The text of a ``CallToolResult``: its text blocks, else its structured content as JSON."""
    texts = [block.text if block.type == "text" else f"[{block.type} content]" for block in result.content]
    if texts:
        return "\n".join(texts)
    return json.dumps(result.structured_content) if result.structured_content is not None else ""


class _Connection:
    """One started server and its initialized session, held open by a task on the client's loop."""

    def __init__(self, server: McpServer):
        self.server = server
        self.tools: dict[str, Any] = {}
        self.process: asyncio.subprocess.Process | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self._session: Any = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._hold(ready))
        await ready

    async def _hold(self, ready: asyncio.Future) -> None:
        from mcp import ClientSession
        from mcp.types import PaginatedRequestParams

        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                cursor = None
                while True:
                    page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
                    self.tools.update((tool.name, tool) for tool in page.tools)
                    if not (cursor := page.next_cursor):
                        break
                self._session = session
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            elif not isinstance(exc, asyncio.CancelledError):
                log.warning("MCP server %s: connection ended: %r", self.server.label, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _transport(self):
        if self.server.url is not None:
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(self.server.url)
        return self._stdio()

    @contextlib.asynccontextmanager
    async def _stdio(self) -> AsyncIterator[tuple[Any, Any]]:
        """Start the server under its limits and bridge its stdin/stdout to the session's message streams."""
        import anyio
        import mcp.types
        from mcp.shared.message import SessionMessage

        server = self.server
        env = {"PATH": os.environ.get("PATH", os.defpath), **server.env}
        limits = {
            "RLIMIT_AS": server.memory_mb * 1024 * 1024,
            "RLIMIT_CPU": server.cpu_seconds,
            "RLIMIT_NPROC": _user_tasks() + server.processes,
            "RLIMIT_CORE": 0,
        }
        launch = json.dumps([limits, [server.command, *server.args], env])
        self.process = process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-I", "-S", "-c", _LAUNCHER, launch),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=server.cwd,
            start_new_session=True,
            limit=MAX_MESSAGE_BYTES,
        )
        read_in, read_out = anyio.create_memory_object_stream(0)
        write_in, write_out = anyio.create_memory_object_stream(0)

        async def read_lines() -> None:
            async with read_in:
                while line := await process.stdout.readline():
                    try:
                        message = SessionMessage(mcp.types.jsonrpc_message_adapter.validate_json(line, by_name=False))
                    except ValueError as exc:  # the session reports it; the server goes on
                        message = exc
                    try:
                        await read_in.send(message)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):  # the session is closing
                        return

        async def write_lines() -> None:
            async with write_out:
                async for message in write_out:
                    line = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    process.stdin.write(line.encode() + b"\n")
                    try:
                        await process.stdin.drain()
                    except OSError:  # the server is gone: its stdout's end tells the session
                        return

        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(read_lines)
                tasks.start_soon(write_lines)
                try:
                    yield read_out, write_in
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await _stop_group(process)

    def ended(self) -> bool:
        """Whether the session is over: its server exited, or its connection ended."""
        exited = self.process is not None and self.process.returncode is not None
        return exited or self._task is None or self._task.done()

    def stderr_tail(self, chars: int = 600) -> str:
        if self._stderr.closed:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - chars))
        return self._stderr.read().decode("utf-8", "replace").strip()

    def exit_description(self) -> str:
        code = self.process.returncode if self.process is not None else None
        if code is None:
            return "the connection closed"
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"

    async def call(self, name: str, arguments: dict, meta: dict, timeout: float) -> tuple[str, bool]:
        """``(text, failed)`` of one call; never raises."""
        from mcp import MCPError
        from mcp.types import REQUEST_TIMEOUT

        try:
            result = await self._session.call_tool(name, arguments, read_timeout_seconds=timeout, meta=meta or None)
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                return f"{name} timed out after {timeout:g} s", True
            if await self._exited():
                return self.lost_message(name), True
            return f"{name} failed: {exc.message}", True
        except Exception as exc:  # a transport failure: the server's pipe or HTTP endpoint went away
            if await self._exited():
                return self.lost_message(name), True
            return f"{name} failed: {type(exc).__name__}: {exc}", True
        if result.is_error:  # MCPServer (FastMCP) servers start each error so; the model is told the name already
            return f"{name} failed: {_text(result).removeprefix(f'Error executing tool {name}: ')}", True
        return _text(result), False

    async def _exited(self) -> bool:
        """Whether a stdio server has exited, given a moment to be reaped after its pipe closed."""
        if self.process is None:
            return False
        try:
            await asyncio.wait_for(self.process.wait(), 1.0)
        except asyncio.TimeoutError:
            return False
        return True

    def lost_message(self, name: str) -> str:
        return f"MCP server {self.server.label} exited ({self.exit_description()}); the call to {name} was not answered"

    async def stop(self) -> None:
        """End the session and stop the server; kill its group outright if that takes too long."""
        self._stop.set()
        if self._task is not None:
            if self._session is None:  # still starting: nothing to wind down politely
                self._task.cancel()
            await asyncio.wait({self._task}, timeout=STOP_GRACE_S * 3)
        if self.process is not None and self.process.returncode is None:
            _signal_group(self.process, signal.SIGKILL)
        self._stderr.close()


async def _stop_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the server's process group; SIGKILL to it once the server exits (what it started may not
    have) or :data:`STOP_GRACE_S` later; then reap the server."""
    _signal_group(process, signal.SIGTERM)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(process.wait(), STOP_GRACE_S)
    _signal_group(process, signal.SIGKILL)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(process.wait(), STOP_GRACE_S)


def _signal_group(process: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(process.pid, sig)


def _user_tasks() -> int:
    """How many processes and threads this user runs (what RLIMIT_NPROC counts)."""
    uid, count = os.getuid(), 0
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == uid:
                count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:  # gone meanwhile
            continue
    return count


class _Client:
    """A private event loop in a daemon thread and the current connection; restarts a server that died."""

    def __init__(self, server: McpServer, start_timeout: float):
        self.server = server
        self.start_timeout = start_timeout
        self.losses = 0
        self._connection: _Connection | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        _OPEN.add(self)

    @property
    def pid(self) -> int | None:
        process = self._connection.process if self._connection is not None else None
        return process.pid if process is not None and process.returncode is None else None

    def run(self, coroutine, timeout: float) -> Any:
        """Run ``coroutine`` on the loop and wait for it; a coroutine past ``timeout`` is cancelled."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def connection(self) -> _Connection:
        """The current connection (perhaps one whose server died: see :meth:`discard`), started if none."""
        with self._lock:
            if self._closed:
                raise McpUnavailable(f"the MCP toolbox of {self.server.label} is closed")
            if self._connection is not None:
                return self._connection
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="rlhub-mcp", daemon=True).start()
            self._connection = connection = _Connection(self.server)
            try:
                self.run(connection.start(), self.start_timeout)
            except Exception as exc:
                detail = connection.stderr_tail()
                self._stop_connection()
                raise McpUnavailable(
                    f"MCP server {self.server.label} did not start: {type(exc).__name__}: {exc}"
                    + (f"; its stderr ends with: {detail}" if detail else "")
                    + " (check its command, arguments and environment, or raise start_timeout)"
                ) from None
            return connection

    def discard(self, connection: _Connection) -> None:
        """Count ``connection``'s server as lost and stop what is left of it; the next call starts another."""
        with self._lock:
            if connection is self._connection:
                self.losses += 1
                self._stop_connection()

    def _stop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                self.run(connection.stop(), STOP_GRACE_S * 4)
            except Exception as exc:  # a server stuck in its shutdown: its group is killed by then
                log.warning("MCP server %s: stopping it failed: %r", self.server.label, exc)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._loop is not None:
                self._stop_connection()
                self._loop.call_soon_threadsafe(self._loop.stop)
        _OPEN.discard(self)


_OPEN: set[_Client] = set()
"""Clients not closed yet, stopped at exit (a strong set: a toolbox dropped unclosed keeps its server till then)."""


@atexit.register
def _close_all() -> None:
    """Stop every server still running when the interpreter exits."""
    for client in list(_OPEN):
        client.close()
