"""The projects of repofix-v0: small generated Python packages with planted bugs, their tests and fixes.

A project is a package of small documented functions (drawn from :data:`UNITS`, a unit being one function or
a function and the helper it calls), grouped into modules by theme, with one unittest file per module under
``tests/``. Bugs are planted by replacing one fragment of a function with another (a wrong operator, an
off-by-one, a wrong comparison, a missing case, swapped arguments); a bug is planted only when one of the
visible test cases notices it, so every planted bug makes a visible test fail and the original source is a
fix. Expected values come from running the original functions here, on our own code, never on a model's.

Hidden tests are calls and expected values (``["tally.stats.average([1, 2])", 1.5]``): the reward runs the
calls in the sandbox and compares the values here (``rlhub.rewards.repofix``).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

BUG_KINDS = ("operator", "off_by_one", "comparison", "missing_case", "swapped_arguments")
"""What a planted bug does: a wrong operator, an off-by-one, a wrong comparison or branch, a missing case,
swapped arguments."""


@dataclass(frozen=True)
class Bug:
    kind: str
    """One of :data:`BUG_KINDS`."""
    fixed: str
    """A fragment of the unit's correct source (it occurs there once)."""
    broken: str
    """What the fragment becomes."""


@dataclass(frozen=True)
class Unit:
    """One or two functions that go into a module together, with their bugs and test inputs."""

    theme: str
    """The module the unit belongs in."""
    source: str
    functions: dict[str, Callable[[Random], tuple]]
    """Each function's name and a generator of random arguments for it."""
    edges: dict[str, tuple[tuple, ...]]
    """Per function, arguments that every project tests (the cases that expose its bugs)."""
    bugs: tuple[Bug, ...]


def _ints(rng: Random, low: int = -20, high: int = 50, size: tuple[int, int] = (0, 7)) -> list[int]:
    return [rng.randint(low, high) for _ in range(rng.randint(*size))]


def _words(rng: Random, count: tuple[int, int] = (1, 4)) -> str:
    return " ".join(
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 7))) for _ in range(rng.randint(*count))
    )


def _clock(rng: Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"


UNITS = (
    Unit(
        "stats",
        '''def clamp(value, low, high):
    """Return ``value`` limited to the closed range [low, high]."""
    if value < low:
        return low
    if value > high:
        return high
    return value
''',
        {"clamp": lambda r: (r.randint(-10, 20), r.randint(-5, 2), r.randint(3, 12))},
        {"clamp": ((5, 0, 3), (-2, 0, 3), (2, 0, 3))},
        (
            Bug("comparison", "value < low", "value > low"),
            Bug("missing_case", "    if value > high:\n        return high\n", ""),
        ),
    ),
    Unit(
        "stats",
        '''def average(values):
    """Return the arithmetic mean of ``values``, or 0.0 for an empty list."""
    if not values:
        return 0.0
    return sum(values) / len(values)
''',
        {"average": lambda r: (_ints(r, size=(1, 6)),)},
        {"average": (([],), ([1, 2],), ([3, 4, 8],))},
        (
            Bug("missing_case", "    if not values:\n        return 0.0\n", ""),
            Bug("operator", "sum(values) / len(values)", "sum(values) // len(values)"),
        ),
    ),
    Unit(
        "stats",
        '''def count_above(values, limit):
    """Return how many items of ``values`` are strictly greater than ``limit``."""
    count = 0
    for value in values:
        if value > limit:
            count += 1
    return count
''',
        {"count_above": lambda r: (_ints(r, 0, 9), r.randint(0, 9))},
        {"count_above": (([1, 2, 3], 2), ([5, 5, 6], 5), ([], 1))},
        (
            Bug("comparison", "if value > limit:", "if value >= limit:"),
            Bug("operator", "count += 1", "count -= 1"),
        ),
    ),
    Unit(
        "stats",
        '''def index_of_max(values):
    """Return the index of the first largest item of ``values``, or -1 for an empty list."""
    if not values:
        return -1
    best = 0
    for i in range(1, len(values)):
        if values[i] > values[best]:
            best = i
    return best
''',
        {"index_of_max": lambda r: (_ints(r, 0, 9, (1, 7)),)},
        {"index_of_max": (([3, 9, 2],), ([1, 2, 5],), ([],), ([4, 4],))},
        (
            Bug("comparison", "values[i] > values[best]", "values[i] < values[best]"),
            Bug("off_by_one", "range(1, len(values))", "range(1, len(values) - 1)"),
            Bug("missing_case", "    if not values:\n        return -1\n", ""),
        ),
    ),
    Unit(
        "stats",
        '''def sum_to(n):
    """Return 1 + 2 + ... + n (0 when n < 1)."""
    total = 0
    for i in range(1, n + 1):
        total += i
    return total
''',
        {"sum_to": lambda r: (r.randint(-3, 30),)},
        {"sum_to": ((4,), (1,), (0,))},
        (
            Bug("off_by_one", "range(1, n + 1)", "range(1, n)"),
            Bug("operator", "total += i", "total *= i"),
        ),
    ),
    Unit(
        "lists",
        '''def last_items(items, n):
    """Return the last ``n`` items of ``items`` (all of them if there are fewer, none if n <= 0)."""
    if n <= 0:
        return []
    return items[-n:]
''',
        {"last_items": lambda r: (_ints(r, size=(0, 6)), r.randint(-1, 7))},
        {"last_items": (([1, 2, 3, 4], 2), ([1, 2, 3], 0), ([7, 8], 5), ([6, 7, 8], 1))},
        (
            Bug("off_by_one", "items[-n:]", "items[-n + 1 :]"),
            Bug("missing_case", "    if n <= 0:\n        return []\n", ""),
        ),
    ),
    Unit(
        "lists",
        '''def chunk(items, size):
    """Split ``items`` into consecutive lists of ``size`` items (the last may be shorter)."""
    return [items[i : i + size] for i in range(0, len(items), size)]
''',
        {"chunk": lambda r: (_ints(r, size=(0, 9)), r.randint(1, 4))},
        {"chunk": (([1, 2, 3, 4, 5], 2), ([], 3), ([1, 2], 5))},
        (Bug("off_by_one", "items[i : i + size]", "items[i : i + size - 1]"),),
    ),
    Unit(
        "lists",
        '''def running_max(values):
    """Return the largest value seen so far at each position of ``values``."""
    result = []
    for value in values:
        if result and result[-1] > value:
            value = result[-1]
        result.append(value)
    return result
''',
        {"running_max": lambda r: (_ints(r, 0, 20),)},
        {"running_max": (([1, 3, 2, 5],), ([],), ([4, 1],))},
        (
            Bug("comparison", "result[-1] > value", "result[-1] < value"),
            Bug("operator", "if result and result[-1]", "if result or result[-1]"),
        ),
    ),
    Unit(
        "lists",
        '''def in_range(value, low, high):
    """Return whether ``value`` lies between ``low`` and ``high``, both included."""
    return low <= value <= high
''',
        {"in_range": lambda r: (r.randint(0, 10), r.randint(0, 5), r.randint(5, 10))},
        {"in_range": ((3, 3, 5), (5, 3, 5), (9, 3, 5), (4, 3, 5))},
        (Bug("comparison", "low <= value <= high", "low < value <= high"),),
    ),
    Unit(
        "text",
        '''def truncate(text, width):
    """Return ``text`` cut to at most ``width`` characters, ending in "..." when it was cut."""
    if len(text) <= width:
        return text
    return text[: width - 3] + "..."
''',
        {"truncate": lambda r: (_words(r), r.randint(4, 15))},
        {"truncate": (("hello", 5), ("hello world", 8), ("abc", 10))},
        (
            Bug("comparison", "len(text) <= width", "len(text) < width"),
            Bug("off_by_one", "text[: width - 3]", "text[: width - 2]"),
        ),
    ),
    Unit(
        "text",
        '''def initials(name):
    """Return the upper-case initials of the words of ``name``, e.g. "Ada Lovelace" -> "AL"."""
    return "".join(word[0].upper() for word in name.split())
''',
        {"initials": lambda r: (_words(r, (0, 4)).title(),)},
        {"initials": (("Ada Lovelace",), ("grace brewster hopper",), ("",))},
        (Bug("off_by_one", "word[0].upper()", "word[1].upper()"),),
    ),
    Unit(
        "text",
        '''def count_word(text, word):
    """Return how many times ``word`` occurs in ``text`` as a whole word, ignoring case."""
    return sum(1 for token in text.lower().split() if token == word.lower())
''',
        {"count_word": lambda r: (_words(r, (0, 6)), r.choice(["a", "the", "b", "cat"]))},
        {"count_word": (("the cat and the hat", "the"), ("The end", "the"), ("a b a", "c"))},
        (
            Bug("comparison", "if token == word.lower()", "if token != word.lower()"),
            Bug("missing_case", "text.lower().split()", "text.split()"),
        ),
    ),
    Unit(
        "text",
        '''def repeat(text, times, sep):
    """Return ``text`` repeated ``times`` times, joined by ``sep``."""
    return sep.join([text] * times)
''',
        {"repeat": lambda r: (_words(r, (1, 1)), r.randint(0, 4), r.choice([" ", "-", ", "]))},
        {"repeat": (("ab", 3, "-"), ("x", 1, ","))},
        (Bug("swapped_arguments", "sep.join([text] * times)", "text.join([sep] * times)"),),
    ),
    Unit(
        "money",
        '''def total_with_tax(prices, rate):
    """Return the sum of ``prices`` plus tax at ``rate`` (0.2 means 20%), rounded to cents."""
    subtotal = sum(prices)
    return round(subtotal * (1 + rate), 2)
''',
        {"total_with_tax": lambda r: (_ints(r, 1, 99, (1, 5)), r.choice([0.05, 0.1, 0.2, 0.25]))},
        {"total_with_tax": (([10, 20], 0.5), ([], 0.1))},
        (Bug("operator", "(1 + rate)", "(1 - rate)"),),
    ),
    Unit(
        "money",
        '''def split_bill(total, people):
    """Split ``total`` cents among ``people``: each pays the same, the first ones a cent more for the rest."""
    share, rest = divmod(total, people)
    return [share + 1 if i < rest else share for i in range(people)]
''',
        {"split_bill": lambda r: (r.randint(1, 100), r.randint(1, 6))},
        {"split_bill": ((10, 3), (6, 2), (2, 5))},
        (
            Bug("swapped_arguments", "divmod(total, people)", "divmod(people, total)"),
            Bug("comparison", "if i < rest", "if i <= rest"),
        ),
    ),
    Unit(
        "money",
        '''def percent(part, whole):
    """Return ``part`` as a percentage of ``whole``, rounded to one decimal (0.0 when whole is 0)."""
    if whole == 0:
        return 0.0
    return round(100 * part / whole, 1)


def progress(done, total):
    """Return a progress label such as "3/4 (75.0%)"."""
    return f"{done}/{total} ({percent(done, total)}%)"
''',
        {
            "percent": lambda r: (r.randint(0, 20), r.randint(0, 20)),
            "progress": lambda r: (r.randint(0, 9), r.randint(1, 9)),
        },
        {"percent": ((1, 4), (0, 0), (1, 3)), "progress": ((3, 4), (1, 8))},
        (
            Bug("swapped_arguments", "percent(done, total)", "percent(total, done)"),
            Bug("missing_case", "    if whole == 0:\n        return 0.0\n", ""),
            Bug("operator", "100 * part / whole", "100 * part // whole"),
        ),
    ),
    Unit(
        "clock",
        '''def is_leap(year):
    """Return True if ``year`` is a leap year in the Gregorian calendar."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
''',
        {"is_leap": lambda r: (r.randint(1800, 2400),)},
        {"is_leap": ((2024,), (1900,), (2000,), (2023,))},
        (
            Bug("operator", "year % 4 == 0 and (", "year % 4 == 0 or ("),
            Bug("comparison", "year % 100 != 0", "year % 100 == 0"),
        ),
    ),
    Unit(
        "clock",
        '''def to_minutes(clock):
    """Return the minutes since midnight of a "HH:MM" time."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def elapsed(start, end):
    """Return the minutes from ``start`` to ``end``, two "HH:MM" times of the same day."""
    return to_minutes(end) - to_minutes(start)
''',
        {"to_minutes": lambda r: (_clock(r),), "elapsed": lambda r: (_clock(r), _clock(r))},
        {"to_minutes": (("01:30",), ("00:05",)), "elapsed": (("08:15", "09:45"), ("10:00", "10:00"))},
        (
            Bug("operator", "int(hours) * 60 + int(minutes)", "int(hours) * 60 - int(minutes)"),
            Bug("swapped_arguments", "to_minutes(end) - to_minutes(start)", "to_minutes(start) - to_minutes(end)"),
        ),
    ),
    Unit(
        "clock",
        '''def grade(score):
    """Return the letter grade of a 0-100 ``score``: A from 90, B from 80, C from 70, else F."""
    if score >= 90:
        return "A"
    if score >= 80:
        return "B"
    if score >= 70:
        return "C"
    return "F"
''',
        {"grade": lambda r: (r.randint(0, 100),)},
        {"grade": ((80,), (95,), (70,), (12,), (85,))},
        (
            Bug("comparison", "if score >= 80:", "if score > 80:"),
            Bug("missing_case", '    if score >= 80:\n        return "B"\n', ""),
        ),
    ),
)
"""Every unit; each bug's ``fixed`` fragment occurs once in its unit's source."""

PACKAGES = ("tally", "pocket", "quill", "harbor", "orchard", "sprout", "lantern", "ledgerly")
"""Package names (none is a standard-library module)."""


@dataclass(frozen=True)
class Level:
    modules: int
    """Modules in the package, each with its own test file (files: ``__init__.py`` + 2 per module)."""
    functions: int
    """Units per module."""
    bugs: int
    turns: int
    """The episode's default ``max_turns``."""


LEVELS = {1: Level(1, 2, 1, 6), 2: Level(2, 2, 2, 8), 3: Level(2, 3, 3, 10)}
"""The difficulty levels: 3, 5 and 5 files, 1, 2 and 3 bugs."""

VISIBLE_RANDOM = 1
"""Random cases per function in the visible tests (besides the edge cases)."""

HIDDEN_RANDOM = 6
"""Random cases per function in the hidden tests (besides every visible case)."""


@dataclass(frozen=True)
class Planted:
    """One planted bug and the edit that fixes it."""

    path: str
    kind: str
    function: str
    search: str
    """Lines of the buggy file, occurring there once, that the fix replaces."""
    replace: str


@dataclass(frozen=True)
class Project:
    package: str
    files: dict[str, str]
    """Every file of the buggy project, by path."""
    sources: tuple[str, ...]
    """The package's source files (what the reward takes from the agent)."""
    bugs: tuple[Planted, ...]
    hidden: tuple[tuple[str, Any], ...]
    """``(call, expected value)`` pairs; each call names its function by module, ``tally.stats.clamp(...)``."""


def _run(source: str) -> dict[str, Any]:
    """The functions of a unit's source (our own code, never a model's)."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<repofix unit>", "exec"), namespace)
    return namespace


def _outcome(fn: Callable, args: tuple) -> tuple[bool, Any]:
    try:
        return True, fn(*args)
    except Exception as exc:  # a planted bug may raise: that is an outcome too
        return False, type(exc).__name__


def _unique_context(text: str, start: int, end: int) -> tuple[int, int]:
    """The whole lines around ``text[start:end]`` (at least one), widened upwards until they occur once."""
    first = text.rfind("\n", 0, start) + 1
    last = text.find("\n", max(end, first + 1) - 1)
    last = len(text) if last < 0 else last + 1
    while text.count(text[first:last]) > 1 and first > 0:
        first = text.rfind("\n", 0, first - 1) + 1
    return first, last


def _test_file(package: str, module: str, cases: list[tuple[str, tuple, Any]]) -> str:
    names = sorted({name for name, _, _ in cases})
    lines = ["import unittest", "", f"from {package}.{module} import {', '.join(names)}", "", ""]
    lines.append(f"class Test{module.title()}(unittest.TestCase):")
    counts: dict[str, int] = {}
    for name, args, want in cases:
        counts[name] = counts.get(name, 0) + 1
        call = f"{name}({', '.join(map(repr, args))})"
        lines += [f"    def test_{name}_{counts[name]}(self):", f"        self.assertEqual({call}, {want!r})", ""]
    lines += ["", 'if __name__ == "__main__":', "    unittest.main()", ""]
    return "\n".join(lines)


def _cases(unit: Unit, name: str, fn: Callable, rng: Random, n: int) -> list[tuple[tuple, Any]]:
    """The unit's edge cases for ``name`` and ``n`` distinct random ones, with the correct results."""
    cases: dict[str, tuple[tuple, Any]] = {}
    for args in unit.edges[name]:
        cases[repr(args)] = (args, fn(*args))
    for _ in range(20 * n):
        if len(cases) >= len(unit.edges[name]) + n:
            break
        args = unit.functions[name](rng)
        cases.setdefault(repr(args), (args, fn(*args)))
    return list(cases.values())


def _detects(source: str, bug: Bug, visible: list[tuple[str, tuple, Any]]) -> bool:
    """Whether one of the visible cases fails with ``bug`` planted in ``source``."""
    broken = _run(source.replace(bug.fixed, bug.broken))
    return any(_outcome(broken[name], args) != (True, want) for name, args, want in visible)


def make_project(rng: Random, level: int) -> Project:
    """A project of difficulty ``level`` (1-3), drawn with ``rng`` alone.

    Args:
        rng: The example's own random stream.
        level: A key of :data:`LEVELS`.

    Returns:
        The buggy project, its fixes and its hidden tests.
    """
    shape = LEVELS[level]
    package = rng.choice(PACKAGES)
    themes = rng.sample(sorted({unit.theme for unit in UNITS}), shape.modules)
    chosen = {theme: rng.sample([u for u in UNITS if u.theme == theme], shape.functions) for theme in themes}
    candidates = [(theme, unit) for theme in themes for unit in chosen[theme] if unit.bugs]
    buggy = set(map(id, (unit for _, unit in rng.sample(candidates, min(shape.bugs, len(candidates))))))

    files = {f"{package}/__init__.py": f'"""The {package} package."""\n'}
    sources, bugs, hidden = [f"{package}/__init__.py"], [], []
    for theme in themes:
        path = f"{package}/{theme}.py"
        correct = "\n\n".join(unit.source for unit in chosen[theme])
        visible, hidden_cases = [], []
        for unit in chosen[theme]:
            functions = _run(unit.source)
            for name in unit.functions:
                cases = _cases(unit, name, functions[name], rng, VISIBLE_RANDOM + HIDDEN_RANDOM)
                shown = len(unit.edges[name]) + VISIBLE_RANDOM
                visible += [(name, args, want) for args, want in cases[:shown]]
                hidden_cases += [(name, args, want) for args, want in cases]
        text, planted = correct, []
        for unit in chosen[theme]:
            if id(unit) in buggy:
                unit_visible = [case for case in visible if case[0] in unit.functions]
                bug = rng.choice([bug for bug in unit.bugs if _detects(unit.source, bug, unit_visible)])
                start = text.index(unit.source) + unit.source.index(bug.fixed)
                text = text[:start] + bug.broken + text[start + len(bug.fixed) :]
                planted.append((start, bug))
        bugs += _fixes(path, text, planted)
        files[path] = text
        files[f"tests/test_{theme}.py"] = _test_file(package, theme, visible)
        sources.append(path)
        hidden += [
            (f"{package}.{theme}.{name}({', '.join(map(repr, args))})", want) for name, args, want in hidden_cases
        ]
    return Project(package, files, tuple(sources), tuple(bugs), tuple(hidden))


def _fixes(path: str, text: str, planted: list[tuple[int, Bug]]) -> list[Planted]:
    """The edits that undo ``planted`` (bugs at increasing positions of ``text``), each applied after the last."""
    fixes, shift = [], 0
    for start, bug in planted:
        start += shift
        first, last = _unique_context(text, start, start + len(bug.broken))
        original = text[first:start] + bug.fixed + text[start + len(bug.broken) : last]
        fixes.append(Planted(path, bug.kind, _enclosing(text, start), text[first:last], original))
        text = text[:first] + original + text[last:]
        shift += len(bug.fixed) - len(bug.broken)
    return fixes


def _enclosing(text: str, position: int) -> str:
    """The name of the function whose ``def`` comes last before ``position``."""
    line = text[text.rfind("\ndef ", 0, position) + 1 :].split("(", 1)[0]
    return line.removeprefix("def ")


def fixed_files(project: Project) -> dict[str, str]:
    """The project's files with every planted fix applied (the original source)."""
    files = dict(project.files)
    for bug in project.bugs:
        files[bug.path] = files[bug.path].replace(bug.search, bug.replace, 1)
    return files
