"""Format rewards and the shaping rewards (cosine length, overlong penalty, repetition penalty)."""

import math

import pytest

from rlhub.errors import ConfigError
from rlhub.rewards import (
    answer_tag_format,
    boxed_format,
    cosine_length_reward,
    length_penalty,
    repetition_penalty,
    tag_count_format,
    think_answer_format,
)

MEGABYTE = 1_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>2 + 2 = 4</think><answer>4</answer>", 1.0),
        ("\n <think>\nreason\n</think>\n\n<answer> 4 </answer>\n", 1.0),
        ("<think>r</think><answer>4</answer> trailing words", 0.0),
        ("leading words <think>r</think><answer>4</answer>", 0.0),
        ("<answer>4</answer><think>r</think>", 0.0),
        ("<think>r</think> between <answer>4</answer>", 0.0),
        ("<think>r</think><answer>4</answer><answer>5</answer>", 0.0),
        ("<think><think>r</think></think><answer>4</answer>", 0.0),
        ("<think>r <answer>3</answer></think><answer>4</answer>", 0.0),
        ("<think>r</think><answer> </answer>", 0.0),
        ("<think></think><answer>4</answer>", 0.0),
        ("<think>r</think><answer>4", 0.0),
        ("reason</think><answer>4</answer>", 0.0),
        ("", 0.0),
    ],
)
def test_think_answer_format_requires_exactly_think_then_answer(text, expected):
    assert think_answer_format([text]) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>4</answer>", 1.0),
        ("<think>r</think> so <answer>4</answer>.", 1.0),
        ("<think>r <answer>3</answer></think><answer>4</answer>", 1.0),
        ("<think>r <answer>3</answer></think>", 0.0),
        ("<answer>  </answer>", 0.0),
        ("<answer>3</answer><answer>4</answer>", 0.0),
        ("<answer>4", 0.0),
        ("4", 0.0),
    ],
)
def test_answer_tag_format_requires_one_non_empty_answer_block(text, expected):
    assert answer_tag_format([text]) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so $\boxed{4}$", 1.0),
        (r"<think>\boxed{3}</think> so \boxed{4}", 1.0),
        (r"\boxed{}", 0.0),
        (r"\boxed{3} or \boxed{4}", 0.0),
        (r"\boxed{\boxed{4}}", 0.0),
        (r"\boxed{4", 0.0),
        ("4", 0.0),
    ],
)
def test_boxed_format_requires_one_non_empty_box(text, expected):
    assert boxed_format([text]) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>r</think><answer>4</answer>", 1.0),
        ("<think>r</think> 4", 0.5),
        ("<think>r <answer>4", 0.5),
        ("</answer><answer>", 0.25),
        ("<think><think></think></think><answer>4</answer>", 0.5),
        ("no tags", 0.0),
    ],
)
def test_tag_count_format_gives_a_quarter_per_well_used_tag(text, expected):
    assert tag_count_format([text]) == [expected]


def test_format_rewards_read_chat_completions_and_survive_a_megabyte():
    chat = [[{"role": "assistant", "content": "<think>r</think><answer>4</answer>"}]]
    huge = "<think>" + "x" * MEGABYTE + "</think><answer>4</answer>"
    for reward in (think_answer_format, answer_tag_format, tag_count_format):
        assert reward(chat) == [1.0]
        assert reward([huge]) == [1.0]
    assert boxed_format([[{"role": "assistant", "content": r"\boxed{4}"}]]) == [1.0]


def test_cosine_length_prefers_short_correct_and_long_wrong_answers():
    reward = cosine_length_reward(max_len=100)
    right_short, right_long = "<answer>4</answer>", "<answer>4</answer>" + " " * 200
    wrong_short, wrong_long = "<answer>5</answer>", "<answer>5</answer>" + " " * 200
    values = reward([right_short, right_long, wrong_short, wrong_long, "no answer"], answer=["4"] * 5)
    assert values[0] > values[1] == pytest.approx(0.5)
    assert values[2] < values[3] == pytest.approx(0.0)
    assert values[4] == pytest.approx(-0.5 + 0.5 * 0.5 * (1 - math.cos(math.pi * 9 / 100)))
    assert reward.__name__ == "cosine_length"


def test_cosine_length_counts_tokens_when_given_completion_ids():
    reward = cosine_length_reward(max_len=10, answer_format="boxed")
    values = reward([r"\boxed{4}", r"\boxed{4}"], answer=["4", None], completion_ids=[[1] * 10, [1]])
    assert values == [pytest.approx(0.5), None]


def test_cosine_length_rejects_bad_settings():
    with pytest.raises(ConfigError, match="max_len"):
        cosine_length_reward(max_len=0)
    with pytest.raises(ConfigError, match="answer_format"):
        cosine_length_reward(answer_format="xml")


def test_length_penalty_is_zero_within_budget_then_falls_to_minus_one():
    penalty = length_penalty(budget=100, buffer=50)
    texts = ["x" * 100, "x" * 125, "x" * 150, "x" * MEGABYTE]
    assert penalty(texts) == [0.0, -0.5, -1.0, -1.0]
    assert penalty(["x"], completion_ids=[[0] * 140]) == [pytest.approx(-0.8)]
    assert penalty.__name__ == "length_penalty"
    with pytest.raises(ConfigError, match="buffer"):
        length_penalty(buffer=0)


def test_repetition_penalty_grows_with_repeated_ngrams():
    penalty = repetition_penalty(ngram_size=3, max_penalty=-1.0)
    fresh = "the quick brown fox jumps over the lazy dog"
    looping = "I think so. " * 200
    values = penalty(["", "two words", fresh, fresh + " " + fresh, looping])
    assert values[:3] == [0.0, 0.0, 0.0]
    assert -1.0 < values[4] < values[3] < 0.0
    assert values[4] < -0.95
    assert penalty.__name__ == "repetition_penalty"


def test_repetition_penalty_scales_to_max_penalty_and_rejects_bad_settings():
    assert repetition_penalty(ngram_size=1, max_penalty=-0.5)(["a a a a"]) == [-0.375]
    with pytest.raises(ConfigError, match="ngram_size"):
        repetition_penalty(ngram_size=0)
    with pytest.raises(ConfigError, match="max_penalty"):
        repetition_penalty(max_penalty=0.5)
