"""Audit cases for a Python program as the answer (a fenced block): the false-negative side only.

Code rewards run tests, so a near miss is a wrong program whose verdict the tests decide (and ``rlhub
validate``'s probes already try the forgeries); what a grader of code can get wrong on its own is a
right program it fails to read. The accept set therefore rewrites the gold program without changing
what it does: the fence without its ``python`` tag or as ``py``, a sentence before the block, a comment
and docstrings added, the program reformatted (``ast.unparse``), local variables renamed, each
``return EXPR`` through a variable. A rewrite that does not compile is dropped.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from rlhub.authoring.audit.cases import Cases, distinct
from rlhub.authoring.probes import _functions, _Target

DYNAMIC = frozenset({"locals", "vars", "eval", "exec", "globals", "dir"})
"""Calls that read variables by name: a function using one keeps its local names."""


def _compiles(code: str) -> bool:
    try:
        compile(code, "<audit>", "exec")
    except (SyntaxError, ValueError, RecursionError):
        return False
    return True


def _functions_of(tree: ast.Module) -> list[ast.FunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def renamed_locals(code: str) -> str:
    """``code`` with each function's assigned local names renamed (``total`` -> ``total_1``)."""
    tree = ast.parse(code)
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    outside = [s for s in tree.body if not isinstance(s, defs)]
    module_names = {n.id for s in outside for n in ast.walk(s) if isinstance(n, ast.Name)}  # read by functions:
    module_names |= {
        (a.asname or a.name).split(".")[0] for s in outside for a in ast.walk(s) if isinstance(a, ast.alias)
    }
    module_names |= {s.name for s in tree.body if isinstance(s, defs)}  # never renamed
    for fn in [f for f in tree.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        nodes = list(ast.walk(fn))
        if any(isinstance(n, (ast.Global, ast.Nonlocal)) for n in nodes) or any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in DYNAMIC for n in nodes
        ):
            continue
        params = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
        inner = {f.name for f in _functions_of(fn)} | {n.name for n in nodes if isinstance(n, ast.ClassDef)}
        stored = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        taken = {n.id for n in nodes if isinstance(n, ast.Name)} | params
        for name in sorted(stored - params - inner - module_names):
            new = next(f"{name}_{k}" for k in range(1, 100) if f"{name}_{k}" not in taken)
            for node in nodes:
                if isinstance(node, ast.Name) and node.id == name:
                    node.id = new
            for arg in ast.walk(fn):  # nested lambdas' and functions' own parameters of that name
                if isinstance(arg, ast.arg) and arg.arg == name:
                    arg.arg = new
    return ast.unparse(tree)


def returns_through_variable(code: str) -> str:
    """``code`` with each ``return EXPR`` written as ``_value = EXPR`` then ``return _value``."""
    tree = ast.parse(code)
    for block in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(block, field, None)
            if not isinstance(statements, list) or not all(isinstance(s, ast.stmt) for s in statements):
                continue
            out: list[ast.stmt] = []
            for s in statements:
                if isinstance(s, ast.Return) and s.value is not None:
                    out.append(ast.Assign(targets=[ast.Name("_value", ast.Store())], value=s.value, lineno=0))
                    s = ast.Return(ast.Name("_value", ast.Load()))
                out.append(s)
            setattr(block, field, out)
    return ast.unparse(ast.fix_missing_locations(tree))


def documented(code: str) -> str:
    """``code`` with a comment on top and a docstring in each function that has none."""
    tree = ast.parse(code)
    for fn in _functions_of(tree):
        if ast.get_docstring(fn) is None:
            fn.body.insert(0, ast.Expr(ast.Constant("Do what the task asks.")))
    return "# A solution to the task.\n" + ast.unparse(ast.fix_missing_locations(tree))


def cases(t: _Target) -> Cases:
    """The accept set of a code gold (see the module docstring); the reject set is empty."""
    code = t.slot.content
    before = t.slot.before
    tag = re.search(r"python([ \t]*\n)$", before)
    accept = []
    if tag:
        bare = before[: tag.start()] + tag[1]
        accept += [("fence without a language tag", bare + code + t.slot.after)]
        accept += [("fence tagged py", before[: tag.start()] + "py" + tag[1] + code + t.slot.after)]
    accept.append(("a sentence before the block", "Here is the function.\n\n" + t.text))
    try:
        rewrites = [("comment and docstrings added", documented(code)), ("reformatted", ast.unparse(ast.parse(code)))]
        rewrites += [
            ("locals renamed", renamed_locals(code)),
            ("return through a variable", returns_through_variable(code)),
        ]
    except (SyntaxError, ValueError, RecursionError):
        rewrites = []
    accept += [(kind, t.slot.fill(new)) for kind, new in rewrites if new.strip() != code.strip() and _compiles(new)]
    return Cases(distinct(accept, t.text, t.final))


def expected_literal(test: str) -> Any:
    """The expected value of a test ``assert f(...) == VALUE`` or ``assert _same(f(...), VALUE)``, else ``None``."""
    try:
        statement = ast.parse(test).body[0]
    except (SyntaxError, ValueError, RecursionError, IndexError):
        return None
    test_expr = statement.test if isinstance(statement, ast.Assert) else None
    if isinstance(test_expr, ast.Compare) and isinstance(test_expr.ops[0], ast.Eq):
        node = test_expr.comparators[0]
    elif isinstance(test_expr, ast.Call) and len(test_expr.args) == 2:
        node = test_expr.args[1]
    else:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None


def _returning(t: _Target, value: Any) -> Any:
    names = _functions(t.slot.content) or ["solution"]
    program = "\n\n".join(f"def {name}(*args, **kwargs):\n    return {value!r}" for name in names)
    return t.final(t.slot.fill(program + "\n"))


def random_answer(t: _Target, rng) -> Any:
    """Every function of the gold returning a random integer."""
    return _returning(t, rng.randint(-1000, 1000))


def heuristic(t: _Target) -> Any:
    """Every function of the gold returning the first test's expected value (``None`` when it has none)."""
    tests = t.example.info.get("tests") or [""]
    return _returning(t, expected_literal(tests[0]))
