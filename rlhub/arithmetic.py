"""The one safe arithmetic evaluator: exact values of ``ast`` trees, with only the operators a caller allows.

Never ``eval``: the tree is walked and each node must be a number, an allowed unary sign or an allowed
binary operator. The calculator tool, the Countdown reward and the sandbox's assert checks use it (the
last, only its operator table).

>>> evaluate("(100 - 4) / 4 + 1", FOUR_OPERATIONS)
Fraction(25, 1)
>>> evaluate("2 ** 3", FOUR_OPERATIONS)
Traceback (most recent call last):
...
ValueError: only numbers, + - * / and parentheses are allowed
"""

from __future__ import annotations

import ast
import operator
import threading
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

BINARY_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
"""Python's arithmetic binary operators, each as its function."""

SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}

FOUR_OPERATIONS = {op: BINARY_OPERATORS[op] for op in (ast.Add, ast.Sub, ast.Mult, ast.Div)}
"""+ - * / only."""

SIGNS = (ast.USub, ast.UAdd)


# CPython 3.11 counts ast.parse's recursion depth in shared state (python/cpython#106905): two threads
# parsing at once (an env served to many clients) can fail with "SystemError: AST constructor recursion
# depth mismatch". Every ast.parse on a reward's path goes through parse(); parsing a reward's input
# takes microseconds, so one at a time costs nothing measurable.
_PARSE_LOCK = threading.Lock()


def parse(source: str, mode: str = "eval") -> ast.AST:
    """``ast.parse(source, mode=mode)``, safe to call from many threads (see python/cpython#106905)."""
    with _PARSE_LOCK:
        return ast.parse(source, mode=mode)


def exact(value: int | float) -> Fraction:
    """The default literal rule: the number, exactly."""
    return Fraction(value)


def evaluate(
    expression: str | ast.AST,
    operators: Mapping[type[ast.operator], Callable[[Any, Any], Any]],
    *,
    signs: tuple[type[ast.unaryop], ...] = SIGNS,
    literal: Callable[[int | float], Fraction] = exact,
) -> Fraction:
    """The exact value of an arithmetic expression built only of numbers, ``signs`` and ``operators``.

    Args:
        expression: The text (parsed as one Python expression) or an already parsed tree.
        operators: The allowed binary operators: ``ast`` operator type -> function (say
            :data:`FOUR_OPERATIONS`, or a table whose ``ast.Pow`` bounds the exponent).
        signs: The allowed unary operators (``ast.USub``, ``ast.UAdd``).
        literal: Turns each number written (an int or float; other constants are refused before) into a
            Fraction, raising ValueError for one it refuses (a bound, a type); it may record the numbers.

    Returns:
        The value.

    Raises:
        ValueError: A node other than those allowed, or a refused literal; SyntaxError for text that does
            not parse; whatever an operator raises (ZeroDivisionError).
    """
    tree = parse(expression) if isinstance(expression, str) else expression
    return _walk(tree, operators, signs, literal)


def _walk(node: ast.AST, operators, signs, literal) -> Fraction:
    if isinstance(node, ast.Expression):
        return _walk(node.body, operators, signs, literal)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return literal(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in signs:
        value = _walk(node.operand, operators, signs, literal)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in operators:
        left = _walk(node.left, operators, signs, literal)
        # Fraction again after each step: // of two Fractions is an int, and int / int a float.
        return Fraction(operators[type(node.op)](left, _walk(node.right, operators, signs, literal)))
    allowed = " ".join(SYMBOLS.get(op, op.__name__) for op in operators)
    raise ValueError(f"only numbers, {allowed} and parentheses are allowed")
