"""A rubric: named reward functions with weights, declared in data.

Every reward function has TRL's GRPOTrainer signature, ``fn(completions, **columns) -> list[float | None]``,
so the same functions serve rlhub's trainers and TRL's. A weight of 0 logs a function without optimizing it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlhub.errors import ConfigError
from rlhub.types import Score

log = logging.getLogger(__name__)

RewardFn = Callable[..., list]


@dataclass(frozen=True)
class ReferenceCheck:
    """A verifier's cross-check against a reference implementation, and where it decides otherwise on purpose.

    A reward function carries one as its ``reference_check`` attribute; env cards list the differences under the
    rubric, and the cross-check test holds the two checkers to these kinds and no others.
    """

    reference: str
    """The checker compared with, as users know it (``"math-verify"``)."""
    test: str
    """The test that runs the cross-check, as a path in the repository."""
    differences: Mapping[str, str]
    """Each kind of case the two decide differently -> why rlhub decides as it does."""


@dataclass(frozen=True)
class WeightedReward:
    name: str
    fn: RewardFn
    weight: float


class Rubric:
    """Named reward functions combined by weight.

    Args:
        rewards: Either a mapping ``name -> (fn, weight)`` or a sequence of functions (named by
            ``fn.__name__``) used with ``weights``.
        weights: Weights for a sequence of functions; defaults to 1.0 each.

    Example:
        >>> def exact(completions, answer, **kw):
        ...     return [1.0 if c.strip() == a else 0.0 for c, a in zip(completions, answer)]
        >>> rubric = Rubric([exact])
        >>> rubric.score("42", answer="42").reward
        1.0
    """

    def __init__(
        self,
        rewards: Mapping[str, tuple[RewardFn, float]] | Sequence[RewardFn],
        weights: Sequence[float] | None = None,
    ):
        if isinstance(rewards, Mapping):
            items = [WeightedReward(name, fn, float(w)) for name, (fn, w) in rewards.items()]
        else:
            weights = [1.0] * len(rewards) if weights is None else list(weights)
            if len(weights) != len(rewards):
                raise ConfigError(f"rubric has {len(rewards)} reward functions but {len(weights)} weights")
            items = [WeightedReward(fn.__name__, fn, float(w)) for fn, w in zip(rewards, weights)]
        if not items:
            raise ConfigError("a rubric needs at least one reward function")
        names = [r.name for r in items]
        if len(set(names)) != len(names):
            raise ConfigError(f"rubric reward names must be unique, got {names}")
        self.items: list[WeightedReward] = items

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.items]

    @property
    def weights(self) -> dict[str, float]:
        return {r.name: r.weight for r in self.items}

    def reweighted(self, weights: Mapping[str, float]) -> Rubric:
        """A copy with some weights replaced (recipes override weights by name)."""
        unknown = set(weights) - set(self.names)
        if unknown:
            raise ConfigError(f"unknown reward name(s) {sorted(unknown)}; this rubric has {self.names}")
        return Rubric({r.name: (r.fn, float(weights.get(r.name, r.weight))) for r in self.items})

    def score_batch(self, completions: Sequence[Any], columns: Sequence[Mapping[str, Any]]) -> list[Score]:
        """Score many completions; ``columns[i]`` holds completion i's reward columns (e.g. ``answer``).

        A reward function that raises, returns the wrong length or a non-finite value is logged and
        scores 0 for the affected completions: a buggy reward never stops training.
        """
        n = len(completions)
        if len(columns) != n:
            raise ValueError(f"got {n} completions but {len(columns)} column rows")
        keys = set().union(*(c.keys() for c in columns)) if columns else set()
        batch_columns = {k: [c.get(k) for c in columns] for k in keys}
        per_fn: dict[str, list[float | None]] = {}
        errors: dict[str, list[int]] = {}
        for item in self.items:
            try:
                values = list(item.fn(list(completions), **batch_columns))
                if len(values) != n:
                    raise ValueError(f"returned {len(values)} values for {n} completions")
            except Exception as exc:
                log.warning("reward %r raised %s: %s; scoring 0", item.name, type(exc).__name__, exc)
                per_fn[item.name] = [0.0] * n
                errors[item.name] = list(range(n))
                continue
            cleaned: list[float | None] = []
            for i, v in enumerate(values):
                if v is None:
                    cleaned.append(None)
                    continue
                try:
                    fv = float(v)
                except (TypeError, ValueError):
                    fv = float("nan")
                if not math.isfinite(fv):
                    errors.setdefault(item.name, []).append(i)
                    fv = 0.0
                cleaned.append(fv)
            per_fn[item.name] = cleaned
        scores = []
        for i in range(n):
            rewards = {name: per_fn[name][i] for name in self.names}
            total = sum(r.weight * (rewards[r.name] or 0.0) for r in self.items)
            errs = [name for name, idx in errors.items() if i in idx]
            scores.append(Score(reward=total, rewards=rewards, errors=errs))
        return scores

    def score(self, completion: Any, **columns: Any) -> Score:
        """Score one completion."""
        return self.score_batch([completion], [columns])[0]

    def __repr__(self) -> str:
        inner = ", ".join(f"{r.name}={r.weight:g}" for r in self.items)
        return f"Rubric({inner})"
