"""Audit cases for tool calls as the answer (``<tool_call>`` blocks), graded against the functions' schemas.

The accept set writes the gold calls otherwise: arguments in another order, ``arguments`` before
``name``, compact or indented JSON, parallel calls in another order, an integral number as ``50.0``
where the schema asks for a float, and, when the example carries BFCL's ground truth
(``[{function: {parameter: [acceptable values]}}]``, ``""`` marking an optional parameter), another
acceptable value, an optional parameter the schema defines given, and the strings BFCL's grader
standardises (a string argument, an array's items, a dict's values) in capitals or without the marks it
ignores. The reject set changes one call: a wrong value (the number off by one, two string arguments
swapped, a string's words reversed, a flag flipped, a list cut short) kept only when no acceptable value
resembles it, a required parameter left out, another or an unknown function, an unknown argument, or a
parallel call dropped.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from rlhub.authoring.audit.cases import Cases, letters, placed, question_numbers
from rlhub.authoring.probes import _Target
from rlhub.rewards.tool_calls import ToolCall, format_tool_calls, parse_tool_calls


def _schemas(t: _Target) -> dict[str, dict]:
    """Each function's ``parameters`` schema, by name, from the example's ``functions`` column."""
    functions = t.example.info.get("functions") or []
    return {f["name"]: f.get("parameters") or {} for f in functions if isinstance(f, dict) and "name" in f}


def _truth(t: _Target, calls: list[ToolCall]) -> list[dict[str, list]] | None:
    """Per gold call, its parameters' acceptable values, when the example holds BFCL's ground truth."""
    truth = t.example.answer
    if not (isinstance(truth, list) and len(truth) == len(calls)):
        return None
    entries = [next(iter(item.values())) for item in truth if isinstance(item, dict) and len(item) == 1]
    return entries if len(entries) == len(calls) and all(isinstance(e, dict) for e in entries) else None


def _key(value: Any) -> Any:
    """A lenient comparison key: numbers by value, strings by their letters and digits in lower case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return re.sub(r"[\W_]", "", value.lower())
    if isinstance(value, list):
        return tuple(_key(v) for v in value)
    return None  # a dict may match a template: never provably wrong here


def _provably_wrong(value: Any, options: list | None) -> bool:
    key = _key(value)
    return key is not None and options is not None and all(_key(o) != key for o in options if o != "")


def _blocks(calls: list[dict], **dumps: Any) -> str:
    return "\n".join(f"<tool_call>\n{json.dumps(c, **dumps)}\n</tool_call>" for c in calls)


def _wrong_values(call: ToolCall, options: dict[str, list]) -> list[tuple[str, dict]]:
    """``(kind, arguments)`` with one argument changed to a value no acceptable value resembles."""
    out = []
    strings = [k for k, v in call.arguments.items() if isinstance(v, str)]
    for name, value in call.arguments.items():
        changed: list[tuple[str, dict]] = []
        if isinstance(value, bool):
            changed = [("a flag flipped", {name: not value})]
        elif isinstance(value, (int, float)):
            changed = [("a number off by one", {name: value + 1})]
        elif isinstance(value, str):
            other = next((k for k in strings if k != name and _key(call.arguments[k]) != _key(value)), None)
            if other is not None:
                changed.append(("string arguments swapped", {name: call.arguments[other], other: value}))
            changed.append(("a string's words reversed", {name: " ".join(reversed(value.split()))}))
        elif isinstance(value, list) and len(value) > 1:
            changed = [("a list cut short", {name: value[:-1]})]
        for kind, new in changed:
            if any(_provably_wrong(v, options.get(k)) for k, v in new.items()):
                out.append((kind, {**call.arguments, **new}))
    return out


_STANDARDISED = {"string": str, "any": str, "array": list, "tuple": list, "dict": dict}
"""The schema types whose values BFCL's grader compares with strings standardised, and their JSON types."""

_SPELLINGS = {
    "a string in capitals": str.upper,
    "a string without ignored marks": lambda text: re.sub(r"[ ,./\-_*^]", "", text) or text,
}
"""Rewrites of a string that BFCL's grader standardises away (case; spaces and ``, . / - _ * ^``)."""


def _spelled(value: Any, schema: dict, options: list, spell) -> Any:
    """``value`` with ``spell`` applied to each string in it that BFCL's grader standardises.

    Those are: a string parameter's value, an array's string items, a dict's string values and those of the
    dicts in an array (one level down, where BFCL's list and dict checkers standardise them; deeper values
    it compares as written). A value under BFCL's "variable" rule (the ground truth lists another type than
    the schema's, as ``"data['sales']"`` for an array) is compared exactly, so it stays as it is.
    """
    expected = _STANDARDISED.get(schema.get("type"))
    listed = next((type(o) for o in options if o != ""), None)
    if expected is None or not isinstance(value, expected) or (listed is not None and listed is not expected):
        return value

    def flat(item: Any) -> Any:
        if isinstance(item, str):
            return spell(item)
        return {k: spell(v) if isinstance(v, str) else v for k, v in item.items()} if isinstance(item, dict) else item

    return [flat(item) for item in value] if isinstance(value, list) else flat(value)


def _string_spellings(call: ToolCall, props: dict, options: dict[str, list], one) -> list[tuple[str, str]]:
    """Every string of the call that BFCL's grader standardises (:func:`_spelled`) in capitals, and without
    the marks it ignores: the same call to BFCL, so a case- or punctuation-sensitive matcher fails them."""
    out = []
    for kind, spell in _SPELLINGS.items():
        arguments = {
            name: _spelled(value, props.get(name) or {}, options.get(name, []), spell)
            for name, value in call.arguments.items()
        }
        if arguments != call.arguments:
            out.append((kind, format_tool_calls(one(arguments))))
    return out


def cases(t: _Target) -> Cases:
    """Accept and reject sets of a tool-call gold (see the module docstring)."""
    calls = parse_tool_calls(t.slot.content)
    if not calls:
        return Cases()
    schemas, truth = _schemas(t), _truth(t, calls)
    plain = [{"name": c.name, "arguments": c.arguments} for c in calls]
    accept = [
        (
            "arguments reordered",
            format_tool_calls([c._replace(arguments=dict(reversed(c.arguments.items()))) for c in calls]),
        ),
        ("arguments before name", _blocks([{"arguments": c.arguments, "name": c.name} for c in calls])),
        ("compact JSON", "".join(f"<tool_call>{json.dumps(c, separators=(',', ':'))}</tool_call>" for c in plain)),
        ("indented JSON", _blocks(plain, indent=2)),
    ]
    if len(calls) > 1:
        accept.append(("parallel calls reordered", format_tool_calls(calls[::-1])))
    reject: list[tuple[str, list[ToolCall]]] = []
    for i, call in enumerate(calls):
        props = schemas.get(call.name, {}).get("properties", {})
        options = truth[i] if truth else {}

        def one(arguments: dict, i=i, call=call) -> list[ToolCall]:
            return [*calls[:i], call._replace(arguments=arguments), *calls[i + 1 :]]

        floats = {k: float(v) for k, v in call.arguments.items() if props.get(k, {}).get("type") == "float"}
        floats = {k: v for k, v in floats.items() if v.is_integer() and type(call.arguments[k]) is int}
        if floats:
            accept.append(("integral number as a float", format_tool_calls(one({**call.arguments, **floats}))))
        for name, values in options.items():
            given = [v for v in values if v != ""]
            if name in call.arguments and len(given) > 1 and _key(given[1]) != _key(call.arguments[name]):
                accept.append(("another acceptable value", format_tool_calls(one({**call.arguments, name: given[1]}))))
            elif name not in call.arguments and name in props and given:
                accept.append(("optional argument given", format_tool_calls(one({**call.arguments, name: given[0]}))))
        if truth:
            accept += _string_spellings(call, props, options, one)
            reject += [(kind, one(arguments)) for kind, arguments in _wrong_values(call, options)]
        required = schemas.get(call.name, {}).get("required") or []
        for name in required:
            if name in call.arguments and "" not in options.get(name, []):
                rest = {k: v for k, v in call.arguments.items() if k != name}
                reject.append(("a required argument left out", one(rest)))
        others = [n for n in schemas if n != call.name]
        reject.append(
            (
                "another function",
                [*calls[:i], call._replace(name=others[0] if others else call.name + "_v2"), *calls[i + 1 :]],
            )
        )
        if props:
            unknown = next(f"{k}_extra" for k in [*props, "x"] if f"{k}_extra" not in props)
            reject.append(("an unknown argument", one({**call.arguments, unknown: 1})))
    if len(calls) > 1:
        reject.append(("a parallel call dropped", calls[:-1]))
    rejected = [(kind, format_tool_calls(c)) for kind, c in reject if c != calls]
    return Cases(placed(t, accept, t.slot.content), placed(t, rejected, t.slot.content))


def random_answer(t: _Target, rng) -> Any:
    """The gold functions called with random values of each argument's JSON type."""

    def noise(value: Any) -> Any:
        if isinstance(value, bool):
            return rng.random() < 0.5
        if isinstance(value, (int, float)):
            return type(value)(rng.randint(-999, 999))
        if isinstance(value, list):
            return [noise(v) for v in value]
        return letters(rng, 6) if isinstance(value, str) else copy.deepcopy(value)

    calls = [
        c._replace(arguments={k: noise(v) for k, v in c.arguments.items()})
        for c in parse_tool_calls(t.slot.content) or []
    ]
    return t.final(t.slot.fill(format_tool_calls(calls)))


def heuristic(t: _Target) -> Any:
    """The first function, each required argument filled from the question (its first number or capitalised words)."""
    calls = parse_tool_calls(t.slot.content) or [ToolCall("call", {})]
    name, schema = next(iter(_schemas(t).items()), (calls[0].name, {}))
    numbers = question_numbers(t) or ["1"]
    words = re.findall(r"[A-Z][a-z]+(?: [A-Z][a-z]+)*", t.question) or ["value"]
    fill = {"integer": int(float(numbers[0])), "float": float(numbers[0]), "boolean": True, "array": [], "dict": {}}
    props = schema.get("properties", {})
    arguments = {k: fill.get(props.get(k, {}).get("type"), words[0]) for k in schema.get("required") or []}
    return t.final(t.slot.fill(format_tool_calls([ToolCall(name, arguments)])))
