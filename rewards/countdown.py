"""The Countdown reward: reach the target by combining every given number exactly once with + - * /.

Expressions are evaluated by rlhub's safe arithmetic evaluator (``rlhub.arithmetic``, a walk over
Python's ``ast``, never ``eval``), in exact rational arithmetic. It accepts only ASCII digits,
``+ - * /``, unary minus, parentheses and spaces, so names, calls, attribute access, powers and floats
are rejected before parsing.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from rlhub.arithmetic import FOUR_OPERATIONS, evaluate

from .parsing import completion_text, extract_answer

MAX_EXPRESSION_CHARS = 200
"""Longer expressions are rejected (a Countdown answer with six numbers is under 50 characters)."""

MAX_LITERAL = 10**6
"""Integer literals above this are rejected."""

_ALLOWED = re.compile(r"[0-9+\-*/()\s]+")


def _evaluate(expr: Any) -> tuple[Fraction, list[int]] | None:
    """The value of ``expr`` and its integer literals in order, or ``None`` when it is rejected."""
    if not isinstance(expr, str) or len(expr) > MAX_EXPRESSION_CHARS or not _ALLOWED.fullmatch(expr):
        return None
    literals: list[int] = []

    def literal(value: int | float) -> Fraction:  # integers up to MAX_LITERAL, recorded in order
        if type(value) is not int or value > MAX_LITERAL:
            raise ValueError("not an integer literal up to MAX_LITERAL")
        literals.append(value)
        return Fraction(value)

    try:
        return evaluate(expr.strip(), FOUR_OPERATIONS, signs=(ast.USub,), literal=literal), literals
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, MemoryError):
        return None


def evaluate_expression(expr: str) -> Fraction | None:
    """Safely evaluate an arithmetic expression over integers, exactly.

    Args:
        expr: Text such as ``"(100 - 4) / 4 + 1"``: integer literals up to :data:`MAX_LITERAL`,
            ``+ - * /``, unary minus and parentheses, at most :data:`MAX_EXPRESSION_CHARS` characters.

    Returns:
        The exact value, or ``None`` for anything else (names, calls, ``**``, floats, division by zero,
        malformed or overlong text).

    Example:
        >>> evaluate_expression("(100 - 4) / 4 + 1")
        Fraction(25, 1)
        >>> evaluate_expression("__import__('os').system('x')"), evaluate_expression("2**99999999")
        (None, None)
    """
    evaluated = _evaluate(expr)
    return None if evaluated is None else evaluated[0]


def _as_int(value: Any) -> int | None:
    try:
        number = Fraction(str(value).strip())
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return int(number) if number.denominator == 1 else None


def _as_ints(values: Any) -> list[int] | None:
    if values is None or isinstance(values, (str, bytes)):
        return None
    try:
        ints = [_as_int(v) for v in values]
    except TypeError:
        return None
    return None if None in ints else ints


def _countdown_score(text: str, target: int, numbers: list[int]) -> float:
    answer = extract_answer(text, "tags")
    if not answer:
        return 0.0
    if answer.count("=") == 1:
        answer, result = answer.split("=")
        if evaluate_expression(result) != target:
            return 0.0
    evaluated = _evaluate(answer)
    if evaluated is None:
        return 0.0
    value, literals = evaluated
    return float(value == target and Counter(literals) == Counter(numbers))


def countdown_reward(
    completions: Sequence[Any], target: Sequence[Any], numbers: Sequence[Any], **kwargs: Any
) -> list[float | None]:
    """1.0 when the answer block is an expression that uses each given number once and equals the target.

    The expression is read from the single ``<answer>`` block after the reasoning. ``expr = target`` is
    accepted when the right side equals the target (only the left side counts). The integer literals
    must equal ``numbers`` as a multiset: each number used exactly once, no other numbers.

    Args:
        completions: Completions (strings or chat-message lists).
        target: The target value per row.
        numbers: The available numbers per row.
        **kwargs: Other dataset columns (ignored).

    Returns:
        1.0 or 0.0 per completion; ``None`` where the row's ``target`` or ``numbers`` is missing or not
        integral.

    Example:
        >>> countdown_reward(
        ...     ["<answer>(6 - 2) * 6</answer>", "<answer>6 * 4 = 24</answer>", "<answer>6 * 2 * 2</answer>"],
        ...     target=[24, 24, 24],
        ...     numbers=[[6, 2, 6], [6, 4], [6, 2, 6]],
        ... )
        [1.0, 1.0, 0.0]
    """
    rewards: list[float | None] = []
    for completion, row_target, row_numbers in zip(completions, target, numbers, strict=True):
        goal = _as_int(row_target)
        given = _as_ints(row_numbers)
        if goal is None or given is None:
            rewards.append(None)
            continue
        rewards.append(_countdown_score(completion_text(completion), goal, given))
    return rewards
