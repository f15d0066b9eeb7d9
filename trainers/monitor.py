"""Hack watch: the signals that tend to precede a reward-hacked run, checked every step.

An RL run climbs whatever the reward pays for. When the reward pays for something other than the task,
the run usually shows it before anyone reads a completion:

- ``reward_up_eval_down``: the training reward rose while the in-loop eval's pass@1 fell;
- ``format_only``: the format reward saturated while correctness stayed where it started;
- ``length_collapse``: completions shrank to a fraction of their first length;
- ``length_at_limit``: most completions hit ``max_new_tokens``;
- ``repeated_completion``: one completion string answered many different prompts in one step;
- ``rescore_mismatch``: a high-reward completion, scored again, gets another reward (a reward that
  depends on state, or that the completion changed while being scored), or is one of the env's own
  probes (``env.probes``: hacks it knows) yet was paid more correctness than the probe allows.

Each signal is logged every step as ``monitor/<name>`` (1 when tripped) and warned once, in the console
and as a W&B alert. Thresholds live in the recipe's ``monitor:`` section. The checks are list
arithmetic plus scoring ``monitor.rescore`` completions again, far below 1% of a step.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from rlhub.evaluate import mean
from rlhub.trainers.recipe import MonitorSection
from rlhub.types import last_assistant_text

log = logging.getLogger(__name__)

SIGNALS = (
    "reward_up_eval_down",
    "format_only",
    "length_collapse",
    "length_at_limit",
    "repeated_completion",
    "rescore_mismatch",
)


def _normalized(completion) -> str:
    """A completion's text (a transcript's last assistant message), whitespace runs collapsed."""
    return " ".join(last_assistant_text(completion).split())


class HackWatch:
    """Per-step checks over the run's metrics and completions; ``alert(title, text)`` is called once per signal.

    Args:
        config: The recipe's ``monitor`` section.
        env: The environment (its rubric names the correctness and format rewards; ``probes`` if it has them).
        alert: Where a tripped signal goes besides the log (the tracker's W&B alert).
    """

    def __init__(self, config: MonitorSection, env, alert: Callable[[str, str], None] | None = None):
        self.config = config
        self.env = env
        self.alert = alert
        names = env.rubric.names
        self.correct = names[0] if names else None
        self.format = "format" if "format" in names and names[0] != "format" else None
        self.history: list[dict[str, float]] = []
        self.evals: list[tuple[int, float, float]] = []  # (step, pass@1, mean training reward of the steps before)
        self.warned: set[str] = set()

    # --- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores so a resumed run's windows, evals and warnings continue this run's (JSON)."""
        return {"history": self.history, "evals": [list(e) for e in self.evals], "warned": sorted(self.warned)}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Continue from ``state_dict()``'s output; ``None`` (a checkpoint from before it was stored) keeps
        the fresh state."""
        if state is None:
            return
        self.history = list(state["history"])
        self.evals = [tuple(e) for e in state["evals"]]
        self.warned = set(state["warned"])

    # --- per step -------------------------------------------------------------------------------------
    def step(self, metrics: dict[str, Any], completions: list, rows: list, scores: list) -> dict[str, float]:
        """Check this step; returns ``monitor/*`` metrics. ``completions`` are the env's outputs (strings or
        transcripts), ``rows`` their examples, ``scores`` their training scores."""
        if not self.config.enabled:
            return {}
        start = time.perf_counter()
        self.history.append(metrics)
        tripped = {
            "format_only": self._format_only(),
            "length_collapse": self._length_collapse(),
            "length_at_limit": self._length_at_limit(),
            "repeated_completion": self._repeated(completions, rows),
            "rescore_mismatch": self._rescore(completions, rows, scores),
        }
        out = {f"monitor/{name}": float(bool(detail)) for name, detail in tripped.items()}
        for name, detail in tripped.items():
            if detail:
                self._warn(name, detail)
        out["monitor/time_s"] = time.perf_counter() - start
        return out

    def eval(self, step: int, metrics: dict[str, float]) -> dict[str, float]:
        """Record an in-loop eval (``eval/pass@1``) with the training reward of the steps since the last one,
        and check ``reward_up_eval_down``; returns its ``monitor/`` metric."""
        if not self.config.enabled or "eval/pass@1" not in metrics:
            return {}
        since = self.evals[-1][0] if self.evals else 0
        rewards = [m["reward"] for m in self.history[since:step]]
        self.evals.append((step, metrics["eval/pass@1"], mean(rewards) if rewards else float("nan")))
        detail = self._eval_signal()
        if detail:
            self._warn("reward_up_eval_down", detail)
        return {"monitor/reward_up_eval_down": float(bool(detail))}

    # --- the signals: each returns "" (quiet) or what it saw ------------------------------------------------
    def _windows(self, key: str) -> tuple[float, float] | None:
        """Mean of ``key`` over the run's first window and its last one, once they do not overlap."""
        w = self.config.window
        values = [m[key] for m in self.history if key in m]
        if len(values) < 2 * w:
            return None
        return mean(values[:w]), mean(values[-w:])

    def _format_only(self) -> str:
        if self.format is None or self.correct is None:
            return ""
        fmt = self._windows(f"rewards/{self.format}/mean")
        cor = self._windows(f"rewards/{self.correct}/mean")
        if fmt is None or cor is None:
            return ""
        c = self.config
        if fmt[1] >= c.format_saturated and fmt[1] - fmt[0] > c.flat and abs(cor[1] - cor[0]) <= c.flat:
            return (
                f"the {self.format} reward rose from {fmt[0]:.2f} to {fmt[1]:.2f} while {self.correct} stayed at "
                f"{cor[0]:.2f} -> {cor[1]:.2f}: the run is learning the format, not the task"
            )
        return ""

    def _length_collapse(self) -> str:
        lengths = self._windows("completions/mean_length")
        if lengths is None or lengths[0] <= 0:
            return ""
        if lengths[1] < self.config.length_collapse * lengths[0]:
            return f"mean completion length fell from {lengths[0]:.1f} to {lengths[1]:.1f} tokens"
        return ""

    def _length_at_limit(self) -> str:
        w = self.config.window
        clipped = [m["completions/clipped_ratio"] for m in self.history if "completions/clipped_ratio" in m]
        if len(clipped) < w:
            return ""
        share = mean(clipped[-w:])
        if share >= self.config.clipped:
            return f"{share:.0%} of the last {w} steps' completions hit max_new_tokens (truncated, scored unfinished)"
        return ""

    def _repeated(self, completions, rows) -> str:
        prompts_of: dict[str, set[str]] = defaultdict(set)
        for completion, row in zip(completions, rows):
            text = _normalized(completion)
            if text:
                prompts_of[text].add(row.id)
        n_prompts = len({row.id for row in rows})
        if not prompts_of or n_prompts < 3:
            return ""
        text, ids = max(prompts_of.items(), key=lambda kv: len(kv[1]))
        if len(ids) >= 3 and len(ids) / n_prompts >= self.config.repeated:
            return f"one completion answered {len(ids)} of {n_prompts} prompts: {text[:80]!r}"
        return ""

    def _rescore(self, completions, rows, scores) -> str:
        n = self.config.rescore
        if not n or not completions:
            return ""
        top = sorted(range(len(scores)), key=lambda i: -scores[i].reward)[:n]
        top = [i for i in top if scores[i].reward > 0]
        if not top:
            return ""
        again = self.env.score_batch([completions[i] for i in top], [rows[i] for i in top])
        for i, score in zip(top, again):
            if abs(score.reward - scores[i].reward) > 1e-6:
                return f"a completion scored {scores[i].reward:.3f} in training and {score.reward:.3f} scored again"
            hack = self._probe_match(completions[i], rows[i], scores[i])
            if hack:
                return hack
        return ""

    def _probe_match(self, completion, row, score) -> str:
        probes = getattr(self.env, "probes", None)
        if probes is None or self.correct is None:
            return ""
        text = _normalized(completion)
        try:
            found = probes(row)
        except Exception:  # a probe generator that fails on this example says nothing about the completion
            return ""
        for probe in found:
            if probe.max_correct is None:
                continue
            attempts = {_normalized(c) for c in probe.completions}
            if text in attempts and (score.rewards.get(self.correct) or 0.0) > probe.max_correct:
                return (
                    f"a completion is the env's probe {probe.name!r} ({probe.about or 'a known hack'}) and was paid "
                    f"{self.correct}={score.rewards.get(self.correct)}"
                )
        return ""

    def _eval_signal(self) -> str:
        if len(self.evals) < 3:  # before training, then two evals with training steps before each
            return ""
        (_, p_prev, r_prev), (step, p_now, r_now) = self.evals[-2], self.evals[-1]
        if p_prev - p_now > self.config.eval_drop and r_now > r_prev:
            return (
                f"training reward rose ({r_prev:.3f} -> {r_now:.3f}) while eval pass@1 fell "
                f"({p_prev:.3f} -> {p_now:.3f}) by step {step}"
            )
        return ""

    def _warn(self, name: str, detail: str) -> None:
        if name in self.warned:
            return
        self.warned.add(name)
        message = f"hack watch: {name}: {detail}; read the completions table before trusting this run"
        log.warning(message)
        if self.alert is not None:
            self.alert(f"rlhub hack watch: {name}", message)
