"""Format rewards: does the completion lay out its reasoning and answer the way the prompt asked?

All scores lie in [0, 1] and never depend on whether the answer is right.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .parsing import completion_text, extract_answer, extract_boxed, strip_think

_THINK_THEN_ANSWER = re.compile(r"\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*", re.DOTALL)
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def _is_think_then_answer(text: str) -> bool:
    if any(text.count(tag) != 1 for tag in _TAGS):
        return False
    match = _THINK_THEN_ANSWER.fullmatch(text)
    return bool(match and match["think"].strip() and match["answer"].strip())


def think_answer_format(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """1.0 iff the completion is exactly ``<think>...</think>`` then ``<answer>...</answer>``.

    Only whitespace may surround the two blocks, each of the four tags appears exactly once, and both
    blocks hold some non-whitespace text. A chat template that opens ``<think>`` in the prompt leaves
    it out of the completion, which then scores 0: use :func:`answer_tag_format` there.

    Args:
        completions: Completions (strings or chat-message lists).
        **kwargs: Dataset columns (ignored).

    Returns:
        1.0 or 0.0 per completion.

    Example:
        >>> think_answer_format(["<think>2 + 2 = 4</think>\\n<answer>4</answer>", "<answer>4</answer>"])
        [1.0, 0.0]
    """
    return [float(_is_think_then_answer(completion_text(c))) for c in completions]


def answer_tag_format(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """1.0 iff, after the reasoning, there is exactly one ``<answer>`` block and it is not empty.

    Args:
        completions: Completions (strings or chat-message lists).
        **kwargs: Dataset columns (ignored).

    Returns:
        1.0 or 0.0 per completion.

    Example:
        >>> answer_tag_format(["so <answer>4</answer>", "<answer></answer>", "<answer>3</answer><answer>4</answer>"])
        [1.0, 0.0, 0.0]
    """
    return [float(bool(extract_answer(completion_text(c), "tags"))) for c in completions]


def _has_one_boxed(text: str) -> bool:
    text = strip_think(text)
    return text.count("\\boxed") == 1 and bool(extract_boxed(text))


def boxed_format(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    r"""1.0 iff, after the reasoning, there is exactly one ``\boxed{}`` and it is not empty.

    Args:
        completions: Completions (strings or chat-message lists).
        **kwargs: Dataset columns (ignored).

    Returns:
        1.0 or 0.0 per completion.

    Example:
        >>> boxed_format([r"so $\boxed{4}$", r"\boxed{}", r"\boxed{3} or \boxed{4}", r"\boxed{4"])
        [1.0, 0.0, 0.0, 0.0]
    """
    return [float(_has_one_boxed(completion_text(c))) for c in completions]


def _tag_count_score(text: str) -> float:
    score = 0.0
    for name in ("think", "answer"):
        opening, closing = f"<{name}>", f"</{name}>"
        opened_once = text.count(opening) == 1
        score += 0.25 * opened_once
        if text.count(closing) == 1 and (not opened_once or text.index(opening) < text.index(closing)):
            score += 0.25
    return score


def tag_count_format(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """Partial credit for the tags: 0.25 for each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>``.

    A tag earns its 0.25 when it appears exactly once; a closing tag also must not come before its
    opening tag. A smoother signal than :func:`think_answer_format` early in training.

    Args:
        completions: Completions (strings or chat-message lists).
        **kwargs: Dataset columns (ignored).

    Returns:
        0.0, 0.25, 0.5, 0.75 or 1.0 per completion.

    Example:
        >>> tag_count_format(["<think>x</think><answer>4</answer>", "<think>x</think> 4", "</answer><answer>"])
        [1.0, 0.5, 0.25]
    """
    return [_tag_count_score(completion_text(c)) for c in completions]
