"""What a training step logs: the metric names on the W&B dashboard, and the completions table's rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlhub.evaluate import mean


class UpdateStats:
    """Per-micro-batch statistics of one update, folded into metrics at the end of the step."""

    def __init__(self):
        self.values: dict[str, list[float]] = {"loss": [], "entropy": [], "ratio": [], "ratio_max": []}

    def add(self, loss, stats: dict[str, torch.Tensor], logp, entropy, batch, n_work: int, first_pass: bool) -> None:
        m = batch.loss_mask
        self.values["loss"].append(loss.item())
        for key, value in stats.items():  # per-token statistics: masked means; scalars: batch shares
            if value.dim():
                value = float((value * m).sum() / m.sum().clamp(min=1))
            else:
                value, key = float(value) * n_work, f"{key}:share"
            self.values.setdefault(key, []).append(value)
        self.values["entropy"].append(float((entropy * m).sum() / m.sum().clamp(min=1)))
        if first_pass:  # before this step's update: training vs sampling log-probs of the same policy
            ratio = torch.exp(logp.detach() - batch.old_logp)[m > 0]
            if ratio.numel():
                self.values["ratio"].append(float(ratio.mean()))
                self.values["ratio_max"].append(float(ratio.max()))

    def metrics(self, n_work: int) -> dict[str, float]:
        s = self.values
        out = {
            "losses/policy": mean(s["loss"]) * n_work if n_work else 0.0,
            "losses/clip_fraction": mean(s.get("clipped", [])),
            "losses/entropy": mean(s["entropy"]),
        }
        if s["ratio"]:  # training forward vs sampler on the same weights: ~1 unless their numerics drift
            out["ratio/mean"], out["ratio/max"] = mean(s["ratio"]), max(s["ratio_max"])
        if s.get("kl"):
            out["losses/kl"] = mean(s["kl"])
        for key in sorted(set(s) - {"loss", "clipped", "kl", "entropy", "ratio", "ratio_max"}):
            out[f"losses/{key.removesuffix(':share')}"] = mean(s[key])
        return out


def rollout_metrics(all_rewards, all_lengths, completions, group_size: int, rewards) -> dict[str, float]:
    """Reward and completion-length statistics of the step (``all_*``: gathered across processes)."""
    out = {
        "reward": float(all_rewards.mean()),
        "reward_std": float(all_rewards.std()) if all_rewards.numel() > 1 else 0.0,
        "completions/mean_length": float(all_lengths.mean()),
        "completions/clipped_ratio": mean([0.0 if c.finished else 1.0 for c in completions]),
    }
    if group_size > 1:
        out["charts/zero_advantage_groups"] = float((rewards.view(-1, group_size).std(1) == 0).float().mean())
    return out


def tool_metrics(completions, toolbox) -> dict[str, float]:
    """Multi-turn episodes: turns, calls, error rate, and env vs model tokens."""
    states = [c.state for c in completions]
    calls = sum(st.tools.calls for st in states)
    out = {
        "tools/turns_per_episode": mean([st.turns for st in states]),
        "tools/calls_per_episode": calls / len(states),
        "tools/error_rate": sum(st.tools.errors for st in states) / max(calls, 1),
        "tools/env_tokens": float(sum(len(c.loss_mask) - sum(c.loss_mask) for c in completions)),
        "tools/model_tokens": float(sum(sum(c.loss_mask) for c in completions)),
    }
    for name in toolbox.tools:
        out[f"tools/calls/{name}"] = float(sum(st.tools.per_tool.get(name, 0) for st in states))
    return out


def reward_metrics(scores, names: list[str]) -> dict[str, float]:
    """Each reward function's mean and std, accuracy (the ``correct`` reward at 1.0), and reward errors."""
    out: dict[str, float] = {}
    for name in names:
        vals = [s.rewards[name] for s in scores if s.rewards[name] is not None]
        out[f"rewards/{name}/mean"] = mean(vals)
        out[f"rewards/{name}/std"] = float(np.std(vals)) if vals else 0.0
    if "correct" in names:
        out["accuracy"] = mean([1.0 if (s.rewards["correct"] or 0) >= 1.0 else 0.0 for s in scores])
    out["rewards/errors"] = float(sum(len(s.errors) for s in scores))
    return out


def completion_rows(rows, completions, scores, advantages, multi_turn: bool) -> list[dict[str, Any]]:
    """The completions table: prompt, completion (the whole transcript for tool episodes), rewards, advantage."""
    return [
        {
            "prompt": rows[i].prompt[-1]["content"],
            "completion": "\n".join(f"[{m['role']}] {m['content']}" for m in c.messages) if multi_turn else c.text,
            **{f"reward/{k}": v for k, v in scores[i].rewards.items()},
            "reward": scores[i].reward,
            "advantage": float(advantages[i]),
        }
        for i, c in enumerate(completions)
    ]
