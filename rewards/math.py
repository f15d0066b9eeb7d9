r"""Math answer equivalence (``math_equal``) and the ``math_accuracy`` reward.

``math_equal(pred, gold)`` first reads both answers the same way:

* No-break and thin spaces (U+00A0, U+2009, U+202F) are plain spaces.
* Digit groups separated by a space, ``\,``, ``\;``, ``\:``, ``\ `` or ``~`` are one number when the first
  group has 1 to 3 digits (not starting with 0) and every later group exactly 3: ``10\,000`` = ``10 000``
  = ``10000``, ``1 234 567`` = ``1234567``; ``12 34`` is two numbers. The same holds for commas:
  ``1,234`` is one number, while ``0,500`` is not a thousands group (it is not 500, nor 0.5: a comma
  between numbers separates answers, so a decimal comma is not read).
* The sentence's ``.``, ``,`` or ``;`` after the answer is dropped, inside or after its math delimiters:
  ``\sqrt{2}.`` = ``\sqrt{2}``, ``2^{10}.`` = ``1024`` (never 2), ``\boxed{5}.`` = ``5``. ``!`` stays (it
  is a factorial), and so does an ellipsis (``0.333...``).
* ``\mathrm{e}`` and ``\mathrm{i}`` (also ``\text{}``, ``\mathit{}``, ``\operatorname{}``) are the
  constants ``e`` and ``i``, not units: ``2\mathrm{i}`` is ``2i``, never 2.

Then it decides in three steps:

1. Two answers that are the same text (ignoring ``$``, ``\left``/``\right``, an enclosing ``\boxed{}``,
   ``\dfrac``/``\tfrac`` and space that does not separate two words) are equal, whatever they mean:
   ``12:00`` = ``12:00``.
2. A fast path answers exactly, with :class:`fractions.Fraction` and without sympy, whenever both sides
   are plain numbers: ``18``, ``-3``, ``18.00``, ``.5``, ``1,234``, ``1{,}234``, ``3/4``, ``\frac{1}{2}``,
   ``\dfrac12``, ``50%``, ``$18``, ``\$18``, ``30^\circ``, ``18 dollars``, ``5\text{ cm}``, ``x = 5``,
   ``The answer is 5``, and numbers in scientific notation (``1.5e3``, ``2\times10^{3}``, ``2 \cdot 10^3``,
   exact). A mixed number ``a b/c`` or ``a\frac{b}{c}`` (with ``0 <= b < c``, on one line) is
   ``a + b/c``: ``1 1/2`` = ``3/2``, ``-2\frac{1}{4}`` = ``-9/4``; one whose fraction is not proper
   (``11 7/6``, ``4 4/0``) is no number and matches nothing but itself. When either side is written
   as a decimal, values equal to 6 decimal places
   match (``0.333333`` = ``\frac13``), as in math-verify. A percentage matches its number or its
   hundredth (``50%`` = ``50`` = ``0.5``), as in math-verify.
   When the gold is a plain number and the prediction an expression of exact constants only (numbers,
   ``\pi``, ``e``, ``i``, + - * / ^, ``\frac``, ``\sqrt``, ``\sin``/``\cos``/``\tan``, ``\exp``, ``\ln``),
   it is evaluated to 60 digits and matches if within 1e-40 of the gold: ``e^{i\pi}`` = ``-1``,
   ``\cos(\pi)`` = ``-1``. This only adds matches; any other answer goes on to math-verify.
3. Anything else goes to math-verify in a persistent worker process with a hard deadline; a side that
   is a plain number is handed over as its value (math-verify reads ``1 1/2`` as 1 and ``10\,000`` as
   0). math-verify's own timeout uses ``signal.alarm``, which works only in the main thread and cannot
   interrupt a long C-level computation such as ``9^{9^{9^9}}``; a worker that misses the deadline is
   killed and replaced, and the comparison is ``False``. Workers are started on first use, reused, and
   limited to 2 GiB of address space; verdicts are cached (GRPO repeats answers within a group).

Anti-hacking rules, each of which makes the comparison ``False``:

* A prediction that lists several answers (top-level ``,`` or ``;``, the words ``or``/``and``,
  ``\quad``, several ``$...$``/``\boxed`` blocks, numbers side by side with only space between them
  such as ``3 4`` or ``(11) 4/9``) never matches a gold answer that is a single value: math-verify
  would otherwise pick one candidate out of ``1, 2, 3, ..., 100``, or add ``3 4`` up to 7. Commas
  inside brackets (tuples, intervals, sets), thousands separators (``1,234``, ``10\,000``) and mixed
  numbers are not separators.
* A partial parse never decides a match: math-verify is asked for its LaTeX reading of the whole
  answer only, so an answer that does not parse as a whole (``3 +``, ``2^{10}?``) matches nothing,
  instead of the number math-verify's fallbacks would read out of it (``3``, ``2``); and a prediction
  with math outside its ``$...$`` or ``\boxed{}`` (``\boxed{3} + 1``) matches nothing, as math-verify
  would read only the delimited part. Only the first candidate that math-verify parses from each side
  is compared (its ``verify`` is ``True`` when *any* candidate pair matches, string fallbacks
  included); unparsed strings never match (identical answers matched in step 1).
* Digits must be ASCII: an answer written with other decimal digits (full-width ``１８``,
  Arabic-Indic ``١٨``) is not a number and matches nothing. Look-alike characters never earn credit;
  the one exception is the Unicode minus sign ``−``, read as ``-``.
* Answers longer than 1,000 characters match nothing.
* Given the question (``math_accuracy``'s ``question`` column), a prediction that is a verbatim piece
  of it holding an operation or prose (``\binom{6}{2}`` for "Compute $\binom{6}{2}$.", or the whole
  question) is a restatement, not an answer: math-verify would evaluate it to the gold value. A bare
  value copied from the question (``25``, ``(C)``) and the gold as the gold is written still count.
* With ``numbers_only`` (tasks whose question is an expression to evaluate), only a plain number is an
  answer: ``(9 + 32) * 12`` is the question again, not its value.

The worker processes run ``python -c`` with the same interpreter, so they work from any thread and need
no ``if __name__ == "__main__"`` guard in the caller's script; they are POSIX-only.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any, NamedTuple

from rlhub.errors import ConfigError
from rlhub.sandbox.workers import WorkerPool

from .parsing import ANSWER_MODES, boxed_span, completion_text, extract_answer, extract_boxed, split_gsm8k

log = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 1000
"""Answers (predicted or gold) longer than this never match: a real answer is never that long."""

DEFAULT_TIMEOUT = 2.0
"""Seconds math-verify may spend on one comparison before the worker is killed."""

POOL_SIZE = max(1, min(4, os.cpu_count() or 1))
"""The most worker processes the slow path runs at once."""

_WORKER_STARTUP_TIMEOUT = 120.0
_WORKER_MEMORY_BYTES = 2 * 1024**3
_SLOW_CACHE_SIZE = 4096

# ---------------------------------------------------------------------------------------------------
# Fast path: plain numbers, exactly.
# ---------------------------------------------------------------------------------------------------


class _Number(NamedTuple):
    value: Fraction
    decimal: bool
    percent: bool


_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textrm|textnormal|mathrm|mbox)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:! ]|~")
_LATEX_THOUSANDS = re.compile(r"(?<=\d)(?:,\\!|\{,\})(?=\d{3}(?!\d))")
"""MATH's thousands separators, ``5,\\!000`` and ``5{,}000``, which are one number, not a list."""
_ENCLOSING = re.compile(r"\$(.*)\$|\\\((.*)\\\)|\\\[(.*)\\\]|\\boxed\s*\{(.*)\}", re.DOTALL)
_ANSWER_PREFIX = re.compile(r"(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*[:=]?\s*|[A-Za-z]\s*=(?!=)\s*", re.IGNORECASE)
_CURRENCY = re.compile(r"([-+]?)\s*(?:\\\$|\$|€|£|¥)\s*")
_DEGREES = re.compile(r"\s*(?:\^\s*\{?\s*\\circ\s*\}?|°)$")
_PERCENT = re.compile(r"\s*\\?%$")
_UNIT_WORDS = re.compile(
    r"(?<=[0-9}%])\s*[A-Za-z]{2,}(?:\s*\^\s*\{?[23]\}?)?(?:\s+[A-Za-z]{2,}(?:\s*\^\s*\{?[23]\}?)?){0,2}$"
)
# Trailing words that change a value rather than name its unit ("5 pi" is not 5).
_VALUE_WORD = re.compile(
    r"\b(?:pi|sqrt|root|squared|cubed|times|over|plus|minus|and|or|percent|inf|infty|infinity"
    r"|hundreds?|thousands?|millions?|billions?|trillions?|dozens?|half|halves|thirds?|quarters?)\b",
    re.IGNORECASE,
)
_PLAIN_NUMBER = re.compile(
    r"""
    (?P<sign>[-+]?)\s*
    (?:
        (?P<mant>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)
        (?:[eE](?P<exp>[-+]?[0-9]{1,3})
          | \s*(?:\\times|\\cdot|×|\*)\s*10\s*\^\s*(?:\{\s*(?P<bexp>[-+]?[0-9]{1,3})\s*\}|(?P<dexp>[0-9])))
      | (?P<whole>[0-9]+)
        (?:[ ]+(?P<mnum>[0-9]+)[ ]*/[ ]*(?P<mden>[0-9]+)
          | [ ]*\\[dt]?frac\s*(?:\{\s*(?P<fnum>[0-9]+)\s*\}|(?P<fnum1>[0-9]))
                          \s*(?:\{\s*(?P<fden>[0-9]+)\s*\}|(?P<fden1>[0-9])))
      | (?P<int>[1-9][0-9]{0,2}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<frac>[0-9]*))?
      | \.(?P<dec>[0-9]+)
      | \\[dt]?frac\s*(?:\{\s*(?P<num>[-+]?[0-9]+)\s*\}|(?P<num1>[0-9]))
                  \s*(?:\{\s*(?P<den>[-+]?[0-9]+)\s*\}|(?P<den1>[0-9]))
      | (?P<snum>[0-9]+)\s*/\s*(?P<sden>[0-9]+)
    )
    """,
    re.VERBOSE,
)
_PLAIN_MAX_CHARS = 200


def _plain_number(text: str) -> _Number | None:
    """The value of ``text`` if it is one plain number (see the module docstring), else ``None``."""
    if len(text) > _PLAIN_MAX_CHARS:
        return None
    text = _SPACING.sub(" ", _TEXT_COMMAND.sub(r" \1 ", _LATEX_THOUSANDS.sub(",", text))).replace("{,}", ",").strip()
    for _ in range(3):
        enclosed = _ENCLOSING.fullmatch(text)
        if enclosed is None:
            break
        text = next(g for g in enclosed.groups() if g is not None).strip()
    prefix = _ANSWER_PREFIX.match(text)
    if prefix:
        text = text[prefix.end() :]
    text = text.rstrip(". ")
    currency = _CURRENCY.match(text)
    if currency:
        text = currency.group(1) + text[currency.end() :]
    units = _UNIT_WORDS.search(text)
    if units and not _VALUE_WORD.search(units.group()):
        text = text[: units.start()]
    text = _DEGREES.sub("", text)
    percent = _PERCENT.search(text)
    if percent:
        text = text[: percent.start()]
    number = _PLAIN_NUMBER.fullmatch(text.strip())
    if number is None:
        return None
    sign = -1 if number["sign"] == "-" else 1
    if number["mant"] is not None:  # scientific notation: exact (6 decimal places would make 1.0e-7 equal 0)
        exponent = int(number["exp"] or number["bexp"] or number["dexp"])
        value, decimal = Fraction(number["mant"]) * Fraction(10) ** exponent, False
    elif number["whole"] is not None:  # a mixed number: 1 1/2 or 1\frac{1}{2}, never 1 or 1 * 1/2
        numerator = int(number["mnum"] or number["fnum"] or number["fnum1"])
        denominator = int(number["mden"] or number["fden"] or number["fden1"])
        if numerator >= denominator:  # 11 7/6 and 4 4/0 are no mixed numbers: no value at all
            return None
        value, decimal = int(number["whole"]) + Fraction(numerator, denominator), False
    elif number["int"] is not None:
        value = Fraction(number["int"].replace(",", "") + "." + (number["frac"] or "0"))
        decimal = bool(number["frac"])
    elif number["dec"] is not None:
        value, decimal = Fraction("0." + number["dec"]), True
    else:
        numerator = int(number["num"] or number["num1"] or number["snum"])
        denominator = int(number["den"] or number["den1"] or number["sden"])
        if denominator == 0:
            return None
        value, decimal = Fraction(numerator, denominator), False
    return _Number(sign * value, decimal, percent is not None)


def _numbers_equal(a: _Number, b: _Number) -> bool:
    def close(x: Fraction, y: Fraction, decimal: bool) -> bool:
        return x == y or (decimal and round(x, 6) == round(y, 6))

    decimal = a.decimal or b.decimal
    if a.percent == b.percent:
        return close(a.value, b.value, decimal)
    pct, other = (a, b) if a.percent else (b, a)
    return close(pct.value, other.value, decimal) or close(pct.value / 100, other.value, decimal)


# ---------------------------------------------------------------------------------------------------
# Fast path: expressions of exact constants (e^{i\pi}, \cos(\pi), 2\sqrt{2}^2) against a plain-number gold.
# ---------------------------------------------------------------------------------------------------

_CONSTANT_TOKEN = re.compile(
    r"\s*(?:(?P<number>[0-9]+(?:\.[0-9]+)?)|(?P<command>\\[A-Za-z]+)|(?P<symbol>[-+*/^(){}\[\]×·π])|(?P<letter>[ei]))"
)
_CONSTANT_FUNCTIONS = frozenset({"sin", "cos", "tan", "cot", "sec", "csc", "exp", "ln", "log", "sqrt"})
_CONSTANT_NOISE = re.compile(r"\\left(?![A-Za-z])|\\right(?![A-Za-z])|\\[,;:! ]|\\mathrm\s*\{\s*([ei])\s*\}|\$")
_CONSTANT_PRECISION = 60
"""Decimal digits the constant expression is evaluated to; it matches within 1e-40 of the gold, relatively."""


class _ConstantParser:
    r"""A recursive-descent reader of LaTeX built only of numbers, ``\pi``, ``e``, ``i``, + - * / ^,
    ``\frac``, ``\sqrt`` and the elementary functions; ``parse`` returns an mpmath number or raises ValueError."""

    def __init__(self, text: str, mp: Any) -> None:
        self.mp = mp
        self.tokens: list[str] = []
        position, text = 0, _CONSTANT_NOISE.sub(lambda m: m.group(1) or " ", text).strip()
        while position < len(text):
            match = _CONSTANT_TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise ValueError("not a constant expression")
            self.tokens.append(match.group().strip())
            position = match.end()
        self.tokens = [t for t in self.tokens if t]
        self.position = 0

    def parse(self) -> Any:
        value = self.sum()
        if self.position != len(self.tokens):
            raise ValueError("trailing input")
        return value

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ValueError(f"expected {expected}")
        self.position += 1
        return token

    def sum(self) -> Any:
        value = self.product()
        while self.peek() in ("+", "-"):
            value = value + self.product() if self.take() == "+" else value - self.product()
        return value

    def product(self) -> Any:
        value = self.signed()
        while True:
            token = self.peek()
            if token in ("*", "/", "\\times", "\\cdot", "×", "·", "\\div"):
                self.take()
                right = self.signed()
                value = value / right if token in ("/", "\\div") else value * right
            elif token is not None and token not in ("+", "-", ")", "}", "]", "^"):
                if self.tokens[self.position - 1][0].isdigit() and (token[0].isdigit() or "frac" in token):
                    # "2 3" and "2\frac{1}{2}" are no products: a list, or a mixed number (read elsewhere).
                    raise ValueError("numbers side by side")
                value = value * self.power()  # implicit: 2\pi, i\pi
            else:
                return value

    def signed(self) -> Any:
        if self.peek() in ("+", "-"):
            return -self.signed() if self.take() == "-" else self.signed()
        return self.power()

    def power(self) -> Any:
        base = self.atom()
        if self.peek() != "^":
            return base
        self.take()
        exponent = self.signed() if self.peek() in ("+", "-") else self.power()
        if abs(exponent) > 10_000:
            raise ValueError("exponent too large")
        return self.mp.power(base, exponent)

    def group(self) -> Any:
        closing = {"(": ")", "{": "}", "[": "]"}[self.take()]
        value = self.sum()
        self.take(closing)
        return value

    def argument(self) -> Any:
        r"""A function's argument: a braced or bracketed group, or one atom with its power (``\cos \pi``)."""
        return self.power() if self.peek() not in ("(", "{", "[") else self.group_with_power()

    def group_with_power(self) -> Any:
        value = self.group()
        if self.peek() == "^":
            self.take()
            value = self.mp.power(value, self.power())
        return value

    def atom(self) -> Any:
        token = self.peek()
        if token is None:
            raise ValueError("unexpected end")
        if token in ("(", "{", "["):
            return self.group()
        self.take()
        if token[0].isdigit():
            return self.mp.mpf(token)
        if token in ("\\pi", "π"):
            return self.mp.pi
        if token == "e":
            return self.mp.e
        if token == "i":
            return self.mp.mpc(0, 1)
        name = token[1:]
        if name in ("frac", "dfrac", "tfrac"):
            numerator = self.group()
            return numerator / self.group()
        if name == "sqrt":
            if self.peek() == "[":
                root = self.group()
                if root != int(root):
                    raise ValueError("a root's index must be an integer")
                return self.mp.root(self.argument(), int(root))
            return self.mp.sqrt(self.argument())
        if name in _CONSTANT_FUNCTIONS:
            function = {"ln": self.mp.log, "log": self.mp.log}.get(name) or getattr(self.mp, name)
            return function(self.argument())
        raise ValueError(f"unknown token {token}")


def _equals_constant_expression(pred: str, gold: Fraction) -> bool:
    """Whether ``pred``, an expression of exact constants only, evaluates to ``gold`` (to 40 digits).

    Free letters other than ``e`` and ``i`` (``x``, ``\alpha``) make it no constant expression: then the
    answer is left to math-verify, as are answers this reader gets wrong (it only ever adds a match).
    """
    if len(pred) > _PLAIN_MAX_CHARS or not any(c in pred for c in "\\eiπ"):
        return False
    import mpmath  # sympy's dependency, imported only when an answer needs it

    with mpmath.workdps(_CONSTANT_PRECISION):
        try:
            value = _ConstantParser(pred, mpmath).parse()
            target = mpmath.mpf(gold.numerator) / gold.denominator
            if not (mpmath.isfinite(value) if not isinstance(value, mpmath.mpc) else mpmath.isfinite(abs(value))):
                return False
            return bool(abs(value - target) <= mpmath.mpf(10) ** -40 * max(1, abs(target)))
        except (ValueError, TypeError, ZeroDivisionError, OverflowError, KeyError, AttributeError):
            return False


# ---------------------------------------------------------------------------------------------------
# Guards shared by both paths.
# ---------------------------------------------------------------------------------------------------

_THOUSANDS_COMMA = re.compile(r"(?<![0-9.])[1-9][0-9]{0,2}(?:,[0-9]{3})+(?![0-9])")
"""``1,234`` and ``12,345,678``: one number. A group that starts with 0 (``0,500``) is not a thousands group."""
_SEPARATOR_WORD = re.compile(r"\b(?:or|and)\b|\\(?:lor|vee|quad|qquad)(?![A-Za-z])", re.IGNORECASE)
_DOLLAR = re.compile(r"(?<!\\)\$\$?")
_TOP_LEVEL_TOKEN = re.compile(r"\\langle|\\rangle|[][(){},;]")
_OPENERS = frozenset({"(", "[", "{", "\\langle"})
_CLOSERS = frozenset({")", "]", "}", "\\rangle"})
_SIDE_BY_SIDE = re.compile(r"(?:(?<![0-9_^.])[0-9]+(?:\.[0-9]+)?|\))(?:\s|\\[,;: ]|~)+[0-9]")
"""Numbers with only space between them (``3 4``, ``11.0 4/9``, ``(11) 4/9``), which math-verify would add
up; a sub- or superscript digit is no number of its own (``\\log_2 8``)."""
_DELIMITED = re.compile(r"(?<!\\)\$\$?.*?(?<!\\)\$\$?|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)
_MATH_CHARACTER = re.compile(r"[0-9+\-*/^]")
_UNIT_POWER = re.compile(r"[A-Za-z]{2,}\s*\^\s*\{?[23]\}?")


def _lists_several_answers(text: str) -> bool:
    """Whether ``text`` offers more than one answer (``3, 4``, ``3 or 4``, ``$3$ $4$``, ``3 4``)."""
    text = _LATEX_THOUSANDS.sub(",", text)
    if _SEPARATOR_WORD.search(text):
        return True
    if len(_DOLLAR.findall(text)) > 2 or text.count("\\(") > 1 or text.count("\\[") > 1:
        return True
    if text.count("\\boxed") > 1:
        return True
    if _SIDE_BY_SIDE.search(text):
        return True
    depth = 0
    for token in _TOP_LEVEL_TOKEN.findall(_THOUSANDS_COMMA.sub(lambda m: m.group().replace(",", ""), text)):
        if token in _OPENERS:
            depth += 1
        elif token in _CLOSERS:
            depth -= 1
        elif depth == 0:
            return True
    return False


def _has_math_outside_delimiters(text: str) -> bool:
    r"""Whether ``text`` delimits part of itself as math (``$...$``, ``\boxed{...}``) and has more math outside.

    math-verify reads only the delimited part: ``\boxed{3} + 1`` would be 3. Prose around it
    (``The answer is $3$``) is fine.
    """
    span = boxed_span(text)
    if span is not None:
        start, end = text.rfind("\\boxed", 0, span[0]), span[1]
        if text.startswith("}", end):  # \boxed{3}, not \boxed 3
            end += 1
        text = f"{text[:start]} {text[end:]}"
    outside = _DELIMITED.sub(" ", text)
    return (span is not None or outside != text) and _MATH_CHARACTER.search(_UNIT_POWER.sub("", outside)) is not None


_RESTATEMENT_NOISE = re.compile(r"\s+|\$|\\left(?![A-Za-z])|\\right(?![A-Za-z])|\\[,;:!]")
_OPERATION = re.compile(r"[-+*/^!=<>]|\\[A-Za-z]+")
_PROSE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")
_STYLED_COMMAND = re.compile(r"\\[dt](frac|binom)(?![A-Za-z])")


def _canonical(text: str) -> str:
    return _STYLED_COMMAND.sub(r"\\\1", _RESTATEMENT_NOISE.sub("", text))


def _restates_question(pred: str, gold: str, question: str) -> bool:
    """Whether ``pred`` is a verbatim piece of ``question`` holding an operation or prose, and not the gold.

    A bare value (``25``, ``0.25``, ``(C)``) copied from the question may well be the answer; an expression
    or a sentence copied from it is the question again, which math-verify would evaluate.
    """
    canonical = _canonical(pred)
    if canonical == _canonical(gold) or not (_OPERATION.search(canonical.lstrip("+-")) or _PROSE.search(pred)):
        return False
    return canonical in _canonical(question)


def _has_foreign_digits(text: str) -> bool:
    return not text.isascii() and any(c.isdecimal() and not c.isascii() for c in text)


_IDENTITY_NOISE = re.compile(r"\\left(?![A-Za-z])|\\right(?![A-Za-z])|(?<!\\)\$")
_SPACE_BESIDE_SYMBOL = re.compile(r" ?([^\w ]) ?")


def _identity_form(text: str) -> str:
    r"""``text`` with what never changes an answer's meaning taken out: ``$``, ``\left``, an enclosing
    ``\boxed{}``, ``\dfrac``/``\tfrac`` (and ``\dbinom``), and space that does not separate two words."""
    span = boxed_span(text)
    if span is not None and text.rfind("\\boxed") == 0 and span[1] + 1 == len(text):
        text = text[span[0] : span[1]]
    text = _STYLED_COMMAND.sub(r"\\\1", _IDENTITY_NOISE.sub("", text))
    return _SPACE_BESIDE_SYMBOL.sub(r"\1", " ".join(text.split()))


def _quick_verdict(pred: str, gold: str) -> bool | None:
    """``True``/``False`` when decidable without math-verify, else ``None`` (ask the slow path)."""
    if not pred or not gold or len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return False
    if _has_foreign_digits(pred) or _has_foreign_digits(gold):
        return False
    pred_number, gold_number = _plain_number(pred), _plain_number(gold)
    if pred_number is not None and gold_number is not None:
        return _numbers_equal(pred_number, gold_number)
    if _identity_form(pred) == _identity_form(gold):
        return True
    if pred_number is None:
        if _lists_several_answers(pred) and (gold_number is not None or not _lists_several_answers(gold)):
            return False
        if _has_math_outside_delimiters(pred):
            return False
        if gold_number is not None and _equals_constant_expression(pred, gold_number.value):
            return True
    return None


_OTHER_SPACE = re.compile(r"[^\S\n\r\t]")
"""No-break and thin spaces (U+00A0, U+2009, U+202F, ...), read as a plain space."""
_UPRIGHT_CONSTANT = re.compile(r"\\(?:mathrm|textrm|text|mathit|operatorname)\s*\{\s*([ei])\s*\}")
r"""``\mathrm{e}`` and ``\mathrm{i}``: the constants, which math-verify would strip as a trailing unit."""
_DIGIT_GROUP_SPACE = r"(?: |\\[,;: ]|~)"
_SPACED_THOUSANDS = re.compile(
    rf"(?<![0-9.,])[1-9][0-9]{{0,2}}(?:{_DIGIT_GROUP_SPACE}[0-9]{{3}})+(?![0-9/]|{_DIGIT_GROUP_SPACE}[0-9]{{3}}(?![0-9]))"
)
r"""``10 000``, ``10\,000``, ``1~234~567``: one number when every group after the first has 3 digits."""
_CLOSING_MATH = re.compile(r"(?:\s|(?<!\\)\$|\\[)\]]|(?<!\\)\})*\Z")
_TRAILING_SPACING = re.compile(r"(?:\\[,;:! ]|~)\Z")


def _strip_trailing_punctuation(text: str) -> str:
    r"""``text`` without the sentence's ``.``, ``,`` or ``;`` after the answer, inside or after its math
    delimiters (``\sqrt{2}.``, ``$2^{10}.$``, ``\boxed{5}.``); an ellipsis (``0.333...``) is kept."""
    for _ in range(4):
        if text[-1:] not in ".,;:!$})]~":  # most answers end in a digit or a letter
            break
        end = _CLOSING_MATH.search(text).start()
        spacing = _TRAILING_SPACING.search(text, 0, end)
        if spacing is not None:
            text = text[: spacing.start()] + text[end:]
        elif end > 0 and text[end - 1] in ".,;" and text[end - 2 : end - 1] not in (".", "\\"):
            text = text[: end - 1] + text[end:]
        else:
            break
    return text.strip()


def _normalize_input(text: Any) -> str:
    try:
        text = "" if text is None else str(text)
    except Exception:
        return ""
    text = text.replace("\u2212", "-").strip()
    if len(text) > MAX_ANSWER_CHARS:  # never matches; spare the regexes below a megabyte
        return text
    if not text.isascii():
        text = _OTHER_SPACE.sub(" ", text)
    if "\\" in text:
        text = _UPRIGHT_CONSTANT.sub(r"\1", text)
    text = _SPACED_THOUSANDS.sub(lambda m: re.sub(r"[^0-9]", "", m.group()), text)
    return _strip_trailing_punctuation(text)


def _math_verify_form(text: str) -> str:
    r"""What math-verify is given: a plain number as its value (it reads ``1 1/2`` as 1, ``10\,000`` as 0),
    anything else as it is."""
    number = _plain_number(text)
    if number is None:
        return text
    value = abs(number.value)
    if value.denominator == 1:
        digits = str(value.numerator)
    elif number.decimal:  # a decimal stays one, so that math-verify rounds it as it rounds decimals
        with localcontext() as context:
            context.prec = _PLAIN_MAX_CHARS
            digits = format(Decimal(value.numerator) / value.denominator, "f")
    else:
        digits = rf"\frac{{{value.numerator}}}{{{value.denominator}}}"
    return ("-" if number.value < 0 else "") + digits + (r"\%" if number.percent else "")


# ---------------------------------------------------------------------------------------------------
# Slow path: math-verify in worker processes with a hard deadline.
# ---------------------------------------------------------------------------------------------------


def _as_math(text: str) -> str:
    """Delimit ``text`` as one LaTeX expression, so math-verify parses the whole answer, not a piece."""
    if _DOLLAR.search(text) or "\\(" in text or "\\[" in text or "\\boxed" in text:
        return text
    return f"${text}$"


def _math_verify_equal(pred: str, gold: str) -> bool:
    """math-verify's verdict on the two whole answers (run in a worker).

    Only LaTeX extraction is used, and only its first match: when the answer does not parse as a whole,
    math-verify's fallbacks would read a number out of it (``2`` out of ``2^{10}.``, ``3`` out of
    ``3 +``), and its string fallback compares such leftovers. Unparsed answers match nothing here
    (identical ones were matched before the slow path).
    """
    from math_verify import LatexExtractionConfig, parse, verify

    def expression(text: str) -> Any:
        parsed = parse(_as_math(text), [LatexExtractionConfig()], extraction_mode="first_match", parsing_timeout=None)
        return next((p for p in parsed if not isinstance(p, str)), None)

    gold_expr, pred_expr = expression(gold), expression(pred)
    return gold_expr is not None and pred_expr is not None and verify(gold_expr, pred_expr, timeout_seconds=None)


def _serve() -> None:
    """A worker's main loop: read ``[pred, gold]`` JSON lines on stdin, answer ``1`` or ``0`` lines."""
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY_BYTES, _WORKER_MEMORY_BYTES))
    except (ValueError, OSError):
        pass
    # Keep the protocol on a private copy of stdout so that stray prints from sympy cannot corrupt it.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    logging.disable(logging.CRITICAL)
    import math_verify  # noqa: F401 - import before announcing readiness, so startup is off the clock

    replies.write(b"ready\n")
    replies.flush()
    for line in sys.stdin.buffer:
        try:
            pred, gold = json.loads(line)
            equal = _math_verify_equal(pred, gold)
        except Exception:
            equal = False
        replies.write(b"1\n" if equal else b"0\n")
        replies.flush()


class _Worker:
    """One math-verify worker process, used by one caller at a time."""

    def __init__(self) -> None:
        module = __name__ if __name__ != "__main__" else "rlhub.rewards.math"
        env = dict(os.environ)
        # The parent's path, so the child imports this module under the same name (doctest, scripts).
        env["PYTHONPATH"] = os.pathsep.join(p for p in [*sys.path, env.get("PYTHONPATH", "")] if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"from {module} import _serve; _serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            # `python -c` puts its working directory first on sys.path: start from one that holds no
            # module that could shadow math_verify or sympy (a caller's cwd may).
            cwd=os.path.abspath(os.sep),
        )
        self._buffer = b""
        self._ready = False
        # poll, not select: select fails on descriptors above 1024, common in a training process.
        self._poller = select.poll()
        self._poller.register(self.proc.stdout.fileno(), select.POLLIN)

    def _read_line(self, deadline: float) -> bytes | None:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._poller.poll(remaining * 1000):
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def ask(self, pred: str, gold: str, timeout: float) -> bool | None:
        """The worker's verdict, or ``None`` if it died or missed the deadline (then kill it)."""
        if not self._ready:
            if self._read_line(time.monotonic() + _WORKER_STARTUP_TIMEOUT) != b"ready":
                log.warning("a math-verify worker failed to start; comparisons on the slow path score 0")
                return None
            self._ready = True
        try:
            self.proc.stdin.write(json.dumps([pred, gold]).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            return None
        reply = self._read_line(time.monotonic() + timeout)
        return None if reply is None else reply == b"1"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:  # unflushed input to a dead worker
                pass


class _WorkerPool(WorkerPool[_Worker]):
    """Up to ``size`` math-verify workers (the shared pool of ``rlhub.sandbox.workers``); a worker that
    times out is replaced."""

    def start_worker(self) -> _Worker:
        return _Worker()

    def stop_worker(self, worker: _Worker) -> None:
        worker.kill()

    def equal(self, pred: str, gold: str, timeout: float) -> bool:
        """The verdict of a worker; ``False`` on timeout. A worker found dead is replaced and asked again."""
        for _ in range(2):
            try:
                worker = self.acquire()
            except OSError as exc:
                log.warning("cannot start a math-verify worker (%s); scoring the comparison False", exc)
                return False
            try:
                verdict = worker.ask(pred, gold, timeout)
            except Exception as exc:
                log.warning("math-verify worker failed (%s: %s); replacing it", type(exc).__name__, exc)
                verdict = None
            except BaseException:
                self.release(worker, healthy=False)
                raise
            died = verdict is None and worker.proc.poll() is not None
            self.release(worker, healthy=verdict is not None)
            if not died:
                return bool(verdict)
        return False


_POOL = _WorkerPool(POOL_SIZE, name="math-verify worker")
atexit.register(_POOL.close, wait=False)


@functools.lru_cache(maxsize=_SLOW_CACHE_SIZE)
def _slow_equal(pred: str, gold: str, timeout: float) -> bool:
    # GRPO samples many completions per prompt, so the same (pred, gold) pair recurs within a batch.
    return _POOL.equal(pred, gold, timeout)


# ---------------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------------


def math_equal(pred: str, gold: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    r"""Whether the predicted answer equals the gold answer mathematically.

    Plain numbers are compared exactly without sympy; anything else goes to math-verify in a worker
    process killed after ``timeout`` seconds. See the module docstring for what counts as a plain
    number and for the anti-hacking rules (a list of candidates never matches a single gold value).

    Args:
        pred: The model's answer, already extracted from the completion (e.g. an ``<answer>`` block).
        gold: The reference answer.
        timeout: Seconds math-verify may spend on this comparison; on timeout the answer is ``False``.

    Returns:
        ``True`` when the answers are equivalent; ``False`` otherwise, including for malformed input.

    Example:
        >>> math_equal("$1,000", "1000"), math_equal(r"\dfrac{1}{2}", "0.5"), math_equal("50%", "0.5")
        (True, True, True)
        >>> math_equal("1, 2, 3, 4, 5", "3"), math_equal("x = 3 or x = 4", "3")
        (False, False)
    """
    pred, gold = _normalize_input(pred), _normalize_input(gold)
    verdict = _quick_verdict(pred, gold)
    if verdict is not None:
        return verdict
    return _slow_equal(_math_verify_form(pred), _math_verify_form(gold), float(timeout))


def math_equal_batch(pairs: Iterable[tuple[str, str]], timeout: float = DEFAULT_TIMEOUT) -> list[bool]:
    r""":func:`math_equal` over many ``(pred, gold)`` pairs, the slow ones run on all workers at once.

    Args:
        pairs: ``(pred, gold)`` answer pairs.
        timeout: Seconds math-verify may spend on each comparison.

    Returns:
        One verdict per pair, in order.

    Example:
        >>> math_equal_batch([("18", "18.00"), (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt 2}"), ("7", "8")])
        [True, True, False]
    """
    normalized = [(_normalize_input(p), _normalize_input(g)) for p, g in pairs]
    verdicts = [_quick_verdict(p, g) for p, g in normalized]
    slow = [i for i, v in enumerate(verdicts) if v is None]
    forms = {i: (_math_verify_form(normalized[i][0]), _math_verify_form(normalized[i][1])) for i in slow}
    if len(slow) == 1:
        verdicts[slow[0]] = _slow_equal(*forms[slow[0]], float(timeout))
    elif slow:
        with ThreadPoolExecutor(max_workers=min(_POOL.size, len(slow))) as pool:
            slow_verdicts = pool.map(lambda i: _slow_equal(*forms[i], float(timeout)), slow)
            for i, verdict in zip(slow, slow_verdicts):
                verdicts[i] = verdict
    return [bool(v) for v in verdicts]


def gold_answer(answer: Any) -> str | None:
    r"""The final answer in a gold column: the text after GSM8K's ``####`` or in MATH's last ``\boxed{}``.

    Args:
        answer: A gold answer or a full reference solution; ``None`` when the row has none.

    Returns:
        The answer string, or ``None`` for a missing answer.

    Example:
        >>> gold_answer("She pays 500 + 500 = 1,000 dollars.\n#### 1,000"), gold_answer(r"So \boxed{\frac12}.")
        ('1,000', '\\frac12')
    """
    if answer is None:
        return None
    text = str(answer)
    gsm8k = split_gsm8k(text)
    if gsm8k is not None:
        return gsm8k[1]
    boxed = extract_boxed(text)
    return boxed if boxed is not None else text.strip()


def math_accuracy(
    completions: Sequence[Any],
    answer: Sequence[Any],
    answer_format: str = "tags",
    question: Sequence[str | None] | None = None,
    numbers_only: bool = False,
    **kwargs: Any,
) -> list[float | None]:
    r"""1.0 when the completion's final answer equals the gold answer, else 0.0.

    The answer is read after the reasoning (:func:`~rlhub.rewards.parsing.strip_think`) from the single
    ``<answer>`` block (``answer_format="tags"``) or the last ``\boxed{}`` (``"boxed"``). Gold answers
    may be full GSM8K or MATH solutions (see :func:`gold_answer`).

    Args:
        completions: Completions (strings or chat-message lists).
        answer: The gold column, aligned with ``completions``; a ``None`` gold gives ``None``.
        answer_format: ``"tags"`` or ``"boxed"``.
        question: The question column, or ``None``: an answer copied from the question with an operation
            in it (its expression, or the whole question) scores 0.0, unless it is the gold as written.
        numbers_only: Only a plain number is an answer (see the module docstring): for tasks that ask
            for the value of an expression, so that the expression itself earns nothing.
        **kwargs: Other dataset columns (ignored).

    Returns:
        1.0 or 0.0 per completion (``None`` where the gold answer is missing).

    Example:
        >>> math_accuracy(["<think>2 + 2</think><answer>4</answer>", "<answer>5</answer>"], answer=["4", "4"])
        [1.0, 0.0]
        >>> math_accuracy([r"\boxed{\frac{1}{2}}"], answer=["#### 0.5"], answer_format="boxed")
        [1.0]
        >>> asked = [r"Compute $\binom{6}{2}$."]
        >>> math_accuracy([r"\boxed{\binom{6}{2}}"], answer=["15"], answer_format="boxed", question=asked)
        [0.0]
        >>> math_accuracy(["<answer>3 * 4 + 5</answer>", "<answer>17</answer>"], answer=["17", "17"], numbers_only=True)
        [0.0, 1.0]
    """
    verdicts = _correctness(completions, answer, answer_format, question, numbers_only)
    return [None if v is None else float(v) for v in verdicts]


def _correctness(
    completions: Sequence[Any],
    answer: Sequence[Any],
    answer_format: str,
    question: Sequence[str | None] | None = None,
    numbers_only: bool = False,
) -> list[bool | None]:
    """Per completion: whether its answer is right, or ``None`` when there is no gold answer."""
    if answer_format not in ANSWER_MODES:
        raise ConfigError(f"answer_format must be one of {ANSWER_MODES}, got {answer_format!r}")
    golds = [gold_answer(a) for a in answer]
    preds = [extract_answer(completion_text(c), answer_format) for c in completions]
    if len(golds) != len(preds):
        raise ValueError(f"got {len(preds)} completions but {len(golds)} answers")
    questions = [None] * len(preds) if question is None else list(question)

    def gradable(i: int) -> bool:
        pred, gold, asked = preds[i], golds[i], questions[i]
        if pred is None or gold is None:
            return False
        if numbers_only and _plain_number(_normalize_input(pred)) is None:
            return False
        return not (isinstance(asked, str) and _restates_question(pred, gold, asked))

    graded = [i for i in range(len(preds)) if gradable(i)]
    verdicts = dict(zip(graded, math_equal_batch([(preds[i], golds[i]) for i in graded])))
    return [None if g is None else verdicts.get(i, False) for i, g in enumerate(golds)]
