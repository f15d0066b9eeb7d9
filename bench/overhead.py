"""Benchmark: reward time as a share of step time, and peak memory with and without the KL reference.

    python -m bench.overhead [--steps 2] [--warmup 1] [--json out.json]

Runs rlhub's trainer (the quickstart recipe: SmolLM2-135M-Instruct + LoRA, with its own micro-batching)
in a fresh process per setup, one after another, for ``--warmup`` + ``--steps`` steps:

- arithmetic-v1, beta=0: the quickstart as it is (rewards are a regex and an integer comparison);
- arithmetic-v1, beta>0: the same with the KL term, whose reference policy is the base model under the
  LoRA adapter (the adapter switched off), so no second copy of the weights is loaded; the difference
  is a no-grad forward per micro-batch and, as rlhub skips a micro-batch whose advantages are all zero
  only without a KL term, an update on every step;
- arithmetic-v1, beta=0, 16 completions per forward/backward: the quickstart's micro-batching before it
  became 4; the first step samples the same completions, so the peak
  memory and step time compare the micro-batching alone;
- codegen-v0, beta=0: rewards that run the model's code against generated asserts in the bubblewrap
  sandbox (one program per test), where reward time is largest (the sandbox workers are processes of
  their own: their memory is not in the trainer's figures).

Time, from the metrics each step logs (``charts/reward_time``, ``charts/generation_time``,
``charts/step_time``, as in ``metrics.jsonl``): the share of step time spent computing rewards,
generating, and in the update (the rest), over the timed steps (after the warm-up; the first step
also starts worker processes, such as the sandbox's, so it is reported apart).

Memory, in MiB: the resident set after loading (model, LoRA, optimizer), the peak of each step
(sampled every 20 ms in the trainer's process) and the process's ``ru_maxrss``. The KL comparison is
on the first step, where both runs sample the same completions (same seed, same weights before the
first update), so the work differs only by the KL term; without a KL term a step whose groups all have
equal rewards skips its forward/backward, so if that happens on the first step the comparison falls
back to the highest peak over the steps that ran an update. The trainers run with glibc's
``MALLOC_MMAP_THRESHOLD_`` fixed (``--mmap-threshold``, 1 MiB): every large tensor is then mapped
and unmapped on its own, and RSS follows the memory in use. Under glibc's default, which raises the
threshold as large blocks are freed, the order of allocations alone moved the peak by 300-500 MiB
here (beta>0 measured lower than beta=0 with identical completions); ``--mmap-threshold 0`` keeps
the default.
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
from rlhub.trainers.recipe import load_recipe

KL_BETA = 0.04
SETUPS: dict[str, tuple[str, list[str]]] = {
    "arithmetic": ("arithmetic, beta=0", ["algorithm.beta=0.0"]),
    "arithmetic_kl": (f"arithmetic, beta={KL_BETA}", [f"algorithm.beta={KL_BETA}"]),
    "codegen": ("codegen, beta=0", ["algorithm.beta=0.0", "env.id=codegen-v0", "env.config={difficulty: 1}"]),
    "arithmetic_mb16": ("arithmetic, beta=0, micro-batches of 16", ["algorithm.beta=0.0"]),
}
"""Per setup: its label and its recipe overrides, on top of the quickstart recipe."""
MICRO_BATCH = {"arithmetic_mb16": 16}
"""Completions per forward/backward where a setup differs from the recipe's ``training.micro_batch_size``."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2, help="timed steps per setup (after the warm-up)")
    p.add_argument("--warmup", type=int, default=1, help="steps run first and reported apart")
    p.add_argument("--prompts", type=int, default=None, help="prompts per step (default: the recipe's)")
    p.add_argument("--group", type=int, default=None, help="completions per prompt (default: the recipe's)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="arithmetic (default: the recipe's)")
    p.add_argument("--code-max-new-tokens", type=int, default=128, help="codegen: room for a function")
    p.add_argument("--mmap-threshold", type=int, default=2**20, help="glibc MALLOC_MMAP_THRESHOLD_ (0: default)")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", default=str(QUICKSTART))
    p.add_argument("--json", dest="json_path", default=None, help="write the results here")
    return p.parse_args(argv)


def share(part: list[float], whole: list[float]) -> float | None:
    return sum(part) / sum(whole) if whole and sum(whole) else None


def updated(step: dict, beta: float) -> bool:
    """Whether the step ran a forward/backward: without a KL term rlhub skips a micro-batch of zero advantages."""
    return beta > 0 or step["zero_advantage_groups"] < 1.0


def summarize(run: TrainerRun, warmup: int) -> dict:
    timed, first = run.steps[warmup:], run.steps[:warmup]
    beta = run.ready["settings"]["beta"]
    step = [s["step_s"] for s in timed]
    reward = [s["reward_s"] for s in timed]
    generation = [s["generation_s"] for s in timed]
    update = [s - r - g for s, r, g in zip(step, reward, generation)]
    with_update = [s["peak_rss_mb"] for s in run.steps if updated(s, beta)]
    return {
        "steps_timed": len(timed),
        "s_per_step": fmean(step),
        "reward_s_per_step": fmean(reward),
        "reward_ms_per_sample": 1000 * sum(reward) / sum(s["samples"] for s in timed) if timed else None,
        "reward_share": share(reward, step),
        "generation_share": share(generation, step),
        "update_share": share(update, step),
        "warmup_reward_share": share([s["reward_s"] for s in first], [s["step_s"] for s in first]),
        "warmup_reward_s": sum(s["reward_s"] for s in first),
        "steps_with_update": len(with_update),
        "first_step_updated": bool(run.steps) and updated(run.steps[0], beta),
        "rss_after_load_mb": run.ready["rss_mb"],
        "peak_rss_per_step_mb": [s["peak_rss_mb"] for s in run.steps],
        "peak_rss_update_steps_mb": max(with_update) if with_update else None,
        "max_rss_process_mb": run.steps[-1]["max_rss_mb"] if run.steps else run.ready["max_rss_mb"],
        "mean_reward": fmean([s["reward"] for s in run.steps]),
        "rewards": {k: fmean([s["rewards"].get(k) for s in run.steps]) for k in run.steps[0]["rewards"]}
        if run.steps
        else {},
        "settings": run.ready.get("settings"),
    }


def paired_figures(base: dict, kl: dict) -> dict:
    """Peak memory and step time of a second setup against the base run, compared on the same step (see the
    module docstring). The keys name the second run ``kl``, the first pairing it served (the KL reference);
    the micro-batch pairing reuses them, and the stored results keep them."""
    if base["first_step_updated"]:
        compared, peaks = (
            "first step (same completions)",
            (base["peak_rss_per_step_mb"][0], kl["peak_rss_per_step_mb"][0]),
        )
    elif base["steps_with_update"]:
        compared, peaks = "steps that ran an update", (base["peak_rss_update_steps_mb"], kl["peak_rss_update_steps_mb"])
    else:
        compared, peaks = "nothing: no beta=0 step ran an update (all groups had equal rewards)", (None, None)
    return {
        "compared": compared,
        "peak_rss_mb": peaks[0],
        "peak_rss_kl_mb": peaks[1],
        "peak_rss_delta_mb": peaks[1] - peaks[0] if peaks[0] is not None else None,
        "max_rss_process_delta_mb": kl["max_rss_process_mb"] - base["max_rss_process_mb"],
        "s_per_step_ratio": kl["s_per_step"] / base["s_per_step"] if base["s_per_step"] else None,
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    machine = machine_info()
    environment = {"MALLOC_MMAP_THRESHOLD_": str(args.mmap_threshold)} if args.mmap_threshold else {}
    results: dict[str, dict] = {}
    recipe_micro_batch = load_recipe(args.recipe).training.micro_batch_size
    with tempfile.TemporaryDirectory(prefix="rlhub-bench-") as tmp:
        for name, (label, overrides) in SETUPS.items():
            settings = TrainerSettings(
                recipe=args.recipe,
                prompts=args.prompts,
                group=args.group,
                max_new_tokens=args.code_max_new_tokens if name == "codegen" else args.max_new_tokens,
                max_steps=args.warmup + args.steps,
                threads=args.threads,
                seed=args.seed,
                overrides=overrides,
                micro_batch=MICRO_BATCH.get(name, recipe_micro_batch),
                poll_memory=True,
                environment=environment,
            )
            folder = Path(tmp) / name
            folder.mkdir()
            runs = take_turns({"rlhub": ("rlhub", settings)}, folder, steps=args.warmup + args.steps)
            results[name] = {"label": label, **summarize(runs["rlhub"], args.warmup)}

    kl = paired_figures(results["arithmetic"], results["arithmetic_kl"])
    micro = paired_figures(results["arithmetic"], results["arithmetic_mb16"])  # same first step, other micro-batching
    out = {
        "benchmark": "reward overhead and peak memory",
        "settings": {
            "steps_timed": args.steps,
            "warmup_steps": args.warmup,
            "setups": {name: overrides for name, (_, overrides) in SETUPS.items()},
            "environment": environment,
        },
        "machine": machine,
        "results": results,
        "kl_reference": kl,
        "micro_batch_16": micro,
        "script_wall_s": round(time.perf_counter() - start, 1),
    }

    table = Table(title=f"rlhub trainer: where step time goes, and memory ({args.steps} timed steps per setup)")
    table.add_column("setup")
    for column in (
        "s/step",
        "reward",
        "generation",
        "update",
        "reward ms/sample",
        "RSS loaded",
        "peak RSS/step",
        "updates",
    ):
        table.add_column(column, justify="right")

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.2%}"

    for r in results.values():
        table.add_row(
            r["label"],
            "-" if r["s_per_step"] is None else f"{r['s_per_step']:.2f}",
            pct(r["reward_share"]),
            pct(r["generation_share"]),
            pct(r["update_share"]),
            "-" if r["reward_ms_per_sample"] is None else f"{r['reward_ms_per_sample']:.2f}",
            f"{r['rss_after_load_mb']:,.0f} MiB",
            ", ".join(f"{p:,.0f}" for p in r["peak_rss_per_step_mb"]) + " MiB",
            f"{r['steps_with_update']}/{args.warmup + args.steps}",
        )
    console = Console()
    console.print(table)
    delta = "n/a" if kl["peak_rss_delta_mb"] is None else f"{kl['peak_rss_delta_mb']:+,.0f} MiB"
    console.print(
        f"KL reference (beta={KL_BETA} vs 0): peak RSS {delta}, compared on the {kl['compared']}; "
        f"step time {kl['s_per_step_ratio']:.2f}x"
    )
    delta = "n/a" if micro["peak_rss_delta_mb"] is None else f"{micro['peak_rss_delta_mb']:+,.0f} MiB"
    console.print(
        f"Micro-batches of 16 vs the recipe's: peak RSS {delta}, compared on the {micro['compared']}; "
        f"step time {micro['s_per_step_ratio']:.2f}x"
    )
    write_json(args.json_path, out)
    return out


if __name__ == "__main__":
    main()
