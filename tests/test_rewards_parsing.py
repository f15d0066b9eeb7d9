"""Answer extraction: completion text, reasoning removal, answer blocks, and the anti-spam rules."""

import pytest

from rlhub.errors import ConfigError
from rlhub.rewards.parsing import completion_text, extract_answer, extract_boxed, extract_tag, strip_think

MEGABYTE = 1_000_000


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("plain", "plain"),
        ([{"role": "assistant", "content": "hi"}], "hi"),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "a"),
        ([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}], "a\nb"),
        ([{"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "image"}]}], "x"),
        ({"role": "assistant", "content": "single message"}, "single message"),
        ([{"content": "no role"}], "no role"),
        (b"bytes \xff", "bytes \ufffd"),
        (None, ""),
        (42, ""),
        ([{"role": "assistant", "content": None}, "junk", 3], ""),
    ],
)
def test_completion_text_reads_both_trl_formats_and_tolerates_junk(completion, expected):
    assert completion_text(completion) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no reasoning <answer>1</answer>", "no reasoning <answer>1</answer>"),
        ("<think>r</think> after", " after"),
        ("opened in the prompt</think>after", "after"),
        ("<think>a</think> mid <think>b</think> end", " end"),
        ("<think>never closed <answer>1</answer>", ""),
        ("before <think>never closed", "before "),
        ("", ""),
    ],
)
def test_strip_think_keeps_only_text_after_the_reasoning(text, expected):
    assert strip_think(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>42</answer>", "42"),
        ("prefix <answer>\n 42 \n</answer> suffix", "42"),
        ("<answer></answer>", ""),
        ("<answer>1</answer><answer>2</answer>", None),
        ("<answer>1</answer> and <answer>1</answer>", None),
        ("<answer><answer>3</answer></answer>", None),
        ("<answer>3", None),
        ("3</answer>", None),
        ("</answer>3<answer>", None),
        ("<answer>3</answer></answer>", None),
        ("<ANSWER>3</ANSWER>", None),
        ("no tags at all", None),
    ],
)
def test_extract_tag_rejects_spam_and_unclosed_blocks(text, expected):
    assert extract_tag(text, "answer") == expected


def test_extract_tag_rejects_a_tag_name_that_is_not_a_plain_name():
    with pytest.raises(ConfigError, match="plain name"):
        extract_tag("<a>1</a>", "a>|<b")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"\boxed{5}", "5"),
        (r"so $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"\boxed{1} then \boxed{2}", "2"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{a{b{c}}d}", "a{b{c}}d"),
        (r"$\boxed 5$", "5"),
        (r"\boxed 12 apples", "12"),
        (r"\boxed{12", None),
        (r"\boxed{}", ""),
        (r"\boxedx", None),
        (r"\boxed", None),
        ("no box", None),
    ],
)
def test_extract_boxed_finds_the_last_balanced_box(text, expected):
    assert extract_boxed(text) == expected


def test_extractors_handle_a_megabyte_of_unbalanced_text():
    text = r"\boxed{" + "{" * MEGABYTE
    assert extract_boxed(text) is None
    assert extract_tag("<answer>" * MEGABYTE, "answer") is None
    assert strip_think("<think>" + "x" * MEGABYTE) == ""


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        ("<think>2+2</think><answer>4</answer>", "tags", "4"),
        ("<think><answer>4</answer></think>", "tags", None),
        ("<think><answer>3</answer></think><answer>4</answer>", "tags", "4"),
        ("<think>never closed <answer>4</answer>", "tags", None),
        (r"<think>\boxed{3}</think> so \boxed{4}", "boxed", "4"),
        (r"<think>\boxed{3}</think> no box after", "boxed", None),
    ],
)
def test_extract_answer_ignores_answers_written_while_thinking(text, mode, expected):
    assert extract_answer(text, mode) == expected


def test_extract_answer_rejects_an_unknown_mode_with_the_valid_ones():
    with pytest.raises(ConfigError, match="tags"):
        extract_answer("<answer>1</answer>", "xml")
