"""A repetition penalty: the share of repeated word n-grams, to discourage degenerate looping text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlhub.errors import ConfigError

from .parsing import completion_text
from .rubric import RewardFn


def _repeated_fraction(text: str, ngram_size: int) -> float:
    words = text.lower().split()
    if len(words) < ngram_size:
        return 0.0
    total = len(words) - ngram_size + 1
    distinct = len(set(zip(*(words[i:] for i in range(ngram_size)))))
    return 1.0 - distinct / total


def repetition_penalty(ngram_size: int = 3, max_penalty: float = -1.0) -> RewardFn:
    """A penalty proportional to the fraction of word n-grams that repeat an earlier one.

    Words are the lowercased whitespace-separated tokens. With ``n`` n-grams of which ``u`` are
    distinct, the penalty is ``max_penalty * (1 - u / n)``: 0 for text without repeats and for text
    shorter than one n-gram (including empty text), approaching ``max_penalty`` for text that loops.

    Args:
        ngram_size: Words per n-gram.
        max_penalty: The most negative value (reached only in the limit of endless repetition).

    Returns:
        A reward function ``repetition_penalty(completions, **kwargs)`` with values in
        ``[max_penalty, 0]``.

    Raises:
        ConfigError: ``ngram_size`` is below 1 or ``max_penalty`` is positive.

    Example:
        >>> penalty = repetition_penalty(ngram_size=2)
        >>> penalty(["the cat sat on the mat", "go go go go go", ""])
        [0.0, -0.75, 0.0]
    """
    if not isinstance(ngram_size, int) or ngram_size < 1:
        raise ConfigError(f"repetition_penalty needs an integer ngram_size >= 1, got {ngram_size!r}")
    if max_penalty > 0:
        raise ConfigError(f"repetition_penalty needs max_penalty <= 0 (it is a penalty), got {max_penalty}")

    def repetition_penalty(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        """Repeated word n-gram penalty (see the ``repetition_penalty`` factory), in [max_penalty, 0]."""
        return [0.0 + max_penalty * _repeated_fraction(completion_text(c), ngram_size) for c in completions]

    return repetition_penalty
