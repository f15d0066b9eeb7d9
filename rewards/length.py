"""Length-shaping rewards: a cosine-scaled length reward and a DAPO-style overlong penalty.

Lengths are in tokens when the trainer passes ``completion_ids`` (TRL does), otherwise in characters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rlhub.errors import ConfigError

from .math import math_accuracy
from .parsing import ANSWER_MODES, completion_text
from .rubric import RewardFn


def _lengths(completions: Sequence[Any], completion_ids: Sequence[Any] | None) -> list[int]:
    if completion_ids is not None:
        return [len(ids) if ids is not None else 0 for ids in completion_ids]
    return [len(completion_text(c)) for c in completions]


def cosine_length_reward(
    max_len: int = 1000,
    min_value_wrong: float = -0.5,
    max_value_wrong: float = 0.0,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    answer_format: str = "tags",
) -> RewardFn:
    """A reward that prefers short right answers and long wrong ones, along a cosine in the length.

    From Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning in LLMs": with
    ``p = min(length / max_len, 1)``, a correct completion earns ``max_value_correct`` at length 0 down
    to ``min_value_correct`` at ``max_len``, and a wrong one earns ``min_value_wrong`` at length 0 up to
    ``max_value_wrong`` at ``max_len`` (spending more tokens on a problem it gets wrong is less bad):
    ``lo + (hi - lo) * (1 + cos(pi * p)) / 2``. Correctness is :func:`~rlhub.rewards.math.math_accuracy`
    on the ``answer`` column; an unparsable answer counts as wrong.

    Args:
        max_len: The length (tokens, or characters without ``completion_ids``) where the cosine ends.
        min_value_wrong: Reward for an empty wrong completion.
        max_value_wrong: Reward for a wrong completion of ``max_len`` or more.
        min_value_correct: Reward for a correct completion of ``max_len`` or more.
        max_value_correct: Reward for an empty correct completion.
        answer_format: ``"tags"`` or ``"boxed"``, as in ``math_accuracy``.

    Returns:
        A reward function ``cosine_length(completions, answer, completion_ids=None, **kwargs)`` whose
        values lie between the smallest and the largest of the four values (``None`` where ``answer``
        is ``None``).

    Raises:
        ConfigError: ``max_len`` is not positive or ``answer_format`` is unknown.

    Example:
        >>> reward = cosine_length_reward(max_len=100)
        >>> [round(r, 2) for r in reward(["<answer>4</answer>", "<answer>5</answer>"], answer=["4", "4"])]
        [0.96, -0.46]
    """
    if max_len <= 0:
        raise ConfigError(f"cosine_length_reward needs max_len > 0, got {max_len}")
    if answer_format not in ANSWER_MODES:
        raise ConfigError(f"answer_format must be one of {ANSWER_MODES}, got {answer_format!r}")

    def cosine_length(
        completions: Sequence[Any],
        answer: Sequence[Any],
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        """Cosine-scaled length reward (see ``cosine_length_reward``): short right, long wrong."""
        correct = math_accuracy(completions, answer, answer_format=answer_format)
        rewards: list[float | None] = []
        for is_correct, length in zip(correct, _lengths(completions, completion_ids)):
            if is_correct is None:
                rewards.append(None)
                continue
            if is_correct:
                start, end = max_value_correct, min_value_correct
            else:
                start, end = min_value_wrong, max_value_wrong
            progress = min(length / max_len, 1.0)
            rewards.append(end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress)))
        return rewards

    return cosine_length


def length_penalty(budget: int = 1000, buffer: int = 250) -> RewardFn:
    """An overlong penalty, like DAPO's soft overlong punishment: 0 within budget, then down to -1.

    A completion of up to ``budget`` scores 0; past it the penalty grows linearly and reaches -1 at
    ``budget + buffer``, staying there for anything longer.

    Args:
        budget: The length (tokens, or characters without ``completion_ids``) that costs nothing.
        buffer: How far past the budget the penalty takes to reach -1.

    Returns:
        A reward function ``length_penalty(completions, completion_ids=None, **kwargs)`` with values in
        [-1, 0].

    Raises:
        ConfigError: ``budget`` is negative or ``buffer`` is not positive.

    Example:
        >>> penalty = length_penalty(budget=10, buffer=10)
        >>> penalty(["short", "x" * 15, "x" * 100])
        [0.0, -0.5, -1.0]
    """
    if budget < 0 or buffer <= 0:
        raise ConfigError(f"length_penalty needs budget >= 0 and buffer > 0, got budget={budget}, buffer={buffer}")

    def length_penalty(
        completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **kwargs: Any
    ) -> list[float | None]:
        """Overlong penalty (see ``length_penalty``): 0 within budget, down to -1 past the buffer."""
        return [0.0 - min(max(length - budget, 0) / buffer, 1.0) for length in _lengths(completions, completion_ids)]

    return length_penalty
