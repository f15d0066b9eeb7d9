"""Verifiable instruction constraints (the language-free IFEval families) and the rewards that check them.

A constraint is plain data, ``{"kind": "word_count", "relation": "at least", "n": 40}``; :data:`CHECKERS`
maps each kind to a function ``(text, **params) -> bool``. Every checker is total on model output. The
definitions, where IFEval's own are loose:

* a word is a run of letters/digits (``don't`` is one word); a sentence is a run of text holding a word and
  ending in ``.``, ``!``, ``?`` or the end of the text (so ``P.S.`` is two); paragraphs are separated by
  blank lines;
* keywords match whole words, ignoring case; letters count ignoring case;
* a bullet is a line starting with ``* `` or ``- ``; a highlight is ``*text*`` with no space inside the
  stars; a placeholder is ``[text]``; a title is ``<<text>>``;
* JSON is the whole response (optionally in one ```` ```json ```` fence) parsing to an object or array.

A content check (optional) keeps constraint-only answers from full marks: the response must mention the
topic (a word starting with the topic's stem), hold at least :data:`MIN_CONTENT_WORDS` words, and copy no
run of :data:`ECHO_WORDS` words from the request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from .parsing import completion_text, strip_think

MIN_CONTENT_WORDS = 12
"""Fewest words a response needs to count as doing the task (when the content check applies)."""

ECHO_WORDS = 8
"""A response that copies this many consecutive words of the request is an echo."""

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_SENTENCE = re.compile(r"[^.!?]*?\w[^.!?]*?(?:[.!?]+|$)")
_BULLET = re.compile(r"^\s*[*-]\s+\S", re.MULTILINE)
_HIGHLIGHT = re.compile(r"\*([^\s*](?:[^\n*]*[^\s*])?)\*")
_PLACEHOLDER = re.compile(r"\[[^\[\]\n]*\w[^\[\]\n]*\]")
_TITLE = re.compile(r"<<[^<>\n]*\w[^<>\n]*>>")
_SECTION = re.compile(r"^\s*SECTION\s+(\d+)\b", re.MULTILINE)
_POSTSCRIPT = re.compile(r"^\s*P\.S\.", re.MULTILINE)
_JSON_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL | re.IGNORECASE)


def words(text: str) -> list[str]:
    """The words of ``text``.

    Example:
        >>> words("Don't panic: 42 towels!")
        ["Don't", 'panic', '42', 'towels']
    """
    return _WORD.findall(text)


def sentences(text: str) -> list[str]:
    """The sentences of ``text``.

    Example:
        >>> sentences("One. Two words! And three?? trailing")
        ['One.', ' Two words!', ' And three??', ' trailing']
    """
    return _SENTENCE.findall(text)


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


CHECKERS: dict[str, Callable[..., bool]] = {
    "word_count": lambda t, relation, n: _compare(len(words(t)), relation, n),
    "sentence_count": lambda t, relation, n: _compare(len(sentences(t)), relation, n),
    "paragraph_count": lambda t, n: len(paragraphs(t)) == n,
    "include_keywords": lambda t, keywords: all(_has_word(t, k) for k in keywords),
    "forbidden_words": lambda t, forbidden: not any(_has_word(t, k) for k in forbidden),
    "keyword_frequency": lambda t, keyword, relation, n: _compare(_has_word(t, keyword), relation, n),
    "letter_frequency": lambda t, letter, relation, n: _compare(t.lower().count(letter.lower()), relation, n),
    "lowercase": lambda t: t == t.lower() and any(c.isalpha() for c in t),
    "uppercase": lambda t: t == t.upper() and any(c.isalpha() for c in t),
    "no_commas": lambda t: "," not in t and "，" not in t,
    "json_format": lambda t: isinstance(_json_value(t), (dict, list)),
    "bullets": lambda t, n: len(_BULLET.findall(t)) == n,
    "sections": _sections,
    "title": lambda t: bool(_TITLE.search(t)),
    "quotation": lambda t: len(s := t.strip()) > 2 and s[0] == s[-1] == '"' and bool(words(s)),
    "start_phrase": lambda t, phrase: t.lstrip().startswith(phrase),
    "end_phrase": lambda t, phrase: t.rstrip().endswith(phrase),
    "postscript": lambda t: bool((m := _POSTSCRIPT.search(t)) and words(t[: m.start()]) and words(t[m.end() :])),
    "placeholders": lambda t, n: len(_PLACEHOLDER.findall(t)) >= n,
    "highlights": lambda t, n: len(_HIGHLIGHT.findall(t)) >= n,
}
"""Each constraint kind's checker: ``CHECKERS[kind](text, **params) -> bool``."""


def follows(text: str, constraint: dict) -> bool:
    """Whether ``text`` follows one constraint; a malformed constraint raises ``KeyError``/``TypeError``.

    Example:
        >>> follows("Two words.", {"kind": "word_count", "relation": "at most", "n": 2})
        True
        >>> follows("no shouting here", {"kind": "uppercase"})
        False
    """
    params = {k: v for k, v in constraint.items() if k != "kind"}
    return bool(CHECKERS[constraint["kind"]](text, **params))


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
