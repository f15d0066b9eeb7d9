"""The safe expression evaluator and the Countdown reward."""

from fractions import Fraction

import pytest

from rlhub.rewards.countdown import MAX_EXPRESSION_CHARS, countdown_reward, evaluate_expression


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("1 + 2", Fraction(3)),
        ("(100 - 4) / 4 + 1", Fraction(25)),
        ("7 / 2", Fraction(7, 2)),
        ("1 / 3 * 3", Fraction(1)),
        ("-(3 - 5)", Fraction(2)),
        ("--3", Fraction(3)),
        ("  2*3  ", Fraction(6)),
        ("1000000", Fraction(1_000_000)),
        ("(" * 40 + "1" + ")" * 40, Fraction(1)),
        ("-" * 199 + "1", Fraction(-1)),
    ],
)
def test_evaluate_expression_is_exact(expr, expected):
    assert evaluate_expression(expr) == expected


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('x')",
        "().__class__.__bases__[0].__subclasses__()",
        "exec('1')",
        "eval('1+1')",
        "open('/etc/passwd')",
        "x + 1",
        "lambda: 1",
        "[1, 2]",
        "2**99999999",
        "9**9**9**9",
        "7 // 2",
        "7 % 2",
        "1.5 + 1",
        "1e9",
        "0x10",
        "1_000",
        "+3",
        "True + 1",
        "1000001",
        "10**6",
        "1 / 0",
        "1 / (2 - 2)",
        "1 +",
        "()",
        "",
        "   ",
        "1 = 1",
        "1 < 2",
        "\uff11 + 1",
        "\u0661 + 1",
        "1 \u2212 1",
        "3 × 4",
        "(" * 150 + "1" + ")" * 150,
        "1+" * 100 + "1",
    ],
)
def test_evaluate_expression_rejects_everything_but_integer_arithmetic(expr):
    assert evaluate_expression(expr) is None


def test_evaluate_expression_rejects_overlong_and_non_text_input():
    assert evaluate_expression("1+" * (MAX_EXPRESSION_CHARS // 2) + "1") is None
    assert evaluate_expression("1" * 10_000) is None
    assert evaluate_expression(None) is None
    assert evaluate_expression(b"1+1") is None


def test_deep_parentheses_within_the_length_limit_still_evaluate():
    depth = (MAX_EXPRESSION_CHARS - 1) // 2
    assert evaluate_expression("(" * depth + "7" + ")" * depth) == Fraction(7)


NUMBERS = [25, 50, 75, 100]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("(100 - 75) * 50 / 25", 1.0),
        ("(100 - 75) * 50 / 25 + 0", 0.0),  # uses a number that was not given
        ("(100 - 75) * 50 / 25 = 50", 1.0),
        ("(100 - 75) * 50 / 25 = 49", 0.0),
        ("100 - 50 = 50", 0.0),  # misses 25 and 75
        ("(100 - 75) * 50 / 25 / 1", 0.0),
        ("(100 - 75) * (50 / 25) - 25 + 25", 0.0),  # 25 used three times
        ("50 + 100 - 75 + 25", 0.0),  # right numbers, wrong value
        ("50", 0.0),
        ("__import__('os').system('x')", 0.0),
        ("2**99999999", 0.0),
        ("(100 - 75) * 50 / 25 = 50 = 50", 0.0),
    ],
)
def test_countdown_reward_requires_each_number_once_and_the_target(answer, expected):
    completion = f"<think>try things</think><answer>{answer}</answer>"
    assert countdown_reward([completion], target=[50], numbers=[NUMBERS]) == [expected]


def test_countdown_reward_grades_only_the_single_answer_block_after_thinking():
    good = "(100 - 75) * 50 / 25"
    completions = [
        f"<think><answer>{good}</answer></think>",
        f"<think>never closed <answer>{good}</answer>",
        f"<answer>{good}</answer><answer>{good}</answer>",
        f"<answer>{good}",
        "<answer></answer>",
        good,
        [{"role": "assistant", "content": f"<answer>{good}</answer>"}],
        "<answer>" + "1+" * 500_000 + "1</answer>",
    ]
    rewards = countdown_reward(completions, target=[50] * 8, numbers=[NUMBERS] * 8)
    assert rewards == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_countdown_reward_accepts_string_columns_and_is_not_applicable_without_them():
    completion = "<answer>6 * 4</answer>"
    assert countdown_reward([completion], target=["24"], numbers=[("4", "6")]) == [1.0]
    assert countdown_reward([completion], target=[None], numbers=[[4, 6]]) == [None]
    assert countdown_reward([completion], target=[24], numbers=[None]) == [None]
    assert countdown_reward([completion], target=[24.5], numbers=[[4, 6]]) == [None]
    assert countdown_reward([completion], target=[24], numbers=["4, 6"]) == [None]
