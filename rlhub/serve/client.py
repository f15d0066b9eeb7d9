"""A served environment used like a local one: ``rlhub.make("http://HOST:PORT/ENV_ID")``.

The client asks the server for examples and for each reward function's raw values, and combines
them with its own rubric weights, the same sum a local ``Rubric`` computes; so a recipe's reward
weights apply to a served env as to a local one. Requests go over one httpx client; transport
failures and 502/503/504 are retried with exponential backoff a bounded number of times, then
raise one RLHubError naming the URL.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import gymnasium as gym

from rlhub.env.spaces import ModelText
from rlhub.errors import ConfigError, RLHubError
from rlhub.rewards.rubric import Rubric
from rlhub.serve.protocol import (
    PROTOCOL,
    STEP_TURN_REWARDS,
    TOKEN_VARIABLE,
    encode,
    example_from_json,
    example_to_json,
)
from rlhub.types import Example, Score

RETRY_STATUSES = frozenset({502, 503, 504})


class EnvServerUnreachable(RLHubError):
    """The env server did not answer after the retries: callers that score 0 on bad input must not swallow it."""


class EnvClient:
    """HTTP calls to one served env, with bounded retries.

    Args:
        url: ``http(s)://host:port/<env_id>``.
        token: Bearer token; default $RLHUB_ENV_TOKEN.
        retries: Further tries after the first when the server cannot be reached.
        backoff: Seconds before the first retry; doubled each time.
        timeout: Seconds to wait for one answer.
    """

    def __init__(
        self, url: str, *, token: str | None = None, retries: int = 3, backoff: float = 0.25, timeout: float = 120.0
    ) -> None:
        import httpx

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") == "":
            raise ConfigError(f"a served env's URL looks like http://127.0.0.1:8700/countdown-v0, got {url!r}")
        self.url = url.rstrip("/")
        self.env_id = parts.path.strip("/")
        self.retries = retries
        self.backoff = backoff
        token = token if token is not None else os.environ.get(TOKEN_VARIABLE)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(headers=headers, timeout=timeout)
        self._transport_errors = (httpx.TransportError,)

    def call(self, method: str, route: str, body: dict | None = None, *, idempotent: bool = True) -> dict:
        """``method`` on ``<url>/<route>`` with a JSON body; the decoded JSON answer."""
        import httpx

        target = f"{self.url}/{route}"
        content = None if body is None else encode(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, target, content=content, headers=headers)
            except self._transport_errors as exc:
                # A request that may have reached the server is repeated only if repeating is harmless.
                if not idempotent and not isinstance(exc, httpx.ConnectError):
                    raise EnvServerUnreachable(f"rlhub env server {self.url}: {route} failed: {exc!r}") from exc
                problem = repr(exc)
            else:
                if response.status_code not in RETRY_STATUSES:
                    break
                problem = f"HTTP {response.status_code}"
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        else:
            raise EnvServerUnreachable(
                f"rlhub env server {self.url} did not answer {route} after {self.retries + 1} tries ({problem}); "
                "is `rlhub serve` running there?"
            )
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text[:500]
            raise RLHubError(f"rlhub env server {self.url}: {route} answered {response.status_code}: {detail}")
        return response.json()

    def close(self) -> None:
        self._http.close()


class RemoteRubric(Rubric):
    """A rubric whose reward functions run on the server; weights and the weighted sum are local."""

    def __init__(self, client: EnvClient, weights: Mapping[str, float]) -> None:
        self._client = client
        super().__init__({name: (self._remote_function(name), weight) for name, weight in weights.items()})

    def _remote_function(self, name: str):
        def reward(completions, **columns):
            rows = [{key: values[i] for key, values in columns.items()} for i in range(len(completions))]
            return [s.rewards[name] for s in self.score_batch(completions, rows)]

        reward.__name__ = name
        return reward

    def only(self, name: str) -> RemoteRubric:
        """A rubric of the one function ``name`` with weight 1, scored on the server."""
        return RemoteRubric(self._client, {name: 1.0})

    def reweighted(self, weights: Mapping[str, float]) -> RemoteRubric:
        unknown = set(weights) - set(self.names)
        if unknown:
            raise ConfigError(f"unknown reward name(s) {sorted(unknown)}; this rubric has {self.names}")
        return RemoteRubric(self._client, {name: float(weights.get(name, w)) for name, w in self.weights.items()})

    def score_batch(self, completions: Sequence[Any], columns: Sequence[Mapping[str, Any]]) -> list[Score]:
        if len(columns) != len(completions):
            raise ValueError(f"got {len(completions)} completions but {len(columns)} column rows")
        return self.combine(
            self._client.call("POST", "rubric", {"completions": list(completions), "columns": list(columns)})
        )

    def combine(self, answer: dict) -> list[Score]:
        """Scores from the server's raw values, weighted and summed as ``Rubric.score_batch`` does."""
        weights = [(item.name, item.weight) for item in self.items]  # once per batch, not once per row
        scores = []
        for row in answer["scores"]:
            values = row["rewards"]
            rewards = {name: values.get(name) for name, _ in weights}
            total = sum([weight * (rewards[name] or 0.0) for name, weight in weights])
            errors = [name for name in row["errors"] if name in rewards]
            scores.append(Score(reward=total, rewards=rewards, errors=errors))
        return scores


class RemoteEnv(gym.Env):
    """A served env with the API trainers, ``rlhub eval`` and ``rlhub validate`` use of a local one.

    Args:
        url: ``http://host:port/<env_id>`` of an ``rlhub serve`` server.
        token, retries, backoff, timeout: As for ``EnvClient``.

    Raises:
        RLHubError: The server is unreachable after the retries, or speaks another protocol.
    """

    metadata = {"render_modes": []}
    multi_turn = False

    def __init__(self, url: str, **client_options: Any) -> None:
        self._client = EnvClient(url, **client_options)
        self.url = self._client.url
        info = self._client.call("GET", "info")
        if info.get("protocol", "").split(".")[0] != PROTOCOL:
            raise RLHubError(f"{self.url} speaks {info.get('protocol')!r}, not {PROTOCOL!r}; upgrade one side")
        self.env_id = info["env_id"]
        self.multi_turn = bool(info["multi_turn"])
        self.config = dataclasses.make_dataclass(
            "ServedConfig", [(key, Any, dataclasses.field(default=value)) for key, value in info["config"].items()]
        )()
        self.system_prompt = info["system_prompt"]
        self.rubric: Rubric = RemoteRubric(self._client, info["rubric"])
        self.observation_space = ModelText()
        self.action_space = ModelText()
        self._session: str | None = None
        self.turn_rewards: list[float] = []
        """The reward of each step of the current episode so far, as the server reports it."""

    def examples(self, split: str = "train", limit: int | None = None, seed: int = 0) -> list[Example]:
        answer = self._client.call("POST", "examples", {"split": split, "limit": limit, "seed": seed})
        return [example_from_json(e) for e in answer["examples"]]

    def score(self, completion: Any, example: Example) -> Score:
        return self.score_batch([completion], [example])[0]

    def score_batch(self, completions: Sequence[Any], examples: Sequence[Example]) -> list[Score]:
        body = {"completions": list(completions), "examples": [example_to_json(ex) for ex in examples]}
        answer = self._client.call("POST", "score", body)
        if isinstance(self.rubric, RemoteRubric):
            return self.rubric.combine(answer)
        raise RLHubError(
            f"{self.url}: this env's rubric was replaced by one with local reward functions; a served env "
            "scores only with its own functions (reweight them instead: rubric.reweighted)"
        )

    def gold_completion(self, example: Example) -> Any:
        return self._client.call("POST", "gold", {"example": example_to_json(example)})["completion"]

    def probes(self, example: Example) -> list:
        """Task-specific reward-hack probes are code and stay on the server; none are served."""
        return []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        body: dict[str, Any] = {"seed": seed, "split": options.pop("split", "train")}
        body["limit"] = options.pop("limit", None)
        if "example" in options:
            body["example"] = example_to_json(options.pop("example"))
        if options:
            raise ConfigError(f"unknown reset options {sorted(options)}; a served env takes split, limit, example")
        self._end_session()
        answer = self._client.call("POST", "sessions", body, idempotent=False)
        self._session = answer["session_id"]
        self.turn_rewards = []
        info = dict(answer["info"])
        if "example" in info:
            info["example"] = example_from_json(info["example"])
        return answer["observation"], info

    def step(self, action: str):
        if self._session is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        answer = self._client.call("POST", f"sessions/{self._session}/step", {"action": action}, idempotent=False)
        # A server older than the field: the same list, from each step's reward.
        self.turn_rewards = list(answer.get(STEP_TURN_REWARDS, [*self.turn_rewards, answer["reward"]]))
        return answer["observation"], answer["reward"], answer["terminated"], answer["truncated"], answer["info"]

    def respond(self, messages, state):
        """The tool turns of a trainer-driven episode; not served yet (an env's tools run where it runs)."""
        raise RLHubError(
            f"{self.url} serves a multi-turn env: its examples, scores and reset/step episodes are served, but "
            "trainer-driven rollouts (respond) are not yet; train on it locally"
        )

    def _end_session(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            try:
                self._client.call("DELETE", f"sessions/{session}", idempotent=False)
            except RLHubError:
                pass  # it expires on the server anyway

    def close(self) -> None:
        self._end_session()
        self._client.close()

    def __repr__(self) -> str:
        return f"RemoteEnv({self.url!r})"
