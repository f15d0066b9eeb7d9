"""Tool calls: read Hermes/Qwen ``<tool_call>`` blocks, and grade them by the rules of BFCL's AST checker.

A model calls a function by writing one block per call; several blocks are parallel calls::

    <tool_call>
    {"name": "math.hypot", "arguments": {"x": 4, "y": 5}}
    </tool_call>

:func:`parse_tool_calls` reads the blocks after the reasoning (``<think>...</think>``) is dropped.
:func:`bfcl_match` decides whether calls are one of the answers a BFCL ground truth accepts. A ground
truth is a list of ``{function_name: {parameter: [acceptable values]}}``, one entry per expected call,
where ``""`` among a parameter's values means it may be left out. The rules follow the Python
categories of BFCL's ``ast_checker`` (bfcl-eval, ``eval_checker/ast_eval/ast_checker.py``):

1. Count: exactly one call per ground-truth entry, and the calls pair off with the entries, each used
   once, in any order. BFCL pairs them greedily in ground-truth order, which can miss a pairing that
   exists; here one is found whenever it exists (for simple and multiple, one call, this is the same).
2. Name: exactly the entry's function name (BFCL's "." to "_" renaming is only for APIs that forbid
   dots in names; the prompt shows the names as they are).
3. Parameters: every parameter the schema's ``required`` lists is given; every given parameter is in
   the schema and in the ground truth; every ground-truth parameter left out lists ``""``.
4. Types (schema type -> JSON value): string/any -> string, integer -> integer (not a boolean, not
   ``2.0``), float -> number (an integer is accepted), boolean -> boolean, array/tuple -> array,
   dict -> object. A value of the type the ground truth itself uses is also accepted when that differs
   from the schema (BFCL's "variable" rule, e.g. the variable name ``"data['sales']"`` for an array);
   a parameter's value accepted this way compares exactly, not standardised.
5. Values: one of the acceptable values. Strings compare after BFCL's standardisation: spaces and
   ``, . / - _ * ^`` removed, lower case, ``'`` read as ``"`` (so ``"New York, NY"`` matches
   ``"new york ny"``). Numbers compare by value (``5 == 5.0``); booleans only equal booleans. Arrays
   compare element by element, in order, with the item schema. A dict among the acceptable values is a
   template, ``{key: [acceptable values]}``, matched key by key with these same rules (``""`` marks an
   optional key, unknown keys fail); arrays of dicts match templates position by position.

Apart from rule 1's pairing, the differences from BFCL are all in nested values (found by running BFCL's
own checker beside this one on about 47,000 variants of the shipped ground truths; all other verdicts
agree): BFCL type-checks array elements one level deep
and dict values not at all, where rule 4 applies here at every depth, so an integer is accepted inside
an array of floats (BFCL refuses it unless the ground truth lists integers) and ``20.0`` or ``true`` is
refused for an integer inside a dict (BFCL accepts both); and BFCL compares values nested two levels
down (a list inside a dict) by plain equality, where rule 5 standardises strings at every depth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from .parsing import completion_text, strip_think
from .rubric import Rubric

_TAG = re.compile(r"</?tool_call>")
_IGNORED_IN_STRINGS = str.maketrans("", "", " ,./-_*^")
_PYTHON_TYPES = {
    "string": str,
    "any": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
}
"""BFCL's schema types and the Python type a JSON value of each decodes to."""


class ToolCall(NamedTuple):
    """One function call: the function's name and its arguments (a JSON object)."""

    name: str
    arguments: dict[str, Any]


# --- parsing ------------------------------------------------------------------------------------------


def _decode_block(body: str) -> ToolCall | str:
    """The call in one block's text, or why it is malformed (one line)."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        return f"invalid JSON ({exc.msg} at character {exc.pos})"
    except (ValueError, RecursionError) as exc:
        return f"invalid JSON ({type(exc).__name__})"
    if not isinstance(data, dict):
        return f'expected a JSON object {{"name": ..., "arguments": {{...}}}}, got {type(data).__name__}'
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        return 'missing "name" (the function name, a string)'
    if "arguments" not in data:
        return f'call to {name!r}: missing "arguments" (a JSON object, {{}} for none)'
    arguments = data["arguments"]
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            arguments = None
        if not isinstance(arguments, dict):
            return f'call to {name!r}: "arguments" is a string that does not hold a JSON object'
    if not isinstance(arguments, dict):
        return f'call to {name!r}: "arguments" must be a JSON object, got {type(arguments).__name__}'
    return ToolCall(name, arguments)


def parse_tool_calls_verbose(text: Any) -> tuple[list[ToolCall], list[str]]:
    """The well-formed calls of a completion, and a one-line reason for each malformed block.

    Blocks are read after :func:`~rlhub.rewards.parsing.strip_think`. A block is malformed when its
    text is not a JSON object with a string ``name`` and an object ``arguments`` (a JSON string holding
    an object is accepted too), or when the tags do not pair up: a ``<tool_call>`` inside another, one
    never closed, a ``</tool_call>`` never opened.

    Args:
        text: A completion (a string, or chat messages as in :func:`~rlhub.rewards.parsing.completion_text`).

    Returns:
        ``(calls, errors)``: the calls in the order written, and the reasons, ``"call 2: invalid JSON
        (...)"``; both empty when the text has no ``<tool_call>`` tags.

    Example:
        >>> parse_tool_calls_verbose('<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>')
        ([ToolCall(name='f', arguments={'x': 1})], [])
        >>> calls, errors = parse_tool_calls_verbose('<tool_call>{"name": "f"}</tool_call> <tool_call>[1]')
        >>> print("\\n".join(errors))
        call 1: call to 'f': missing "arguments" (a JSON object, {} for none)
        call 2: <tool_call> never closed with </tool_call>
    """
    text = strip_think(completion_text(text))
    calls: list[ToolCall] = []
    errors: list[str] = []
    body_start: int | None = None  # where the open block's text begins
    for tag in _TAG.finditer(text):
        if tag.group() == "<tool_call>":
            if body_start is not None:
                errors.append(f"call {len(calls) + len(errors) + 1}: <tool_call> opened inside another <tool_call>")
            body_start = tag.end()
            continue
        if body_start is None:
            errors.append(f"call {len(calls) + len(errors) + 1}: </tool_call> without an opening <tool_call>")
            continue
        decoded = _decode_block(text[body_start : tag.start()])
        if isinstance(decoded, ToolCall):
            calls.append(decoded)
        else:
            errors.append(f"call {len(calls) + len(errors) + 1}: {decoded}")
        body_start = None
    if body_start is not None:
        errors.append(f"call {len(calls) + len(errors) + 1}: <tool_call> never closed with </tool_call>")
    return calls, errors


def parse_tool_calls(text: Any) -> list[ToolCall] | None:
    """The tool calls of a completion; ``None`` when any block is malformed.

    Args:
        text: A completion (a string or chat messages).

    Returns:
        The calls in the order written (``[]`` when there are no ``<tool_call>`` blocks), or ``None``
        when any block is malformed (see :func:`parse_tool_calls_verbose`).

    Example:
        >>> parse_tool_calls('<think>f?</think><tool_call>{"name": "f", "arguments": "{}"}</tool_call>')
        [ToolCall(name='f', arguments={})]
        >>> parse_tool_calls("no calls"), parse_tool_calls("<tool_call>{'name': 'f'}</tool_call>")
        ([], None)
    """
    calls, errors = parse_tool_calls_verbose(text)
    return None if errors else calls


def format_tool_calls(calls: Sequence[ToolCall]) -> str:
    """Calls written as ``<tool_call>`` blocks, one per line group (the inverse of :func:`parse_tool_calls`).

    Example:
        >>> print(format_tool_calls([ToolCall("f", {"x": 1})]))
        <tool_call>
        {"name": "f", "arguments": {"x": 1}}
        </tool_call>
    """
    blocks = (json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False) for c in calls)
    return "\n".join(f"<tool_call>\n{block}\n</tool_call>" for block in blocks)


# --- BFCL matching ------------------------------------------------------------------------------------


def standardize_string(text: str) -> str:
    """BFCL's string standardisation: spaces and ``, . / - _ * ^`` removed, lower case, ``'`` as ``"``.

    Example:
        >>> standardize_string("April 1, 2024") == standardize_string("april 1 2024")
        True
    """
    return text.translate(_IGNORED_IN_STRINGS).lower().replace("'", '"')


def _given(options: list) -> list:
    """The acceptable values that are not the "may be left out" marker ``""``."""
    return [o for o in options if not (isinstance(o, str) and o == "")]


def _equal(value: Any, option: Any, schema: Any, exact: bool = False) -> bool:
    """Whether ``value`` is the acceptable value ``option`` (a dict ``option`` is a template)."""
    if isinstance(option, dict):
        return isinstance(value, dict) and _fills_template(value, option, schema)
    if isinstance(option, list):
        if not isinstance(value, list) or len(value) != len(option):
            return False
        items = schema.get("items") if isinstance(schema, dict) else None
        return all(_acceptable(v, [o], items) for v, o in zip(value, option))
    if isinstance(option, str):
        if not isinstance(value, str):
            return False
        return value == option if exact else standardize_string(value) == standardize_string(option)
    if isinstance(option, bool) or isinstance(value, bool):
        return type(value) is type(option) and value == option
    if isinstance(option, (int, float)):
        return isinstance(value, (int, float)) and value == option
    return value is None and option is None


def _fills_template(value: dict, template: dict, schema: Any) -> bool:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    properties = properties if isinstance(properties, dict) else {}
    for key, item in value.items():
        options = template.get(key)
        if not isinstance(options, list) or not _acceptable(item, options, properties.get(key)):
            return False
    return all(isinstance(options, list) and "" in options for key, options in template.items() if key not in value)


def _acceptable(value: Any, options: list, schema: Any, top: bool = False) -> bool:
    """Whether ``value`` has the schema's type (rule 4) and equals one of ``options`` (rule 5).

    ``top``: ``value`` is a parameter's value, not an element or key inside one; only there does a
    value under the variable rule compare exactly (BFCL standardises nested strings regardless).
    """
    kind = schema.get("type") if isinstance(schema, dict) else None
    expected = _PYTHON_TYPES.get(kind) if isinstance(kind, str) else None
    if kind == "float" and type(value) is int:
        value = float(value)
    listed = next((type(o) for o in _given(options)), None)
    if expected is None:
        return any(_equal(value, o, schema) for o in options)
    if type(value) is not expected and type(value) is not listed:
        return False
    variable = listed is not None and listed is not expected
    return any(_equal(value, o, None if variable else schema, exact=variable and top) for o in options)


def _call_fits(call: ToolCall, name: str, expected: dict, schemas: dict[str, dict]) -> bool:
    if call.name != name or name not in schemas:
        return False
    parameters = schemas[name].get("parameters") or {}
    properties = parameters.get("properties") or {}
    arguments = call.arguments
    if any(p not in arguments for p in parameters.get("required") or []):
        return False
    for key, value in arguments.items():
        if key not in properties or key not in expected:
            return False
        if not _acceptable(value, expected[key], properties[key], top=True):
            return False
    return all("" in options for key, options in expected.items() if key not in arguments)


def _pairs_off(fits: list[list[bool]]) -> bool:
    """Whether every row pairs with a distinct column it fits (augmenting paths; rows <= columns)."""
    owner: dict[int, int] = {}  # column -> row

    def place(row: int, seen: set[int]) -> bool:
        for col, ok in enumerate(fits[row]):
            if ok and col not in seen:
                seen.add(col)
                if col not in owner or place(owner[col], seen):
                    owner[col] = row
                    return True
        return False

    return all(place(row, set()) for row in range(len(fits)))


def _entry(item: Any) -> tuple[str, dict]:
    if not (isinstance(item, dict) and len(item) == 1):
        raise ValueError(f"a BFCL ground-truth entry is {{function_name: {{parameter: [values]}}}}, got {item!r:.80}")
    ((name, expected),) = item.items()
    if not isinstance(expected, dict) or not all(isinstance(v, list) for v in expected.values()):
        raise ValueError(f"ground truth for {name!r} must map each parameter to a list of values, got {expected!r:.80}")
    return name, expected


def bfcl_match(calls: Sequence[ToolCall] | None, ground_truth: list[dict], functions: list[dict]) -> bool:
    """Whether ``calls`` are an answer BFCL's AST checker accepts (see the module docstring for the rules).

    Args:
        calls: Parsed calls (``None``, a parse failure, never matches).
        ground_truth: BFCL's ``ground_truth``: ``[{function_name: {parameter: [acceptable values]}}]``,
            one entry per expected call (``""`` among the values: the parameter may be left out).
        functions: BFCL's function schemas (``name``, ``parameters`` with ``properties``, ``required``).

    Returns:
        True iff there is one call per entry and the calls pair off with the entries, each fitting its own.

    Raises:
        ValueError: ``ground_truth`` is not in BFCL's layout (a data error, never a model error).

    Example:
        >>> functions = [{"name": "area", "parameters": {"type": "dict", "required": ["base"],
        ...     "properties": {"base": {"type": "float"}, "unit": {"type": "string"}}}}]
        >>> truth = [{"area": {"base": [10.0], "unit": ["cm", ""]}}]
        >>> bfcl_match([ToolCall("area", {"base": 10})], truth, functions)
        True
        >>> bfcl_match([ToolCall("area", {"base": 10, "unit": "CM"})], truth, functions)
        True
        >>> bfcl_match([ToolCall("area", {"base": 10, "scale": 2})], truth, functions)
        False
    """
    entries = [_entry(item) for item in ground_truth]
    if calls is None or len(calls) != len(entries):
        return False
    schemas: dict[str, dict] = {}
    for function in functions:
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            schemas.setdefault(function["name"], function)
    fits = [[_call_fits(call, name, expected, schemas) for call in calls] for name, expected in entries]
    return _pairs_off(fits)


def _first_fill(option: Any) -> Any:
    """A value that fills ``option``: templates filled with each key's first value, optional keys left out."""
    if isinstance(option, dict):
        return {
            key: _first_fill(_given(options)[0])
            for key, options in option.items()
            if isinstance(options, list) and "" not in options and _given(options)
        }
    if isinstance(option, list):
        return [_first_fill(item) for item in option]
    return option


def bfcl_gold_calls(ground_truth: list[dict], functions: list[dict]) -> list[ToolCall]:
    """Calls that :func:`bfcl_match` accepts, built from a BFCL ground truth.

    Each parameter gets its first acceptable value; a parameter that may be left out (``""`` among its
    values) is left out, unless the schema requires it.

    Example:
        >>> bfcl_gold_calls([{"f": {"x": [2, 2.0], "unit": ["cm", ""]}}], [{"name": "f"}])
        [ToolCall(name='f', arguments={'x': 2})]
    """
    required: dict[str, set] = {}
    for function in functions:
        parameters = function.get("parameters") or {}
        required.setdefault(function.get("name"), set(parameters.get("required") or []))
    calls = []
    for item in ground_truth:
        name, expected = _entry(item)
        needed = required.get(name, set())
        arguments = {
            key: _first_fill(_given(options)[0])
            for key, options in expected.items()
            if _given(options) and ("" not in options or key in needed)
        }
        calls.append(ToolCall(name, arguments))
    return calls


# --- rewards ------------------------------------------------------------------------------------------


def _decoded(column: Any) -> Any:
    return json.loads(column) if isinstance(column, str) else column


def tool_call_match(
    completions: Sequence[Any], ground_truth: Sequence[Any], functions: Sequence[Any], **kwargs: Any
) -> list[float | None]:
    """1.0 iff the completion's tool calls are an answer BFCL accepts (:func:`bfcl_match`).

    Args:
        completions: Completions (strings or chat-message lists).
        ground_truth: Per completion, BFCL's ground truth (a list, or that list JSON-encoded).
        functions: Per completion, the function schemas (a list, or that list JSON-encoded).
        **kwargs: Other dataset columns (ignored).

    Returns:
        1.0 or 0.0 per completion; a malformed block scores 0.0.

    Example:
        >>> functions = [{"name": "f", "parameters": {"properties": {"x": {"type": "integer"}}, "required": ["x"]}}]
        >>> truth = [{"f": {"x": [1]}}, {"f": {"x": [2]}}]
        >>> calls = '<tool_call>{"name": "f", "arguments": {"x": 2}}</tool_call>'
        >>> calls += '<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>'
        >>> tool_call_match([calls, calls[:60]], ground_truth=[truth, truth], functions=[functions, functions])
        [1.0, 0.0]
    """
    scores: list[float | None] = []
    for completion, truth, schemas in zip(completions, ground_truth, functions):
        calls = parse_tool_calls(completion)
        scores.append(float(bfcl_match(calls, _decoded(truth), _decoded(schemas))))
    return scores


def tool_call_format(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """1.0 iff, after the reasoning, there is at least one ``<tool_call>`` block and every block parses.

    Args:
        completions: Completions (strings or chat-message lists).
        **kwargs: Dataset columns (ignored).

    Returns:
        1.0 or 0.0 per completion.

    Example:
        >>> tool_call_format(['<tool_call>{"name": "f", "arguments": {}}</tool_call>', "no call", "<tool_call>{"])
        [1.0, 0.0, 0.0]
    """
    return [float(bool(parse_tool_calls(c))) for c in completions]


def tool_call_rubric(format_weight: float) -> Rubric:
    """``correct`` (the completion's calls match the ``answer`` column's BFCL ground truth over the ``functions``
    column's schemas, weight 1) + ``format`` (at least one tool-call block, every block parses)."""

    def correct(completions, answer, functions, **kwargs):
        return tool_call_match(completions, ground_truth=answer, functions=functions)

    return Rubric({"correct": (correct, 1.0), "format": (tool_call_format, format_weight)})


def tool_call_count(completions, transcript, **kwargs) -> list[float | None]:
    """The number of tool results in each episode's transcript.

    >>> tool_call_count(["42"], transcript=[[{"role": "tool", "content": "6"}, {"role": "assistant", "content": "42"}]])
    [1.0]
    """
    return [float(sum(1 for m in t if isinstance(m, dict) and m.get("role") == "tool")) for t in transcript]


def with_tool_call_count(rubric: Rubric) -> Rubric:
    """``rubric`` plus ``tool_calls`` (:func:`tool_call_count`; weight 0: logged, not optimized)."""
    return Rubric({**{r.name: (r.fn, r.weight) for r in rubric.items}, "tool_calls": (tool_call_count, 0.0)})
