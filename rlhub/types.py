"""Plain data types shared by environments, rewards and trainers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant" | "tool", "content": str}``."""


@dataclass(frozen=True)
class Example:
    """One task instance.

    Attributes:
        id: Stable identifier, unique within (env, split), e.g. ``"countdown-v0/train/17"``.
        prompt: The chat messages the model sees (system prompt first, if any).
        answer: The gold answer the reward functions compare against.
        info: Extra columns the reward functions need (e.g. ``numbers`` for countdown).
    """

    id: str
    prompt: list[Message]
    answer: Any
    info: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The keyword columns a reward function receives for this example (TRL's dataset columns)."""
        return {"answer": self.answer, **self.info}


@dataclass
class Score:
    """The outcome of scoring one completion.

    Attributes:
        reward: The weighted total over the rubric's reward functions (``None`` values count as 0).
        rewards: Each reward function's raw value by name; ``None`` where it did not apply.
        errors: Names of reward functions that raised on this completion (scored 0).
    """

    reward: float
    rewards: dict[str, float | None]
    errors: list[str] = field(default_factory=list)


def last_assistant_text(transcript: Any) -> str:
    """The content of a transcript's last assistant message (a plain-string completion is its own).

    Args:
        transcript: A list of chat messages, or a completion string.

    Returns:
        That message's text; ``""`` when there is none or its content is not a string.

    Example:
        >>> last_assistant_text([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "b"}])
        'a'
    """
    if isinstance(transcript, str):
        return transcript
    if isinstance(transcript, (list, tuple)):
        for message in reversed(transcript):
            if isinstance(message, dict) and message.get("role") == "assistant":
                content = message.get("content")
                return content if isinstance(content, str) else ""
    return ""
