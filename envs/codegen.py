"""codegen: procedurally generated small Python functions to write, checked by generated asserts.

Task: write one function, named and typed in the prompt (reverse the words of a string, count
vowels, rotate a list, Caesar-shift letters, merge intervals, ...). Each family is a reference
solution plus a generator of random arguments; the expected outputs come from running the reference
on them, so the data is unlimited, offline and exact. Difficulty 1 draws from five simple families on
short inputs; 2 adds five more and longer inputs with edge cases (empty lists, negative numbers,
messy spacing); 3 adds five harder families and larger inputs. Example ``i`` comes from its own RNG,
so (seed, index) reproduces it.

Tests are ``num_tests`` assert lines that call the function; the prompt shows the first two as
examples. They compare with ``_same``, which demands exactly the expected types all the way down
(``True`` for ``1`` fails). Each becomes a call, whose result comes back from the sandbox through a
strict serializer, and a ``_same`` check made outside the sandbox (:mod:`rlhub.sandbox.checks`), so
neither the expected values nor the comparison are within a solution's reach.

Reward trust: ``rlhub validate`` tries 48 forged solutions on 4 tasks (frame walking and gc scans for
a pass token, always-equal objects, lying subclasses, patched test helpers) and 48 always-equal
objects with rebound builtins, besides the early-exit, fake-output and patched-builtins probes: all
earn 0.

Output format: reasoning in ``<think>...</think>``, then the function in one ```python block.

Rewards: ``correct`` (every test passes; weight 1.0), ``pass_rate`` (the fraction of tests passed;
weight ``pass_rate_weight``), ``format`` (one python block; weight ``format_weight``).

Version history:
    v0: first version. Since then, ``_same`` no longer looks up builtins by name (a solution that rebound
        ``builtins.type`` and returned an always-equal object passed); the tests are checked outside the
        sandbox on strictly serialized results; correct solutions score as before.
"""

from __future__ import annotations

import copy
import functools
import inspect
import string
from collections.abc import Callable
from dataclasses import dataclass
from random import Random

from rlhub.env import ConfigError, EnvConfig, Example, Probe, ProceduralEnv, Rubric
from rlhub.rewards.code import CODE_INSTRUCTION, code_rubric, fenced_python
from rlhub.sandbox.checks import SAME

ALWAYS_EQUAL = """class Anything{base}:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__
{patch}

def {name}(*args, **kwargs):
    return Anything()
"""
"""A solution that returns an object equal to everything, optionally of a subclass of the expected type and
with builtins rebound (``{patch}``) so that a type check written with ``type()`` or ``isinstance()`` lies."""

LYING_TYPES = (
    "",
    "import builtins\nbuiltins.type = lambda *args: Anything\nbuiltins.isinstance = lambda *args: True",
    "type = lambda *args: Anything\nlen = lambda *args: 0\nall = lambda *args: True",
)
"""Ways a solution could blind ``_same``: none, rebinding builtins, shadowing them in the shared namespace."""

# --- reference solutions: each one's name is the function asked for, its source the gold answer ---------


def reverse_words(s: str) -> str:
    return " ".join(reversed(s.split()))


def count_vowels(s: str) -> int:
    return sum(ch in "aeiouAEIOU" for ch in s)


def filter_evens(nums: list[int]) -> list[int]:
    return [n for n in nums if n % 2 == 0]


def digit_sum(n: int) -> int:
    return sum(int(d) for d in str(abs(n)))


def running_sum(nums: list[int]) -> list[int]:
    totals, total = [], 0
    for n in nums:
        total += n
        totals.append(total)
    return totals


def rotate_right(items: list[int], k: int) -> list[int]:
    if not items:
        return []
    k %= len(items)
    return items[-k:] + items[:-k]


def caesar_shift(s: str, k: int) -> str:
    out = []
    for ch in s:
        if ch.isascii() and ch.isalpha():
            base = ord("a") if ch.islower() else ord("A")
            ch = chr(base + (ord(ch) - base + k) % 26)
        out.append(ch)
    return "".join(out)


def dedupe(items: list[int]) -> list[int]:
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def is_palindrome(s: str) -> bool:
    kept = [ch.lower() for ch in s if ch.isalnum()]
    return kept == kept[::-1]


def run_length(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        out.append(f"{s[i]}{j - i}")
        i = j
    return "".join(out)


def second_largest(nums: list[int]) -> int | None:
    distinct = sorted(set(nums))
    return distinct[-2] if len(distinct) >= 2 else None


def longest_run(nums: list[int]) -> int:
    best = run = 0
    for i, n in enumerate(nums):
        run = run + 1 if i and n > nums[i - 1] else 1
        best = max(best, run)
    return best


def merge_intervals(intervals: list[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def balanced(s: str) -> bool:
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for ch in s:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


def chunk_sums(nums: list[int], size: int) -> list[int]:
    return [sum(nums[i : i + size]) for i in range(0, len(nums), size)]


# --- random arguments ------------------------------------------------------------------------------


def _ints(rng: Random, level: int) -> list[int]:
    low = 0 if level == 1 else -(10**level)
    return [rng.randint(low, 10**level) for _ in range(rng.randint(0 if level > 1 else 1, 3 + 3 * level))]


def _text(rng: Random, level: int, alphabet: str = string.ascii_lowercase) -> str:
    words = [
        "".join(rng.choices(alphabet, k=rng.randint(1, 6)))
        for _ in range(rng.randint(0 if level > 1 else 1, 2 + level))
    ]
    if level == 1:
        return " ".join(words)
    return rng.choice(["", " "]) + "".join(w + rng.choice([" ", "  ", ", ", "! "]) for w in words).rstrip(", ")


def _palindrome_candidate(rng: Random, level: int) -> tuple:
    half = "".join(rng.choices("abcde", k=rng.randint(0, 2 + level)))
    s = half + rng.choice(["", "x"]) + half[::-1] if rng.random() < 0.5 else half + "ab"
    return ("".join(rng.choice([ch, ch.upper(), ch + rng.choice(" ,.")]) for ch in s),)


def _brackets(rng: Random, level: int) -> tuple:
    s = ""
    for _ in range(rng.randint(0, 2 + level)):
        left, right = rng.choice(["()", "[]", "{}"])
        s = rng.choice([f"{left}{s}{right}", f"{s}{left}{right}", f"{s}{left}x{right}"])
    if rng.random() < 0.5 and s:
        i = rng.randrange(len(s))
        s = s[:i] + rng.choice("([{)]}") + s[i + 1 :]
    return (s,)


def _intervals(rng: Random, level: int) -> tuple:
    starts = [rng.randint(0, 10 * level) for _ in range(rng.randint(0, 2 + 2 * level))]
    return ([[a, a + rng.randint(0, 4)] for a in starts],)


@dataclass(frozen=True)
class Family:
    solution: Callable
    level: int
    returns: str
    """What the function returns, completing "Write a Python function `f(...)` that returns ..."."""
    arguments: Callable[[Random, int], tuple]


FAMILIES = [
    Family(
        reverse_words, 1, "the words of `s` in reverse order, joined by single spaces", lambda r, lv: (_text(r, lv),)
    ),
    Family(
        count_vowels,
        1,
        "the number of vowels (a, e, i, o, u in either case) in `s`",
        lambda r, lv: (_text(r, lv, string.ascii_letters),),
    ),
    Family(filter_evens, 1, "the even numbers of `nums`, in their original order", lambda r, lv: (_ints(r, lv),)),
    Family(
        digit_sum,
        1,
        "the sum of the decimal digits of `n` (a minus sign is ignored)",
        lambda r, lv: (r.randint(0 if lv == 1 else -(10**6), 10 ** (2 * lv + 1)),),
    ),
    Family(
        running_sum, 1, "the running totals of `nums`: item i is nums[0] + ... + nums[i]", lambda r, lv: (_ints(r, lv),)
    ),
    Family(
        rotate_right,
        2,
        "`items` rotated right by `k` places (k may exceed the length; an empty list stays empty)",
        lambda r, lv: (_ints(r, lv), r.randint(0, 4 * lv)),
    ),
    Family(
        caesar_shift,
        2,
        "`s` with each ASCII letter moved `k` places along the alphabet (wrapping around, keeping its case; "
        "a negative k moves backwards) and every other character unchanged",
        lambda r, lv: (_text(r, lv, string.ascii_letters), r.randint(-30 if lv == 3 else 0, 25 if lv == 2 else 60)),
    ),
    Family(
        dedupe,
        2,
        "`items` without repeats, keeping the first occurrence of each value in order",
        lambda r, lv: ([r.randint(0, 5 * lv) for _ in range(r.randint(0, 4 * lv))],),
    ),
    Family(
        is_palindrome,
        2,
        "whether `s` reads the same backwards, ignoring case and every character that is not a letter or digit",
        _palindrome_candidate,
    ),
    Family(
        run_length,
        2,
        "the run-length encoding of `s`: each run of one repeated character written as that character "
        "followed by the run's length, e.g. 'aaab' -> 'a3b1'",
        lambda r, lv: ("".join(c * r.randint(1, 2 + lv) for c in r.choices("abc", k=r.randint(0, 2 + lv))),),
    ),
    Family(
        second_largest,
        3,
        "the second largest distinct value in `nums`, or None if it has fewer than two distinct values",
        lambda r, lv: ([r.randint(-5, 5 * lv) for _ in range(r.randint(0, 3 * lv))],),
    ),
    Family(
        longest_run,
        3,
        "the length of the longest run of consecutive items of `nums` that strictly increases (0 if empty)",
        lambda r, lv: ([r.randint(0, 9) for _ in range(r.randint(0, 4 * lv))],),
    ),
    Family(
        merge_intervals,
        3,
        "`intervals` ([start, end] pairs, start <= end) with overlapping or touching intervals merged, "
        "as a list of [start, end] pairs sorted by start",
        _intervals,
    ),
    Family(
        balanced,
        3,
        "whether the brackets (), [] and {} in `s` are balanced and properly nested (other characters ignored)",
        _brackets,
    ),
    Family(
        chunk_sums,
        3,
        "the sums of consecutive chunks of `size` items of `nums` (the last chunk may be shorter)",
        lambda r, lv: (_ints(r, lv), r.randint(1, 4)),
    ),
]
"""Every task family, easiest first."""


@functools.cache
def source(fn: Callable) -> str:
    """A reference solution's source: the gold answer."""
    return inspect.getsource(fn)


def signature(fn: Callable) -> str:
    """The function's ``def`` line without ``def`` and the colon: ``reverse_words(s: str) -> str``."""
    return source(fn).split("\n", 1)[0].removeprefix("def ").removesuffix(":")


@dataclass
class CodegenConfig(EnvConfig):
    difficulty: int = 1
    """1 (five one-line families, short inputs) to 3 (fifteen families, larger inputs and edge cases)."""
    num_tests: int = 5
    """Assert lines per task; the prompt shows the first two as examples."""
    pass_rate_weight: float = 0.0
    """Weight of ``pass_rate``, the fraction of tests passed (0 logs it without optimizing it)."""

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.difficulty <= 3:
            raise ConfigError(f"difficulty must be in 1..3, got {self.difficulty}; try difficulty=1")
        if not 1 <= self.num_tests <= 20:
            raise ConfigError(f"num_tests must be in 1..20, got {self.num_tests}; try num_tests=5")
        if self.pass_rate_weight < 0:
            raise ConfigError(f"pass_rate_weight must be >= 0, got {self.pass_rate_weight}")


class CodegenEnv(ProceduralEnv):
    Config = CodegenConfig
    levels = (1, 2, 3)
    """The values of ``config.difficulty``, easiest first (a curriculum samples among them)."""

    @property
    def instruction(self) -> str:
        return CODE_INSTRUCTION

    def generate(self, rng: Random, split: str, index: int) -> Example:
        level = self.config.difficulty
        family = rng.choice([f for f in FAMILIES if f.level <= level])
        name = family.solution.__name__
        cases: dict[str, object] = {}  # distinct argument lists, by their source text
        for _ in range(20 * self.config.num_tests):
            if len(cases) == self.config.num_tests:
                break
            args = family.arguments(rng, level)
            cases.setdefault(", ".join(map(repr, args)), family.solution(*copy.deepcopy(args)))
        examples = " and ".join(f"`{name}({a})` returns `{want!r}`" for a, want in list(cases.items())[:2])
        question = f"Write a Python function `{signature(family.solution)}` that returns {family.returns}.\n\n"
        question += f"For example, {examples}."
        return Example(
            id=f"codegen/{split}/{index}",
            prompt=self.make_prompt(question),
            answer=source(family.solution),
            info={
                "family": name,
                "tests": [f"assert _same({name}({a}), {want!r})" for a, want in cases.items()],
                "setup_code": SAME,
            },
        )

    def gold_completion(self, example: Example) -> str:
        return fenced_python(example.answer)

    def probes(self, example: Example) -> list[Probe]:
        """Always-equal return values, alone, of a subclass of the expected type, or with builtins rebound."""
        name = example.info["family"]
        programs = [
            ALWAYS_EQUAL.format(base=base, patch=patch, name=name)
            for base in ("", "(str)", "(int)", "(list)")
            for patch in LYING_TYPES
        ]
        completions = [fenced_python(program) for program in programs]
        return [Probe("__eq__ always true", completions, about="a return value equal to everything")]

    def build_rubric(self) -> Rubric:
        return code_rubric(self.config.format_weight, self.config.pass_rate_weight)
