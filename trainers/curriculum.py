"""Difficulty curricula: train on the levels the policy solves sometimes, neither never nor always.

An env with levels lists them in a class attribute ``levels``: the values its config's ``difficulty`` field
takes (arithmetic: 1-5, codegen: 1-3). With ``training.curriculum: {band: [0.1, 0.9]}`` the loop builds one
prompt stream per level (the recipe's ``env.config`` with ``difficulty`` set to the level) and a
:class:`Curriculum` draws each prompt's level:

- each level keeps a running pass rate: an exponential moving average, over the draws that reached it, of the
  share of its completions whose first reward function (the correctness check) scores 1.0, as ``rlhub eval``
  counts pass@1;
- a prompt's level is drawn uniformly among the levels whose rate lies inside the band (a level not seen yet
  counts as inside); when none does, the level whose rate is nearest the band is taken;
- a share ``explore`` of prompts draws among all levels, so that a level left outside the band is measured
  again as the policy changes.

Its state (the levels' rates, their streams' positions, the draws made) is a small JSON mapping that the
checkpoint stores, so ``--resume`` continues exactly. Processes sum their pass counts before updating the
rates, so every process holds the same rates and draws the same levels for its slice of each batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from random import Random

from rlhub.errors import ConfigError

LEVEL_FIELD = "difficulty"
"""The config field a level sets."""


def levels_of(env) -> tuple[int, ...]:
    """The env's difficulty levels (its ``levels`` attribute); empty when it has none."""
    return tuple(getattr(env, "levels", ()))


def check_supported(recipe, env, served: bool) -> tuple[int, ...]:
    """The env's levels, or a one-line refusal of a set-up a curriculum does not cover."""
    levels = levels_of(env)
    if not levels:
        raise ConfigError(
            f"{recipe.env.id} has no difficulty levels (no `levels` attribute); remove training.curriculum "
            "or pick an env that has them (arithmetic-v1, codegen-v0)"
        )
    if served:
        raise ConfigError(
            "training.curriculum builds one env per level, which a served env (env.url, env.container) cannot; "
            "run the env in-process or remove training.curriculum"
        )
    if recipe.training.max_off_policy_steps:
        raise ConfigError(
            "training.curriculum does not run with asynchronous rollouts yet; "
            "set training.max_off_policy_steps=0 or remove training.curriculum"
        )
    return levels


class Curriculum:
    """Prompts drawn level by level, from the levels whose running pass rate lies inside ``band``.

    It takes the place of the loop's single prompt stream: :meth:`take` and ``position`` as a stream has, plus
    :meth:`observe` after scoring, :meth:`metrics` when logging, and :meth:`state_dict` /
    :meth:`load_state_dict` for checkpoints.

    Args:
        streams: One prompt stream per level, in increasing difficulty.
        band: ``(low, high)``: the pass rates worth training on.
        ema_weight: Weight of a draw's pass rate in a level's running rate.
        explore: Share of prompts whose level is drawn among all levels.
        seed: Seeds the level draws (one RNG per draw, from ``(seed, draw)``).
    """

    def __init__(self, streams: dict, *, band: tuple[float, float], ema_weight: float, explore: float, seed: int):
        self.streams = streams
        self.levels = tuple(streams)
        self.band = band
        self.ema_weight = ema_weight
        self.explore = explore
        self.seed = seed
        self.rates: dict[int, float | None] = {k: None for k in self.levels}
        self.draws = 0
        self._level_of: dict[str, int] = {}
        self._taken = {k: 0 for k in self.levels}  # prompts per level since the last metrics()

    @property
    def position(self) -> int:
        """Prompts taken so far, over all levels."""
        return sum(s.position for s in self.streams.values())

    def _distance(self, level: int) -> float:
        rate, (low, high) = self.rates[level], self.band
        return 0.0 if rate is None else max(low - rate, rate - high, 0.0)

    def choose(self, rng: Random) -> int:
        """One prompt's level."""
        if rng.random() < self.explore:
            return rng.choice(self.levels)
        inside = [k for k in self.levels if self._distance(k) == 0.0]
        if inside:
            return rng.choice(inside)
        return min(self.levels, key=self._distance)

    def take(self, n: int) -> list:
        """The next ``n`` prompts, each from the stream of the level drawn for it."""
        rng = Random(f"{self.seed}/curriculum/{self.draws}")
        self.draws += 1
        out = []
        for level in [self.choose(rng) for _ in range(n)]:
            (example,) = self.streams[level].take(1)
            # Levels number their examples alike: the level in the id keeps them apart (prompt cache, logs).
            example = dataclasses.replace(example, id=f"level-{level}/{example.id}")
            self._level_of[example.id] = level
            self._taken[level] += 1
            out.append(example)
        return out

    def observe(self, rows: list, passed: list[bool], all_sum: Callable[[list[float]], list[float]]) -> None:
        """Update the levels' rates with a draw's outcomes (``rows``: each completion's example).

        ``all_sum`` sums the counts across processes (a collective op: every process calls it once per draw).
        """
        counts = [0.0] * (2 * len(self.levels))
        for example, ok in zip(rows, passed):
            i = self.levels.index(self._level_of[example.id])
            counts[i] += float(ok)
            counts[len(self.levels) + i] += 1.0
        counts = all_sum(counts)
        for i, level in enumerate(self.levels):
            n = counts[len(self.levels) + i]
            if n:
                rate, old = counts[i] / n, self.rates[level]
                self.rates[level] = rate if old is None else (1 - self.ema_weight) * old + self.ema_weight * rate
        self._level_of.clear()

    def metrics(self) -> dict[str, float]:
        """``curriculum/level_<k>/pass_rate`` (levels seen) and ``/share`` (of the prompts since the last call)."""
        total = sum(self._taken.values()) or 1
        out = {f"curriculum/level_{k}/share": self._taken[k] / total for k in self.levels}
        out |= {f"curriculum/level_{k}/pass_rate": r for k, r in self.rates.items() if r is not None}
        self._taken = {k: 0 for k in self.levels}
        return out

    def state_dict(self) -> dict:
        """What a checkpoint stores (JSON): the position over all levels, and the curriculum's own state."""
        state = {
            "rates": {str(k): r for k, r in self.rates.items()},
            "positions": {str(k): s.position for k, s in self.streams.items()},
            "draws": self.draws,
        }
        return {"position": self.position, "curriculum": state}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        if "curriculum" not in state:
            raise ConfigError(
                "the checkpoint was written without training.curriculum; resume with the recipe that wrote it"
            )
        saved = state["curriculum"]
        self.rates = {k: saved["rates"][str(k)] for k in self.levels}
        for k, stream in self.streams.items():
            stream.position = saved["positions"][str(k)]
        self.draws = saved["draws"]
