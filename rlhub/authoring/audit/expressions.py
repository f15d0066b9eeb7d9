"""Audit cases for an arithmetic expression as the answer (Countdown): reach the gold's value with its numbers.

The gold fixes both what a right answer is and what it may use: its value (the target) and its integer
literals (the numbers, each once). The accept set rewrites the gold without changing either (operands
of ``+`` and ``*`` commuted, redundant or full parentheses, other spacing); the reject set changes one
thing (a term dropped, the expression cut short, an operator swapped, a number off by one, the sign
flipped). Every case is checked by exact evaluation here: an accepted rewrite must keep the value and
the numbers, a near miss must lose one of them, or it is dropped.
"""

from __future__ import annotations

import ast
import copy
import operator
from fractions import Fraction
from typing import Any

from rlhub.authoring.audit.cases import Cases, placed
from rlhub.authoring.probes import _Target

OPERATIONS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def _tree(text: str) -> ast.expr | None:
    try:
        return ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        return None


def meaning(text: str) -> tuple[Fraction | None, list[int]] | None:
    """An expression's exact value (``None`` on division by zero) and sorted literals; ``None`` for a non-expression."""
    literals: list[int] = []

    def walk(node: ast.expr) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            literals.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATIONS:
            return OPERATIONS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError("not an arithmetic expression")

    tree = _tree(text)
    if tree is None:
        return None
    try:
        value = walk(tree)
    except ZeroDivisionError:
        value = None
    except ValueError:
        return None
    return value, sorted(literals)


def is_expression(text: str) -> bool:
    """Whether ``text`` is an integer expression with at least one operation (not a bare number)."""
    return isinstance(_tree(text), ast.BinOp) and meaning(text) is not None


def _nodes(tree: ast.expr, kind: type) -> list[int]:
    """Positions, in ``ast.walk`` order, of the nodes of ``kind``."""
    return [i for i, node in enumerate(ast.walk(tree)) if isinstance(node, kind)]


def _edited(tree: ast.expr, index: int, edit) -> str:
    """The expression with ``edit`` applied to its ``index``-th node (``ast.walk`` order), unparsed."""
    copied = copy.deepcopy(tree)
    node = list(ast.walk(copied))[index]
    replacement = edit(node)
    if replacement is not None:
        return ast.unparse(replacement if node is copied else _replace(copied, node, replacement))
    return ast.unparse(copied)


def _replace(tree: ast.expr, old: ast.expr, new: ast.expr) -> ast.expr:
    for parent in ast.walk(tree):
        for name in ("left", "right", "operand"):
            if getattr(parent, name, None) is old:
                setattr(parent, name, new)
    return tree


def _swap(node: ast.BinOp) -> None:
    node.left, node.right = node.right, node.left


def _parenthesized(node: ast.expr) -> str:
    if isinstance(node, ast.BinOp):
        return f"({_parenthesized(node.left)} {SYMBOLS[type(node.op)]} {_parenthesized(node.right)})"
    return ast.unparse(node)


def cases(t: _Target) -> Cases:
    """Accept and reject sets of an expression gold (see the module docstring)."""
    gold = t.slot.content.strip()
    tree = _tree(gold)
    right = meaning(gold)
    forms = [("redundant parentheses", f"({gold})"), ("every operation parenthesized", _parenthesized(tree))]
    forms += [("no spaces", gold.replace(" ", "")), ("wide spaces", "  ".join(gold.split()))]
    commutative = [i for i in _nodes(tree, ast.BinOp) if type(list(ast.walk(tree))[i].op) in (ast.Add, ast.Mult)]
    forms += [("operands commuted", _edited(tree, i, _swap)) for i in commutative]
    near = [("sign flipped", f"-({gold})"), ("truncated", gold[: max(gold.rfind(s) for s in "+-*/") + 1])]
    for i in _nodes(tree, ast.BinOp):
        near += [
            ("a term dropped", _edited(tree, i, lambda n, side=side: getattr(n, side))) for side in ("left", "right")
        ]
        for op in OPERATIONS:
            near.append(("operator swapped", _edited(tree, i, lambda n, op=op: setattr(n, "op", op()))))
    for i in _nodes(tree, ast.Constant):
        near.append(("a number off by one", _edited(tree, i, lambda n: setattr(n, "value", n.value + 1))))
    accept = [(kind, text) for kind, text in forms if meaning(text) == right]
    reject = [(kind, text) for kind, text in near if meaning(text) != right]
    return Cases(placed(t, accept, gold), placed(t, reject, gold))


def random_answer(t: _Target, rng) -> Any:
    """As many random numbers as the gold has, joined by random operations."""
    numbers = [rng.randint(1, 99) for _ in meaning(t.slot.content)[1]]
    text = str(numbers[0]) + "".join(f" {rng.choice('+-*/')} {n}" for n in numbers[1:])
    return t.final(t.slot.fill(text))


def heuristic(t: _Target) -> Any:
    """Every number added up."""
    return t.final(t.slot.fill(" + ".join(map(str, meaning(t.slot.content)[1]))))
