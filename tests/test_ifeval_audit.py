"""ifeval's checkers on the defect classes of the issue-25 audit: one test per class, each failing on ifeval-v1.

The audit compared ifeval-v1's verdicts with the IFEval authors' checker on held-out pairs; these tests hold
the classes it found, with cases of every shape named (the held-out set has more of each).
"""

from __future__ import annotations

import pytest

from rlhub.envs.ifeval import IFEvalEnv
from rlhub.rewards.ifeval import all_followed, follows, fraction_followed, sentences
from rlhub.rewards.parsing import strip_think

SENTENCE_COUNTS = [
    # decimals, numbers and versions
    ("Pi is about 3.14 and e is about 2.718.", 1),
    ("Version 2.0 costs $4.99. It ships today.", 2),
    # titles, Latin and other abbreviations
    ("Dr. Lee met Mr. Smith and Mrs. Jones at St. Mary's.", 1),
    ("Bring a tool, e.g. a hammer, i.e. something heavy.", 1),
    ("The U.S.A. is large. The U.K. is smaller.", 2),
    ("We meet at 5 p.m. on Friday.", 1),
    ("We meet at 5 p.m. The room is booked.", 2),
    ("Apples, pears, etc. are fruit.", 1),
    ("See Fig. 3 and No. 4 for details.", 1),
    # initials
    ("J. K. Rowling and George R. R. Martin write books.", 1),
    # URLs and e-mail addresses
    ("Visit https://example.com/docs/v1.2/index.html for more.", 1),
    ("Read www.example.org. Then write to me.at.work@example.co.uk today.", 2),
    # ellipses
    ("I waited... and waited... and then left.", 1),
    ("I waited… and then left. It was late.", 2),
    ("Wait... The bus is here.", 2),
    # quotes and brackets
    ('He said "Stop." Then he left.', 2),
    ('She asked "why?" and smiled.', 2),  # ! and ? end a sentence even inside quotes, as IFEval counts them
    ("It rained (a lot.) We stayed in.", 2),
    # what still ends a sentence
    ("Really? Yes! Good. Fine", 4),
    ("It cost 5 dollars. She paid in 1999. Done.", 3),
    ("Main text.\n\nP.S. Thanks for reading.", 2),
    ("1. First item.\n2. Second item.", 2),
    ("", 0),
]


@pytest.mark.parametrize(("text", "count"), SENTENCE_COUNTS, ids=[t[:30] for t, _ in SENTENCE_COUNTS])
def test_sentences_do_not_end_at_every_dot(text, count):
    assert len(sentences(text)) == count
    if count:
        rule = {"kind": "sentence_count", "relation": "at most", "n": count}
        assert follows(text, rule) and not follows(text, {**rule, "relation": "less than"})


MARKDOWN = [
    ({"kind": "sections", "n": 2}, "**SECTION 1**\nThe first part.\n\n**SECTION 2**\nThe second part.", True),
    ({"kind": "sections", "n": 2}, "## SECTION 1\nThe first part.\n\n## SECTION 2\nThe second part.", True),
    ({"kind": "sections", "n": 2}, "### **SECTION 1:** Start\nText.\n\n### **SECTION 2:** End\nText.", True),
    ({"kind": "sections", "n": 2}, "*SECTION 1*\nThe first part.\n\n__SECTION 2__\nThe second part.", True),
    ({"kind": "sections", "n": 2}, "**SECTION 1**\n**SECTION 2**\nOnly the second has text.", False),
    ({"kind": "postscript"}, "Main text.\n\n**P.S.** One more thing.", True),
    ({"kind": "postscript"}, "Main text.\n\n*P.S.* One more thing.", True),
    ({"kind": "postscript"}, "Main text.\n\n### P.S. One more thing.", True),
    ({"kind": "postscript"}, "Main text.\n\nP. S. One more thing.", True),
    ({"kind": "postscript"}, "main text.\n\np.s. one more thing.", True),
    ({"kind": "postscript"}, "Main text.\n\n**P.S.**", False),  # a postscript says something
    ({"kind": "json_format"}, '```json {"a": 1} ```', True),
    ({"kind": "json_format"}, '```{"a": [1, 2]}```', True),
    ({"kind": "json_format"}, '```JSON\n{"a": 1}\n```', True),
    ({"kind": "json_format"}, '```json {"a": 1}', False),  # the fence never closes
    ({"kind": "json_format"}, '```jsonc {"a": 1} ```', False),
]


@pytest.mark.parametrize(("constraint", "text", "followed"), MARKDOWN, ids=[t[:30] for _, t, _ in MARKDOWN])
def test_markdown_sections_postscripts_and_one_line_fenced_json(constraint, text, followed):
    assert follows(text, constraint) is followed


NEGATIVE = [
    {"kind": "no_commas"},
    {"kind": "forbidden_words", "forbidden": ["very"]},
    {"kind": "word_count", "relation": "at most", "n": 50},
    {"kind": "sentence_count", "relation": "less than", "n": 3},
    {"kind": "letter_frequency", "letter": "z", "relation": "less than", "n": 2},
    {"kind": "keyword_frequency", "keyword": "map", "relation": "less than", "n": 2},
]
NOTHING = ["", "  \n\t ", "<think>I must avoid commas, so first I will"]  # the last: cut while still thinking


@pytest.mark.parametrize("completion", NOTHING, ids=["empty", "whitespace", "unfinished reasoning"])
def test_an_empty_or_unfinished_answer_follows_nothing(completion):
    rows = [[rule] for rule in NEGATIVE] + [NEGATIVE]
    assert all_followed([completion] * len(rows), constraints=rows) == [0.0] * len(rows)
    assert fraction_followed([completion] * len(rows), constraints=rows) == [0.0] * len(rows)
    assert not any(follows(strip_think(completion), rule) for rule in NEGATIVE)
    env = IFEvalEnv(content_check=False)  # without the content check the checkers alone decide
    example = next(ex for ex in env.examples("test", limit=200) if ex.info["constraints"][0]["kind"] == "no_commas")
    assert env.score(completion, example).reward == 0.0
    assert env.score("A short answer without any commas in it.", example).rewards["fraction_followed"] > 0


CASES = [
    ({"kind": "uppercase"}, "THE OCEAN IS VAST, 42 TIMES OVER.", True),
    ({"kind": "uppercase"}, "CAFÉ AU LAIT IS A NAÏVE DRINK.", True),  # Latin letters with accents
    ({"kind": "uppercase"}, "ОКЕАН ОЧЕНЬ БОЛЬШОЙ.", False),  # Cyrillic capitals
    ({"kind": "uppercase"}, "Ο ΩΚΕΑΝΟΣ ΕΙΝΑΙ ΜΕΓΑΛΟΣ.", False),  # Greek capitals
    ({"kind": "uppercase"}, "海洋很大。", False),  # a script without case
    ({"kind": "uppercase"}, "THE OCEAN 海洋 IS BIG.", False),
    ({"kind": "uppercase"}, "ＴＨＥ ＯＣＥＡＮ", False),  # full-width look-alikes are not English letters
    ({"kind": "lowercase"}, "the ocean is vast, 42 times over.", True),
    ({"kind": "lowercase"}, "океан очень большой.", False),
    ({"kind": "lowercase"}, "the ocean 海洋 is big.", False),
]


@pytest.mark.parametrize(("constraint", "text", "followed"), CASES, ids=[t[:20] for _, t, _ in CASES])
def test_english_case_needs_latin_letters(constraint, text, followed):
    assert follows(text, constraint) is followed
