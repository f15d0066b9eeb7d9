"""Reward-curve PNGs from runs' ``metrics.jsonl``: raw points plus a smoothed line, runs overlaid."""

from __future__ import annotations

import json
from pathlib import Path

from rlhub.errors import RLHubError


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise RLHubError(f"{run_dir} has no metrics.jsonl; pass a run folder written by `rlhub train`")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # Rows of one step merge (training and eval metrics); a resumed run's re-logged step overrides.
    by_step: dict[int, dict] = {}
    for row in rows:
        by_step.setdefault(row["step"], {}).update(row)
    return [by_step[s] for s in sorted(by_step)]


def smooth(values: list[float], weight: float = 0.8) -> list[float]:
    """Exponential moving average, debiased like TensorBoard's smoothing slider."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight**i))
    return out


def plot_runs(run_dirs: list[Path], out: Path) -> Path:
    """One PNG: total reward, each reward function's mean, completion length and (if logged) KL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(Path(d).name, read_metrics(Path(d))) for d in run_dirs]
    reward_keys = sorted(
        {k for _, rows in runs for r in rows for k in r if k.startswith("rewards/") and k.endswith("/mean")}
    )
    panels = ["reward", *reward_keys, "completions/mean_length"]
    if any("eval/reward" in r for _, rows in runs for r in rows):
        panels.insert(1, "eval/reward")
    if any("losses/kl" in r for _, rows in runs for r in rows):
        panels.append("losses/kl")
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.4 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, panels):
        for i, (name, rows) in enumerate(runs):
            points = [(r["step"], r[key]) for r in rows if key in r]
            if not points:
                continue
            steps, values = zip(*points)
            color = f"C{i}"
            ax.plot(steps, values, "o", color=color, alpha=0.25, markersize=3)
            ax.plot(steps, smooth(list(values)), "-", color=color, label=name)
        ax.set_title(key.removeprefix("rewards/").removesuffix("/mean") if key != "reward" else "total reward")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
