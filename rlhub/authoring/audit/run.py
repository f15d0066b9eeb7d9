"""Audit one env: score its accept and reject sets and its policy ladder, and hold the figures to its bounds."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from random import Random
from typing import Any

from rlhub.authoring.audit import answers, calls, expressions, programs, queries, responses
from rlhub.authoring.audit.cases import Case, Cases
from rlhub.authoring.probes import _answer_slot, _Target
from rlhub.authoring.validate import FORMAT_REWARDS, _preview
from rlhub.env.registry import make
from rlhub.errors import ConfigError, DataNotFound, RLHubError
from rlhub.rewards.parsing import strip_think
from rlhub.types import Example, last_assistant_text

DEFAULT_BOUNDS = {"fn": 0.02, "fp": 0.01, "seconds": 5.0, "oracle": 0.99, "random": 0.05, "heuristic": 0.5}
"""The most (``fn``, ``fp``: rates; ``seconds``: one completion's scoring; ``random``, ``heuristic``: mean
correctness) or least (``oracle``: mean correctness) an env may show. An env class overrides any of them
with a class attribute ``audit_bounds = {"fn": 0.05}``."""

AUDIT_EXAMPLES = 16
"""Test examples audited per env by default (``rlhub validate -n`` raises it)."""

SHOWN = 3
"""Failing cases named per failed bound."""

PREVIEW = 160
"""Characters of a failing case shown (its text after the reasoning)."""


def domain_of(t: _Target):
    """The module that writes audit cases and policies for the gold's answer layout, or ``None``."""
    if t.slot is None:
        return responses if t.example.info.get("constraints") else None
    if t.slot.kind == "tool_calls":
        return calls
    if t.slot.kind == "code":
        return programs
    if "databases" in t.example.info:
        return queries
    return expressions if expressions.is_expression(t.slot.content) else answers


@dataclass
class Rate:
    """How many cases of a set failed, by kind, with the first few failures spelled out."""

    failed: int = 0
    total: int = 0
    kinds: dict[str, list[int]] = field(default_factory=dict)
    """Per kind of case, ``[failed, total]``."""
    examples: list[str] = field(default_factory=list)
    """The first :data:`SHOWN` failing cases: example id, kind, completion and its correctness."""

    def add(self, kind: str, failed: bool, what: str) -> None:
        counts = self.kinds.setdefault(kind, [0, 0])
        counts[0] += failed
        counts[1] += 1
        self.failed += failed
        self.total += 1
        if failed and len(self.examples) < SHOWN:
            self.examples.append(what)

    @property
    def value(self) -> float | None:
        return self.failed / self.total if self.total else None

    def text(self) -> str:
        return "n/a (0)" if not self.total else f"{100 * self.value:.1f}% ({self.failed}/{self.total})"


@dataclass
class AuditReport:
    """One env's audit: its false-negative and false-positive rates, slowest scoring and policy ladder."""

    env_id: str
    bounds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BOUNDS))
    examples: int = 0
    fn: Rate = field(default_factory=Rate)
    fp: Rate = field(default_factory=Rate)
    completions: int = 0
    slowest_s: float = 0.0
    slowest: str = ""
    """The completion that took ``slowest_s`` to score."""
    ladder: dict[str, float] = field(default_factory=dict)
    """Mean correctness of each scripted policy: ``oracle``, ``random``, ``heuristic``."""
    heuristic: str = ""
    """What the heuristic policy does."""
    errors: list[str] = field(default_factory=list)
    """Rewards that raised, and golds the audit could not build cases from."""
    no_data: str | None = None
    """Why nothing was audited: the env's data is not on this machine."""

    @property
    def problems(self) -> list[str]:
        """Each bound the env breaks, naming the env, the figure, the bound and failing cases."""
        b, out = self.bounds, self.errors[:SHOWN]
        if len(self.errors) > SHOWN:
            out.append(f"{self.env_id}: {len(self.errors) - SHOWN} more errors like these")
        if self.no_data is None and not self.fn.total and not self.fp.total and not self.errors:
            out.append(
                f"{self.env_id}: no audit cases: the audit does not know the gold's answer layout; give the env "
                "class an audit_cases(example) method returning (accept, reject) completions"
            )
        for name, rate, what in (("fn", self.fn, "false negatives"), ("fp", self.fp, "false positives")):
            if rate.value is not None and rate.value > b[name] + 1e-12:
                cases = "; ".join(rate.examples)
                out.append(f"{self.env_id}: {what} {rate.text()} above {100 * b[name]:g}%, e.g. {cases}")
        if self.slowest_s > b["seconds"]:
            out.append(f"{self.env_id}: scoring took {self.slowest_s:.1f} s (bound {b['seconds']:g} s): {self.slowest}")
        ladder = self.ladder
        if "oracle" in ladder and ladder["oracle"] < b["oracle"]:
            out.append(f"{self.env_id}: the oracle (gold) scores {ladder['oracle']:.3f} < {b['oracle']:g}")
        for policy in ("random", "heuristic"):
            if policy in ladder and ladder[policy] > b[policy] + 1e-12:
                out.append(f"{self.env_id}: the {policy} policy scores {ladder[policy]:.3f} > {b[policy]:g}")
        return out

    @property
    def passed(self) -> bool:
        return self.no_data is None and not self.problems

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fn"]["rate"], out["fp"]["rate"] = self.fn.value, self.fp.value
        return {**out, "passed": self.passed, "problems": self.problems}


def env_bounds(env: Any) -> dict[str, float]:
    """The env's bounds: :data:`DEFAULT_BOUNDS` updated with its class attribute ``audit_bounds``."""
    own = dict(getattr(env, "audit_bounds", None) or {})
    unknown = sorted(set(own) - set(DEFAULT_BOUNDS))
    if unknown:
        raise ConfigError(f"audit_bounds has unknown keys {unknown}; use any of {sorted(DEFAULT_BOUNDS)}")
    return {**DEFAULT_BOUNDS, **own}


def audit_cases(env: Any, t: _Target) -> Cases:
    """The env's own ``audit_cases(example)`` when it defines one, else the generator of its answer layout."""
    hook = getattr(env, "audit_cases", None)
    if callable(hook):
        accept, reject = hook(t.example)
        return Cases([Case("env's own", c) for c in accept], [Case("env's own", c) for c in reject])
    domain = domain_of(t)
    return domain.cases(t) if domain is not None else Cases()


def policies(t: _Target, rng: Random) -> dict[str, Any]:
    """The ladder's completions for one example: the gold, and the random and heuristic ones its layout allows."""
    domain = domain_of(t)
    ladder = {"oracle": t.gold}
    if domain is not None:
        ladder.update(random=domain.random_answer(t, rng), heuristic=domain.heuristic(t))
    return ladder


def _targets(env: Any, examples: list[Example]) -> list[_Target]:
    golds = [env.gold_completion(ex) for ex in examples]
    slots = [_answer_slot(last_assistant_text(g)) for g in golds]
    answers_seen = list(dict.fromkeys(s.content.strip() for s in slots if s is not None))
    whole = getattr(env, "acts_through_tools", False)  # a policy's answer replaces the whole episode, as in probes
    return [
        _Target(ex, gold, slot, [a for a in answers_seen if slot is None or a != slot.content.strip()], whole)
        for ex, gold, slot in zip(examples, golds, slots)
    ]


def audit_env(env_id: str, n: int = AUDIT_EXAMPLES, **config: Any) -> AuditReport:
    """Audit the verifier of the registered env ``env_id`` (made with ``config`` overrides); see :func:`audit`."""
    try:
        env = make(env_id, **config)
    except RLHubError as exc:
        return AuditReport(env_id, errors=[f"{env_id}: {exc}"])
    return audit(env, n, env_id)


def audit(env: Any, n: int = AUDIT_EXAMPLES, env_id: str | None = None) -> AuditReport:
    """Audit an env's verifier on its first ``n`` test examples (seed 0).

    Args:
        env: The environment.
        n: Test examples to audit.
        env_id: The name the report goes by (default: the env's id, else its class name).

    Returns:
        The report; ``no_data`` is set when the env's data is not on this machine.
    """
    report = AuditReport(env_id or getattr(env, "env_id", None) or type(env).__name__)
    env_id = report.env_id
    try:
        report.bounds = env_bounds(env)
        examples = env.examples("test", limit=n, seed=0)
    except DataNotFound as exc:
        report.no_data = str(exc)
        return report
    except RLHubError as exc:
        report.errors.append(f"{env_id}: {exc}")
        return report
    names = [k for k, w in env.rubric.weights.items() if w > 0 and k not in FORMAT_REWARDS]
    report.examples = len(examples)
    totals: dict[str, list[float]] = {}

    def shown(completion: Any, ex: Example, kind: str) -> str:
        visible = strip_think(last_assistant_text(completion)).strip() or last_assistant_text(completion)
        return f"{ex.id} [{kind}]: {_preview(visible, PREVIEW)}"

    def correctness(completion: Any, ex: Example, kind: str) -> tuple[float, float]:
        start = time.perf_counter()
        score = env.score(completion, ex)
        seconds = time.perf_counter() - start
        report.completions += 1
        if seconds > report.slowest_s:
            report.slowest_s, report.slowest = seconds, shown(completion, ex, kind)
        if score.errors:
            report.errors.append(f"{env_id}: {shown(completion, ex, kind)} made {score.errors} raise")
        values = [score.rewards.get(k) or 0.0 for k in names]
        return min(values, default=0.0), max(values, default=0.0)

    planned = []
    for t in _targets(env, examples):
        try:
            planned.append((t, audit_cases(env, t), policies(t, Random(f"audit/{t.example.id}"))))
        except Exception as exc:  # a generator that fails on one gold is reported, not fatal
            report.errors.append(f"{env_id}: {t.example.id}: building audit cases raised {type(exc).__name__}: {exc}")
    if planned:  # untimed: worker processes and sandboxes start here, not inside the first timed completion
        t, cases, _ = planned[0]
        warm = [c.completion for c in cases.accept + cases.reject] or [t.gold]
        env.score_batch(warm, [t.example] * len(warm))
    for t, cases, ladder in planned:
        ex = t.example
        for case in cases.accept:
            low, _ = correctness(case.completion, ex, case.kind)
            report.fn.add(case.kind, low < 1.0, f"{shown(case.completion, ex, case.kind)} -> {low:g}")
        for case in cases.reject:
            _, high = correctness(case.completion, ex, case.kind)
            report.fp.add(case.kind, high > 0.0, f"{shown(case.completion, ex, case.kind)} -> {high:g}")
        for policy, completion in ladder.items():
            totals.setdefault(policy, []).append(correctness(completion, ex, f"{policy} policy")[0])
        domain = domain_of(t)
        if domain is not None and not report.heuristic:
            report.heuristic = (domain.heuristic.__doc__ or "").strip()
    report.ladder = {policy: sum(v) / len(v) for policy, v in totals.items()}
    return report
