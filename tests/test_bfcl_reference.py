"""bfcl-v0's ``correct`` reward against the BFCL authors' AST checker (bfcl-eval's ``ast_checker``), per category.

Cases: every shipped BFCL question (``data/bfcl/``, the four categories bfcl-v0 serves) with its gold calls, the
audit's rewrites of the gold that a careful grader accepts and its near misses that it rejects
(:mod:`rlhub.authoring.audit.calls`, the cases ``rlhub validate --audit`` scores), and probes of one argument
rewritten (:func:`_probes`: strings in capitals or without the marks BFCL ignores, and the nested values where
:mod:`rlhub.rewards.tool_calls` says it differs from BFCL). Each case is scored by bfcl-v0's ``correct`` reward
and by ``ast_checker(functions, calls, ground_truth, Language.PYTHON, category, model)``, given the calls as
BFCL's decoder gives them, ``[{name: {parameter: value}}]``. The two must agree on every case that no entry of
:data:`DELIBERATE` explains: those are the places rlhub decides otherwise on purpose, each with its reason, so a
new kind of disagreement fails the test.

Requirement: ``bfcl-eval==2026.3.23``, installed with ``--no-deps`` by ``scripts/setup.sh`` (its dependency list
pins numpy 1.26 and every model vendor's SDK; the checker itself imports only the standard library). The
checker's module imports ``bfcl_eval.constants.model_config``, which imports every model handler (anthropic,
openai, ...) to build ``MODEL_CONFIG_MAPPING``; the checker reads one field of it, ``underscore_to_dot`` (whether
a model's API forbids dots in function names, so that ``math.hypot`` is expected as ``math_hypot``). The test
puts a stand-in for that module into ``sys.modules`` before importing the checker: a mapping with one entry,
for :data:`MODEL`, with ``underscore_to_dot=False``, as bfcl-v0's prompt shows the names with their dots.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
import types
from collections.abc import Callable
from typing import NamedTuple

import pytest

import rlhub
from rlhub.authoring.audit.calls import cases as audit_cases
from rlhub.authoring.audit.cases import Case, placed
from rlhub.authoring.audit.run import _targets
from rlhub.authoring.probes import _Target
from rlhub.envs.bfcl import CATEGORIES
from rlhub.rewards.tool_calls import ToolCall, format_tool_calls, parse_tool_calls
from rlhub.types import Example

MODEL = "rlhub-reference"
"""The model name passed to ``ast_checker`` (no ``_``: the checker reads ``_`` in model names as ``/``)."""

SETUP = "bash scripts/setup.sh (it runs: pip install --no-deps bfcl-eval==2026.3.23)"


class Verdict(NamedTuple):
    category: str
    example: str
    kind: str  # "gold", an audit case's kind, or a probe's kind
    calls: str  # the completion's calls, shown when a verdict differs
    rlhub: bool
    reference: bool


class Deliberate(NamedTuple):
    kind: str
    rlhub: bool  # rlhub's verdict where it differs (the reference gives the other)
    reason: str


DELIBERATE = [
    Deliberate(
        "parallel calls reordered",
        True,
        "calls pair off with ground-truth entries whenever a pairing exists; BFCL pairs greedily in ground-truth "
        "order, so an entry that accepts several values (Microsoft or Apple) can take the call a later entry needed",
    ),
    Deliberate(
        "integers in an array of floats",
        True,
        "an integer is a float at every depth; BFCL type-checks array items without its int-to-float rule",
    ),
    Deliberate(
        "an integer inside a dict written as a float",
        False,
        "a dict's values are type-checked against its properties' schema (20.0 is no integer); BFCL does not "
        "type-check dict values and compares by ==",
    ),
    Deliberate(
        "strings in a list inside a dict in capitals",
        True,
        "strings compare after BFCL's standardisation at every depth; BFCL compares a list inside a dict by ==",
    ),
]
"""Where bfcl-v0's verdict differs from BFCL's checker on purpose: (case kind, rlhub's verdict, why)."""


# ---------------------------------------------------------------------------------------------------------------
# The reference
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> Callable[[list[ToolCall] | None, Example], bool]:
    """BFCL's verdict on parsed calls for one bfcl-v0 example."""
    if importlib.util.find_spec("bfcl_eval") is None:
        pytest.fail(f"bfcl-eval is not installed; install the test requirements: {SETUP}")
    name = "bfcl_eval.constants.model_config"
    stand_in = types.ModuleType(name, "Stand-in: the one model the cross-check names, its function names with dots.")
    stand_in.MODEL_CONFIG_MAPPING = {MODEL: types.SimpleNamespace(underscore_to_dot=False)}
    real = sys.modules.get(name)
    sys.modules[name] = stand_in
    try:
        checker = importlib.import_module("bfcl_eval.eval_checker.ast_eval.ast_checker")
        language = importlib.import_module("bfcl_eval.constants.enums").Language.PYTHON
    except ImportError as exc:
        pytest.fail(f"bfcl-eval's checker does not import ({exc}); reinstall it: {SETUP}")
    finally:  # the checker keeps its reference; nothing else should see the stand-in
        if real is None:
            del sys.modules[name]
        else:
            sys.modules[name] = real

    def verdict(calls: list[ToolCall] | None, example: Example) -> bool:
        output = [{call.name: call.arguments} for call in calls or []]
        functions, category = example.info["functions"], example.info["category"]
        return checker.ast_checker(functions, output, example.answer, language, category, MODEL)["valid"]

    return verdict


# ---------------------------------------------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------------------------------------------


def _rewrites(value, schema: dict) -> list[tuple[str, object]]:
    """(kind, new value) for one argument of the gold: the probes that apply to it."""

    def integral(v):
        return int(v) if isinstance(v, float) and v.is_integer() else v

    def as_float(v):
        return float(v) if type(v) is int else v

    def capitals(v):
        return [s.upper() if isinstance(s, str) else s for s in v] if isinstance(v, list) else v

    if isinstance(value, str):
        unmarked = re.sub(r"[ ,./\-_*^]", "", value)
        return [("a string in capitals", value.upper()), ("a string without BFCL's ignored marks", unmarked)]
    if isinstance(value, list) and (schema.get("items") or {}).get("type") == "float":
        return [("integers in an array of floats", [integral(v) for v in value])]
    if not isinstance(value, dict):
        return []
    return [
        ("an integer inside a dict written as a float", {k: as_float(v) for k, v in value.items()}),
        ("strings in a list inside a dict in capitals", {k: capitals(v) for k, v in value.items()}),
    ]


def _probes(t: _Target) -> list[Case]:
    """The gold with one argument rewritten: its string standardisation and the nested values of DELIBERATE.

    The audit's rewrites keep each string as the gold writes it, so these probe BFCL's standardisation (case,
    spaces and ``, . / - _ * ^`` ignored, except for a value under its "variable" rule) and the nested values
    where :mod:`rlhub.rewards.tool_calls` says it differs from BFCL.
    """
    calls = parse_tool_calls(t.slot.content) or []
    properties = {f["name"]: (f.get("parameters") or {}).get("properties") or {} for f in t.example.info["functions"]}
    rewritten = []
    for i, call in enumerate(calls):
        for name, value in call.arguments.items():
            for kind, new in _rewrites(value, properties.get(call.name, {}).get(name) or {}):
                if json.dumps(new) != json.dumps(value):  # 1 == 1.0 in Python; their JSON differs
                    changed = call._replace(arguments={**call.arguments, name: new})
                    rewritten.append((kind, format_tool_calls([*calls[:i], changed, *calls[i + 1 :]])))
    return placed(t, rewritten, t.slot.content)


@pytest.fixture(scope="module")
def verdicts(reference) -> list[Verdict]:
    """Every case of every shipped question in the four categories, with both verdicts."""
    env = rlhub.make("bfcl-v0")
    out = []
    for t in _targets(env, env.examples("test", seed=0)):
        audit = audit_cases(t)
        cases = [Case("gold", t.gold), *audit.accept, *audit.reject, *_probes(t)]
        for case in cases:
            calls = parse_tool_calls(case.completion)
            ours = env.score(case.completion, t.example).rewards["correct"] == 1.0
            theirs = reference(calls, t.example)
            shown = format_tool_calls(calls) if calls is not None else str(case.completion)
            out.append(Verdict(t.example.info["category"], t.example.id, case.kind, shown, ours, theirs))
    return out


def _explained(v: Verdict) -> bool:
    return any(d.kind == v.kind and d.rlhub == v.rlhub for d in DELIBERATE)


# ---------------------------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------------------------


def test_every_shipped_question_is_cross_checked(verdicts):
    golds = [v for v in verdicts if v.kind == "gold"]
    assert {v.category for v in golds} == set(CATEGORIES)
    assert len(golds) == 1000  # 400 simple_python, 200 each of the others
    assert len(verdicts) > 15000


def test_both_accept_every_gold(verdicts):
    golds = [v for v in verdicts if v.kind == "gold"]
    assert [(v.example, v.rlhub, v.reference) for v in golds if not (v.rlhub and v.reference)] == []


@pytest.mark.parametrize("category", CATEGORIES)
def test_agrees_with_bfcl_except_where_deliberate(category, verdicts):
    mine = [v for v in verdicts if v.category == category]
    unexplained = [
        (v.example, v.kind, v.calls[:300], v.rlhub, v.reference)
        for v in mine
        if v.rlhub != v.reference and not _explained(v)
    ]
    agreement = sum(v.rlhub == v.reference for v in mine) / len(mine)
    assert not unexplained, f"{category}: agreement {agreement:.2%}; disagreements no DELIBERATE entry explains"


def test_every_deliberate_difference_is_real(verdicts):
    """Each DELIBERATE entry explains at least one case where the two checkers do differ."""
    used = {(v.kind, v.rlhub) for v in verdicts if v.rlhub != v.reference}
    assert [d.kind for d in DELIBERATE if (d.kind, d.rlhub) not in used] == []
