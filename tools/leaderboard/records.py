"""What measuring returns: typed records, each with the ``to_dict`` form stored in ``docs/measurements.json``.

The stored form is what the env cards (:mod:`rlhub.authoring.measurements`) and the leaderboard pages
read, so its keys (``pass@1``, ``pass@1_se``, ...) stay as they are; the records give them names.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class PassRate:
    """Greedy pass@1 of one group of examples: a difficulty level, a task family, a reasoning-gym task."""

    group: str
    n: int
    pass_at_1: float
    se: float
    """One standard error of ``pass_at_1``."""

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "n": self.n, "pass@1": self.pass_at_1, "se": self.se}


@dataclasses.dataclass(frozen=True)
class Greedy:
    """Temperature 0, one sample per example."""

    n: int
    pass_at_1: float
    pass_at_1_se: float
    mean_reward: float
    mean_reward_se: float
    mean_length: float | None = None
    """Mean completion length in tokens (one env's measurement; not a family's)."""
    rewards: dict[str, float] | None = None
    """Each reward function's mean (one env's measurement; not a family's)."""
    tasks: int | None = None
    """The tasks a family's summary spans (a family's measurement only)."""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "n": self.n,
            "pass@1": self.pass_at_1,
            "pass@1_se": self.pass_at_1_se,
            "mean_reward": self.mean_reward,
            "mean_reward_se": self.mean_reward_se,
        }
        extra = {"mean_length": self.mean_length, "rewards": self.rewards, "tasks": self.tasks}
        return out | {key: value for key, value in extra.items() if value is not None}


@dataclasses.dataclass(frozen=True)
class Sampled:
    """Temperature 1, ``k`` samples per example."""

    n: int
    k: int
    temperature: float
    pass_at: dict[str, float]
    """``{"pass@1": ..., "pass@k": ...}``, as :class:`rlhub.evaluate.EvalResult` reports them."""
    pass_at_1_se: float
    """Standard error of pass@1 over the examples (each example's pass rate is one value)."""
    mean_reward: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "k": self.k,
            "temperature": self.temperature,
            **self.pass_at,
            "pass@1_se": self.pass_at_1_se,
            "mean_reward": self.mean_reward,
        }


@dataclasses.dataclass(frozen=True)
class Lengths:
    """Prompt and gold lengths in tokens over a data env's test split (quantiles from ``stats.quantiles``)."""

    examples: int
    prompt_tokens: dict[str, float]
    gold_tokens: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Difficulty:
    """pass@1 by difficulty level and by task family, and the lengths of a data env's examples."""

    by_level: list[PassRate] | None = None
    by_family: list[PassRate] | None = None
    lengths: Lengths | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("by_level", "by_family"):
            rows = getattr(self, key)
            if rows is not None:
                out[key] = [row.to_dict() for row in rows]
        if self.lengths is not None:
            out["lengths"] = self.lengths.to_dict()
        return out


@dataclasses.dataclass(frozen=True)
class Cost:
    reward_ms_per_completion: float
    sandbox_programs_per_completion: float | None = None
    """Code envs only."""

    def to_dict(self) -> dict[str, Any]:
        out = {"reward_ms_per_completion": self.reward_ms_per_completion}
        if self.sandbox_programs_per_completion is not None:
            out["sandbox_programs_per_completion"] = self.sandbox_programs_per_completion
        return out


@dataclasses.dataclass(frozen=True)
class Measured:
    """A model's numbers on one env (or one id family: no cost, a ``tasks`` count in the baseline)."""

    greedy: Greedy
    sampled: Sampled | None
    difficulty: Difficulty
    cost: Cost | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        baseline = {"greedy": self.greedy.to_dict()}
        if self.sampled is not None:
            baseline["sampled"] = self.sampled.to_dict()
        out = {"status": "measured", "baseline": baseline, "difficulty": self.difficulty.to_dict()}
        if self.cost is not None:
            out["cost"] = self.cost.to_dict()
        return out | {"seconds": self.seconds}


@dataclasses.dataclass(frozen=True)
class NotMeasured:
    """Why an env was not measured (its data is not on this machine, ...)."""

    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"status": "not measured", "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Probe:
    """One ``rlhub validate`` probe (a reward hack): its rule and the highest scores its completions earned."""

    name: str
    rule: str
    max_correct: float | None
    max_total: float | None
    passed: bool


@dataclasses.dataclass(frozen=True)
class Trust:
    """``rlhub validate``'s verdict on an env, and how many gold completions score full marks."""

    validate_passed: bool
    checks_failed: list[str]
    probes: list[Probe]
    gold_n: int
    gold_full_marks: int
    main_reward: str
    """The rubric's first reward, on which gold completions are scored."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "measured",
            "validate_passed": self.validate_passed,
            "checks_failed": list(self.checks_failed),
            "probes": [dataclasses.asdict(p) for p in self.probes],
            "gold": {"n": self.gold_n, "full_marks": self.gold_full_marks, "reward": self.main_reward},
        }


@dataclasses.dataclass(frozen=True)
class Window:
    """Means over a window of training steps."""

    reward: float
    accuracy: float


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """A finished recipe run's per-step reward, as the env card's "Training run" section shows it."""

    recipe: str
    """The recipe path the card names (as a user would type it)."""
    model: str
    algorithm: str
    steps: int
    prompts_per_step: int
    group_size: int
    main_reward: str
    window: int
    """Steps averaged at each end."""
    reward: list[float]
    accuracy: list[float]
    first: Window
    last: Window
    wall_s: float
    hack_watch: list[str] | None
    """The hack watch's signals that tripped; ``None`` when the run did not watch."""
    commit: str
    date: str
    rlhub_version: str
    heldout: dict[str, Any] | None = None
    """Held-out pass@1 before and after training, paired by example (``rlhub eval --compare``, pooled over the
    pairs given): examples, before, after, difference, low, high, gained, lost, the pairs' folder names and the
    sampler."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One model's leaderboard cell for one env: its greedy numbers, the sampled pass@k, a family's task count."""

    n: int
    pass_at_1: float
    pass_at_1_se: float
    mean_reward: float
    sampled_k: int | None = None
    sampled_pass_at_k: float | None = None
    tasks: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"n": self.n, "pass@1": self.pass_at_1, "pass@1_se": self.pass_at_1_se, "mean_reward": self.mean_reward}
        if self.sampled_k is not None:
            out[f"sampled_pass@{self.sampled_k}"] = self.sampled_pass_at_k
        if self.tasks is not None:
            out["tasks"] = self.tasks
        return out


@dataclasses.dataclass(frozen=True)
class Row:
    """A leaderboard row: one env (or the reasoning-gym family) and each model that was run on it."""

    env: str
    domain: str
    models: dict[str, Cell | NotMeasured]

    def to_dict(self) -> dict[str, Any]:
        models = {model: cell.to_dict() for model, cell in self.models.items()}
        return {"env": self.env, "domain": self.domain, "models": models}
