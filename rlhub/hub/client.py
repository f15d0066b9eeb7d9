"""The trainer's side of an isolated env: ``rlhub.make`` returns a :class:`SandboxedEnv`, used like a local env.

Requests travel over the sandbox's unix socket. Every answer is checked before it is used: a violation the
server reports, a reward that is not finite or beyond ±``REWARD_BOUND``, a call that outlasts its CPU budget
or a server that died all raise :class:`CapabilityViolation` (or an ``RLHubError`` saying why), and stop it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from rlhub.env.spaces import ModelText
from rlhub.errors import RLHubError
from rlhub.hub.sandbox import REWARD_BOUND, START_SECONDS, CapabilityViolation, EnvSandbox
from rlhub.serve.client import RemoteEnv, RemoteRubric
from rlhub.serve.protocol import PROTOCOL

SCORING_ROUTES = ("score", "rubric")
WALL_SECONDS_PER_CPU_SECOND = 3
"""A call may take this many wall-clock seconds per declared CPU second (at least 30) before the host stops it:
the bound that holds even if the env's code ignores SIGXCPU."""


class SandboxClient:
    """``EnvClient.call`` over the sandbox's socket, with every answer checked.

    Args:
        sandbox: The running env server.
        env_id: The env it serves.
    """

    def __init__(self, sandbox: EnvSandbox, env_id: str) -> None:
        import httpx

        self.sandbox = sandbox
        self.package = sandbox.plan.package
        self.url = f"http://sandbox/{env_id}"
        self.timeout = max(30.0, WALL_SECONDS_PER_CPU_SECOND * sandbox.plan.capabilities.cpu_seconds)
        self._http = httpx.Client(transport=httpx.HTTPTransport(uds=sandbox.socket_path), timeout=self.timeout)

    def call(self, method: str, route: str, body: dict | None = None, *, idempotent: bool = True) -> dict:
        """``method`` on ``route``; the decoded, checked answer."""
        import httpx

        content = None if body is None else json.dumps(body).encode()
        timeout = START_SECONDS if route == "info" else self.timeout
        try:
            response = self._http.request(
                method, f"{self.url}/{route}", content=content, timeout=timeout,
                headers={} if body is None else {"Content-Type": "application/json"},
            )  # fmt: skip
        except httpx.TimeoutException:
            self.sandbox.stop()
            raise CapabilityViolation(self.package, "cpu", f"{route} did not answer within {timeout:g} s")
        except httpx.TransportError:
            raise self.sandbox.failure(route)
        if response.status_code == 403 and "violation" in response.text:
            self.sandbox.stop()
            found = response.json()["violation"]
            raise CapabilityViolation(self.package, found["capability"], found["detail"])
        if response.status_code >= 400:
            raise RLHubError(f"environment package {self.package!r}: {route} answered {response.status_code}: "
                             f"{response.text[:500]}")  # fmt: skip
        answer = response.json()
        if route in SCORING_ROUTES:
            self._check_rewards(answer)
        return answer

    def _check_rewards(self, answer: dict) -> None:
        for row in answer["scores"]:
            for name, value in row["rewards"].items():
                finite = isinstance(value, (int, float)) and math.isfinite(value) and abs(value) <= REWARD_BOUND
                if value is not None and not finite:
                    self.sandbox.stop()
                    raise CapabilityViolation(
                        self.package, "reward", f"reward {name!r} is {value!r}; rewards must be finite and "
                        f"within ±{REWARD_BOUND:g}",
                    )  # fmt: skip

    def close(self) -> None:
        self._http.close()


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
