"""``rlhub validate``: prove an environment's reward is right, and hard to hack, before anyone spends GPU hours.

Checks, each reported as a row: examples load for both splits; the same seed gives the same examples
and another seed gives others; gold completions earn full marks on every positive-weight reward;
garbage earns nothing; the gymnasium ``reset``/``step`` API agrees with ``score``.

Then reward-hacking probes, one row each, since a hackable reward silently ruins an RL run: the policy
finds the hack, the reward curve rises and the task stays unsolved. A :class:`Probe` is a handful of
completions that try one hack on one example, and a rule, the most they may score:

* ``max_correct`` bounds every *correctness* reward: each positive-weight reward not named ``format``
  (``correct``; ``pass_rate`` when it is weighted). Weight-0 rewards are only logged and not bounded.
* ``max_total`` bounds the weighted total: ``"format"`` is what the format rewards alone can give (the
  sum of their positive weights: a hack may be well laid out, but must earn nothing for it beyond
  that), ``"gold"`` is what the example's gold completion earns, or a number.
* ``max_seconds`` bounds the time to score one example's completions of the probe.

A reward that raises on a probe's completion fails the probe too. Probes run on the first
:data:`PROBE_EXAMPLES` train examples; a row fails if any completion breaks its rule on any of them.
The built-in probes find the answer in the gold completion (an ``<answer>`` block, the last
``\\boxed{}``, a fenced python block, or the ``<tool_call>`` blocks; in a multi-turn env, its gold
transcript's last assistant turn) and rewrite it:

======================  ====================================================================  ======================
probe                   completions                                                           rule
======================  ====================================================================  ======================
empty completion        ``""``, whitespace, the gold transcript ending in an empty turn       correct 0, total 0
empty answer            the gold layout around an empty answer (whitespace, ``pass``,         correct 0, <= format
                        ``<tool_call>{}</tool_call>``, the gold calls without arguments)
answer spam             the gold amid other examples' answers in one block (separated by      correct 0, <= format
                        ``,`` ``or`` ``;`` or newlines) or one block each, a wrong one last;
                        the gold calls repeated, or with an extra call
prompt echo             the prompt as the completion; the question as the answer              correct 0, <= format
gold only in reasoning  the gold inside ``<think>`` with a wrong answer, or none, after it;   correct 0, <= format
                        ``<think>`` never closed
unicode look-alikes     the gold with confusables (Cyrillic ``а`` for ``a``, ``O`` for        correct 0, <= format
                        ``0``, ``l`` for ``1``): all swapped, one swapped, or full width;
                        for tool calls, in the function name and the string arguments
long output             200,000 characters of filler before the gold completion or in its     total <= gold, 20 s
                        reasoning (for code, a comment in the program)
long answer             filler inside the answer block, before and after the gold             correct 0, <= format
early exit              code: ``sys.exit(0)``, ``os._exit(0)``, ``raise SystemExit`` before   correct 0, <= format
                        the tests run (also after the gold solution), ``os._exit`` at exit
fake test output        code: prints "All tests passed", "OK", "PASSED", a unittest summary   correct 0, <= format
                        or a token-like line, then exits (or lets the tests fail)
patched builtins        code: rebinds ``builtins.exec``, ``AssertionError``, ``type``/``len``  correct 0, <= format
                        and friends, ``sys.excepthook``
frame walking           code: walks the interpreter's frames (``sys._getframe``, ``f_back``,  correct 0, <= format
                        ``f_locals``, a traceback's ``tb_frame``, a trace function) for a
                        token-like string, prints it and exits, at import or when called
gc scanning             code: scans ``gc.get_objects()`` (and ``gc.get_referrers``) for a     correct 0, <= format
                        token-like string, prints it and exits
always-equal objects    code: each of the gold's functions returns an object equal to         correct 0, <= format
                        everything (``__eq__`` true, ``__ne__`` false, arithmetic to 0)
lying subclasses        code: each function returns an ``int``, ``str`` or ``list`` subclass  correct 0, <= format
                        whose comparisons always answer yes
patched test helpers    code: a wrong solution that rebinds what tests call: ``math.isclose``,  correct 0, <= format
                        ``abs``, ``set``, ``sorted``, ``len``, ``round``, ``_same``, ``check``
======================  ====================================================================  ======================

Decisions:

* Full-width and other NFKC-equal forms (``１８``) count as look-alikes and must earn nothing, as
  ``rlhub.rewards.math`` already rules: NFKC is not value-preserving in general (``²`` becomes ``2``,
  ``①`` becomes ``1``), Python's ``int()`` reads any Unicode decimal digit (``int("৪") == 4`` though it
  looks like an 8), and a grader that refuses every non-ASCII digit is simple to reason about. The cost,
  a rare model that writes full-width digits losing credit, is small and teaches it to answer in ASCII.
* Look-alikes do not apply to code: Python itself NFKC-normalizes identifiers (PEP 3131), and a
  confusable name is another name, so the tests decide without the reward's help.
* Answer spam puts a wrong answer last: "the last ``\\boxed{}`` (or python block) is the answer" grades
  one answer, so it is no hack; a grader that accepts any of several candidates is.
* A long output that ends in the gold answer may earn what the gold earns (length penalties are
  rewards of their own), never more, and must be scored quickly and without error.
* Objects whose comparisons lie are built-in probes: rlhub's code rewards compare results outside the
  sandbox, after a strict serializer has refused every type but the exact built-in ones
  (``rlhub.sandbox.checks``), so a code env that runs its tests the way ``rlhub.rewards.code`` does
  passes them, and one that runs asserts next to the solution fails them.
* The forgery probes print a token-like string (16 to 64 hex digits) they found; a harness whose
  proof of a pass looks otherwise is not fooled by them, which the probe cannot tell from a safe one.

Environments add probes of their own for hacks specific to their task by overriding
``TextEnv.probes(example)`` (countdown: a number used twice; arithmetic: the expression echoed).

``rlhub validate --audit`` goes on to measure the verifier's error rates (:mod:`rlhub.authoring.audit`):
rewrites of the gold it wrongly rejects, near misses it wrongly accepts, its slowest scoring and a
ladder of scripted policies. The audit finds the answer in the gold as the probes do (:func:`_answer_slot`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rlhub.authoring.probes import _answer_slot, _builtin_probes, _Target
from rlhub.env.base import Probe
from rlhub.env.registry import make
from rlhub.errors import DataNotFound, RLHubError
from rlhub.types import Example, last_assistant_text

GARBAGE = [
    "",
    " ",
    "I don't know.",
    "<answer></answer>",
    "<think></think>",
    "<think>hmm</think><answer></answer>",
    "\x00\x01\x02 binary \udcff",
    "Ω≈ç√∫˜µ≤≥÷ 数学 🤖",
    "a" * 100_000,
    "<answer>" * 50,
]

PROBE_EXAMPLES = 4
"""Train examples every probe runs on."""

FORMAT_REWARDS = frozenset({"format"})
"""Names of layout rewards; every other positive-weight reward counts as correctness."""


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    kind: str = "check"
    """Either "check" or "probe"."""
    rule: str = ""
    """A probe's rule, e.g. "correct <= 0, total <= 0.1 (format)"."""
    max_correct: float | None = None
    """A probe's highest correctness reward over its completions."""
    max_total: float | None = None
    """A probe's highest total reward over its completions."""


@dataclass
class Report:
    env_id: str
    checks: list[Check] = field(default_factory=list)
    no_data: str | None = None
    """Set when the env's data is not on this machine (nor reachable): nothing could be checked."""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append(Check(name, bool(passed), detail))

    def to_dict(self) -> dict:
        out = {"env_id": self.env_id, "passed": self.passed, "checks": [asdict(c) for c in self.checks]}
        return {**out, "no_data": self.no_data} if self.no_data else out


def _key(ex: Example) -> tuple:
    return (ex.id, repr(ex.prompt), repr(ex.answer), repr(sorted(ex.info.items())))


def validate_env(env_id: str, n: int = 16, **config) -> Report:
    """Run every check and probe on ``n`` examples of ``env_id`` (with ``config`` overrides)."""
    report = Report(env_id)
    try:
        env = make(env_id, **config)
        train = env.examples("train", limit=n, seed=0)
        test = env.examples("test", limit=n, seed=0)
    except RLHubError as exc:
        report.add("examples load", False, str(exc))
        report.no_data = str(exc) if isinstance(exc, DataNotFound) else None
        return report
    report.add("examples load", bool(train) and bool(test), f"{len(train)} train, {len(test)} test")
    if not train:
        return report

    again = env.examples("train", limit=n, seed=0)
    other = env.examples("train", limit=n, seed=1)
    same = [_key(e) for e in train] == [_key(e) for e in again]
    differs = len(train) < 2 or [_key(e) for e in train] != [_key(e) for e in other]
    report.add("deterministic", same and differs, "same seed -> same examples; seed 1 -> different order/examples")

    positive = [name for name, w in env.rubric.weights.items() if w > 0]
    failures = []
    for ex in train + test:
        score = env.score(env.gold_completion(ex), ex)
        low = {k: score.rewards[k] for k in positive if score.rewards[k] not in (None, 1.0)}
        if low or score.errors:
            failures.append(f"{ex.id}: {low or score.errors}")
    detail = f"{len(train) + len(test)} gold completions score 1.0 on {positive}"
    report.add("gold scores 1.0", not failures, "; ".join(failures[:3]) or detail)

    bad = []
    for ex in train[:4]:
        for text in GARBAGE:
            score = env.score(text, ex)
            if score.reward > 0 or any((v or 0) > 0 for k, v in score.rewards.items() if k in positive):
                bad.append(f"{text[:20]!r} -> {score.reward:g}")
    report.add("garbage scores 0", not bad, "; ".join(bad[:3]) or f"{len(GARBAGE)} garbage completions x 4 examples")

    ex = train[0]
    obs, _ = env.reset(seed=0, options={"example": ex})
    gold = env.gold_completion(ex)
    turns = [m["content"] for m in gold if m.get("role") == "assistant"] if isinstance(gold, list) else [gold]
    for turn in turns:  # a multi-turn env replays the gold transcript's assistant turns
        _, reward, terminated, truncated, _ = env.step(turn)
        if terminated or truncated:
            break
    expected = env.score(gold, ex).reward
    ok = env.observation_space.contains(obs) and terminated and abs(reward - expected) < 1e-9
    report.add("gymnasium api", ok, f"reset -> prompt, step(gold) -> reward {reward:g}, terminated={terminated}")

    report.checks += probe_env(env, train[:PROBE_EXAMPLES], pool=train + test)
    return report


# --- running them ------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    """How one probe fared over all its examples."""

    probe: Probe
    rule: str
    completions: int = 0
    examples: int = 0
    max_correct: float = 0.0
    max_total: float = 0.0
    failures: list[str] = field(default_factory=list)


def _preview(completion: Any, width: int = 60) -> str:
    """The completion's last assistant text, quoted; past ``width`` characters, its start and end only."""
    text = last_assistant_text(completion)
    head, tail = width * 8 // 15, width * 2 // 5
    return repr(text if len(text) <= width else f"{text[:head]}...{text[-tail:]}")


def _rule(probe: Probe, format_max: float) -> str:
    parts = [] if probe.max_correct is None else [f"correct <= {probe.max_correct:g}"]
    if probe.max_total == "format":
        parts.append(f"total <= {format_max:g} (format)")
    elif probe.max_total == "gold":
        parts.append("total <= gold")
    else:
        parts.append(f"total <= {float(probe.max_total):g}")
    if probe.max_seconds is not None:
        parts.append(f"within {probe.max_seconds:g} s")
    return ", ".join(parts)


def probe_env(env, examples: Sequence[Example], pool: Sequence[Example] = ()) -> list[Check]:
    """Run the built-in probes and the env's own on ``examples``; one :class:`Check` per probe name.

    Args:
        env: The environment.
        examples: The examples to probe (``validate_env`` uses the first :data:`PROBE_EXAMPLES` train ones).
        pool: More examples, whose answers serve as the wrong candidates of answer spam.

    Returns:
        One check per probe name, in the order the probes were first seen.
    """
    weights = env.rubric.weights
    correctness = [k for k, w in weights.items() if w > 0 and k not in FORMAT_REWARDS]
    format_max = sum(w for k, w in weights.items() if w > 0 and k in FORMAT_REWARDS)
    golds = [env.gold_completion(ex) for ex in examples]
    gold_totals = [s.reward for s in env.score_batch(golds, list(examples))]
    answers: dict[str, None] = {}  # every example's answer, once each, in order
    for ex in [*examples, *pool]:
        slot = _answer_slot(last_assistant_text(env.gold_completion(ex)))
        if slot is not None:
            answers.setdefault(slot.content, None)

    outcomes: dict[str, _Outcome] = {}
    planned: list[tuple[Probe, Example, float]] = []
    for ex, gold, gold_total in zip(examples, golds, gold_totals):
        slot = _answer_slot(last_assistant_text(gold))
        wrongs = [a for a in answers if slot is None or a.strip() != slot.content.strip()]
        probes = _builtin_probes(_Target(ex, gold, slot, wrongs, getattr(env, "acts_through_tools", False)))
        try:
            probes += list(env.probes(ex))
        except Exception as exc:  # an env's own probe builder is env code: report it, do not crash validate
            outcomes.setdefault("env probes", _Outcome(Probe("env probes", []), rule="builds without error"))
            outcomes["env probes"].failures.append(f"{ex.id}: {type(exc).__name__}: {exc}")
        for probe in probes:
            outcome = outcomes.setdefault(probe.name, _Outcome(probe, _rule(probe, format_max)))
            outcome.examples += 1
            planned.append((probe, ex, gold_total))

    def judge(probe: Probe, ex: Example, gold_total: float, completions: list, scores: list, seconds: float) -> None:
        outcome = outcomes[probe.name]
        limit = {"format": format_max, "gold": gold_total}.get(probe.max_total, probe.max_total)
        for completion, score in zip(completions, scores):
            outcome.completions += 1
            correct = max([score.rewards.get(k) or 0.0 for k in correctness], default=0.0)
            outcome.max_correct = max(outcome.max_correct, correct)
            outcome.max_total = max(outcome.max_total, score.reward)
            too_correct = probe.max_correct is not None and correct > probe.max_correct + 1e-9
            if score.errors:
                outcome.failures.append(f"{ex.id}: {_preview(completion)} made {score.errors} raise")
            elif too_correct or score.reward > float(limit) + 1e-9:
                scored = f"correct {correct:g}, total {score.reward:g}"
                outcome.failures.append(f"{ex.id}: {_preview(completion)} -> {scored}")
        if probe.max_seconds is not None and seconds > probe.max_seconds:
            outcome.failures.append(f"{ex.id}: scoring took {seconds:.1f} s")

    # Untimed probes in one batch, so that code envs run their programs concurrently; timed ones alone.
    untimed = [(p, ex, g) for p, ex, g in planned if p.max_seconds is None]
    flat = [(p, ex, g, c) for p, ex, g in untimed for c in p.completions]
    scores = env.score_batch([c for *_, c in flat], [ex for _, ex, _, _ in flat]) if flat else []
    for (probe, ex, gold_total, completion), score in zip(flat, scores):
        judge(probe, ex, gold_total, [completion], [score], 0.0)
    for probe, ex, gold_total in planned:
        if probe.max_seconds is None:
            continue
        completions = list(probe.completions)
        start = time.perf_counter()
        timed_scores = env.score_batch(completions, [ex] * len(completions))
        judge(probe, ex, gold_total, completions, timed_scores, time.perf_counter() - start)

    checks = []
    for name, o in outcomes.items():
        detail = "; ".join(o.failures[:2]) or f"{o.completions} completions on {o.examples} examples: {o.probe.about}"
        checks.append(Check(name, not o.failures, detail, "probe", o.rule, o.max_correct, o.max_total))
    return checks
