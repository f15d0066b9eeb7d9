"""math_equal (fast path, math-verify slow path, hard timeout, anti-hacking) and the math_accuracy reward."""

import subprocess
import sys
import threading
import time

import pytest

from rlhub.errors import ConfigError
from rlhub.rewards import math as rewards_math
from rlhub.rewards.math import gold_answer, math_accuracy, math_equal, math_equal_batch

# Plain numbers: decided by the fast path, without sympy.
PLAIN_EQUAL = [
    ("18", "18"),
    ("1,000", "1000"),
    ("1{,}000", "1,000"),
    ("1,234,567.50", "1234567.5"),
    ("18.00", "18"),
    ("$18", "18"),
    (r"\$18.50", "18.5"),
    ("-$5", "-5"),
    ("18 dollars", "18"),
    (r"5\text{ cm}", "5"),
    (r"12 \text{ square feet}", "12"),
    (r"\text{18 apples}", "18"),
    ("The answer is 42.", "42"),
    ("x = -3", "-3"),
    ("50%", "50"),
    (r"50\%", "0.5"),
    ("0.5", "50%"),
    (r"30^\circ", "30"),
    (r"\frac{1}{2}", "0.5"),
    (r"\dfrac12", ".5"),
    (r"\tfrac{-3}{4}", "-0.75"),
    (r"-\frac{6}{4}", "-3/2"),
    ("0.333333", r"\frac{1}{3}"),
    (r"\boxed{7}", "7"),
    ("$7$", "7"),
    ("\u22123", "-3"),
    ("1.5e3", "1500"),
    (r"2\times10^{3}", "2000"),
    (r"2 \cdot 10^3", "2000"),
    ("1500", r"1.5\times10^{3}"),
    ("1.5e-3", "0.0015"),
    (r"e^{i\pi}", "-1"),  # exact constants, evaluated to 60 digits
    (r"\cos(\pi)", "-1"),
    (r"\sin\left(\frac{\pi}{2}\right)", "1"),
    (r"e^{i\pi} + 1", "0"),
]

PLAIN_NOT_EQUAL = [
    ("17", "18"),
    ("1,000", "1"),
    ("0.33", r"\frac{1}{3}"),
    ("-5", "5"),
    ("50%", "0.05"),
    ("1/0", "1"),
    ("1.0e-7", "0"),  # scientific notation is exact: no 6-decimal tolerance
    ("2e3", "2001"),
    (r"e^{i\pi}", "1"),
    (r"\pi", "3.14159"),
    (r"\cos(x)", "-1"),
    (r"e^{e^{e^{e^{10}}}}", "1"),
]

# LaTeX and expressions: decided by math-verify in a worker process.
LATEX_EQUAL = [
    (r"\frac12", r"\frac{1}{2}"),
    (r"\sqrt 2", r"\sqrt{2}"),
    (r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt{2}}{2}"),
    ("0.707107", r"\frac{\sqrt{2}}{2}"),
    (r"\pi", r"\pi"),
    ("3.14159265", r"\pi"),
    (r"2\pi", r"2 \pi"),
    ("[1,2)", "[1, 2)"),
    (r"(-\infty,1)\cup(2,\infty)", r"(-\infty, 1) \cup (2, \infty)"),
    ("(x+1)^2", "x^2+2x+1"),
    ("2+1", "3"),
    (r"\sqrt{27}", r"3\sqrt{3}"),
    ("4, 3", "3, 4"),
    (r"\{3, 4\}", "3, 4"),
    (r"\text{Monday}", r"\text{Monday}"),
]

LATEX_NOT_EQUAL = [
    ("(1,2]", "[1,2)"),
    ("3.14", r"\pi"),
    (r"\sqrt{3}", r"\sqrt{2}"),
    ("x", "3"),
    (r"\infty", "3"),
    ("5 pi", "5"),
    ("3 hundred", "3"),
]

# Ways to list several candidates, none of which may match a single gold value.
HEDGES = [
    ("1, 2, 3, ..., 100", "3"),
    ("1, 2, 3, ..., 100", "100"),
    ("x=3 or x=4 or x=5", "3"),
    ("x=3 or x=4 or x=5", "5"),
    (r"3 \text{ or } 4", "4"),
    ("3 (or 4)", "4"),
    ("3 and 4", "3"),
    ("3; 4", "4"),
    (r"3 \quad 4", "3"),
    ("$3$ $4$", "4"),
    ("$3$, $4$", "3"),
    (r"\boxed{3} \boxed{4}", "4"),
    (r"x = \pm 3", "3"),
    ("3, 4", "3"),
]


@pytest.mark.parametrize(("pred", "gold"), PLAIN_EQUAL)
def test_plain_numbers_match_on_the_fast_path(pred, gold):
    assert rewards_math._quick_verdict(rewards_math._normalize_input(pred), gold) is True
    assert math_equal(pred, gold)


@pytest.mark.parametrize(("pred", "gold"), PLAIN_NOT_EQUAL)
def test_different_plain_numbers_do_not_match(pred, gold):
    assert not math_equal(pred, gold)


def test_numeric_comparisons_never_load_sympy():
    code = (
        "import sys\n"
        "from rlhub.rewards import math_accuracy, math_equal\n"
        "assert math_equal('1,000', '1000') and math_equal('$18.00', '18') and not math_equal('7', '8')\n"
        "assert math_accuracy(['<answer>1,000</answer>'], answer=['#### 1000']) == [1.0]\n"
        "assert math_equal('1.5e3', '1500') and math_equal(r'e^{i\\pi}', '-1')\n"
        "assert 'sympy' not in sys.modules and 'math_verify' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(("pred", "gold"), LATEX_EQUAL)
def test_latex_answers_match_through_math_verify(pred, gold):
    assert math_equal(pred, gold)


@pytest.mark.parametrize(("pred", "gold"), LATEX_NOT_EQUAL)
def test_different_latex_answers_do_not_match(pred, gold):
    assert not math_equal(pred, gold)


@pytest.mark.parametrize(("pred", "gold"), HEDGES)
def test_a_list_of_candidates_never_matches_a_single_gold_value(pred, gold):
    assert not math_equal(pred, gold)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("\uff11\uff18", "18"),  # full-width digits
        ("\u0661\u0668", "18"),  # Arabic-Indic digits
        ("18", "\uff11\uff18"),
        ("1\uff18", "18"),
        ("\\frac{\uff11}{2}", "0.5"),
    ],
)
def test_non_ascii_digits_are_not_numbers(pred, gold):
    assert not math_equal(pred, gold)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("", "3"),
        ("3", ""),
        ("   ", "3"),
        (None, "3"),
        ("3", None),
        ("x" * 1_000_000, "3"),
        ("3" * 1001, "3" * 1001),
    ],
)
def test_empty_missing_and_huge_answers_never_match(pred, gold):
    started = time.monotonic()
    assert not math_equal(pred, gold)
    assert time.monotonic() - started < 1.0


def test_non_string_answers_are_compared_as_text():
    assert math_equal(18, "18.0")
    assert not math_equal(object(), "18")


def test_a_pathological_comparison_times_out_and_the_pool_recovers():
    started = time.monotonic()
    assert not math_equal("9^{9^{9^{9}}}", "1", timeout=1.0)
    assert time.monotonic() - started < 10.0
    assert math_equal(r"\sqrt{4}", "2")
    assert rewards_math._POOL.started <= rewards_math.POOL_SIZE


def test_the_pool_replaces_workers_that_died():
    assert math_equal(r"\sqrt{9}", "3")
    for worker in list(rewards_math._POOL._all):
        worker.proc.kill()
        worker.proc.wait()
    assert math_equal(r"\sqrt{16}", "4")
    assert rewards_math._POOL.started <= rewards_math.POOL_SIZE


def test_slow_path_works_outside_the_main_thread():
    results = []
    thread = threading.Thread(target=lambda: results.append(math_equal(r"\frac{\sqrt{8}}{2}", r"\sqrt{2}")))
    thread.start()
    thread.join(timeout=60)
    assert results == [True]


def test_batch_matches_one_by_one_in_order():
    pairs = PLAIN_EQUAL[:5] + LATEX_EQUAL[:6] + LATEX_NOT_EQUAL[:3] + HEDGES[:3] + [("7", "8")]
    assert math_equal_batch(pairs) == [math_equal(p, g) for p, g in pairs]
    assert math_equal_batch(pairs) == [True] * 11 + [False] * 7
    assert math_equal_batch([]) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Natalia sold 48/2 = 24 clips.\n#### 1,000", "1,000"),
        ("#### 72", "72"),
        (r"The area is $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"\sqrt{2}", r"\sqrt{2}"),
        (5, "5"),
        (None, None),
    ],
)
def test_gold_answer_reads_gsm8k_and_math_solutions(raw, expected):
    assert gold_answer(raw) == expected


def test_math_accuracy_grades_the_final_answer_only():
    completions = [
        "<think>48 / 2 = 24</think><answer>1,000</answer>",
        "<answer>999</answer>",
        "<think>maybe <answer>1000</answer></think>",
        "<answer>1000</answer><answer>1000</answer>",
        "<answer></answer>",
        "1000",
        [{"role": "assistant", "content": "<answer>$1,000.00</answer>"}],
    ]
    golds = ["Total:\n#### 1,000"] * len(completions)
    assert math_accuracy(completions, answer=golds) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_math_accuracy_reads_boxed_answers_and_math_golds():
    completions = [r"so $\boxed{\frac12}$", r"\boxed{0.5}", r"\boxed{0.4}", r"<think>\boxed{0.5}</think>"]
    golds = [r"Hence the answer is $\boxed{\frac{1}{2}}$."] * 4
    assert math_accuracy(completions, answer=golds, answer_format="boxed") == [1.0, 1.0, 0.0, 0.0]


def test_math_accuracy_is_not_applicable_without_a_gold_answer():
    assert math_accuracy(["<answer>3</answer>", "<answer>3</answer>"], answer=[None, "3"]) == [None, 1.0]


def test_math_accuracy_scores_a_megabyte_of_output_zero():
    huge = "<answer>" + "9" * 1_000_000 + "</answer>"
    assert math_accuracy([huge, "\x00\udcff<answer>\x07</answer>"], answer=["9", "9"]) == [0.0, 0.0]


def test_math_accuracy_rejects_an_unknown_answer_format():
    with pytest.raises(ConfigError, match="answer_format"):
        math_accuracy(["<answer>1</answer>"], answer=["1"], answer_format="xml")


@pytest.mark.parametrize(
    "pred, gold, equal",
    [
        (r"5,\!000", "5000", True),
        (r"5{,}000", "5000", True),
        (r"1,\!234,\!567", "1234567", True),
        ("5, 000", "5000", False),  # a list of two numbers, not a thousands separator
        (r"3,\!4", "34", False),
    ],
)
def test_latex_thousands_separators(pred, gold, equal):
    assert math_equal(pred, gold) is equal
