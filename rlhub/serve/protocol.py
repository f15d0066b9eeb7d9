"""What travels between ``rlhub serve`` and its clients: the protocol's name and JSON shapes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from rlhub.types import Example

PROTOCOL = "rlhub-env/1"
"""Name and major version; a client refuses a server whose major version differs."""
TOKEN_VARIABLE = "RLHUB_ENV_TOKEN"
"""The bearer token a client sends (and ``rlhub serve`` requires) when not given explicitly."""
STEP_INFO_KEYS = ("rewards", "reward_errors", "example_id", "turns", "tool_calls", "tool_errors")
"""The info a step returns: the scores at an episode's end (``TextEnv.step``), and on every step of a
multi-turn episode its counts so far (``MultiTurnEnv.step``)."""
STEP_TURN_REWARDS = "turn_rewards"
"""A step's answer also holds, under this key, the reward of every step of the episode so far, this one's
last: the env's ``turn_reward`` for intermediate turns, the rubric's score for the final one (per-turn credit).
Added within rlhub-env/1: a client reads it when present (``RemoteEnv.turn_rewards``); older clients ignore it."""


def example_to_json(example: Example) -> dict[str, Any]:
    """``example``'s fields as a dict to encode, sharing its values (not a deep copy: a batch's worth of
    ``dataclasses.asdict`` costs more than the HTTP call that carries it). A dataclass nested in the values is
    encoded as its fields by :func:`encode`."""
    return {"id": example.id, "prompt": example.prompt, "answer": example.answer, "info": example.info}


def encode(body: Any) -> bytes:
    """A request body as the protocol's JSON: ASCII-escaped, so that model output with lone surrogates (which
    UTF-8 cannot carry) travels too, and any dataclass within as its fields."""
    return json.dumps(body, default=_fields).encode()


def _fields(value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r:.200}")


def example_from_json(data: dict[str, Any]) -> Example:
    return Example(id=str(data["id"]), prompt=list(data["prompt"]), answer=data["answer"], info=dict(data["info"]))
