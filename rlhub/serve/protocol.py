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


def example_to_json(example: Example) -> dict[str, Any]:
    return dataclasses.asdict(example)


def example_from_json(data: dict[str, Any]) -> Example:
    return Example(id=str(data["id"]), prompt=list(data["prompt"]), answer=data["answer"], info=dict(data["info"]))
