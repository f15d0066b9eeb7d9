"""Pieces several math environments share."""

from __future__ import annotations

from rlhub.rewards import Rubric
from rlhub.rewards.format import boxed_format, think_answer_format
from rlhub.rewards.math import math_accuracy


def math_rubric(answer_format: str, format_weight: float, numbers_only: bool = False) -> Rubric:
    """``correct`` (math equivalence of the extracted answer, weight 1) + ``format`` (layout).

    ``correct`` reads the examples' ``question`` column when they have one, so that restating the
    question earns nothing; ``numbers_only`` accepts only plain numbers (see ``math_accuracy``).
    """

    def correct(completions, answer, question=None, **kwargs):
        return math_accuracy(
            completions, answer=answer, answer_format=answer_format, question=question, numbers_only=numbers_only
        )

    fmt = boxed_format if answer_format == "boxed" else think_answer_format
    return Rubric({"correct": (correct, 1.0), "format": (fmt, format_weight)})
