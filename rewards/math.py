r"""Math answer equivalence (``math_equal``) and the ``math_accuracy`` reward.

``math_equal(pred, gold)`` first reads both answers the same way:

* No-break and thin spaces (U+00A0, U+2009, U+202F) are plain spaces.
* Digit groups separated by a space, ``\,``, ``\;``, ``\:``, ``\ `` or ``~`` are one number when the first
  group has 1 to 3 digits (not starting with 0) and every later group exactly 3: ``10\,000`` = ``10 000``
  = ``10000``, ``1 234 567`` = ``1234567``; ``12 34`` is two numbers. The same holds for commas:
  ``1,234`` is one number, while ``0,500`` is not a thousands group (it is not 500, nor 0.5: a comma
  between numbers separates answers, so a decimal comma is not read).
* Markdown emphasis around the whole answer (``**16**``, ``__16__``, ``*16*``) is layout and is dropped.
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

This module holds the guards, the reading of both answers and the public API; the fast path is in
``_math_numbers.py``, the math-verify workers in ``_math_workers.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, localcontext
from typing import Any

from rlhub.errors import ConfigError

from ._math_numbers import (
    _LATEX_THOUSANDS,
    _PLAIN_MAX_CHARS,
    _equals_constant_expression,
    _numbers_equal,
    _plain_number,
)
from ._math_workers import _DOLLAR, _POOL, _slow_equal
from ._math_workers import POOL_SIZE as POOL_SIZE  # re-exported: the slow path's worker count, read by bench/
from .format import boxed_format, think_answer_format
from .parsing import ANSWER_MODES, boxed_span, completion_text, extract_answer, extract_boxed, split_gsm8k
from .rubric import ReferenceCheck, Rubric

MAX_ANSWER_CHARS = 1000
"""Answers (predicted or gold) longer than this never match: a real answer is never that long."""

DEFAULT_TIMEOUT = 2.0
"""Seconds math-verify may spend on one comparison before the worker is killed."""

MATH_VERIFY_CHECK = ReferenceCheck(
    reference="math-verify",
    test="tests/test_math_audit.py",
    differences={
        "trailing punctuation": r"math-verify parses ``\boxed{\sqrt{2}.}`` as nothing and ``\boxed{7^{3}.}`` as 7; "
        "the sentence's full stop is not part of the answer",
        "spaced thousands": r"math-verify reads ``10\,000`` and ``10 000`` as 10*0; "
        "groups of 3 digits after a space are one number",
        "mixed number": "math-verify's LaTeX reader takes ``2 1/3`` for (2 + 1)/3 = 1; a mixed number a b/c is a + b/c",
        "upright constant": r"math-verify strips a trailing ``\mathrm{i}`` or ``\mathrm{e}`` as a unit, so "
        r"``7\mathrm{i}`` equals 7; they are the constants i and e",
        "exact constant": r"math_equal evaluates exact constants against a number gold (``e^{i\pi}`` = -1); "
        "math-verify does not simplify them",
    },
)
"""Where ``math_equal`` decides otherwise than math-verify, on purpose (and, by the cross-check, nowhere else)."""

# ---------------------------------------------------------------------------------------------------
# Guards shared by both paths.
# ---------------------------------------------------------------------------------------------------

_THOUSANDS_COMMA = re.compile(r"(?<![0-9.])[1-9][0-9]{0,2}(?:,[0-9]{3})+(?![0-9])")
"""``1,234`` and ``12,345,678``: one number. A group that starts with 0 (``0,500``) is not a thousands group."""
_SEPARATOR_WORD = re.compile(r"\b(?:or|and)\b|\\(?:lor|vee|quad|qquad)(?![A-Za-z])", re.IGNORECASE)
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
    return _strip_trailing_punctuation(_strip_emphasis(text))


_EMPHASIS = re.compile(r"(\*\*|__)(?P<inner>(?:(?!\1).)+)\1|\*(?P<single>[^*]+)\*", re.DOTALL)


def _strip_emphasis(text: str) -> str:
    """The answer without markdown emphasis around all of it (``**16**``, ``__16__``, ``*16*``): chat models
    bold their final answer, and the emphasis is layout, not part of the value. Stars inside an answer
    (``2*3``) are left alone, as is emphasis around a part of it."""
    for _ in range(2):  # ***16*** is bold and italic
        match = _EMPHASIS.fullmatch(text)
        if match is None:
            break
        text = (match["inner"] if match["inner"] is not None else match["single"]).strip()
    return text


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


math_accuracy.reference_check = MATH_VERIFY_CHECK


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


def math_rubric(answer_format: str, format_weight: float, numbers_only: bool = False) -> Rubric:
    """``correct`` (math equivalence of the extracted answer, weight 1) + ``format`` (layout).

    ``correct`` reads the examples' ``question`` column when they have one, so that restating the
    question earns nothing; ``numbers_only`` accepts only plain numbers (see ``math_accuracy``).
    """

    def correct(completions, answer, question=None, **kwargs):
        return math_accuracy(
            completions, answer=answer, answer_format=answer_format, question=question, numbers_only=numbers_only
        )

    correct.reference_check = MATH_VERIFY_CHECK  # env cards list where it differs from math-verify
    fmt = boxed_format if answer_format == "boxed" else think_answer_format
    return Rubric({"correct": (correct, 1.0), "format": (fmt, format_weight)})
