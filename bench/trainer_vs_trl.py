"""Benchmark: rlhub's GRPO trainer against TRL's ``GRPOTrainer``, step for step on the same machine.

    python -m bench.trainer_vs_trl [--steps 5] [--warmup 1] [--json out.json]

Both train the embedded SmolLM2-135M-Instruct (float32) with LoRA r=16, alpha=32, dropout 0 on all linear
layers, on ``arithmetic-v0`` with the quickstart recipe's env config (difficulty 1, prompt_style user,
few_shot 2) and reward weights (correct 1.0, format 0.5), for the same number of steps with the same
prompts per step (the same prompts, in the same order: TRL's dataset is put in the order rlhub's prompt
stream takes them and TRL's shuffling is off), group size G, max new tokens, temperature 1.0 / top_p 1.0,
learning rate (constant, no warmup, AdamW, no weight decay, grad-norm clip 1.0), beta 0, loss_type dapo,
epsilon 0.2 / 0.28, per-group reward scaling, one optimizer step per generation batch (TRL: batch size
P*G, no gradient accumulation; rlhub: one micro-batch of P*G), no gradient checkpointing, no checkpoints,
W&B off, the same torch thread count.

Each trainer runs in its own process and they take turns, one step at a time (A B B A ...; see
``bench/common.py``), so both see the same machine conditions and neither always goes first.

Measured per trainer: the first ``--warmup`` steps run but are left out of the timing; of the rest,
seconds per step (a turn: generation + reward + update + the trainer's own logging, timed alike for
both; each trainer's own step time is in the JSON too), samples/s (completions per second of those
turns; model load, LoRA wrapping and trainer construction are excluded), mean reward over all steps run
(warm-up included; the rubric's weighted sum, as each trainer logs it), and mean completion length.
Ratios are rlhub/TRL (above 1 means rlhub is faster / scores higher). Targets: rlhub at least 1.5x TRL's
samples/s, with a mean reward at least TRL's after the same steps.

What is not aligned (and could not be):
  * Generation: TRL samples with ``model.generate`` (HF's sampler, dynamic cache, its own eos/pad
    handling); rlhub samples with its own KV-cache loop (``HFRolloutEngine``) that stops at the chat
    template's end-of-turn token. The sampling RNG streams differ, so the completions (and so their
    lengths, rewards and the amount of work per step) differ even from the same weights and prompts;
    with a few steps the mean reward is noisy and says little about learning (``learning_curves`` does).
  * The update: rlhub shares the prompt's forward across a group and skips the forward/backward of a
    micro-batch whose advantages are all zero (same gradient; here one micro-batch per step, so a step
    where every group's rewards are equal); TRL runs every sequence of prompt + completion. These are
    the implementations being compared, not a setup difference.
  * Bookkeeping: each trainer computes its own metrics (TRL: entropy, clip ratios, gathered logs); both
    are inside the turn.
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
    BenchError,
    TrainerRun,
    TrainerSettings,
    default_threads,
    fmean,
    machine_info,
    take_turns,
    write_json,
)

TARGET_SPEEDUP = 1.5
METRICS = (
    ("samples_per_s", "samples/s (completions / turn s)", "{:.2f}"),
    ("s_per_step", "s / step (turn)", "{:.2f}"),
    ("own_s_per_step", "s / step (trainer's own clock)", "{:.2f}"),
    ("mean_reward", "mean reward (all steps)", "{:.3f}"),
    ("mean_completion_length", "mean completion length (tokens)", "{:.1f}"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="timed optimizer steps per trainer (after the warm-up)")
    p.add_argument("--warmup", type=int, default=1, help="steps run first and left out of the timing")
    p.add_argument("--prompts", type=int, default=2, help="prompts per step")
    p.add_argument("--group", type=int, default=8, help="completions per prompt (G)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch threads for each trainer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--first", choices=["rlhub", "trl"], default="rlhub", help="who takes the first turn")
    p.add_argument("--recipe", default=str(QUICKSTART))
    p.add_argument("--json", dest="json_path", default=None, help="write the results here")
    return p.parse_args(argv)


def summarize(run: TrainerRun, warmup: int) -> dict:
    """Speed over the timed steps, reward and length over all steps."""
    timed = run.steps[warmup:]
    turn_total = sum(s["turn_s"] for s in timed)
    own_total = sum(s["step_s"] for s in timed)
    samples = sum(s["samples"] for s in timed)
    return {
        "trainer": run.name,
        "steps_run": len(run.steps),
        "steps_timed": len(timed),
        "turn_s": [round(s["turn_s"], 3) for s in run.steps],
        "own_step_s": [round(s["step_s"], 3) for s in run.steps],
        "s_per_step": turn_total / len(timed) if timed else None,
        "own_s_per_step": own_total / len(timed) if timed else None,
        "samples_per_s": samples / turn_total if turn_total else None,
        "rewards": [s.get("reward") for s in run.steps],
        "mean_reward": fmean([s.get("reward") for s in run.steps]),
        "mean_completion_length": fmean([s.get("mean_length") for s in run.steps]),
        "settings": run.ready.get("settings"),
        "reward_weights": run.ready.get("reward_weights"),
    }


def print_table(results: dict[str, dict], ratios: dict[str, float], title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    for name in ("rlhub", "trl"):
        table.add_column(name, justify="right")
    table.add_column("rlhub/TRL", justify="right")
    for key, label, fmt in METRICS:
        cells = ["-" if results[n][key] is None else fmt.format(results[n][key]) for n in ("rlhub", "trl")]
        ratio = ratios.get(key)
        table.add_row(label, *cells, "-" if ratio is None else f"{ratio:.2f}")
    Console().print(table)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import rlhub

    settings = TrainerSettings(
        recipe=args.recipe,
        prompts=args.prompts,
        group=args.group,
        max_new_tokens=args.max_new_tokens,
        learning_rate=args.lr,
        max_steps=args.warmup + args.steps,
        threads=args.threads,
        seed=args.seed,
        overrides=["training.temperature=1.0", "training.top_p=1.0"],
    )
    order = ["rlhub", "trl"] if args.first == "rlhub" else ["trl", "rlhub"]
    start = time.perf_counter()
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="rlhub-bench-") as tmp:
        runs = take_turns({name: (name, settings) for name in order}, Path(tmp), steps=args.warmup + args.steps)
    results = {name: summarize(runs[name], args.warmup) for name in ("rlhub", "trl")}
    if any(r["steps_timed"] < args.steps for r in results.values()):
        raise BenchError(f"a trainer stopped early: {', '.join(f'{n}: {r.stopped}' for n, r in runs.items())}")
    ratios = {
        key: results["rlhub"][key] / results["trl"][key]
        for key, _, _ in METRICS
        if results["rlhub"][key] is not None and results["trl"][key]
    }
    out = {
        "benchmark": "rlhub GRPO vs TRL GRPOTrainer",
        "settings": {
            **results["rlhub"]["settings"],
            "steps_timed": args.steps,
            "warmup_steps": args.warmup,
            "turn_order": "alternating, " + " then ".join(order) + " first",
            "versions": {
                "rlhub": rlhub.__version__,
                "trl": __import__("trl").__version__,
                "transformers": __import__("transformers").__version__,
            },
        },
        "machine": machine,
        "results": results,
        "ratios_rlhub_over_trl": ratios,
        "targets": {
            "samples_per_s_ratio_at_least": TARGET_SPEEDUP,
            "samples_per_s_met": ratios.get("samples_per_s", 0) >= TARGET_SPEEDUP,
            "reward_not_lower_met": results["rlhub"]["mean_reward"] >= results["trl"]["mean_reward"],
        },
        "script_wall_s": round(time.perf_counter() - start, 1),
    }
    title = (
        f"rlhub vs TRL GRPO: {args.prompts} prompts x {args.group} completions, {args.max_new_tokens} new tokens, "
        f"{args.steps} timed steps (+{args.warmup} warm-up), {args.threads} threads, turns alternate"
    )
    print_table(results, ratios, title)
    write_json(args.json_path, out)
    return out


if __name__ == "__main__":
    main()
