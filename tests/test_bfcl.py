"""bfcl-v0 and its tool-call rewards: parsing edge cases, BFCL's matching rules, and gold = 1.0 on every question.

The functions and ground truths in the rule tests are made up here; the gold test reads BFCL's files
from the shared data folder.
"""

from __future__ import annotations

import json

import pytest

import rlhub
from rlhub.authoring.validate import validate_env
from rlhub.envs.bfcl import CATEGORIES, find_data
from rlhub.errors import ConfigError, RLHubError
from rlhub.rewards.tool_calls import (
    ToolCall,
    bfcl_gold_calls,
    bfcl_match,
    format_tool_calls,
    parse_tool_calls,
    parse_tool_calls_verbose,
    tool_call_format,
    tool_call_match,
)


def block(name, arguments) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


# --- parsing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (block("f", {"x": 1}), [ToolCall("f", {"x": 1})]),
        (block("f", {"x": 1}) + "\n" + block("g", {}), [ToolCall("f", {"x": 1}), ToolCall("g", {})]),
        (
            'Sure.\n<tool_call>\n{"name": "f", "arguments": {"x": [1, {"y": null}]}}\n</tool_call>\nDone.',
            [ToolCall("f", {"x": [1, {"y": None}]})],
        ),
        ('<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}</tool_call>', [ToolCall("f", {"x": 1})]),
        (f"<think>maybe {block('f', {'x': 0})}</think>{block('f', {'x': 1})}", [ToolCall("f", {"x": 1})]),
        (f"<think>only thinking {block('f', {})}</think> no call", []),
        ("no tool calls here", []),
        ("", []),
    ],
)
def test_parse_reads_calls_after_the_reasoning(text, expected):
    assert parse_tool_calls(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('<tool_call>{"name": "f", "arguments": {"x": 1}</tool_call>', "invalid JSON"),
        ("<tool_call>{'name': 'f', 'arguments': {}}</tool_call>", "invalid JSON"),
        ('<tool_call>{"arguments": {}}</tool_call>', 'missing "name"'),
        ('<tool_call>{"name": "", "arguments": {}}</tool_call>', 'missing "name"'),
        ('<tool_call>{"name": "f"}</tool_call>', 'missing "arguments"'),
        ('<tool_call>{"name": "f", "arguments": [1]}</tool_call>', "must be a JSON object"),
        ('<tool_call>{"name": "f", "arguments": "[1]"}</tool_call>', "does not hold a JSON object"),
        ('<tool_call>{"name": "f", "arguments": "x=1"}</tool_call>', "does not hold a JSON object"),
        ("<tool_call>[]</tool_call>", "expected a JSON object"),
        ("<tool_call><tool_call>" + block("f", {})[11:] + "</tool_call>", "opened inside another"),
        (block("f", {}) + "<tool_call>", "never closed"),
        ("</tool_call>" + block("f", {}), "without an opening"),
        ("<tool_call>" + "[" * 100_000 + "</tool_call>", "invalid JSON"),
    ],
)
def test_a_malformed_block_fails_the_whole_parse_with_a_reason(text, reason):
    assert parse_tool_calls(text) is None
    _, errors = parse_tool_calls_verbose(text)
    assert errors and reason in errors[0] and all("\n" not in e for e in errors)


def test_verbose_parse_keeps_the_good_calls_and_numbers_the_bad():
    calls, errors = parse_tool_calls_verbose(block("f", {"x": 1}) + "<tool_call>{oops}</tool_call>" + block("g", {}))
    assert calls == [ToolCall("f", {"x": 1}), ToolCall("g", {})]
    assert len(errors) == 1 and errors[0].startswith("call 2: invalid JSON")


@pytest.mark.parametrize("odd", [None, 12, b"<tool_call>", [{"role": "user"}], "\ud800", "<tool_call>" * 10_000])
def test_parse_never_raises(odd):
    calls, errors = parse_tool_calls_verbose(odd)
    assert isinstance(calls, list) and isinstance(errors, list)


def test_format_tool_calls_round_trips():
    calls = [ToolCall("geo.distance", {"origin": "Zürich", "stops": ["a", "b"]}), ToolCall("g", {})]
    assert parse_tool_calls(format_tool_calls(calls)) == calls
    chat = [{"role": "assistant", "content": format_tool_calls(calls)}]
    assert parse_tool_calls(chat) == calls


# --- BFCL's matching rules ------------------------------------------------------------------------------

FUNCTIONS = [
    {
        "name": "route.plan",
        "description": "Plan a road trip.",
        "parameters": {
            "type": "dict",
            "properties": {
                "origin": {"type": "string"},
                "destination": {"type": "string"},
                "unit": {"type": "string"},
                "max_hours": {"type": "float"},
                "drivers": {"type": "integer"},
                "stops": {"type": "array", "items": {"type": "string"}},
                "speeds": {"type": "array", "items": {"type": "float"}},
                "options": {
                    "type": "dict",
                    "properties": {"avoid_tolls": {"type": "boolean"}, "breaks": {"type": "integer"}},
                },
                "data": {"type": "array", "items": {"type": "integer"}},
                "scenic": {"type": "boolean"},
            },
            "required": ["origin", "destination"],
        },
    },
    {
        "name": "weather.get",
        "parameters": {
            "type": "dict",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
]
ROUTE = {
    "origin": ["Springfield, IL", "Springfield"],
    "destination": ["St. Louis"],
    "unit": ["miles", ""],
    "max_hours": [6.0],
    "drivers": [2, ""],
    "stops": [["Lincoln", "Bloomington"], ""],
    "speeds": [[55.0, 65.0], ""],
    "options": [{"avoid_tolls": [True], "breaks": [2, ""]}, ""],
    "data": ["trip_log['legs']", ""],
}
BASE = {"origin": "Springfield, IL", "destination": "St. Louis", "max_hours": 6.0}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, True),
        ({"unit": "miles", "drivers": 2}, True),  # optional parameters may be given
        ({"unit": ""}, True),  # BFCL: "" standardises to the optional marker
        ({"max_hours": None}, False),  # a parameter without "" must be given (deleted below)
        ({"origin": None}, False),  # a required parameter is missing
        ({"max_hours": 6}, True),  # an integer for a float
        ({"drivers": 2.0}, False),  # but not a float for an integer
        ({"drivers": True}, False),  # nor a boolean
        ({"max_hours": "6.0"}, False),
        ({"origin": "springfield il"}, True),  # case, spaces and punctuation do not count
        ({"origin": "SPRING-FIELD, I.L."}, True),
        ({"origin": "Springfield"}, True),  # any listed value
        ({"destination": "st louis"}, True),
        ({"destination": "Saint Louis"}, False),
        ({"unit": "km"}, False),
        ({"stops": ["lincoln", "BLOOMINGTON"]}, True),  # lists element-wise, same rules
        ({"stops": ["Bloomington", "Lincoln"]}, False),  # in order
        ({"stops": ["Lincoln"]}, False),
        ({"speeds": [55, 65]}, True),  # integers inside a float array
        ({"options": {"avoid_tolls": True}}, True),  # dict templates, optional key left out
        ({"options": {"avoid_tolls": True, "breaks": 2}}, True),
        ({"options": {"avoid_tolls": 1}}, False),
        ({"options": {"avoid_tolls": True, "pets": True}}, False),  # unknown key
        ({"options": {}}, False),  # a key without "" is missing
        ({"data": "trip_log['legs']"}, True),  # BFCL's variable rule: a name for an array ...
        ({"data": "TRIP_LOG['legs']"}, False),  # ... compares exactly
        ({"scenic": True}, False),  # in the schema but not in the ground truth
        ({"weather": "sunny"}, False),  # unknown parameter
    ],
)
def test_bfcl_rules_for_one_call(change, expected):
    arguments = {**BASE, **change}
    arguments = {k: v for k, v in arguments.items() if v is not None}
    assert bfcl_match([ToolCall("route.plan", arguments)], [{"route.plan": ROUTE}], FUNCTIONS) is expected


def test_simple_and_multiple_need_exactly_the_one_call():
    truth = [{"route.plan": ROUTE}]
    right = ToolCall("route.plan", BASE)
    assert bfcl_match([right], truth, FUNCTIONS)
    assert not bfcl_match([right, right], truth, FUNCTIONS)
    assert not bfcl_match([right, ToolCall("weather.get", {"city": "Paris"})], truth, FUNCTIONS)
    assert not bfcl_match([ToolCall("route_plan", BASE)], truth, FUNCTIONS)  # names match exactly
    assert not bfcl_match([], truth, FUNCTIONS) and not bfcl_match(None, truth, FUNCTIONS)


def test_parallel_calls_match_in_any_order_each_entry_once():
    truth = [{"weather.get": {"city": ["Paris"], "days": [3]}}, {"weather.get": {"city": ["Rome"], "days": [3, ""]}}]
    paris, rome = ToolCall("weather.get", {"city": "paris", "days": 3}), ToolCall("weather.get", {"city": "Rome"})
    assert bfcl_match([paris, rome], truth, FUNCTIONS)
    assert bfcl_match([rome, paris], truth, FUNCTIONS)
    assert not bfcl_match([paris, paris], truth, FUNCTIONS)
    assert not bfcl_match([paris], truth, FUNCTIONS)
    assert not bfcl_match([paris, rome, rome], truth, FUNCTIONS)


def test_parallel_pairing_is_not_greedy():
    # The first entry accepts either city; pairing it with the first call (Paris) would leave the
    # second entry, which needs Paris, with Rome. BFCL's greedy checker fails this; a pairing exists.
    truth = [{"weather.get": {"city": ["Paris", "Rome"]}}, {"weather.get": {"city": ["Paris"]}}]
    calls = [ToolCall("weather.get", {"city": "Paris"}), ToolCall("weather.get", {"city": "Rome"})]
    assert bfcl_match(calls, truth, FUNCTIONS)


def test_gold_calls_take_first_values_and_leave_optional_ones_out():
    truth = [{"route.plan": ROUTE}]
    (call,) = bfcl_gold_calls(truth, FUNCTIONS)
    assert call == ToolCall("route.plan", {**BASE, "origin": "Springfield, IL"})
    required_but_optional = [{"weather.get": {"city": ["", "Oslo"]}}]  # BFCL has such entries
    assert bfcl_gold_calls(required_but_optional, FUNCTIONS) == [ToolCall("weather.get", {"city": "Oslo"})]
    assert bfcl_match(bfcl_gold_calls(required_but_optional, FUNCTIONS), required_but_optional, FUNCTIONS)


def test_malformed_ground_truth_is_a_data_error():
    with pytest.raises(ValueError, match="ground-truth entry"):
        bfcl_match([], [{"a": {}, "b": {}}], FUNCTIONS)


def test_rewards_take_json_encoded_columns():
    truth = [{"weather.get": {"city": ["Paris"]}}]
    completions = [
        block("weather.get", {"city": "PARIS"}),
        block("weather.get", {"city": "Lyon"}),
        "Paris",
        "<tool_call>",
    ]
    columns = {"ground_truth": [json.dumps(truth)] * 4, "functions": [json.dumps(FUNCTIONS)] * 4}
    assert tool_call_match(completions, **columns) == [1.0, 0.0, 0.0, 0.0]
    assert tool_call_match(completions, ground_truth=[truth] * 4, functions=[FUNCTIONS] * 4) == [1.0, 0.0, 0.0, 0.0]
    assert tool_call_format(completions, **columns) == [1.0, 1.0, 0.0, 0.0]


# --- the environment --------------------------------------------------------------------------------------


def test_registered_env_passes_validate():
    assert rlhub.env.registry.get_spec("bfcl-v0").domain == "tool"
    report = validate_env("bfcl-v0", n=8)
    assert report.passed, [(c.name, c.detail) for c in report.checks if not c.passed]


def test_gold_scores_1_on_every_question_of_every_category():
    folder = find_data(None)
    env = rlhub.make("bfcl-v0")
    examples = env.examples("test")
    for category in CATEGORIES:
        answers = (folder / "possible_answer" / f"BFCL_v4_{category}.json").read_text().splitlines()
        assert sum(e.info["category"] == category for e in examples) == len([a for a in answers if a.strip()])
    scores = env.score_batch([env.gold_completion(e) for e in examples], examples)
    failed = [e.id for e, s in zip(examples, scores) if s.rewards != {"correct": 1.0, "format": 1.0}]
    assert not failed, failed[:10]


def test_wrong_calls_score_0_on_correct():
    env = rlhub.make("bfcl-v0", categories=["parallel", "parallel_multiple"])
    for ex in env.examples("test", limit=40):
        calls = parse_tool_calls(env.gold_completion(ex))
        assert len(calls) >= 2
        wrong = [
            format_tool_calls(calls[:-1]),  # a call missing
            format_tool_calls([*calls, calls[0]]),  # an extra call
            format_tool_calls([ToolCall(c.name + "_v2", c.arguments) for c in calls]),
            format_tool_calls([ToolCall(c.name, {**c.arguments, "unknown_param": 1}) for c in calls]),
            f"<think>{format_tool_calls(calls)}</think>",
            format_tool_calls(calls) + "<tool_call>{broken</tool_call>",
        ]
        for text in wrong:
            assert env.score(text, ex).rewards["correct"] == 0.0, (ex.id, text[:80])


def test_prompt_lists_the_functions_and_asks_for_tool_call_blocks():
    env = rlhub.make("bfcl-v0", categories=["multiple"])
    ex = env.examples("test", limit=1)[0]
    system, user = ex.prompt
    assert system["role"] == "system" and user["role"] == "user"
    assert "<tool_call>" in system["content"] and '"dict" means a JSON object' in system["content"]
    assert all(json.dumps(f, ensure_ascii=False) in system["content"] for f in ex.info["functions"])
    assert ex.id.startswith("bfcl/test/multiple_") and json.loads(json.dumps(ex.info)) == ex.info
    (user_only,) = rlhub.make("bfcl-v0", prompt_style="user", system_prompt="").examples("test", limit=1)[0].prompt
    assert user_only["content"].startswith("You can call the functions below")


def test_categories_config_and_its_errors():
    env = rlhub.make("bfcl-v0", categories=["parallel"])
    assert {e.info["category"] for e in env.examples("train")} == {"parallel"}
    with pytest.raises(ConfigError, match="irrelevance has no possible answers"):
        rlhub.make("bfcl-v0", categories=["irrelevance"])
    for bad in ({"categories": []}, {"categories": ["simple", "simple"]}, {"dataset": "x/bfcl"}, {"few_shot": 2}):
        with pytest.raises(ConfigError):
            rlhub.make("bfcl-v0", **bad)


def test_reads_a_folder_given_as_path(tmp_path):
    function = {"name": "echo", "parameters": {"type": "dict", "properties": {"text": {"type": "string"}}}}
    question = {"id": "simple_python_0", "question": [[{"role": "user", "content": "Say hi."}]], "function": [function]}
    (tmp_path / "possible_answer").mkdir()
    (tmp_path / "BFCL_v4_simple_python.json").write_text(json.dumps(question) + "\n")
    truth = {"id": "simple_python_0", "ground_truth": [{"echo": {"text": ["hi"]}}]}
    (tmp_path / "possible_answer" / "BFCL_v4_simple_python.json").write_text(json.dumps(truth) + "\n")
    env = rlhub.make("bfcl-v0", path=str(tmp_path), categories=["simple_python"])
    (ex,) = env.examples("test")
    assert ex.prompt[-1]["content"] == "Say hi."
    assert env.score(block("echo", {"text": "Hi!"}), ex).rewards["correct"] == 0.0
    assert env.score(block("echo", {"text": "HI"}), ex).rewards["correct"] == 1.0
    with pytest.raises(RLHubError, match=r"BFCL_v4_parallel\.json is missing"):
        rlhub.make("bfcl-v0", path=str(tmp_path), categories=["parallel"]).examples("test")
    with pytest.raises(RLHubError, match="not a BFCL data folder"):
        rlhub.make("bfcl-v0", path=str(tmp_path / "nope")).examples("test")
