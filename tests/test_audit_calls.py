"""The tool-call audit's accept set spells strings as BFCL's grader reads them (issue 25).

BFCL's ``ast_checker`` standardises a string (case; spaces and ``, . / - _ * ^``) wherever its string, list and
dict checkers compare one: a string argument, an array's string items, a dict's string values and those of the
dicts in an array; it compares a value under its "variable" rule (a string where the schema asks for an array)
exactly. The audit's rewrites must follow the same lines: every such string respelled, nothing else, so that a
matcher exact anywhere BFCL is lenient fails the audit and a careful one never does.
"""

from __future__ import annotations

import pytest

from rlhub.authoring.audit import audit_env
from rlhub.authoring.audit.calls import _spelled
from rlhub.rewards import tool_calls

SPELLING_KINDS = {"a string in capitals", "a string without ignored marks"}


@pytest.mark.parametrize(
    ("value", "schema", "options", "spelled"),
    [
        ("New York, NY", {"type": "string"}, ["new york"], "NEW YORK, NY"),
        ("x", {"type": "any"}, ["x"], "X"),
        (["Paris", 3, ["a"]], {"type": "array"}, [["paris", 3, ["a"]]], ["PARIS", 3, ["a"]]),
        ({"city": "Oslo", "tags": ["a"]}, {"type": "dict"}, [{"city": ["oslo"]}], {"city": "OSLO", "tags": ["a"]}),
        ([{"name": "Ada"}], {"type": "array", "items": {"type": "dict"}}, [[{"name": ["ada"]}]], [{"name": "ADA"}]),
        ("data['sales']", {"type": "array"}, ["data['sales']"], "data['sales']"),  # BFCL's variable rule
        ("kg", {"type": "integer"}, ["kg"], "kg"),
    ],
)
def test_strings_are_respelled_where_bfcl_standardises_them(value, schema, options, spelled):
    assert _spelled(value, schema, options, str.upper) == spelled


def test_the_audit_counts_a_matcher_exact_inside_arrays_and_dicts(monkeypatch):
    """Before, only a call's first string argument was respelled: a matcher that standardised a string argument
    but compared an array's items as written showed no false negative (bfcl-v0's first 60 questions hold 12
    such arrays and a dict)."""
    assert audit_env("bfcl-v0", n=60).fn.failed == 0
    lenient = tool_calls._acceptable

    def exact_inside(value, options, schema, top=False):
        if not top and isinstance(value, str):
            return any(isinstance(o, str) and value == o for o in options)
        return lenient(value, options, schema, top)

    monkeypatch.setattr(tool_calls, "_acceptable", exact_inside)
    report = audit_env("bfcl-v0", n=60)
    failing = {kind for kind, (failed, _) in report.fn.kinds.items() if failed}
    assert not report.passed and report.fn.failed >= 5 and failing <= SPELLING_KINDS, report.fn.kinds


def test_every_rewrite_of_every_shipped_question_is_right():
    """No accept case BFCL's grader rejects: none for a string under the variable rule (``"data['sales']"``, which
    BFCL compares exactly), none giving an optional parameter the function's schema does not define."""
    report = audit_env("bfcl-v0", n=1000)
    assert report.examples == 1000
    assert report.fn.failed == 0, report.fn.examples
    assert report.fn.kinds["a string in capitals"][1] > 1000 and report.fn.kinds["optional argument given"][1] > 500
