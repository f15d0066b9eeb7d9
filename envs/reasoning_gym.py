"""rg: any of reasoning-gym's procedural tasks as an rlhub environment, by name (``rg/<task>-v2``).

Task: reasoning-gym (Apache-2.0; ``pip install 'rlhub[rg]'``) generates about a hundred kinds of
reasoning problems: arithmetic, algebra, logic puzzles, games, graphs, ciphers, ARC grids. 93 of the
106 tasks of its version 0.1.25 are served (``EXCLUDED`` says why not the others), each by name:
``rlhub.make("rg/leg_counting-v2")`` serves its ``leg_counting`` task; ``task_config={...}`` sets the
task's own options (the fields of its config dataclass, e.g. ``{"max_animals": 5}``). Example ``i`` of
a split is item ``i`` of a reasoning-gym dataset whose seed is drawn from (seed, split), so (seed,
index) reproduces it; each split's seeds lie in a range of their own, so train and test never share an
item seed. The ids are made on demand (``rlhub.env.registry.FAMILIES``), not listed in registry.yaml:
``rlhub envs list --family rg`` lists them, and importing this module registers them with gymnasium
(``gymnasium.make("rlhub.envs.reasoning_gym:rlhub/rg.leg_counting-v2")``).

Output format: reasoning in ``<think>...</think>``, the answer in ``<answer>...</answer>``, written the
way the question asks (a number, a list, a grid, a move sequence).

Rewards: ``correct`` (1.0 iff reasoning-gym's own ``score_answer`` gives the answer block full
marks; weight 1.0), ``format`` (exact think/answer layout, weight ``format_weight``), ``rg_score``
(``score_answer`` itself, in [0, 1], with the partial credit many tasks give, e.g. 0.01 for any answer
of the right form or a share for a near miss; weight 0: logged, and a recipe may weight it). Both read
0 without an answer block, when the scorer raises, and for an answer :func:`plausible` refuses (padded
to ten times the reference's length, or with look-alike digits), since several scorers read leniently.
Most scorers compare exact strings, so the answer goes to them as :func:`presented` writes it: without
markup around all of it (``**438**``, ``$438$``, ``\\boxed{438}``), and, where the reference is a plain
number, the same number written otherwise (``438.0``, ``+438``, ``438.``, ``1,438``, ``438 legs``) as the
reference. Several scorers also pay a near miss (the first number in the text, ``float()`` of a part, a search
for the reference in the text), so an answer that :func:`admissible` refuses reads 0 as well: for a number
reference, anything but that one number of the same sign (``-5``, ``5 + 1``, ``5 or 7`` for 5); for any other,
the reference with more around it (``gold + 1``, ``7 gold``), more numbers than it, or an ``or`` it lacks,
and for a grid of digits a letter or a longer number (``02`` for ``0``).

Version history:
    v0: first version (reasoning-gym 0.1.25).
    v1: presentation no longer costs a right answer its reward (issue 25's audit: 85.7% of right answers
        refused on leg_counting and letter_counting): markup around the whole answer is removed, and a
        numeric reference's number written with a sign, zeros after the point, a full stop or thousands
        separators is scored as the reference's spelling (see :func:`presented`).
    v2: near misses no longer earn full marks (issue 25: gsm_symbolic paid 1.0 for ``-28080``, ``28080 + 1`` and
        ``28080 or 5`` against 28080): answers :func:`admissible` refuses read 0. A scan of 17 near-miss kinds
        (sign flip, ``gold + 1``, ``gold or other``, ``7 gold``, gold then words with or without numbers, a number
        lengthened, ...) on 5 test items of each of the 93 tasks, 5,650 answers: v1 paid 339 of them on 15 tasks,
        this version none, and every gold still scores 1.0. ``rlhub validate --audit``: gsm_symbolic's false positives
        80/147 -> 0/147, kakurasu's 5/15 -> 0/15, chain_sum's 2/141 -> 0/141; false negatives unchanged on the
        21 tasks audited. A number answer may still say ``The answer is 5.`` or ``x = 5``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib.util
import inspect
import io
import json
import logging
import math
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from random import Random
from typing import Any

from rlhub.env import ConfigError, EnvConfig, Example, ProceduralEnv, RLHubError, Rubric
from rlhub.env.registry import EnvSpec, register_with_gymnasium
from rlhub.rewards.format import think_answer_format
from rlhub.rewards.parsing import boxed_span, completion_text, extract_answer

log = logging.getLogger(__name__)

VERSION = 2
FAMILY = "any reasoning-gym task by name, e.g. rg/leg_counting-v2"
INSTALL = "pip install 'rlhub[rg]'"
ID_PATTERN = re.compile(r"^rg/([a-z0-9_]+)-v(\d+)$")

_NO_SEED = "the same seed gives different items: "
EXCLUDED = {
    "composite": "it mixes other tasks and needs a list of them; make one env per task instead",
    "acre": "its items depend on the dataset size as well as the seed, so (seed, index) does not reproduce one",
    "codeio": _NO_SEED + "its input generators use the global random module",
    "list_functions": _NO_SEED + "one of its generators uses the global random module",
    "isomorphic_strings": _NO_SEED + "its questions follow set order, which changes with PYTHONHASHSEED",
    "polynomial_multiplication": _NO_SEED + "its questions follow set order, which changes with PYTHONHASHSEED",
    "ransom_note": _NO_SEED + "its questions follow set order, which changes with PYTHONHASHSEED",
    "boxnet": "reasoning-gym gives no reference answer, so no gold completion can prove the reward right",
    "rush_hour": "reasoning-gym gives no reference answer, so no gold completion can prove the reward right",
    "rubiks_cube": "a scramble that cancels out has an empty reference answer, which an answer block cannot hold",
    "game_of_life_halting": "its score_answer gives 1.0 to any non-empty answer (bool('False') is True)",
    "puzzle24": "its score_answer does not check the puzzle's numbers: any four numbers that make 24 score 1.0",
    "propositional_logic": "it accepts any formula the premises entail, so copying a premise often scores 1.0",
}
"""Tasks of reasoning-gym 0.1.25 that ``rg/<task>-v2`` does not serve, and why."""

REFERENCE_KEYS = ("possible_answer", "example_answer", "example_correct_answer")
"""Metadata fields holding a correct answer, for tasks whose ``answer`` is None (any valid solution scores)."""

SPLIT_INDEX = {"train": 0, "test": 1, "demo": 2}
MAX_EXAMPLES = 2**24
"""Most examples per split: item seeds run from a split's base seed up, and must stay below 2**32 (numpy)."""


def _reasoning_gym():
    if importlib.util.find_spec("reasoning_gym") is None:
        raise RLHubError(f"rg/<task>-v{VERSION} environments need reasoning-gym: {INSTALL}")
    import reasoning_gym

    return reasoning_gym


def _version() -> str:
    import importlib.metadata

    return importlib.metadata.version("reasoning-gym")


@cache
def tasks() -> dict[str, tuple[type, type]]:
    """reasoning-gym's tasks that rg ids serve: name -> (dataset class, config dataclass)."""
    _reasoning_gym()  # importing reasoning_gym fills its registry
    from reasoning_gym.factory import DATASETS  # the registry create_dataset reads

    return {name: classes for name, classes in sorted(DATASETS.items()) if name not in EXCLUDED}


def _task(name: str) -> tuple[type, type]:
    _reasoning_gym()
    if name in EXCLUDED:
        raise RLHubError(f"rg/{name}-v{VERSION} is not offered: {EXCLUDED[name]}")
    if name not in tasks():
        close = difflib.get_close_matches(name, list(tasks()), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RLHubError(f"unknown reasoning-gym task {name!r}{hint}; `rlhub envs list --family rg` lists them")
    return tasks()[name]


def family_spec(env_id: str) -> EnvSpec:
    """The spec of ``rg/<task>-v2``, made from the task's dataset class."""
    match = ID_PATTERN.match(env_id)
    if not match:
        raise RLHubError(f"{env_id!r} is not a reasoning-gym id; they look like 'rg/leg_counting-v{VERSION}'")
    name, version = match.group(1), int(match.group(2))
    dataset_cls, _ = _task(name)
    if version != VERSION:  # as for registered envs: an old id is an error that names its successor
        current = f"rg/{name}-v{VERSION}"
        raise RLHubError(
            f"{env_id!r} is not served: the reasoning-gym adapter is at version {VERSION}. "
            f"Use {current!r} (what changed: rlhub envs show {current})"
        )
    category = dataset_cls.__module__.split(".")[1]
    summary = (inspect.getdoc(dataset_cls) or "").split("\n")[0].rstrip(".")
    return EnvSpec(
        id=f"rg/{name}-v{VERSION}",
        entry_point="rlhub.envs.reasoning_gym:ReasoningGymEnv",
        version=VERSION,
        domain="math",
        description=f"reasoning-gym {category}/{name}" + (f": {summary}." if summary else "."),
        license="Apache-2.0 (reasoning-gym, generated)",
        tags=("procedural", "reasoning-gym", category),
        config={"task": name},
        source=f"reasoning-gym {_version()}",
    )


def family_specs() -> list[EnvSpec]:
    """Every ``rg/<task>-v2`` spec, sorted by id (raises with the install command when the extra is missing)."""
    return [family_spec(f"rg/{name}-v{VERSION}") for name in tasks()]


@dataclass
class ReasoningGymConfig(EnvConfig):
    task: str = ""
    """The reasoning-gym task; the id ``rg/<task>-v2`` sets it."""
    task_config: dict[str, Any] = field(default_factory=dict)
    """Options of the task's own config dataclass (``{"max_animals": 5}``); rlhub sets its seed and size."""

    def validate(self) -> None:
        super().validate()
        if self.answer_format != "tags":
            raise ConfigError("reasoning-gym answers are free text (lists, grids, moves): set answer_format='tags'")
        if not self.task:
            raise ConfigError(f"task is empty: make the env by id, rlhub.make('rg/leg_counting-v{VERSION}')")
        try:
            _, config_cls = _task(self.task)
        except RLHubError as exc:
            raise ConfigError(str(exc))
        names = {f.name for f in dataclasses.fields(config_cls)} - {"seed", "size"}
        if {"seed", "size"} & set(self.task_config):
            raise ConfigError("task_config must not set seed or size: pass seed= and limit= to env.examples()")
        unknown = sorted(set(self.task_config) - names)
        if unknown:
            raise ConfigError(f"task_config key(s) {unknown} unknown to {self.task}; valid keys: {sorted(names)}")
        try:
            task_config = config_cls(**self.task_config)
            if callable(getattr(task_config, "validate", None)):
                task_config.validate()
        except (AssertionError, TypeError, ValueError) as exc:
            raise ConfigError(f"task_config {self.task_config} is invalid for {self.task}: {exc or 'a check failed'}")


def reference_answer(answer: Any, metadata: dict[str, Any] | None) -> str | None:
    """A correct answer to an item: its ``answer``, else one from its metadata (tasks that accept any solution)."""
    if answer is not None:
        return str(answer)
    for key in REFERENCE_KEYS:
        value = (metadata or {}).get(key)
        if value is not None:
            return value if isinstance(value, str) else json.dumps(value)
    return None


def plausible(answer: str, reference: str) -> bool:
    """Whether an answer may go to reasoning-gym's scorer at all.

    Several of its scorers read leniently (gsm_symbolic takes the first number in the text, many call
    ``float()``, which reads full-width and other Unicode digits), so an answer padded to more than ten
    times the reference's length, or holding a non-ASCII digit or an NFKC-changed character (full width)
    that the reference does not, is refused: it would otherwise earn full marks as a look-alike.

    Example:
        >>> plausible("42", "42"), plausible("\uff14\uff12", "42"), plausible("I think 42" * 20, "42")
        (True, False, False)
    """
    if len(answer) > 10 * len(reference) + 100:
        return False
    return not any(
        not c.isascii() and (c.isdecimal() or unicodedata.normalize("NFKC", c) != c)
        for c in set(answer) - set(reference)
    )


WRAPPERS = (
    ("***", "***"),
    ("**", "**"),
    ("__", "__"),
    ("*", "*"),
    ("`", "`"),
    ("$$", "$$"),
    ("$", "$"),
    ("\\(", "\\)"),
    ("\\[", "\\]"),
    ("\\boxed{", "}"),
)
"""Markup a model puts around a whole answer, longest first: markdown emphasis and code, math delimiters."""

NUMBER_REFERENCE = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?", re.ASCII)
"""A reference that is a plain number: an integer or decimal, without a plus sign or leading zeros."""

NUMBER_ANSWER = re.compile(
    r"""(?P<sign>[+\-\u2212]?)
    (?P<whole>[1-9]\d{0,2}(?P<sep>,|\ |\\,|\{,\})\d{3}(?:(?P=sep)\d{3})*|0|[1-9]\d*)?
    (?P<fraction>\.\d+)?
    \.?""",
    re.ASCII | re.VERBOSE,
)
"""An answer that is a plain number: a sign (``+438``, ``\u2212438``), zeros after the decimal point, a bare
decimal point or a full stop (``438.0``, ``438.``, ``.5``), thousands in groups of three (``1,000``, ``1 000``,
``1\\,000``, ``1{,}000``, as rlhub's math reward reads them). Each form keeps the reference's digits, so it
means the reference in any base (base_conversion's references are in bases 2 to 36). Not exponents or
fractions (``4.38e2``, ``\\frac{1}{2}`` for ``0.5``: arithmetic in base 10, and ``e`` is a hex digit), leading
zeros (a digit string, not a count) or other groupings (``0,500`` and ``1,00`` are decimal commas)."""


def number_value(text: str) -> Decimal | None:
    """The value of ``text`` when it is a plain number (:data:`NUMBER_ANSWER`), else ``None``.

    Example:
        >>> number_value("1,024."), number_value("\u22120.50"), number_value("0,500"), number_value("4.38e2")
        (Decimal('1024'), Decimal('-0.50'), None, None)
    """
    match = NUMBER_ANSWER.fullmatch(text)
    if match is None or not (match["whole"] or match["fraction"]):
        return None
    sign = "-" if match["sign"] in ("-", "\u2212") else ""
    return Decimal(sign + re.sub(r"\D", "", match["whole"] or "0") + (match["fraction"] or ""))


def _inside(text: str, opener: str, closer: str) -> str | None:
    """What ``opener ... closer`` wraps when it wraps all of ``text`` and nothing in it closes earlier."""
    if len(text) <= len(opener) + len(closer) or not (text.startswith(opener) and text.endswith(closer)):
        return None
    inner = text[len(opener) : -len(closer)]
    if not inner.strip():
        return None
    if opener == "\\boxed{":
        return inner.strip() if boxed_span(text) == (len(opener), len(text) - 1) else None  # its brace closes last
    if closer[:2] in inner:
        return None  # ``**2** + **3**`` is two bold parts, not one bold answer; so is ``***x**2***``
    if opener[0] in "*_`" and (inner != inner.strip() or opener[0] in (inner[0], inner[-1])):
        return None  # not emphasis as markdown reads it: ``* 3 *``, or a longer run of the same mark
    return inner.strip()


def unwrapped(answer: str, reference: str) -> str:
    """``answer`` without the :data:`WRAPPERS` around all of it, layer by layer (``**$438$**``).

    A wrapper that the reference itself has around all of it is content, and stays (fraction_simplification's
    references are ``$49/389$``). Stars or underscores inside an answer (``8*(3 + 4)``) are left alone.

    Example:
        >>> unwrapped("**$438$**", "438"), unwrapped("2*3*4", "24"), unwrapped("$4/5$", "$4/5$")
        ('438', '2*3*4', '$4/5$')
    """
    text, own = answer.strip(), [w for w in WRAPPERS if _inside(reference.strip(), *w) is None]
    while True:  # each layer peeled shortens the text
        inner = next((i for i in (_inside(text, *w) for w in own) if i is not None), None)
        if inner is None:
            return text
        text = inner


NUMBER_DRESS = re.compile(
    r"""(?P<lead>(?i:the\s+answer\s+is\s*:?\s*|answer\s*:\s*|[a-z]\w*\s*=\s*)?)
    (?P<currency>[$\u20ac\u00a3]?)(?P<number>.*?)
    (?P<unit>(?:\s*%|(?:\s+(?!(?i:or|and|plus|minus|times|over|is|not|no)\b)[A-Za-z][A-Za-z'\-]*){1,3})\.?)?""",
    re.ASCII | re.VERBOSE,
)
"""A number as a sentence may dress it: a lead-in (``The answer is 438``, ``x = 438``), a currency sign before it
(``$438``), a unit after it (``438 apples``, ``25%``, ``12 square metres``): one to three words of letters, none
of which joins a second term or denies the first (``438 or``, ``438 is not``)."""

HEDGE = re.compile(r"\bor\b", re.IGNORECASE)
"""A word that offers a second answer beside the first (``5 or 7``, ``A or B``)."""

NUMBER_RUN = re.compile(r"\d+(?:\.\d+)?")
"""A number inside an answer of any shape (a grid cell, a coordinate, a move's square)."""

DIGIT_GRID = re.compile(r"[\d\s]+")
"""A reference of digits and whitespace only: a grid or a sequence of numbers. Some scorers of these skip the
characters they do not read (kakurasu keeps a row's 0s and 1s), so ``02`` or ``0a`` would read as 0."""


def spoken_number(text: str) -> Decimal | None:
    """The value of ``text`` when it is one plain number (:func:`number_value`), dressed as :data:`NUMBER_DRESS`
    allows, else ``None``.

    Example:
        >>> spoken_number("$1,024"), spoken_number("438 apples."), spoken_number("438 or 5"), spoken_number("5 + 1")
        (Decimal('1024'), Decimal('438'), None, None)
        >>> spoken_number("The answer is 438."), spoken_number("x = -3"), spoken_number("x = 3 = 4")
        (Decimal('438'), Decimal('-3'), None)
    """
    match = NUMBER_DRESS.fullmatch(text)
    return number_value(match["number"].strip()) if match else None


def presented(answer: str, reference: str) -> str:
    """The answer as reasoning-gym's scorer gets it: :func:`unwrapped`, and, when ``reference`` is a plain
    number (:data:`NUMBER_REFERENCE`) and the answer one number (:func:`spoken_number`), that number written
    plainly, as the reference's spelling when it has the reference's value. Most of its scorers compare exact
    strings, so ``438.0`` or ``**438**`` scored 0 for 438; some read the first number, so ``1,438`` scored 1 for 1.

    Example:
        >>> presented("438.0", "438"), presented("**+438.**", "438"), presented("1,438.01", "438")
        ('438', '438', '1438.01')
    """
    text = unwrapped(answer, reference)
    value = spoken_number(text) if NUMBER_REFERENCE.fullmatch(reference) else None
    if value is None:
        return text
    return reference if value == Decimal(reference) else format(value, "f")


def admissible(text: str, reference: str) -> bool:
    """Whether a :func:`presented` answer states one answer of the reference's shape, so that a lenient scorer
    (the first number in the text, ``float()`` of a part, a search for the reference in the text) cannot pay a
    near miss. Refused: for a plain-number reference, anything but one number (:func:`spoken_number`: not
    ``5 + 1``, ``5 or 7``, ``5, or maybe 12``) and a number of the other sign (``-5`` for 5); for any other, the
    reference with more words or numbers around it (``gold + 1``, ``7 gold``), more numbers than the reference
    holds, and an ``or`` the reference does not have; for a grid (:data:`DIGIT_GRID`), also a letter or a
    number longer than any in the reference. An antiderivative (``... + C``) is right up to a constant, so only
    the ``or`` refuses one.

    Example:
        >>> admissible("5", "5"), admissible("-5", "5"), admissible("5 or 7", "5"), admissible("1/3 + 1", "1/3")
        (True, False, False, False)
    """
    if NUMBER_REFERENCE.fullmatch(reference):
        value = spoken_number(text)
        return value is not None and (value * Decimal(reference) >= 0)
    if HEDGE.search(text) and not HEDGE.search(reference):
        return False
    if reference.rstrip().endswith("+ C"):
        return True
    lowered = text.lower()
    rest = lowered.replace(reference.strip().lower(), " ", 1) if reference.strip() else lowered
    if rest != lowered and re.search(r"[^\W_]", rest):
        return False
    if len(NUMBER_RUN.findall(text)) > len(NUMBER_RUN.findall(reference)):
        return False
    if DIGIT_GRID.fullmatch(reference):
        longest = max(map(len, re.findall(r"\d+", reference)))
        return not re.search(r"[^\W\d_]", text) and all(len(n) <= longest for n in re.findall(r"\d+", text))
    return True


class Scorer:
    """One task's ``score_answer``, total on model output and memoized (two rewards read each score)."""

    def __init__(self, dataset: Any):
        self.dataset = dataset
        self.cache: dict[tuple, float] = {}

    def __call__(self, completion: Any, answer: Any, question: str, metadata: dict[str, Any]) -> float:
        """The score in [0, 1] of the answer block as :func:`presented` writes it: 0 without an answer block,
        for an answer that is not :func:`plausible` or not :func:`admissible`, or when the scorer raises."""
        text = extract_answer(completion_text(completion), "tags")
        reference = reference_answer(answer, metadata) or ""
        if not text or not plausible(text, reference):
            return 0.0
        text = presented(text, reference)
        if not admissible(text, reference):
            return 0.0
        key = (text, question, reference)
        if key not in self.cache:
            if len(self.cache) >= 4096:
                self.cache.clear()
            self.cache[key] = self.score(text, {"question": question, "answer": answer, "metadata": metadata})
        return self.cache[key]

    def score(self, text: str, entry: dict[str, Any]) -> float:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # some scorers warn on malformed answers (numpy.loadtxt)
                value = float(self.dataset.score_answer(text, entry))
        except Exception as exc:  # a scorer that raises on an answer has refused it
            log.debug("reasoning-gym score_answer raised %s: %s", type(exc).__name__, exc)
            return 0.0
        return min(max(value, 0.0), 1.0) if math.isfinite(value) else 0.0


class ReasoningGymEnv(ProceduralEnv):
    Config = ReasoningGymConfig

    @property
    def task_config_class(self) -> type:
        """The task's own config dataclass, whose fields ``task_config`` sets (env cards list them)."""
        return _task(self.config.task)[1]

    def dataset(self, split: str, seed: int, size: int):
        """The reasoning-gym dataset behind a split: item ``i`` comes from ``Random(base + i)``."""
        base = SPLIT_INDEX[split] * 2**30 + Random(f"rg/{seed}/{split}").randrange(2**30 - MAX_EXAMPLES)
        return _reasoning_gym().create_dataset(self.config.task, **self.config.task_config, seed=base, size=size)

    def load_examples(self, split: str, limit: int | None, seed: int) -> list[Example]:
        n = self.default_size.get(split, 0) if limit is None else limit
        if n > MAX_EXAMPLES:
            raise ConfigError(f"limit must be at most {MAX_EXAMPLES} for reasoning-gym envs, got {n}")
        if n == 0:
            return []
        dataset = self.dataset(split, seed, n)
        with contextlib.redirect_stdout(io.StringIO()):  # bf's compiler prints progress dots
            entries = [dataset[i] for i in range(n)]
        return [self.to_example(entry, split, i) for i, entry in enumerate(entries)]

    def demo_examples(self, k: int) -> list[Example]:
        return self.load_examples("demo", k, seed=0)

    def to_example(self, entry: dict[str, Any], split: str, index: int) -> Example:
        return Example(
            id=f"rg/{self.config.task}/{split}/{index}",
            prompt=self.make_prompt(entry["question"].strip()),
            answer=entry["answer"],
            info={"question": entry["question"], "metadata": entry["metadata"]},
        )

    def gold_completion(self, example: Example) -> str:
        reference = reference_answer(example.answer, example.info.get("metadata"))
        return self.format_answer(reference or "", reasoning="Working it out.")

    def build_rubric(self) -> Rubric:
        scorer = Scorer(self.dataset("test", 0, 1))  # score_answer reads the entry and task config, not the seed

        def correct(completions, answer, question, metadata, **kwargs):
            """1.0 iff reasoning-gym's ``score_answer`` gives the answer block full marks."""
            return [float(scorer(*row) >= 1.0 - 1e-9) for row in zip(completions, answer, question, metadata)]

        def rg_score(completions, answer, question, metadata, **kwargs):
            """reasoning-gym's ``score_answer`` on the answer block, partial credit included."""
            return [scorer(*row) for row in zip(completions, answer, question, metadata)]

        return Rubric(
            {
                "correct": (correct, 1.0),
                "format": (think_answer_format, self.config.format_weight),
                "rg_score": (rg_score, 0.0),
            }
        )


if importlib.util.find_spec("reasoning_gym") is not None:
    # gymnasium.make("rlhub.envs.reasoning_gym:rlhub/rg.<task>-v2") imports this module to find the ids.
    register_with_gymnasium(family_specs())
