"""The trainer's side of an isolated env: ``rlhub.make`` returns a :class:`SandboxedEnv`, used like a local env.

Requests travel over the sandbox's unix socket. Every answer is checked before it is used: a violation the
server reports, a reward that is not finite or beyond ±``REWARD_BOUND``, a call that outlasts its CPU budget
or a server that died all raise :class:`CapabilityViolation` (or an ``RLHubError`` saying why), and stop it.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import select
import socket
import threading
from typing import Any

from rlhub.env.spaces import ModelText
from rlhub.errors import RLHubError
from rlhub.hub.sandbox import REWARD_BOUND, START_SECONDS, CapabilityViolation, EnvSandbox
from rlhub.serve.client import RemoteEnv, RemoteRubric
from rlhub.serve.protocol import PROTOCOL, encode

SCORING_ROUTES = ("score", "rubric")
WALL_SECONDS_PER_CPU_SECOND = 3
"""A call may take this many wall-clock seconds per declared CPU second (at least 30) before the host stops it:
the bound that holds even if the env's code ignores SIGXCPU."""


class SandboxClient:
    """``EnvClient.call`` over the sandbox's socket, with every answer checked.

    Requests go over persistent HTTP/1.1 connections of the standard library's ``http.client`` (a third of
    httpx's cost per request, which at the sandbox's rate is a good part of scoring a batch): one per thread
    that calls at once, kept for the next call, replaced when the server has closed it while idle.

    Args:
        sandbox: The running env server.
        env_id: The env it serves.
    """

    def __init__(self, sandbox: EnvSandbox, env_id: str) -> None:
        self.sandbox = sandbox
        self.package = sandbox.plan.package
        self.env_id = env_id
        self.url = f"http://sandbox/{env_id}"
        self.timeout = max(30.0, WALL_SECONDS_PER_CPU_SECOND * sandbox.plan.capabilities.cpu_seconds)
        self._idle: list[_UnixConnection] = []
        self._lock = threading.Lock()

    def call(self, method: str, route: str, body: dict | None = None, *, idempotent: bool = True) -> dict:
        """``method`` on ``route``; the decoded, checked answer."""
        timeout = START_SECONDS if route == "info" else self.timeout
        try:
            status, data = self._request(method, f"/{self.env_id}/{route}", body, timeout)
        except TimeoutError:
            self.sandbox.stop()
            raise CapabilityViolation(self.package, "cpu", f"{route} did not answer within {timeout:g} s")
        except (OSError, http.client.HTTPException):
            raise self.sandbox.failure(route)
        if status == 403 and b"violation" in data:
            self.sandbox.stop()
            found = json.loads(data)["violation"]
            raise CapabilityViolation(self.package, found["capability"], found["detail"])
        if status >= 400:
            raise RLHubError(f"environment package {self.package!r}: {route} answered {status}: "
                             f"{data[:500].decode(errors='replace')}")  # fmt: skip
        answer = json.loads(data)
        if route in SCORING_ROUTES:
            self._check_rewards(answer)
        return answer

    def _request(self, method: str, path: str, body: dict | None, timeout: float) -> tuple[int, bytes]:
        """One request on an idle connection (or a new one); its status and body."""
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None or connection.closed_by_server():
            connection = _UnixConnection(self.sandbox.socket_path, timeout)
        try:
            status, data, will_close = connection.request(method, path, None if body is None else encode(body), timeout)
        except BaseException:
            connection.close()
            raise
        if will_close:
            connection.close()
        else:
            with self._lock:
                self._idle.append(connection)
        return status, data

    def _check_rewards(self, answer: dict) -> None:
        for row in answer["scores"]:
            for name, value in row["rewards"].items():
                # One chained comparison checks finite and bounded: NaN and ±inf fail it as values past the bound do.
                within = isinstance(value, (int, float)) and -REWARD_BOUND <= value <= REWARD_BOUND
                if value is not None and not within:
                    self.sandbox.stop()
                    raise CapabilityViolation(
                        self.package, "reward", f"reward {name!r} is {value!r}; rewards must be finite and "
                        f"within ±{REWARD_BOUND:g}",
                    )  # fmt: skip

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class _UnixConnection:
    """A keep-alive HTTP/1.1 connection to a unix socket.

    Each request leaves in one write (``http.client`` sends the head and the body apart: two wake-ups of the
    server, each costing it an event-loop turn); the standard library parses the answer.
    """

    def __init__(self, socket_path: str, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(socket_path)
        except BaseException:
            self.sock.close()
            raise

    def request(self, method: str, path: str, body: bytes | None, timeout: float) -> tuple[int, bytes, bool]:
        """Send a request with a JSON ``body`` (or none), waiting at most ``timeout`` for each read of the answer.

        Returns:
            The answer's status and body, and whether the server closes the connection after it.
        """
        self.sock.settimeout(timeout)
        head = f"{method} {path} HTTP/1.1\r\nHost: sandbox\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + (body or b""))
        response = http.client.HTTPResponse(self.sock, method=method)
        try:
            response.begin()
            return response.status, response.read(), response.will_close
        finally:
            response.close()

    def closed_by_server(self) -> bool:
        """Whether the server closed this idle connection (uvicorn closes keep-alive connections idle for 5 s): one
        that can be read from before a request was sent holds the end of the stream. Closes it if so."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        if poller.poll(0):
            self.close()
            return True
        return False

    def close(self) -> None:
        self.sock.close()


class SandboxedEnv(RemoteEnv):
    """An env package's env running in its sandbox, with the API of a local env.

    Args:
        sandbox: The running env server (this env stops it when closed or collected).
        env_id: The env it serves.
    """

    def __init__(self, sandbox: EnvSandbox, env_id: str) -> None:
        self.sandbox = sandbox
        self._client = SandboxClient(sandbox, env_id)
        self.url = self._client.url
        info = self._client.call("GET", "info")
        if info.get("protocol", "").split(".")[0] != PROTOCOL:
            raise RLHubError(f"{self.url} speaks {info.get('protocol')!r}, not {PROTOCOL!r}")
        self.env_id = info["env_id"]
        self.multi_turn = bool(info["multi_turn"])
        self.config = dataclasses.make_dataclass(
            "SandboxedConfig", [(key, Any, dataclasses.field(default=value)) for key, value in info["config"].items()]
        )()
        self.system_prompt = info["system_prompt"]
        self.rubric = RemoteRubric(self._client, info["rubric"])
        self.observation_space = ModelText()
        self.action_space = ModelText()
        self._session = None

    def close(self) -> None:
        try:
            if self.sandbox.running:
                super().close()
        finally:
            self._client.close()
            self.sandbox.stop()

    def __repr__(self) -> str:
        return f"SandboxedEnv({self.env_id!r}, package={self.sandbox.plan.package!r})"
