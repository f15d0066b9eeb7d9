"""Assert tests turned into calls for the sandbox and checks for the trusted process.

A test case such as ``assert add(1, 2) == 3`` becomes the call ``add(1, 2)``, which the sandbox
evaluates after the solution (``rlhub.sandbox.SandboxPool.run_calls``), and the check ``_r0 == 3``,
which this process evaluates on the call's result. Results cross back through a strict serializer
(exact bool, int, float, str, None, list, tuple, dict, set), so the expected value never enters the
sandbox and no object whose ``==`` lies can pass: a program can print or report anything it likes,
but without the expected values it cannot forge a match.

What converts: one ``assert`` whose expression is built of literals, operators, comparisons,
subscripts, the calls in :data:`TRUSTED_FUNCTIONS` (``abs``, ``set``, ``sorted``, ``math.isclose``,
...) and calls to the solution's functions (any other name called, not defined by the test's setup
code). Each outermost call to a solution function is a hole the sandbox fills; its arguments are
evaluated there. The check then runs here with Python's own semantics, so ``==``, ``abs(x - y) <
1e-6`` and ``is True`` mean what they meant in the test. ``_same(got, want)`` (codegen's exact-type
equality, :data:`SAME`) converts when the setup code defines it as written there. Anything else (a
loop, a name the test defines, an attribute of a result, a test helper wrapped around a result)
does not convert, and the reward runs that case the old way, asserts and all, in the sandbox.

    >>> check = convert("assert add(1, 2) == 3")
    >>> check.calls, check.passes([3]), check.passes([3.0]), check.passes(["3"])
    (('add(1, 2)',), True, True, False)
    >>> convert("for x in range(3):\\n    assert add(x, 0) == x") is None
    True
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlhub.arithmetic import BINARY_OPERATORS as _BINARY
from rlhub.arithmetic import parse

SAME = """def _same(got, want):
    real_type = ().__class__.__class__  # not the name `type`: the solution may have rebound builtins
    if real_type(got) is not real_type(want):
        return False
    if real_type(want) in ([].__class__, ().__class__):
        size = want.__len__()
        if got.__len__() != size:
            return False
        i = 0
        while i < size:
            if not _same(got[i], want[i]):
                return False
            i += 1
        return True
    return got == want
"""
"""Exact-type equality as test code (codegen's tests call it); converted, it is :func:`same`."""


def same(got: Any, want: Any) -> bool:
    """Equal values of exactly the same types, lists and tuples compared item by item (``SAME``'s meaning)."""
    if type(got) is not type(want):
        return False
    if type(want) in (list, tuple):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
    return got == want


TRUSTED_FUNCTIONS: dict[str, Any] = {
    **{f.__name__: f for f in (abs, all, any, bool, dict, float, frozenset, int, len, list, max, min, round)},
    **{f.__name__: f for f in (set, sorted, str, sum, tuple)},
    "math.isclose": math.isclose,
    "math.fabs": math.fabs,
    "math.sqrt": math.sqrt,
    "math.floor": math.floor,
    "math.ceil": math.ceil,
}
"""Calls a check may make here, on results and literals (no lambdas, so no code of the test runs here)."""

_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_, ast.Invert: operator.invert}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
MAX_SIZE = 10**6
"""The largest string, sequence or power a check may build here (a check on a hostile result stays cheap)."""


class _NotConvertible(Exception):
    pass


@dataclass(frozen=True)
class CallCheck:
    """One assert, converted: the calls the sandbox makes, and the check made here on their results.

    Attributes:
        calls: Expressions for the sandbox, in order (``"add(1, 2)"``).
        check: The assert's expression with the calls replaced by ``_r0``, ``_r1``, ... (for reading).
    """

    calls: tuple[str, ...]
    check: str
    tree: ast.expr

    def passes(self, results: Sequence[Any]) -> bool:
        """Whether the check holds for these results (one per call, already exact built-in values)."""
        try:
            return bool(_evaluate(self.tree, results, self.functions))
        except Exception:  # the assert would have raised: the case fails
            return False

    @property
    def functions(self) -> dict[str, Any]:
        return {**TRUSTED_FUNCTIONS, "_same": same} if "_same(" in self.check else TRUSTED_FUNCTIONS


@functools.lru_cache(maxsize=8192)
def convert(test: str, setup_code: str = "") -> CallCheck | None:
    """``test`` (one assert statement) as calls and a check, or None when it does not convert (see above).

    Args:
        test: The source of one test case.
        setup_code: The test's setup code: the names it defines are test helpers, not solution functions.

    Returns:
        The converted case, or None.
    """
    try:
        module = parse(test, "exec")
        helpers = _defined_names(parse(setup_code, "exec")) if setup_code.strip() else set()
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(module.body) != 1 or not isinstance(module.body[0], ast.Assert):
        return None
    if any(isinstance(n, ast.Name) and n.id.startswith("_r") for n in ast.walk(module)):
        return None  # the test's own names could be taken for results
    trusted = set(TRUSTED_FUNCTIONS)
    if "_same" in helpers and SAME.strip() in setup_code:
        trusted.add("_same")
        helpers.discard("_same")
    calls: list[str] = []
    try:
        tree = _holes(module.body[0].test, calls, trusted, helpers)
        _check_tree(tree, len(calls), trusted)
    except (_NotConvertible, RecursionError):
        return None
    return CallCheck(tuple(calls), ast.unparse(tree), tree)


def _defined_names(module: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(module):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


def _function_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def _holes(node: ast.expr, calls: list[str], trusted: set[str], helpers: set[str]) -> ast.expr:
    """``node`` with each outermost call to a solution function replaced by a result name ``_rN``."""
    if isinstance(node, ast.Call):
        name = _function_name(node.func)
        if isinstance(node.func, ast.Name) and name not in trusted and name not in helpers:
            calls.append(ast.unparse(node))
            return ast.copy_location(ast.Name(f"_r{len(calls) - 1}", ast.Load()), node)
    for field, value in ast.iter_fields(node):
        if isinstance(value, ast.expr):
            setattr(node, field, _holes(value, calls, trusted, helpers))
        elif isinstance(value, list):
            setattr(node, field, [_holes(v, calls, trusted, helpers) if isinstance(v, ast.expr) else v for v in value])
    return node


def _check_tree(node: ast.AST, holes: int, trusted: set[str]) -> None:
    """Raise _NotConvertible unless every node is one ``_evaluate`` handles, with no free name but holes."""
    if isinstance(node, ast.Name):
        if not (node.id.startswith("_r") and node.id[2:].isdigit() and int(node.id[2:]) < holes):
            raise _NotConvertible(node.id)
        return
    if isinstance(node, ast.Call):
        if _function_name(node.func) not in trusted or any(isinstance(a, ast.Starred) for a in node.args):
            raise _NotConvertible(ast.unparse(node.func))
        if any(k.arg is None for k in node.keywords):
            raise _NotConvertible("**kwargs")
        for part in [*node.args, *(k.value for k in node.keywords)]:
            _check_tree(part, holes, trusted)
        return
    allowed = (ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.UnaryOp, ast.BinOp, ast.BoolOp, ast.Compare)
    allowed += (ast.Subscript, ast.Slice, ast.Load, ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)
    if not isinstance(node, allowed) or (isinstance(node, ast.BinOp) and type(node.op) not in _BINARY):
        raise _NotConvertible(type(node).__name__)
    if isinstance(node, ast.Dict) and None in node.keys:
        raise _NotConvertible("**mapping")
    for child in ast.iter_child_nodes(node):
        _check_tree(child, holes, trusted)


def _sized(value: Any) -> Any:
    if isinstance(value, (str, bytes, list, tuple)) and len(value) > MAX_SIZE:
        raise ValueError("too large")
    if isinstance(value, int) and value.bit_length() > 64 * MAX_SIZE:
        raise ValueError("too large")
    return value


def _evaluate(node: ast.expr, results: Sequence[Any], functions: dict[str, Any]) -> Any:
    """Evaluate a checked tree on exact built-in values."""
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            return results[int(name[2:])]
        case ast.List(elts=items) | ast.Tuple(elts=items) | ast.Set(elts=items):
            values = [_evaluate(item, results, functions) for item in items]
            return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](values)
        case ast.Dict(keys=keys, values=values):
            return {_evaluate(k, results, functions): _evaluate(v, results, functions) for k, v in zip(keys, values)}
        case ast.UnaryOp(op=op, operand=operand):
            return _UNARY[type(op)](_evaluate(operand, results, functions))
        case ast.BinOp(left=left, op=op, right=right):
            a, b = _evaluate(left, results, functions), _evaluate(right, results, functions)
            if isinstance(op, ast.Pow) and isinstance(b, int) and abs(b) > 4096 and abs(a) not in (0, 1):
                raise ValueError("power too large")
            if isinstance(op, ast.Mult) and isinstance(a, int) != isinstance(b, int):
                count, seq = (a, b) if isinstance(a, int) else (b, a)
                if isinstance(seq, (str, list, tuple)) and count * len(seq) > MAX_SIZE:
                    raise ValueError("too large")
            return _sized(_BINARY[type(op)](a, b))
        case ast.BoolOp(op=op, values=values):
            value = None
            for item in values:
                value = _evaluate(item, results, functions)
                if bool(value) != isinstance(op, ast.And):
                    return value
            return value
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            a = _evaluate(left, results, functions)
            for op, right in zip(ops, comparators):
                b = _evaluate(right, results, functions)
                if not _COMPARE[type(op)](a, b):
                    return False
                a = b
            return True
        case ast.Subscript(value=value, slice=index):
            return _evaluate(value, results, functions)[_evaluate(index, results, functions)]
        case ast.Slice(lower=lower, upper=upper, step=step):
            parts = [None if p is None else _evaluate(p, results, functions) for p in (lower, upper, step)]
            return slice(*parts)
        case ast.Call(func=func, args=args, keywords=keywords):
            fn = functions[_function_name(func)]
            values = [_evaluate(a, results, functions) for a in args]
            return _sized(fn(*values, **{k.arg: _evaluate(k.value, results, functions) for k in keywords}))
    raise ValueError(f"cannot evaluate {type(node).__name__}")
