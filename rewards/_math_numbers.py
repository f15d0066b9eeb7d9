r"""The fast path of :func:`rlhub.rewards.math.math_equal`: plain numbers, exactly, and expressions of exact constants.

:func:`_plain_number` reads one plain number (``18``, ``1,234``, ``\frac{1}{2}``, ``50%``, ``1 1/2``, ``2\times10^{3}``,
``x = 5``, ``18 dollars``) as a :class:`fractions.Fraction`, without sympy; :func:`_equals_constant_expression`
evaluates an expression of exact constants (``e^{i\pi}``, ``\cos(\pi)``) to 60 digits against a plain-number gold.
The module docstring of :mod:`rlhub.rewards.math` says what counts as a plain number.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, NamedTuple

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
