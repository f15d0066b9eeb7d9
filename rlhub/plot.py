"""PNG charts: reward curves from runs' ``metrics.jsonl`` (runs overlaid), and bar charts of ``rlhub eval`` results."""

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


# --- evaluation results ---------------------------------------------------------------------------
def eval_bars(results: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """``{env: {metric: {model: value}}}`` from ``EvalResult.to_dict()`` dicts (or ``eval.json`` files).

    Metrics, in order: pass@k for each k, the mean total reward, then each reward function's mean.

    >>> r = {"env_id": "a-v0", "model": "m", "pass_at_k": {"pass@1": 0.5}, "mean_reward": 0.6,
    ...      "rewards": {"correct": 0.5, "format": 1.0}}
    >>> eval_bars([r])
    {'a-v0': {'pass@1': {'m': 0.5}, 'mean reward': {'m': 0.6}, 'correct': {'m': 0.5}, 'format': {'m': 1.0}}}
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in results:
        metrics = out.setdefault(r["env_id"], {})
        pass_k = sorted(r["pass_at_k"].items(), key=lambda item: int(item[0].split("@")[1]))
        for name, value in [*pass_k, ("mean reward", r["mean_reward"]), *r["rewards"].items()]:
            metrics.setdefault(name, {})[r["model"]] = float(value)
    return out


def _short(model: str, limit: int = 32) -> str:
    """A model path short enough for a legend: its last folders."""
    if len(model) <= limit:
        return model
    parts = Path(model).parts
    return ".../" + "/".join(parts[-2:]) if len(parts) > 2 else model[-limit:]


def plot_eval(results: list[dict], out: Path) -> Path:
    """One PNG with a panel per env: bars for pass@k, mean reward and each reward function, one colour per model.

    Args:
        results: ``EvalResult.to_dict()`` dicts: several envs, and several models per env to compare.
        out: The PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        raise RLHubError("no evaluation results to plot")
    data = eval_bars(results)
    models = list(dict.fromkeys(r["model"] for r in results))
    cols = min(3, len(data))
    nrows = -(-len(data) // cols)
    widest = max(len(metrics) for metrics in data.values())
    fig, axes = plt.subplots(
        nrows, cols, figsize=(max(4.5, 0.9 * widest * max(1, len(models) / 2)) * cols, 3.8 * nrows), squeeze=False
    )
    width = 0.8 / len(models)
    for ax, (env_id, metrics) in zip(axes.flat, data.items()):
        names = list(metrics)
        top = max(v for per_model in metrics.values() for v in per_model.values())
        for m, model in enumerate(models):
            values = [metrics[name].get(model) for name in names]
            xs = [x + (m - (len(models) - 1) / 2) * width for x in range(len(names))]
            bars = ax.bar(xs, [v or 0.0 for v in values], width, color=f"C{m}", label=_short(model))
            ax.bar_label(bars, labels=["" if v is None else f"{v:.2f}" for v in values], fontsize=7, padding=1)
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
        ax.set_ylim(0, max(1.0, top) * 1.15)
        ax.set_title(env_id)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(data) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    legend_rows = -(-len(models) // 3)
    fig.legend(handles, labels, loc="upper center", ncol=min(3, len(models)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.06 * legend_rows / nrows))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
