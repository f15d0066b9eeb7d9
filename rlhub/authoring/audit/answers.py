r"""Audit cases for a final answer in ``<answer>`` tags or ``\boxed{}``: numbers, LaTeX expressions and words.

A gold that reads as a number (``24``, ``-0.5``, ``\frac{3}{4}``, ``3/4``) is rewritten from its exact
value. The accept set writes that value otherwise: separators, a decimal point, fraction forms, wrappers
such as ``$...$`` or ``**...**``, and a currency sign, percent sign or unit word where the gold's own
reasoning writes one by the number. The reject set writes other values (off by one, sign flipped, times
ten) or forms a lax parser reads as the gold (``24\mathrm{i}``, ``24^{2}``, ``24 1/2``). Other LaTeX
answers keep their expression in the accept set (wrappers, ``\dfrac`` for ``\frac``, ``\left(``); a
near miss is kept only when sympy proves its value differs. One-word answers (a capital, a name) are
accepted in any case, and refused truncated, with a letter changed, or as another example's answer.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from rlhub.authoring.audit.cases import Cases, letters, placed, question_numbers
from rlhub.authoring.probes import _Target

SEPARATORS = {"comma thousands": ",", "thin-space thousands": "\\,", "space thousands": " ", "{,} thousands": "{,}"}
NOT_UNITS = frozenset(
    [
        "and",
        "are",
        "but",
        "each",
        "for",
        "from",
        "in",
        "is",
        "left",
        "less",
        "more",
        "of",
        "off",
        "on",
        "or",
        "per",
        "than",
        "the",
        "times",
        "to",
        "was",
        "were",
    ]
)
"""Words that may follow a number in the reasoning without naming its unit ("24 more than")."""
_LIST = re.compile(r"^([(\[{])(.*)([)\]}])$", re.DOTALL)
_WORD = re.compile(r"[A-Za-z][A-Za-z' -]*")


def value_of(text: str) -> Fraction | None:
    r"""The exact value of a plain number (``-12``, ``0.75``, ``\frac{3}{4}``, ``3/4``), else ``None``."""
    text = text.strip()
    if re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        return Fraction(text)
    m = re.fullmatch(r"(-?)(?:\\[dt]?frac\{(\d+)\}\{(\d+)\}|(\d+)/(\d+))", text)
    if m is None or int(m[3] or m[5]) == 0:
        return None
    value = Fraction(int(m[2] or m[4]), int(m[3] or m[5]))
    return -value if m[1] else value


def decimal(value: Fraction) -> str | None:
    """``value`` as an exact decimal (``0.75``), or ``None`` when it does not terminate."""
    places = 0
    while (value * 10**places).denominator != 1:
        places += 1
        if places > 12:
            return None
    if places == 0:
        return str(value.numerator)
    digits = str(abs(value.numerator) * 10**places // value.denominator).rjust(places + 1, "0")
    return ("-" if value < 0 else "") + digits[:-places] + "." + digits[-places:]


def written_like(value: Fraction, gold: str) -> str:
    """``value`` as ``gold`` writes numbers: a decimal, unless ``gold`` is a fraction (``a/b``, ``\\frac``)."""
    if value.denominator == 1:
        return str(value.numerator)
    fraction_written = "/" in gold or "frac" in gold
    if decimal(value) and not fraction_written:
        return decimal(value)
    sign, p, q = "-" if value < 0 else "", abs(value.numerator), value.denominator
    return f"{sign}{p}/{q}" if "/" in gold and "frac" not in gold else f"{sign}\\frac{{{p}}}{{{q}}}"


def _grouped(digits: str, sep: str) -> str:
    head = len(digits) % 3 or 3
    return sep.join([digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)])


def _dressing(t: _Target, gold: str) -> list[tuple[str, str]]:
    """The gold number dressed as the gold's own reasoning last writes it: ``$24``, ``24%``, ``24 miles``.

    Only the reasoning can say what the number counts (a question that mentions dollars may ask for hours),
    so a currency sign, percent sign or unit word is added only where the reasoning puts one by the number.
    """
    reasoning = re.sub(r"<<[^<>]*>>", "", t.slot.before)  # GSM8K's calculator annotations
    pattern = rf"(\$\s?)?(?<![\d.,]){re.escape(gold)}(?![\d]|\.\d)(?:\s*(%|percent\b)|\s+([a-z]{{3,}})\b)?"
    found = list(re.finditer(pattern, reasoning))
    if not found:
        return []
    dollar, percent, word = found[-1].groups()
    tags = t.slot.kind == "tags"
    forms = [("currency sign", f"\\${gold}"), ("currency word", f"{gold} dollars")] if dollar else []
    if percent:
        forms.append(("percent sign", f"{gold}\\%"))
    asked = {w.lower() for w in re.findall(r"[A-Za-z]+", t.question)}
    if word and word not in NOT_UNITS and (word in asked or word.rstrip("s") in asked):
        forms.append(("unit word", f"{gold} {word}" if tags else f"{gold}\\text{{ {word}}}"))
    return forms


def number_cases(t: _Target, value: Fraction) -> Cases:
    """Accept and reject sets of a number gold (see the module docstring)."""
    gold, tags = t.slot.content.strip(), t.slot.kind == "tags"
    forms = [("surrounding spaces", f"  {gold} ")]
    if value.denominator == 1:
        digits = str(abs(value.numerator))
        forms.append(("decimal point", f"{value.numerator}.0"))
        if len(digits) > 3:
            sign = "-" if value < 0 else ""
            forms += [(kind, sign + _grouped(digits, sep)) for kind, sep in SEPARATORS.items()]
    else:
        p, q, sign = abs(value.numerator), value.denominator, "-" if value < 0 else ""
        forms += [("\\frac", f"{sign}\\frac{{{p}}}{{{q}}}"), ("\\dfrac", f"{sign}\\dfrac{{{p}}}{{{q}}}")]
        forms += [("slash fraction", f"{sign}{p}/{q}"), ("decimal", decimal(value) or "")]
    if gold.startswith("-"):
        forms.append(("unicode minus", "\u2212" + gold[1:]))
    forms += _dressing(t, gold)
    if tags:
        forms += [("trailing period", f"{gold}."), ("markdown bold", f"**{gold}**"), ("inline math", f"${gold}$")]
        forms += [("\\( \\) math", f"\\({gold}\\)"), ("\\boxed{} in the answer", f"\\boxed{{{gold}}}")]
    wrong = [("off by one", value + 1), ("off by one", value - 1), ("sign flip", -value), ("times ten", 10 * value)]
    wrong += [("a tenth", value / 10)]
    near = [(kind, written_like(v, gold)) for kind, v in wrong if v != value]
    if value != 0:
        near.append(("imaginary unit appended", f"{gold}\\mathrm{{i}}"))
    if value not in (0, 1):
        near.append(("squared", f"{gold}^{{2}}"))
    if value.denominator == 1 and value >= 0:
        near.append(("mixed number", f"{gold} 1/2"))
    if value.denominator == 1 and 100 <= value < 1000:
        near.append(("decimal comma", f"0,{gold}"))
    near.append(("extra term", f"{gold} + 1"))
    return Cases(placed(t, [f for f in forms if f[1]], gold), placed(t, near, gold))


# --- LaTeX expressions and words --------------------------------------------------------------------


def _sympy(text: str):
    """``text`` parsed by latex2sympy (math-verify's parser), or ``None``."""
    try:
        from latex2sympy2_extended import latex2sympy

        return latex2sympy(text)
    except Exception:  # any parse failure means "cannot prove": the case is dropped
        return None


def _number(expr) -> complex | None:
    import sympy

    try:
        symbols = sorted(expr.free_symbols, key=str)
        point = {s: sympy.Rational(7, 13) + k for k, s in enumerate(symbols)}  # a nonzero difference here proves it
        return complex(sympy.N(expr.subs(point), 30))
    except Exception:
        return None


def differs(a: str, b: str) -> bool:
    """Whether sympy proves that the LaTeX ``a`` and ``b`` have different values (``False`` when unsure)."""
    import sympy

    x, y = _sympy(a), _sympy(b)
    if isinstance(x, sympy.Expr) and isinstance(y, sympy.Expr):
        d = _number(x - y)
        return d is not None and abs(d) > 1e-9
    if isinstance(x, sympy.Interval) and isinstance(y, sympy.Interval):
        ends = [_number(x.start - y.start), _number(x.end - y.end)]
        moved = any(e is not None and abs(e) > 1e-9 for e in ends)
        return moved or (x.left_open, x.right_open) != (y.left_open, y.right_open)
    return False


def _top_level_split(body: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in enumerate(body):
        depth += c in "([{"
        depth -= c in ")]}"
        if c == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    return [*parts, body[start:]]


def latex_cases(t: _Target) -> Cases:
    """Accept and reject sets of a LaTeX gold that is not a plain number."""
    gold, tags = t.slot.content.strip(), t.slot.kind == "tags"
    forms = [("surrounding spaces", f" {gold}  "), ("trailing period", f"{gold}.")]
    if tags:
        forms += [("inline math", f"${gold}$"), ("\\boxed{} in the answer", f"\\boxed{{{gold}}}")]
    forms += [("\\dfrac", gold.replace("\\frac", "\\dfrac")), ("\\frac", gold.replace("\\dfrac", "\\frac"))]
    forms.append(("braces dropped", re.sub(r"\^\{(\w)\}", r"^\1", gold)))
    text = re.fullmatch(r"\\text\{([^{}]*)\}", gold)
    if text:
        forms.append(("\\text{} dropped", text[1]))
    listed = _LIST.match(gold)
    near = []
    if listed and len(_top_level_split(listed[2])) > 1:
        items = _top_level_split(listed[2])
        forms.append(("spaces after commas", listed[1] + ", ".join(i.strip() for i in items) + listed[3]))
        if listed[1] == "(" and listed[3] == ")":
            forms.append(("\\left( \\right)", f"\\left({listed[2]}\\right)"))
        near.append(("partial list", listed[1] + ",".join(items[:-1]) + listed[3]))
    for m in list(re.finditer(r"\d+", gold))[:2]:
        bumped = gold[: m.start()] + str(int(m[0]) + 1) + gold[m.end() :]
        if differs(bumped, gold):
            near.append(("a number off by one", bumped))
    signed = f"-\\left({gold}\\right)"
    if not listed and differs(signed, gold):
        near.append(("sign flip", signed))
    terms = re.split(r"(?<=[\w}])\s*\+\s*(?=[\w\\])", gold)
    if len(terms) > 1 and differs(terms[0], gold):
        near.append(("dropped term", terms[0]))
    return Cases(placed(t, forms, gold), placed(t, near, gold))


def word_cases(t: _Target) -> Cases:
    """Accept and reject sets of a gold of words (a name): case is free, spelling and choice are not."""
    gold, tags = t.slot.content.strip(), t.slot.kind == "tags"
    forms = [("surrounding spaces", f" {gold} "), ("trailing period", f"{gold}."), ("lower case", gold.lower())]
    forms.append(("upper case", gold.upper()))
    if tags:
        forms.append(("markdown bold", f"**{gold}**"))
    key = re.sub(r"\W", "", gold.lower())
    near = [("truncated", gold[:-1])] if len(key) > 2 else []
    swapped = gold[:-1] + ("a" if gold[-1].lower() != "a" else "e")
    near.append(("a letter changed", swapped))
    others = [w for w in t.wrongs if _WORD.fullmatch(w.strip()) and re.sub(r"\W", "", w.lower()) != key]
    near += [("another example's answer", w.strip()) for w in others[:2]]
    return Cases(placed(t, forms, gold), placed(t, near, gold))


def cases(t: _Target) -> Cases:
    """The accept and reject sets of an answer-block gold, by what the gold is."""
    gold = t.slot.content.strip()
    value = value_of(gold)
    if value is not None:
        return number_cases(t, value)
    return word_cases(t) if _WORD.fullmatch(gold) else latex_cases(t)


def random_answer(t: _Target, rng) -> Any:
    """A random answer of the gold's kind: an integer for numbers, a random word for words."""
    gold = t.slot.content.strip()
    if _WORD.fullmatch(gold):
        return t.final(t.slot.fill(letters(rng, max(3, len(gold))).capitalize()))
    return t.final(t.slot.fill(str(rng.randint(-1000, 1000))))


def heuristic(t: _Target) -> Any:
    """The largest number of the question (for words: the question's last capitalised word)."""
    gold = t.slot.content.strip()
    if _WORD.fullmatch(gold):
        names = re.findall(r"\b[A-Z][a-z]+\b", t.question)
        return t.final(t.slot.fill(names[-1] if names else "Yes"))
    numbers = [Fraction(n) for n in question_numbers(t)]
    return t.final(t.slot.fill(written_like(max(numbers), gold) if numbers else "0"))
