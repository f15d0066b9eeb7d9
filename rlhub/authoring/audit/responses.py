"""Audit cases for a free response under verifiable constraints (IFEval kinds, the ``constraints`` column).

The accept set changes the gold response only where no constraint looks: a trailing or leading newline,
reasoning in ``<think>`` before it, wider blank lines between paragraphs, spaces at line ends, one word
in markdown bold (not under a JSON constraint), and the markers a constraint asks for written the way
markdown writes them (``## SECTION 1`` or ``**SECTION 1**``, ``**P.S.**``, ``- `` bullets, JSON in a
```` ```json ```` fence).

The reject set breaks one constraint per case, so that the break holds under any reasonable reading:
``at most N`` words (or sentences) gets N + 1 more of them appended, ``at least N`` keeps a prefix with
fewer by the most generous count, a keyword disappears even as a substring, a capital letter appears
under "lowercase", a comma under "no commas", one bullet, section, placeholder or highlight loses its
marker, a JSON response loses its closing bracket, an answer in English capitals gains a word in another
script. The empty response and an unfinished one (its first five words) are rejected too.
"""

from __future__ import annotations

import re
from typing import Any

from rlhub.authoring.audit.cases import Cases, distinct
from rlhub.authoring.probes import _Target

PLAIN = ["Indeed", "this", "matters", "to", "everyone", "who", "reads", "about", "it", "here", "today"]
"""Words appended to go over a limit (none is an IFEval keyword or forbidden word)."""
LEXICON = [
    "apple",
    "stone",
    "button",
    "window",
    "cloud",
    "paper",
    "engine",
    "forest",
    "lamp",
    "sugar",
    "violin",
    "pencil",
    "bottle",
    "planet",
]
"""Words of the random policy's responses (no topic word of ifeval-v1)."""


def _cased(text: str, like: str) -> str:
    """``text`` in the case the gold keeps throughout (all lower, all upper), else as written."""
    if like == like.lower():
        return text.lower()
    return text.upper() if like == like.upper() else text


def _words_max(text: str) -> int:
    """The most words any reasonable tokenizer finds: every run of letters or digits."""
    return len(re.findall(r"[^\W_]+", text))


def _sentences_max(text: str) -> int:
    """The most sentences any reasonable splitter finds: one per run of ``.!?``, plus a trailing fragment."""
    return len(re.findall(r"[.!?]+", text)) + 1


def _prefix(text: str, count, limit: int) -> str | None:
    """The longest prefix of ``text``, cut at a space, whose ``count`` stays under ``limit``."""
    cuts = [m.start() for m in re.finditer(r"\s", text)] + [len(text)]
    kept = [c for c in cuts if count(text[:c]) < limit]
    return text[: kept[-1]] if kept and kept[-1] > 0 else None


def _drop_markers(text: str, pattern: str, keep: int) -> str | None:
    """``text`` with the markers (group 1 of ``pattern`` wraps what stays) after the first ``keep`` unwrapped."""
    found = list(re.finditer(pattern, text, re.MULTILINE))
    if len(found) <= keep:
        return None
    for m in reversed(found[keep:]):
        text = text[: m.start()] + m[1] + text[m.end() :]
    return text


def _over(text: str, relation: str, n: int, unit: str) -> str | None:
    """``text`` pushed past a count bound of words or sentences."""
    if relation in ("at most", "less than"):
        extra = " ".join(PLAIN[i % len(PLAIN)] for i in range(n + 1))
        if unit == "sentences":
            extra = " ".join(["This point matters too."] * (n + 1))
        return f"{text} {_cased(extra, text)}"
    if relation == "at least" and n > 1:
        return _prefix(text, _words_max if unit == "words" else _sentences_max, n)
    return None


def broken(text: str, c: dict) -> str | None:
    """``text`` changed so that it breaks constraint ``c``, or ``None`` when no sure break is known."""
    kind, n = c.get("kind"), c.get("n", 0)
    if kind == "word_count":
        return _over(text, c["relation"], n, "words")
    if kind == "sentence_count":
        return _over(text, c["relation"], n, "sentences")
    if kind == "paragraph_count":
        return f"{text}\n\n{_cased('One more paragraph closes this.', text)}"
    if kind == "include_keywords":
        return re.sub(re.escape(c["keywords"][0]), "it", text, flags=re.IGNORECASE)
    if kind == "forbidden_words":
        return f"{text} {_cased(c['forbidden'][0].capitalize(), text)}."
    if kind == "keyword_frequency" and c.get("relation") == "at least":
        found = list(re.finditer(re.escape(c["keyword"]), text, re.IGNORECASE))
        for m in reversed(found[max(n - 1, 0) :]):
            text = text[: m.start()] + _cased("it", text) + text[m.end() :]
        return text
    if kind == "letter_frequency":
        letter = c["letter"]
        if c.get("relation") == "at least":
            return re.sub(re.escape(letter), "", text, flags=re.IGNORECASE)
        return f"{text} {_cased(letter * n, text)}."
    edits = {
        "lowercase": lambda: re.sub(r"[a-z]", lambda m: m[0].upper(), text, count=1),
        "uppercase": lambda: re.sub(r"[A-Z]", lambda m: m[0].lower(), text, count=1),
        "no_commas": lambda: re.sub(r"(\w) ", r"\1, ", text, count=1),
        "json_format": lambda: text.rstrip()[:-1],
        "bullets": lambda: _drop_markers(text, r"^[ \t]*[*-][ \t]+(\S)", n - 1),
        "sections": lambda: _drop_markers(text, r"^[ \t]*SECTION[ \t]+\d+[ \t]*\n?()", n - 1),
        "title": lambda: text.replace("<<", "").replace(">>", ""),
        "quotation": lambda: text.rstrip()[:-1],
        "start_phrase": lambda: _cased("Now ", text) + text.lstrip(),
        "end_phrase": lambda: text.rstrip() + _cased(" Indeed", text),
        "postscript": lambda: re.sub(r"P\.\s?S\.", "", text, flags=re.IGNORECASE),
        "placeholders": lambda: _drop_markers(text, r"\[([^\[\]\n]*)\]", n - 1),
        "highlights": lambda: _drop_markers(text, r"\*([^*\n]+)\*", n - 1),
    }
    return edits[kind]() if kind in edits else None


def _bolded(text: str, phrases: list[str]) -> str | None:
    """``text`` with one word near its middle, inside a line and outside ``phrases`` and a title, in markdown bold."""
    blocked = [(m.start(), m.end()) for p in phrases for m in re.finditer(re.escape(p), text)]
    blocked += [(m.start(), m.end()) for m in re.finditer(r"<<[^>]*>>", text)]
    spans = [
        m for m in re.finditer(r"(?<= )[A-Za-z]{4,}(?= )", text) if not any(a <= m.start() < b for a, b in blocked)
    ]
    if not spans:
        return None
    m = spans[len(spans) // 2]
    return f"{text[: m.start()]}**{m[0]}**{text[m.end() :]}"


def cases(t: _Target) -> Cases:
    """Accept and reject sets of a constrained response (see the module docstring)."""
    gold = t.text
    constraints = t.example.info.get("constraints") or []
    kinds = {c.get("kind") for c in constraints}
    accept = [("trailing newline", gold + "\n"), ("leading newline", "\n" + gold)]
    accept += [("reasoning first", f"<think>Plan the answer first.</think>\n{gold}")]
    accept += [
        ("spaces at line ends", re.sub(r"(?<=\S)\n", "  \n", gold)),
        ("wider blank lines", gold.replace("\n\n", "\n\n\n")),
    ]
    if "json_format" not in kinds:
        accept.append(("a word in bold", _bolded(gold, [c["phrase"] for c in constraints if "phrase" in c])))
    markdown = {  # the markers a constraint asks for, written as markdown does
        "sections": [
            ("sections as headings", re.sub(r"^SECTION", "## SECTION", gold, flags=re.MULTILINE)),
            ("sections in bold", re.sub(r"^(SECTION \d+)", r"**\1**", gold, flags=re.MULTILINE)),
        ],
        "postscript": [("postscript marker in bold", gold.replace("P.S.", "**P.S.**"))],
        "json_format": [("JSON in a fence", f"```json\n{gold}\n```")],
        "bullets": [("dash bullets", re.sub(r"^\* ", "- ", gold, flags=re.MULTILINE))],
    }
    accept += [case for kind in sorted(kinds & set(markdown)) for case in markdown[kind]]
    reject = [("empty response", ""), ("unfinished response", " ".join(gold.split()[:5]))]
    reject += [(f"breaks {c.get('kind')}", broken(gold, c)) for c in constraints]
    if "uppercase" in kinds:
        reject.append(("breaks uppercase: another script", f"{gold} \u041c\u0418\u0420."))
    return Cases(distinct(accept, gold, t.final), distinct(reject, gold, t.final))


def random_answer(t: _Target, rng) -> Any:
    """Thirty words of a fixed lexicon in sentences of five (no topic word)."""
    words = [rng.choice(LEXICON) for _ in range(30)]
    return t.final(" ".join(" ".join(words[i : i + 5]).capitalize() + "." for i in range(0, 30, 5)))


def heuristic(t: _Target) -> Any:
    """The request echoed."""
    return t.final(t.question)
