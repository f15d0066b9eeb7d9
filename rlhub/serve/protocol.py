"""What travels between ``rlhub serve`` and its clients: the protocol's name and JSON shapes."""

from __future__ import annotations

import dataclasses
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
    return dataclasses.asdict(example)


def example_from_json(data: dict[str, Any]) -> Example:
    return Example(id=str(data["id"]), prompt=list(data["prompt"]), answer=data["answer"], info=dict(data["info"]))
