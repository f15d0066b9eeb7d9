"""Benchmark: rlhub's GRPO trainer against TRL's ``GRPOTrainer``, step for step on the same machine.

    python -m bench.trainer_vs_trl [--steps 5] [--warmup 1] [--dtype auto] [--trl-bf16 auto|on|off]
        [--budget 360] [--json out.json]

Three arms: ``rlhub`` (``model.dtype`` = ``--dtype``; ``auto``, the default, is resolved as a recipe's is, by
``rlhub.models.resolve_dtype``: bfloat16 where this machine's measured LoRA step is faster in it, else float32;
the JSON and the table name the dtype it resolved to), ``rlhub_fp32`` (the same trainer in float32) and
``trl`` (float32 weights; with ``--trl-bf16 on`` TRL's ``bf16=True`` autocast; ``auto``, the default, turns it
on when this machine's bfloat16 matmul, measured first, beats its float32 one: TRL at its fastest setting
here, and the JSON says which it used).
All train the embedded SmolLM2-135M-Instruct with LoRA r=16, alpha=32, dropout 0 on all linear
layers, on ``arithmetic-v1`` with the quickstart recipe's env config (difficulty 1, prompt_style user,
few_shot 2) and reward weights (correct 1.0, format 0.5), for the same number of steps with the same
prompts per step (the same prompts, in the same order: TRL's dataset is put in the order rlhub's prompt
stream takes them and TRL's shuffling is off), group size G, max new tokens, temperature 1.0 / top_p 1.0,
learning rate (constant, no warmup, AdamW, no weight decay, grad-norm clip 1.0), beta 0, loss_type dapo,
epsilon 0.2 / 0.28, per-group reward scaling, one optimizer step per generation batch (TRL: batch size
P*G, no gradient accumulation; rlhub: one micro-batch of P*G), no gradient checkpointing, no checkpoints,
W&B off, the same torch thread count.

Each trainer runs in its own process and they take turns, one step at a time (A B B A ...; see
``bench/common.py``), so both see the same machine conditions and neither always goes first. Each arm may
spend ``--budget`` seconds of its own step time: an arm that runs out (or whose process dies) stops there,
and the JSON and the table give the steps it finished and why it stopped, beside the other arms' figures.

Measured per trainer: the first ``--warmup`` steps run but are left out of the timing; of the rest,
seconds per step (a turn: generation + reward + update + the trainer's own logging, timed alike for
both; each trainer's own step time is in the JSON too), samples/s (completions per second of those
turns; model load, LoRA wrapping and trainer construction are excluded), mean reward over all steps run
(warm-up included; the rubric's weighted sum, as each trainer logs it), and mean completion length.
Ratios are rlhub/TRL and rlhub/rlhub_fp32 (above 1 means rlhub is faster / scores higher). Targets:
rlhub at least 1.5x TRL's samples/s, with a mean reward at least TRL's after the same steps.

Also per arm: its weights dtype, peak resident memory (the child's ``ru_maxrss``, model load included)
and achieved TFLOP/s: a step's useful matmul FLOPs over its turn time. Useful FLOPs count each token
once: 2·M per token to sample it and 4·M to train on it (forward, and a backward that needs activation
gradients only, the base weights being frozen), over the step's distinct prompt tokens and its
completion tokens, where M is the model's matmul parameters (every ``nn.Linear``, the LM head
included); attention scores are left out. Work a trainer repeats (TRL runs each prompt G times) or
skips (rlhub's all-tied micro-batches) does not change the count. ``machine.matmul_tflops`` is the
ceiling they are compared with: a 1024 x 1024 x 1024 matmul in float32 and in bfloat16, measured in
the same run with the same threads.

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
import importlib.metadata
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.common import (
    LOAD_TIMEOUT_S,
    QUICKSTART,
    TrainerRun,
    TrainerSettings,
    default_threads,
    describe,
    fmean,
    machine_info,
    matmul_tflops,
    resolve_recipe,
    take_turns,
    work_per_token,
    write_json,
)

TARGET_SPEEDUP = 1.5
ARMS = ("rlhub", "rlhub_fp32", "trl")
ARM_TRAINERS = {"rlhub": "rlhub", "rlhub_fp32": "rlhub", "trl": "trl"}
"""The trainer behind each arm (``rlhub``, ``trl`` or ``module:function``); a module-level name, so a test can put
stand-in trainers behind the arms."""
ARM_BUDGET_S = 360.0
"""Default ``--budget``: seconds of its own step time each arm may spend. The full run's 5 steps took 83 s for
rlhub and 238 s for TRL on 2 cores of an AVX512-BF16 EPYC (bench/results/trainer_vs_trl.json)."""
SET_UP_S = 300.0
"""Allowance for what runs before the arms: the dtype probe (at most ``PROBE_TIMEOUT_S``), the matmul ceiling,
and counting the prompts' tokens."""


def time_limit_s(budget_s: float = ARM_BUDGET_S) -> float:
    """The longest this benchmark runs: every arm's budget, the children's loading and the set-up before them.

    ``python -m bench`` kills it only after this, so a budget, not the kill, is what ends a slow arm.
    """
    return len(ARMS) * budget_s + LOAD_TIMEOUT_S + SET_UP_S


METRICS = (
    ("samples_per_s", "samples/s (completions / turn s)", "{:.2f}"),
    ("s_per_step", "s / step (turn)", "{:.2f}"),
    ("own_s_per_step", "s / step (trainer's own clock)", "{:.2f}"),
    ("mean_reward", "mean reward (all steps)", "{:.3f}"),
    ("mean_completion_length", "mean completion length (tokens)", "{:.1f}"),
    ("achieved_tflops", "achieved TFLOP/s (useful FLOPs / turn s)", "{:.3f}"),
    ("peak_rss_mb", "peak RSS (MiB)", "{:,.0f}"),
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
    p.add_argument("--first", choices=ARMS, default="rlhub", help="who takes the first turn")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16"),
        help="model.dtype of the rlhub arm (rlhub_fp32 is float32); auto: bfloat16 where it measures faster",
    )
    p.add_argument(
        "--trl-bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="TRL with bf16=True (autocast over float32 weights); auto: when the measured bf16 matmul is faster",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=ARM_BUDGET_S,
        help="seconds of its own step time each arm may spend; an arm that runs out reports the steps it finished",
    )
    p.add_argument("--recipe", default=str(QUICKSTART))
    p.add_argument("--json", dest="json_path", default=None, help="write the results here")
    return p.parse_args(argv)


def summarize(run: TrainerRun, warmup: int, flops_per_step: list[float] | None = None) -> dict:
    """Speed over the timed steps, reward and length over all steps; with each step's useful FLOPs
    (``flops_per_step``, see the module docstring), achieved TFLOP/s over the timed steps."""
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
        "achieved_tflops": sum(flops_per_step[warmup : len(run.steps)]) / turn_total / 1e12
        if flops_per_step and turn_total
        else None,
        "peak_rss_mb": max((s.get("max_rss_mb") or 0 for s in run.steps), default=None),
        "dtype": (run.ready.get("settings") or {}).get("dtype"),
        "settings": run.ready.get("settings"),
        "reward_weights": run.ready.get("reward_weights"),
    }


def print_table(results: dict[str, dict], ratios: dict[str, dict[str, float]], steps: int, title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    for name in ARMS:
        table.add_column(f"{name} ({results[name]['dtype']})", justify="right")
    table.add_column("rlhub/TRL", justify="right")
    table.add_column("rlhub/rlhub_fp32", justify="right")
    for key, label, fmt in METRICS:
        cells = ["-" if results[n][key] is None else fmt.format(results[n][key]) for n in ARMS]
        shown = [ratios[anchor].get(key) for anchor in ("trl", "rlhub_fp32")]
        table.add_row(label, *cells, *("-" if r is None else f"{r:.2f}" for r in shown))
    finished = [f"{results[n]['steps_run']} of {steps}{'' if results[n]['complete'] else ' (stopped)'}" for n in ARMS]
    table.add_row("steps finished (warm-up included)", *finished, "", "")
    console = Console()
    console.print(table)
    for name in ARMS:
        if not results[name]["complete"]:
            console.print(f"{name} stopped early: {results[name]['stopped']}", highlight=False, soft_wrap=True)


def ratios_over(results: dict[str, dict], anchor: str) -> dict[str, float]:
    """rlhub's figures over ``anchor``'s, where both have one (an arm stopped before its timed steps has none)."""
    rl, other = results["rlhub"], results[anchor]
    return {key: rl[key] / other[key] for key, _, _ in METRICS if rl[key] is not None and other[key]}


def main(argv: list[str] | None = None) -> dict:
    from rlhub.models import resolve_dtype

    args = parse_args(argv)
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
    start = time.perf_counter()
    machine = {**machine_info(), "matmul_tflops": matmul_tflops(args.threads)}
    rates = machine["matmul_tflops"]
    trl_bf16 = args.trl_bf16 == "on" or (args.trl_bf16 == "auto" and rates["bfloat16"] > rates["float32"])
    # The rlhub arm's dtype as a recipe's would resolve (auto: measured once per machine), so the arm trains in
    # the concrete dtype the JSON names.
    precision = resolve_dtype(args.dtype, "cpu", threads=args.threads)
    arms = {
        "rlhub": replace(settings, overrides=[*settings.overrides, f"model.dtype={precision.dtype}"]),
        "rlhub_fp32": replace(settings, overrides=[*settings.overrides, "model.dtype=float32"]),
        "trl": replace(settings, overrides=[*settings.overrides, "model.dtype=float32"], trl_bf16=trl_bf16),
    }
    order = [args.first, *(name for name in ARMS if name != args.first)]
    steps = args.warmup + args.steps
    with tempfile.TemporaryDirectory(prefix="rlhub-bench-") as tmp:
        recipe = resolve_recipe(arms["rlhub"], Path(tmp))
        # The arms train on the same prompts in the same order: each step's distinct prompt tokens.
        params, lengths = work_per_token(recipe, recipe.training.prompts_per_step * steps)
        trainers = {name: (ARM_TRAINERS[name], arms[name]) for name in order}
        runs = take_turns(trainers, Path(tmp), steps=steps, budget_s=args.budget, keep_going=True)
    P = recipe.training.prompts_per_step
    results = {}
    for name in ARMS:
        run = runs[name]
        flops = [
            6 * params * (sum(lengths[i * P : (i + 1) * P]) + s["samples"] * (s.get("mean_length") or 0))
            for i, s in enumerate(run.steps)
        ]
        done = {"complete": len(run.steps) >= steps, "stopped": run.stopped}
        results[name] = {**summarize(run, args.warmup, flops), **done}
    results["rlhub"]["dtype"] = precision.dtype
    results["trl"]["dtype"] = "float32, bf16 autocast" if trl_bf16 else "float32"
    ratios = {anchor: ratios_over(results, anchor) for anchor in ("trl", "rlhub_fp32")}
    ceiling = rates["bfloat16" if precision.dtype == "bfloat16" else "float32"]
    speedup = ratios["trl"].get("samples_per_s")
    rewards_comparable = results["rlhub"]["complete"] and results["trl"]["complete"]
    out = {
        "benchmark": f"rlhub GRPO in {precision.dtype} (--dtype {args.dtype}) and in float32 vs TRL GRPOTrainer",
        "settings": {
            **describe(recipe),
            "steps_timed": args.steps,
            "warmup_steps": args.warmup,
            "budget_s_per_arm": args.budget,
            "turn_order": "alternating, " + " then ".join(order) + " first",
            "matmul_params": params,
            "rlhub_dtype": precision.to_dict(),
            "versions": {package: _version(package) for package in ("rlhub", "trl", "transformers")},
        },
        "machine": machine,
        "results": results,
        "arms_complete": all(r["complete"] for r in results.values()),
        "ratios_rlhub_over_trl": ratios["trl"],
        "ratios_rlhub_over_rlhub_fp32": ratios["rlhub_fp32"],
        "fraction_of_matmul_ceiling": {
            name: results[name]["achieved_tflops"] / ceiling if results[name]["achieved_tflops"] else None
            for name in ARMS
        },
        "targets": {
            "samples_per_s_ratio_at_least": TARGET_SPEEDUP,
            "samples_per_s_met": None if speedup is None else speedup >= TARGET_SPEEDUP,
            # Rewards compare only after the same steps.
            "reward_not_lower_met": results["rlhub"]["mean_reward"] >= results["trl"]["mean_reward"]
            if rewards_comparable
            else None,
        },
        "script_wall_s": round(time.perf_counter() - start, 1),
    }
    title = (
        f"rlhub vs TRL GRPO: {args.prompts} prompts x {args.group} completions, {args.max_new_tokens} new tokens, "
        f"{args.steps} timed steps (+{args.warmup} warm-up), {args.threads} threads, turns alternate, "
        f"{args.budget:.0f} s per arm"
    )
    print_table(results, ratios, steps, title)
    print("matmul ceiling (TFLOP/s):", rates)
    write_json(args.json_path, out)
    return out


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
