"""Verifiable instruction constraints (the language-free IFEval families) and the rewards that check them.

A constraint is plain data, ``{"kind": "word_count", "relation": "at least", "n": 40}``; :data:`CHECKERS`
maps each kind to a function ``(text, **params) -> bool``, and :func:`follows` applies one. Every checker
is total on model output. The definitions, where IFEval's own are loose:

* an empty response (nothing but whitespace) follows no constraint, not even "no commas" or "at most N
  words"; neither does a completion whose reasoning never closes (``<think>`` cut at the token limit
  leaves no response);
* a word is a run of letters/digits (``don't`` is one word); paragraphs are separated by blank lines;
* a sentence ends at ``!`` or ``?``, at a ``.`` that ends a word (not ``3.14``, ``x.com``, ``a@b.org``),
  or at the end of the text; a ``.`` after a title or Latin abbreviation (``Dr.``, ``e.g.``, ``P.S.``) or a
  list number (``1.`` starting a line) ends none, and one after another abbreviation (``etc.``,
  ``U.S.A.``, ``p.m.``), an initial (``J.``) or an ellipsis (``...``) ends one only when a word that
  usually starts a sentence follows (``p.m. The``, not ``U.S. Army``); see :func:`sentences`;
* keywords match whole words, ignoring case; letters count ignoring case;
* all lower or upper case means every letter is a Latin letter of that case (text in another script
  follows neither), with at least one letter;
* a bullet is a line starting with ``* `` or ``- ``; a highlight is ``*text*`` with no space inside the
  stars; a placeholder is ``[text]``; a title is ``<<text>>``;
* a section marker (``SECTION 1``) and a postscript (``P.S.``) start a line, and may be dressed in
  markdown: ``## SECTION 1``, ``**SECTION 1**``, ``**P.S.**``;
* JSON is the whole response (optionally in one ```` ```json ```` fence, on one line or several) parsing to
  an object or array.

A content check (optional) keeps constraint-only answers from full marks: the response must mention the
topic (a word starting with the topic's stem), hold at least :data:`MIN_CONTENT_WORDS` words, and copy no
run of :data:`ECHO_WORDS` words from the request.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise
from typing import Any

from .parsing import completion_text, strip_think

MIN_CONTENT_WORDS = 12
"""Fewest words a response needs to count as doing the task (when the content check applies)."""

ECHO_WORDS = 8
"""A response that copies this many consecutive words of the request is an echo."""

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_BULLET = re.compile(r"^[^\S\n]*[*-]\s+\S", re.MULTILINE)
_HIGHLIGHT = re.compile(r"\*([^\s*](?:[^\n*]*[^\s*])?)\*")
_PLACEHOLDER = re.compile(r"\[([^\[\]\n]*)\]")  # the word inside is checked apart: matching stays linear
_TITLE = re.compile(r"<<([^<>\n]*)>>")
_MARKDOWN_LEAD = r"^[^\S\n]*(?:>[^\S\n]*)*(?:#{1,6}[^\S\n]*)?(?:[*_]{1,3}[^\S\n]*)?"  # quote, heading, emphasis
_SECTION = re.compile(_MARKDOWN_LEAD + r"SECTION[ \t]+(\d+)(?![^\W_])", re.MULTILINE)
_POSTSCRIPT = re.compile(_MARKDOWN_LEAD + r"P\.[ \t]?S\.", re.MULTILINE | re.IGNORECASE)
_JSON_FENCE = re.compile(r"^```(?:json(?![\w-]))?(.*)```$", re.DOTALL | re.IGNORECASE)

# Sentence boundaries: a word-final run of stops (. ! ? …), closing quotes, brackets or emphasis after it
# (so 3.14, x.com and a@b.org hold none). Tokens are whitespace-separated runs, which keeps this linear.
_TOKEN = re.compile(r"\S+")
_STOPS = ".!?…"
_CLOSERS = "\"'”’)]}*_"
_OPENERS = "\"'“‘([{*_#>"
_NEXT_WORD = re.compile(rf"[{re.escape(_OPENERS)}]*(\w+)")
_LETTER_DOTS = re.compile(r"(?:[a-z]\.)+[a-z]")  # u.s.a, e.g, p.m (the final dot is the candidate)


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NEVER_END = _word_set(
    "mr mrs ms mx dr prof rev hon gov sen rep gen col capt lt sgt cpl adm vs v e.g i.e cf viz approx p.s p.p.s"
)
"""Titles and Latin abbreviations: a name or more of the sentence always follows."""
_BEFORE_NUMBER = _word_set("no nos fig figs vol p pp ch sec eq")
"""Abbreviations a number follows (``Fig. 3``, ``No. 5``): no sentence ends before that number."""
_MAY_END = _word_set(
    "etc inc ltd co corp jr sr st bros dept ave blvd rd jan feb apr jun jul aug sep sept oct nov dec ph.d"
)
"""Abbreviations that also end sentences (``... and pears etc. Then ...``)."""
_STARTERS = _word_set(
    """the a an this that these those it its he she they we i you my our your his her their there here then but and
    so yet or nor however also still now today in on at for if when while after before as once since because
    although though what why how who where which some many most all each every no not one another other both such
    let please thank thanks yes finally first next meanwhile instead moreover overall later soon by with from to
    of during without"""
)
"""Words that usually start a sentence: capitalized after an abbreviation, initial or ellipsis, they say one
ended (``at 5 p.m. The show``), where another capitalized word is more likely a name (``U.S. Army``)."""


def words(text: str) -> list[str]:
    """The words of ``text``.

    Example:
        >>> words("Don't panic: 42 towels!")
        ["Don't", 'panic', '42', 'towels']
    """
    return _WORD.findall(text)


def _ends_sentence(stops: str, word: str, opens_line: bool, following: str) -> bool:
    """Whether ``word`` then ``stops`` ends a sentence, ``following`` the next token (see the module docstring)."""
    after = _NEXT_WORD.match(following)
    if after is None:  # the end of the text, or only punctuation follows
        return True
    if "!" in stops or "?" in stops:
        return True
    nxt = after.group(1)
    starts = nxt[0].isupper() and nxt.lower() in _STARTERS
    if "…" in stops or ".." in stops:  # an ellipsis: a pause, or the end of a sentence
        return starts
    lower = word.lower()
    if lower in _NEVER_END or (lower in _BEFORE_NUMBER and nxt[0].isdigit()):
        return False
    if word.isdigit() and opens_line:  # a list number: "1. First item"
        return False
    if lower in _MAY_END or _LETTER_DOTS.fullmatch(lower) or (len(word) == 1 and word.isupper() and word != "I"):
        return starts
    return True


def _sentence_ends(text: str) -> Iterator[int]:
    """The offsets in ``text`` just past each stop that ends a sentence."""
    tokens = list(_TOKEN.finditer(text))
    opens_line = True  # only markup (list or quote marks, heading hashes) before this token on its line
    for i, token in enumerate(tokens):
        if i and "\n" in text[tokens[i - 1].end() : token.start()]:
            opens_line = True
        body = token.group().rstrip(_CLOSERS)
        word = body.rstrip(_STOPS)
        following = tokens[i + 1].group() if i + 1 < len(tokens) else ""
        if len(word) < len(body) and _ends_sentence(body[len(word) :], word.lstrip(_OPENERS), opens_line, following):
            yield token.end()
        opens_line = opens_line and not token.group().strip(">*-#")


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, each holding a word (a run of punctuation alone is none).

    Decimals, URLs, e-mail addresses, titles, common abbreviations, initials, ellipses inside a sentence,
    and list numbers end no sentence; closing quotes and brackets stay with the sentence they close. A
    line break alone ends none (a heading without a stop runs into the next sentence).

    Example:
        >>> sentences('Dr. Lee paid 3.14 dollars on x.com, e.g. at 5 p.m. today. She said "Wow!" Then she left')
        ['Dr. Lee paid 3.14 dollars on x.com, e.g. at 5 p.m. today.', 'She said "Wow!"', 'Then she left']
        >>> sentences("Intro\\n1. First item.\\n2. Second... and last item")
        ['Intro\\n1. First item.', '2. Second... and last item']
    """
    cuts = [0, *_sentence_ends(text), len(text)]
    pieces = (text[a:b].strip() for a, b in pairwise(cuts))
    return [p for p in pieces if _WORD.search(p)]


def paragraphs(text: str) -> list[str]:
    """The non-blank paragraphs of ``text`` (separated by blank lines)."""
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _compare(count: int, relation: str, n: int) -> bool:
    return {"at least": count >= n, "at most": count <= n, "less than": count < n, "exactly": count == n}[relation]


def _has_word(text: str, word: str) -> int:
    return len(re.findall(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE))


def _json_value(text: str) -> Any:
    body = text.strip()
    fenced = _JSON_FENCE.match(body)
    try:
        return json.loads(fenced.group(1) if fenced else body)
    except (ValueError, RecursionError):
        return None


def _sections(text: str, n: int) -> bool:
    numbers = [int(m) for m in _SECTION.findall(text)]
    bodies = _SECTION.split(text)[2::2]  # split keeps the number group: [before, 1, body, 2, body, ...]
    return numbers == list(range(1, n + 1)) and all(words(b) for b in bodies)


def _postscript(text: str) -> bool:
    marker = _POSTSCRIPT.search(text)
    return bool(marker and words(text[: marker.start()]) and words(text[marker.end() :]))


def _latin_case(text: str, upper: bool) -> bool:
    """Every letter is a Latin letter of the case asked for, and there is one (``π``, ``Ж``, ``中`` fail)."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and all(
        (c.isupper() if upper else c.islower()) and unicodedata.name(c, "").startswith("LATIN ") for c in letters
    )


CHECKERS: dict[str, Callable[..., bool]] = {
    "word_count": lambda t, relation, n: _compare(len(words(t)), relation, n),
    "sentence_count": lambda t, relation, n: _compare(len(sentences(t)), relation, n),
    "paragraph_count": lambda t, n: len(paragraphs(t)) == n,
    "include_keywords": lambda t, keywords: all(_has_word(t, k) for k in keywords),
    "forbidden_words": lambda t, forbidden: not any(_has_word(t, k) for k in forbidden),
    "keyword_frequency": lambda t, keyword, relation, n: _compare(_has_word(t, keyword), relation, n),
    "letter_frequency": lambda t, letter, relation, n: _compare(t.lower().count(letter.lower()), relation, n),
    "lowercase": lambda t: _latin_case(t, upper=False),
    "uppercase": lambda t: _latin_case(t, upper=True),
    "no_commas": lambda t: "," not in t and "，" not in t,
    "json_format": lambda t: isinstance(_json_value(t), (dict, list)),
    "bullets": lambda t, n: len(_BULLET.findall(t)) == n,
    "sections": _sections,
    "title": lambda t: any(map(_WORD.search, _TITLE.findall(t))),
    "quotation": lambda t: len(s := t.strip()) > 2 and s[0] == s[-1] == '"' and bool(words(s)),
    "start_phrase": lambda t, phrase: t.lstrip().startswith(phrase),
    "end_phrase": lambda t, phrase: t.rstrip().endswith(phrase),
    "postscript": _postscript,
    "placeholders": lambda t, n: sum(bool(_WORD.search(p)) for p in _PLACEHOLDER.findall(t)) >= n,
    "highlights": lambda t, n: len(_HIGHLIGHT.findall(t)) >= n,
}
"""Each constraint kind's checker on a non-empty response: ``CHECKERS[kind](text, **params) -> bool``.

Use :func:`follows`, which also applies the rule that an empty response follows nothing.
"""


def follows(text: str, constraint: dict) -> bool:
    """Whether ``text`` follows one constraint; a malformed constraint raises ``KeyError``/``TypeError``.

    An empty (all-whitespace) response follows no constraint: saying nothing is not following "no commas".

    Example:
        >>> follows("Two words.", {"kind": "word_count", "relation": "at most", "n": 2})
        True
        >>> follows("no shouting here", {"kind": "uppercase"})
        False
        >>> follows("  ", {"kind": "no_commas"})
        False
    """
    params = {k: v for k, v in constraint.items() if k != "kind"}
    followed = bool(CHECKERS[constraint["kind"]](text, **params))
    return followed and bool(text.strip())


def on_task(text: str, topic: str, request: str = "") -> bool:
    """The content check: mentions the topic, has :data:`MIN_CONTENT_WORDS` words, does not echo the request.

    Example:
        >>> on_task("Bicycles changed how cities grew in the last century and still shape streets.", "bicycle")
        True
        >>> on_task('{"response": ""}', "bicycle")
        False
    """
    found = words(text)
    if len(found) < MIN_CONTENT_WORDS or not re.search(rf"(?<!\w){re.escape(topic)}", text, re.IGNORECASE):
        return False
    asked = [w.lower() for w in words(request)]
    runs = {tuple(asked[i : i + ECHO_WORDS]) for i in range(len(asked) - ECHO_WORDS + 1)}
    said = [w.lower() for w in found]
    return not any(tuple(said[i : i + ECHO_WORDS]) in runs for i in range(len(said) - ECHO_WORDS + 1))


def _followed(completions, constraints, topic, request) -> list[list[bool] | None]:
    n = len(completions)
    topic = topic if topic is not None else [None] * n
    request = request if request is not None else [""] * n
    out: list[list[bool] | None] = []
    for completion, rules, row_topic, row_request in zip(completions, constraints, topic, request, strict=True):
        if not rules:
            out.append(None)
            continue
        text = strip_think(completion_text(completion))
        if row_topic and not on_task(text, row_topic, row_request or ""):
            out.append([False] * len(rules))
            continue
        out.append([follows(text, rule) for rule in rules])
    return out


def all_followed(
    completions: Sequence[Any],
    constraints: Sequence[Any],
    topic: Sequence[Any] | None = None,
    request: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when the response (reasoning in ``<think>`` dropped) follows every constraint of its row.

    Args:
        completions: Completions (strings or chat-message lists).
        constraints: Per row, a list of constraint dicts (see :data:`CHECKERS`).
        topic: Per row, the topic stem for the content check, or ``None`` for no content check.
        request: Per row, the request text (a response echoing it fails the content check).
        **kwargs: Other dataset columns (ignored).

    Returns:
        1.0 or 0.0 per completion (0.0 when the content check fails); ``None`` for a row without constraints.

    Example:
        >>> rules = [{"kind": "no_commas"}, {"kind": "end_phrase", "phrase": "Bye."}]
        >>> all_followed(["Hello there. Bye.", "Hello, there. Bye."], constraints=[rules, rules])
        [1.0, 0.0]
    """
    return [None if f is None else float(all(f)) for f in _followed(completions, constraints, topic, request)]


def fraction_followed(
    completions: Sequence[Any],
    constraints: Sequence[Any],
    topic: Sequence[Any] | None = None,
    request: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """The fraction of the row's constraints the response follows (0.0 when the content check fails).

    Example:
        >>> rules = [{"kind": "no_commas"}, {"kind": "end_phrase", "phrase": "Bye."}]
        >>> fraction_followed(["Hello, there. Bye."], constraints=[rules])
        [0.5]
    """
    return [None if f is None else sum(f) / len(f) for f in _followed(completions, constraints, topic, request)]
