"""Benchmark: reward against wall-clock time, rlhub's GRPO trainer and TRL's ``GRPOTrainer``, same budget.

    python -m bench.learning_curves [--budget 300] [--json out.json] [--png out.png]

Both train the quickstart recipe (``recipes/quickstart.yaml``: embedded SmolLM2-135M-Instruct + LoRA on
``arithmetic-v1``, 4 prompts x 8 completions, 64 new tokens, the same prompts in the same order, the same
hyperparameters; see ``bench/trainer_vs_trl.py`` for what is aligned and what cannot be) until each has
trained for ``--budget`` seconds of its own time. They take turns step by step (``bench/common.py``), so
the budget is each trainer's compute time on an otherwise idle machine: model loading is not in it, and
a step still running when the budget ends is cut off and not counted.

Recorded per step: the trainer's elapsed time at the end of the step and the step's mean reward (the
rubric's weighted sum over its P x G completions: correct 1.0 + format 0.5, so 1.5 at most).

Reported per trainer:
  * reward at the budget: the mean reward of the steps that ended in the last quarter of the budget
    (the last step's when none did), the policy's reward by then;
  * area under the curve, per second: the time-average of the reward over the budget, with each step's
    reward held over the time that step ran (from the previous step's end to its own) and the last
    reward held to the budget; it credits reaching a reward early, not only reaching it;
  * steps and samples done within the budget, and the first step's reward (both start from the same
    weights, so their first steps estimate the same thing).

The PNG draws both curves (each step's reward, and a moving mean over 5 steps).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.common import (
    QUICKSTART,
    TrainerRun,
    TrainerSettings,
    default_threads,
    fmean,
    machine_info,
    take_turns,
    write_json,
)

LAST_SHARE = 0.25
"""Reward at the budget: the mean over the steps that ended in this last share of the budget."""
SMOOTH = 5
"""Steps in the moving mean drawn in the PNG."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=300.0, help="seconds of training per trainer")
    p.add_argument("--prompts", type=int, default=None, help="prompts per step (default: the recipe's)")
    p.add_argument("--group", type=int, default=None, help="completions per prompt (default: the recipe's)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the recipe's")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch threads for each trainer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--first", choices=["rlhub", "trl"], default="rlhub", help="who takes the first turn")
    p.add_argument("--recipe", default=str(QUICKSTART))
    p.add_argument("--json", dest="json_path", default=None, help="write the results here")
    p.add_argument("--png", default=None, help="draw the curves here (default: beside --json)")
    return p.parse_args(argv)


def curve_figures(points: list[tuple[float, float]], budget: float) -> dict:
    """Reward at the budget and the time-averaged reward for (elapsed seconds, reward) points up to ``budget``.

    >>> curve_figures([(10.0, 0.0), (20.0, 1.0)], budget=40.0)["auc_per_s"]
    0.75
    """
    if not points:
        return {"reward_at_budget": None, "auc_per_s": None}
    late = [reward for elapsed, reward in points if elapsed > (1 - LAST_SHARE) * budget]
    area, previous = 0.0, 0.0
    for elapsed, reward in points:
        area += reward * (elapsed - previous)
        previous = elapsed
    area += points[-1][1] * (budget - previous)
    return {"reward_at_budget": fmean(late) if late else points[-1][1], "auc_per_s": area / budget}


def summarize(run: TrainerRun, budget: float) -> dict:
    points = [(s["elapsed_s"], s["reward"]) for s in run.steps if s.get("reward") is not None]
    return {
        "trainer": run.name,
        "curve": [
            {"step": s["step"], "elapsed_s": round(s["elapsed_s"], 3), "reward": s.get("reward")} for s in run.steps
        ],
        "steps": len(run.steps),
        "samples": sum(s["samples"] for s in run.steps),
        "first_reward": points[0][1] if points else None,
        "mean_reward": fmean([r for _, r in points]),
        **curve_figures(points, budget),
        "s_per_step": fmean([s["turn_s"] for s in run.steps]),
        "stopped": run.stopped,
        "settings": run.ready.get("settings"),
    }


def moving_mean(values: list[float], window: int) -> list[float]:
    return [
        sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
        for i in range(len(values))
    ]


def plot(results: dict[str, dict], budget: float, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, color in (("rlhub", "tab:blue"), ("trl", "tab:orange")):
        curve = [p for p in results[name]["curve"] if p["reward"] is not None]
        x = [p["elapsed_s"] for p in curve]
        y = [p["reward"] for p in curve]
        ax.plot(x, y, "o", color=color, alpha=0.35, markersize=4)
        ax.plot(x, moving_mean(y, SMOOTH), "-", color=color, label=f"{name} ({len(curve)} steps)")
    ax.axvline(budget, color="grey", linestyle=":", linewidth=1)
    ax.set_xlim(0, budget * 1.02)
    ax.set_xlabel("training time (s, model loading excluded)")
    ax.set_ylabel(f"mean reward per step (dots; lines: mean of {SMOOTH} steps)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    settings = TrainerSettings(
        recipe=args.recipe,
        prompts=args.prompts,
        group=args.group,
        max_new_tokens=args.max_new_tokens,
        max_steps=10_000,
        threads=args.threads,
        seed=args.seed,
    )
    order = ["rlhub", "trl"] if args.first == "rlhub" else ["trl", "rlhub"]
    start = time.perf_counter()
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="rlhub-bench-") as tmp:
        runs = take_turns({name: (name, settings) for name in order}, Path(tmp), budget_s=args.budget)
    results = {name: summarize(runs[name], args.budget) for name in ("rlhub", "trl")}
    s = results["rlhub"]["settings"]
    title = (
        f"{s['env']} (quickstart), {s['model']} + LoRA, {s['prompts_per_step']} prompts x {s['group_size']}, "
        f"{s['max_new_tokens']} new tokens, {args.budget:.0f} s each, {args.threads} threads"
    )
    out = {
        "benchmark": "reward against training time, rlhub vs TRL",
        "settings": {**s, "budget_s": args.budget, "turn_order": "alternating, " + " then ".join(order) + " first"},
        "machine": machine,
        "results": results,
        "ratios_rlhub_over_trl": {
            key: results["rlhub"][key] / results["trl"][key]
            for key in ("auc_per_s", "reward_at_budget", "steps")
            if results["rlhub"][key] is not None and results["trl"][key]
        },
        "script_wall_s": round(time.perf_counter() - start, 1),
    }

    table = Table(title=title)
    table.add_column("trainer")
    for column in ("steps", "s/step", "first reward", "reward at budget", "AUC / s", "mean reward"):
        table.add_column(column, justify="right")
    for name, r in results.items():
        cells = [
            r["steps"],
            r["s_per_step"],
            r["first_reward"],
            r["reward_at_budget"],
            r["auc_per_s"],
            r["mean_reward"],
        ]
        table.add_row(name, *("-" if c is None else f"{c:.3g}" if isinstance(c, float) else str(c) for c in cells))
    console = Console()
    console.print(table)
    for name, r in results.items():
        if not r["steps"]:  # a result too (the trainer is that slow here), but the curve says nothing
            console.print(f"{name} finished no step within {args.budget:.0f} s; a larger --budget draws its curve")

    png = Path(args.png) if args.png else Path(args.json_path).with_suffix(".png") if args.json_path else None
    if png is not None:
        plot(results, args.budget, title, png)
        out["png"] = png.name
    write_json(args.json_path, out)
    return out


if __name__ == "__main__":
    main()
