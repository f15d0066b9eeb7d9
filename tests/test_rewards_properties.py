"""Properties every reward keeps on arbitrary model output, and the REWARDS table / get_reward."""

import math
import time
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlhub.errors import ConfigError
from rlhub.rewards import REWARDS, Rubric, get_reward
from rlhub.rewards.countdown import countdown_reward, evaluate_expression
from rlhub.rewards.math import math_equal
from rlhub.rewards.parsing import extract_tag

# Each reward's documented range; a reward added to REWARDS must be added here too.
RANGES = {
    "math_accuracy": (0.0, 1.0),
    "think_answer_format": (0.0, 1.0),
    "answer_tag_format": (0.0, 1.0),
    "boxed_format": (0.0, 1.0),
    "tag_count_format": (0.0, 1.0),
    "countdown": (0.0, 1.0),
    "repetition_penalty": (-1.0, 0.0),
    "cosine_length": (-0.5, 1.0),
    "length_penalty": (-1.0, 0.0),
    "code_format": (0.0, 1.0),
    "code_pass_rate": (0.0, 1.0),
    "code_all_pass": (0.0, 1.0),
    "tool_call_match": (0.0, 1.0),
    "tool_call_format": (0.0, 1.0),
}
# Rewards that call math-verify get fewer examples, to keep the suite fast.
SLOW_PATH_REWARDS = {"math_accuracy", "cosine_length", "code_pass_rate", "code_all_pass"}

FRAGMENTS = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
        "\\boxed{",
        "\\boxed ",
        "{",
        "}",
        "$",
        " or ",
        ", ",
        "=",
        "1",
        "24",
        "-3.5",
        "1,000",
        "%",
        "\\frac{1}{2}",
        "\\sqrt",
        "^",
        "(",
        ")",
        "*",
        "/",
        "\uff11\uff18",
        "\u0661",
        "\x00",
        "\ud800",
        "__import__('os')",
    ]
)
TEXT = st.one_of(st.text(), st.lists(st.one_of(FRAGMENTS, st.text(max_size=4)), max_size=25).map("".join))
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["assistant", "user", "system"]),
        "content": st.one_of(TEXT, st.none(), st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}))),
    }
)
COMPLETION = st.one_of(TEXT, st.lists(MESSAGE, max_size=3))
ANSWER = st.one_of(TEXT, st.none(), st.integers(), st.sampled_from(["18", "#### 1,000", r"\frac{1}{2}", "(1, 2)"]))
TARGET = st.one_of(st.integers(-100, 1000), st.none(), TEXT)
GROUND_TRUTH = [{"f": {"x": [1, 2]}}]
FUNCTIONS = [{"name": "f", "parameters": {"type": "dict", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}]
TESTS = st.sampled_from([None, [], ["assert True"], ["assert f(2) == 4", "assert f(0) == 0"]])
NUMBERS = st.one_of(st.lists(st.integers(0, 100), max_size=6), st.none(), TEXT)


def test_every_reward_in_the_table_has_a_documented_range():
    assert set(RANGES) == set(REWARDS)


def check_reward_on_arbitrary_output(name, data):
    completions = data.draw(st.lists(COMPLETION, min_size=1, max_size=4))
    n = len(completions)
    columns = {
        "answer": data.draw(st.lists(ANSWER, min_size=n, max_size=n)),
        "target": data.draw(st.lists(TARGET, min_size=n, max_size=n)),
        "numbers": data.draw(st.lists(NUMBERS, min_size=n, max_size=n)),
        "tests": data.draw(st.lists(TESTS, min_size=n, max_size=n)),
        "ground_truth": [GROUND_TRUTH] * n,
        "functions": [FUNCTIONS] * n,
    }
    values = REWARDS[name](completions, **columns)
    low, high = RANGES[name]
    assert len(values) == n
    for value in values:
        assert value is None or (isinstance(value, float) and math.isfinite(value) and low <= value <= high)


@pytest.mark.parametrize("name", sorted(set(RANGES) - SLOW_PATH_REWARDS))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_rewards_never_raise_and_stay_in_range_on_arbitrary_output(name, data):
    check_reward_on_arbitrary_output(name, data)


@pytest.mark.parametrize("name", sorted(SLOW_PATH_REWARDS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_math_rewards_never_raise_and_stay_in_range_on_arbitrary_output(name, data):
    check_reward_on_arbitrary_output(name, data)


@pytest.mark.parametrize("name", sorted(RANGES))
def test_rewards_score_a_megabyte_of_garbage_quickly(name):
    garbage = "<answer>" + "\\boxed{" * 100_000 + "\x00\ud800" * 100_000 + "1+" * 200_000
    started = time.monotonic()
    values = REWARDS[name](
        [garbage, "<answer>" + garbage + "</answer>"],
        answer=["1"] * 2,
        target=[1] * 2,
        numbers=[[1]] * 2,
        tests=[["assert True"]] * 2,
        ground_truth=[GROUND_TRUTH] * 2,
        functions=[FUNCTIONS] * 2,
    )
    # A guard against hangs (pathological input must hit the hard timeouts), not a speed target.
    assert time.monotonic() - started < 10.0
    low, high = RANGES[name]
    assert len(values) == 2 and all(low <= v <= high for v in values)


@settings(max_examples=40, deadline=None)
@given(pred=TEXT, gold=TEXT)
def test_math_equal_returns_a_bool_on_arbitrary_text(pred, gold):
    assert math_equal(pred, gold, timeout=2.0) in (True, False)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(-(10**12), 10**12))
def test_plain_number_spellings_match_and_neighbours_do_not(n):
    assert math_equal(f"{n:,}", str(n))
    assert math_equal(f"{n}.00", f"{n} dollars")
    assert not math_equal(str(n + 1), str(n))


@settings(max_examples=200)
@given(text=st.text())
def test_extract_tag_returns_the_single_block_and_rejects_two(text):
    if "<answer>" in text or "</answer>" in text:
        return
    assert extract_tag(f"<answer>{text}</answer>", "answer") == text.strip()
    assert extract_tag(f"<answer>{text}</answer><answer>{text}</answer>", "answer") is None


@st.composite
def arithmetic(draw, depth=3):
    """An (expression text, exact value, literals) triple over small positive integers."""
    if depth == 0 or draw(st.booleans()):
        n = draw(st.integers(1, 100))
        return str(n), Fraction(n), [n]
    left_text, left, left_literals = draw(arithmetic(depth - 1))
    right_text, right, right_literals = draw(arithmetic(depth - 1))
    op = draw(st.sampled_from("+-*/"))
    value = {"+": left + right, "-": left - right, "*": left * right, "/": left / right if right else None}[op]
    if value is None:
        return left_text, left, left_literals
    return f"({left_text} {op} {right_text})", value, left_literals + right_literals


@settings(max_examples=300)
@given(expr=arithmetic())
def test_evaluator_agrees_with_exact_arithmetic_and_countdown_accepts_it(expr):
    text, value, literals = expr
    assert evaluate_expression(text) == value
    if value.denominator == 1:
        completion = f"<think>search</think><answer>{text}</answer>"
        assert countdown_reward([completion], target=[int(value)], numbers=[literals[::-1]]) == [1.0]
        assert countdown_reward([completion], target=[int(value) + 1], numbers=[literals]) == [0.0]


@settings(max_examples=200)
@given(text=st.text(max_size=300))
def test_evaluator_returns_none_or_a_fraction_on_arbitrary_text(text):
    assert evaluate_expression(text) is None or isinstance(evaluate_expression(text), Fraction)


def test_rewards_compose_in_a_rubric_without_errors():
    rubric = Rubric({name: (get_reward(name), 1.0) for name in ("math_accuracy", "tag_count_format")})
    score = rubric.score("<think>r</think><answer>1,000</answer>", answer="#### 1000")
    assert score.errors == []
    assert score.rewards == {"math_accuracy": 1.0, "tag_count_format": 1.0}
    assert score.reward == 2.0


@pytest.mark.parametrize("name", sorted(RANGES))
def test_table_entries_are_named_and_documented(name):
    fn = REWARDS[name]
    assert fn.__name__ in (name, f"{name}_reward")
    assert fn.__doc__
    assert get_reward(name) is fn


def test_get_reward_resolves_dotted_paths():
    assert get_reward("rlhub.rewards.format:boxed_format") is REWARDS["boxed_format"]
    assert get_reward("rlhub.rewards.format.boxed_format") is REWARDS["boxed_format"]


@pytest.mark.parametrize(
    "name",
    [
        "nope",
        "",
        "rlhub.rewards.format:nope",
        "no_such_module.sub:fn",
        "rlhub.rewards.math:MAX_ANSWER_CHARS",
        ":x",
    ],
)
def test_get_reward_rejects_unknown_names_with_a_one_line_fix(name):
    with pytest.raises(ConfigError) as error:
        get_reward(name)
    message = str(error.value)
    assert "\n" not in message
    assert "math_accuracy" in message and "package.module:function" in message


# --- math_equal: scientific notation and exact constants ------------------------------------------------

SCIENTIFIC = ["{m}e{k}", "{m}E{k}", r"{m}\times10^{{{k}}}", r"{m} \cdot 10^{{{k}}}", r"{m} \times 10^{{{k}}}"]


@settings(max_examples=150, deadline=None)
@given(
    digits=st.integers(1, 99_999),
    places=st.integers(0, 3),
    k=st.integers(-9, 9),
    form=st.sampled_from(SCIENTIFIC),
)
def test_scientific_notation_matches_its_value_and_nothing_near_it(digits, places, k, form):
    mantissa = Fraction(digits, 10**places)
    written = form.format(m=f"{float(mantissa):.{places}f}", k=k)
    value = mantissa * Fraction(10) ** k
    plain = str(value.numerator) if value.denominator == 1 else f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
    assert math_equal(written, plain) and math_equal(plain, written)
    assert not math_equal(written, str(value.numerator + value.denominator) if value.denominator == 1 else "0")
    assert not math_equal(form.format(m=f"{float(mantissa):.{places}f}", k=k + 1), plain)
    assert not math_equal(f"{written}, {plain}", plain)  # answer spam: one candidate of several
    assert not math_equal(f"{written} or 7", plain)


CONSTANT_FORMS = [
    (r"e^{{{n}i\pi}}", lambda n: (-1) ** n),
    (r"\cos({n}\pi)", lambda n: (-1) ** n),
    (r"\cos\left({n}\pi\right) + {n}", lambda n: (-1) ** n + n),
    (r"\sin(\frac{{\pi}}{{2}}) \cdot {n}", lambda n: n),
    (r"\sqrt{{{sq}}}", lambda n: n),
    (r"\ln(e^{{{n}}})", lambda n: n),
]


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 40), which=st.integers(0, len(CONSTANT_FORMS) - 1), other=st.integers(1, 5))
def test_exact_constant_expressions_match_their_value_only(n, which, other):
    form, value = CONSTANT_FORMS[which]
    written = form.format(n=n, sq=n * n)
    assert math_equal(written, str(value(n)))
    assert not math_equal(written, str(value(n) + other))
    assert not math_equal(f"{written}, {value(n) + other}", str(value(n)))  # answer spam
    assert not math_equal(written.replace(r"\pi", "x").replace("e^", "y^"), str(value(n) + other))
