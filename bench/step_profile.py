"""Benchmark: where a float32 GRPO step's time goes, and what share of the machine's float32 matmul rate it reaches.

    python -m bench.step_profile [--steps 2] [--warmup 1] [--prompts 4] [--group 8] [--max-new-tokens 64]
        [--isa native avx2] [--ops 12] [--json out.json]

rlhub's own trainer (``set_up`` and ``train_step`` of ``rlhub.trainers.loop``) trains the quickstart recipe
(SmolLM2-135M-Instruct + LoRA, its env, group size and micro-batching) in float32 for ``--warmup`` + ``--steps``
steps. Timers wrap the trainer's own calls, so the step runs exactly as in ``rlhub train``:

- generation: ``engine.generate`` (prefill, the KV-cache decode loop, the sampler, decoding to text);
- reward: ``env.score_batch``;
- forward: ``algorithm.micro_batch_loss`` (the training forward, the chunked log-probs and the loss);
- backward: ``accelerator.backward``;
- optimizer: gradient clipping, ``optimizer.step``, ``scheduler.step`` and ``zero_grad``;
- other: the rest of the step as the caller times it (prompt encoding, micro-batch tensors, advantages,
  metrics, the hack watch).

Forward hooks on the policy split generation and forward into model calls and the rest (the sampler's
per-token work; the LM head and the loss). A phase's FLOPs count 2·M per token for generation and the
forward, and 2·M per token for the backward (activation gradients only: the base weights are frozen), where
M is the model's matmul weights (every ``nn.Linear``, the LM head included, LoRA left out); tokens are each
distinct prompt once per step and each completion token, as ``trainer_vs_trl`` counts them, over the
micro-batches that ran. Padding, a prompt re-run per micro-batch and attention scores are left out (the
positions the model ran are reported beside). The step's rate is its FLOPs over its wall time, compared with
a 1024-cubed matmul measured in the same process with the same threads (before and after the steps, the
faster of the two), in float32 and, where bfloat16 is the faster unit, in bfloat16.

Each ``--isa`` runs in its own process: ``native``, and ``avx2``, which emulates an AVX2-only CPU on a newer
one by capping torch's kernels (``ATEN_CPU_CAPABILITY``), oneDNN (``ONEDNN_MAX_CPU_ISA``) and MKL
(``MKL_ENABLE_INSTRUCTIONS``) for that process.
``--ops N``: one more step per run, not timed, runs under ``torch.profiler`` and the N operators with the most
self time are listed (its trace takes minutes to summarize on a busy machine, so it is off by default).

Recorded with the figures: the thread count, the OpenMP wait settings (``OMP_WAIT_POLICY``: on a machine busier
than its cores, OpenMP's default spinning made each small op of a 2-thread run about 25x slower here than with
``OMP_WAIT_POLICY=PASSIVE``) and the load average before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import (
    ISA_LIMITS,
    QUICKSTART,
    ROOT,
    TrainerSettings,
    default_threads,
    describe,
    machine_info,
    write_json,
)

PHASES = ("generation", "reward", "forward", "backward", "optimizer", "other")
ISA_RUNS = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}
"""Environment variables each ``--isa`` run starts with; read by torch, oneDNN and MKL when they load."""
MATRIX_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_scaled_dot_product")
"""Operators counted as matrix work in the operator table (prefixes)."""
THREAD_ENVIRONMENT = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
"""How OpenMP threads wait between parallel regions decides a busy machine's figures (recorded with them)."""


class PhaseClock:
    """Seconds, tokens and model positions per phase of the current step, from timers around the trainer's calls.

    Only the outermost timed call counts, so nested calls are never counted twice; model calls (forward hooks on
    the policy) are counted apart, under the phase that made them.
    """

    def __init__(self):
        self.current: str | None = None
        self.reset()

    def reset(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.model_s: dict[str, float] = defaultdict(float)
        self.positions: dict[str, int] = defaultdict(int)
        self.prompts: set[tuple[int, ...]] = set()
        self.tokens = {"generation": 0, "completion": 0}
        self._model_start = 0.0

    def wrap(self, owner: Any, attr: str, phase: str, count=None) -> None:
        """Time ``owner.attr`` under ``phase`` (an instance attribute shadows the method); ``count(args, out)``
        records its tokens."""
        inner = getattr(owner, attr)

        def timed(*args, **kwargs):
            if self.current is not None:
                return inner(*args, **kwargs)
            self.current, start = phase, time.perf_counter()
            try:
                out = inner(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start
                self.current = None
            if count is not None:
                count(args, out)
            return out

        setattr(owner, attr, timed)

    def watch_model(self, model) -> None:
        """Hooks on ``model``: the time and the token positions of each call, under the phase that made it."""

        def before(_module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            self.positions[self.current or "other"] += 0 if ids is None else ids.numel()
            self._model_start = time.perf_counter()

        def after(_module, _args, _output):
            self.model_s[self.current or "other"] += time.perf_counter() - self._model_start

        model.register_forward_pre_hook(before, with_kwargs=True)
        model.register_forward_hook(after)

    def count_generation(self, args, completions) -> None:
        prompt_ids = args[0]
        self.tokens["generation"] += sum(map(len, prompt_ids)) + sum(len(c.token_ids) for c in completions)

    def count_micro_batch(self, args, _out) -> None:
        batch = args[1]
        for ids, mask in zip(batch.prompt_ids.tolist(), batch.prompt_mask.tolist()):
            self.prompts.add(tuple(i for i, m in zip(ids, mask) if m))
        self.tokens["completion"] += int(batch.completion_mask.sum())

    def trained_tokens(self) -> int:
        """Tokens the update trained on: each distinct prompt once, and every completion token that ran."""
        return sum(map(len, self.prompts)) + self.tokens["completion"]


def matmul_weights(policy) -> dict[str, int]:
    """M, the weights a token meets in matrix products: the body's ``nn.Linear`` layers and the LM head (LoRA's
    small matrices left out)."""
    import torch

    head = policy.get_output_embeddings().weight
    body = sum(
        m.weight.numel()
        for name, m in policy.named_modules()
        if isinstance(m, torch.nn.Linear) and "lora_" not in name and m.weight is not head
    )
    return {"body": body, "head": head.numel()}


def instrument(run, clock: PhaseClock) -> None:
    """Timers around the trainer's calls for one run (see the module docstring)."""
    clock.wrap(run.engine, "generate", "generation", clock.count_generation)
    clock.wrap(run.env, "score_batch", "reward")
    clock.wrap(run.algorithm, "micro_batch_loss", "forward", clock.count_micro_batch)
    clock.wrap(run.accelerator, "backward", "backward")
    for owner, attr in (
        (run.accelerator, "clip_grad_norm_"),
        (run.optimizer, "step"),
        (run.scheduler, "step"),
        (run.optimizer, "zero_grad"),
    ):
        clock.wrap(owner, attr, "optimizer")
    clock.watch_model(run.policy)


def step_record(clock: PhaseClock, step_s: float, weights: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """One step: its phases (summing to ``step_s``), their model-call shares, tokens and FLOPs."""
    phases = {name: clock.seconds.get(name, 0.0) for name in PHASES[:-1]}
    phases["other"] = step_s - sum(phases.values())
    trained = clock.trained_tokens()
    tokens = {"generation": clock.tokens["generation"], "forward": trained, "backward": trained}
    return {
        "step_s": step_s,
        "phases_s": phases,
        "model_calls_s": {name: clock.model_s.get(name, 0.0) for name in ("generation", "forward")},
        "model_positions": {name: clock.positions.get(name, 0) for name in ("generation", "forward")},
        "tokens": tokens,
        "flop": {name: 2 * weights * n for name, n in tokens.items()},
        "reward": metrics["reward"],
        "mean_length": metrics["completions/mean_length"],
        "skipped_micro_batches": metrics["charts/skipped_micro_batches"],
    }


def summarize(steps: list[dict[str, Any]], rates: dict[str, float]) -> dict[str, Any]:
    """The timed steps together: seconds, shares and TFLOP/s per phase, and the step's rate against the matmul
    rates (the bfloat16 one only where bfloat16 is the faster unit)."""
    total_s = sum(s["step_s"] for s in steps)
    phases = {}
    for name in PHASES:
        seconds = sum(s["phases_s"][name] for s in steps)
        flop = sum(s["flop"].get(name, 0) for s in steps)
        phases[name] = {
            "s_per_step": seconds / len(steps),
            "share": seconds / total_s,
            "tflops": flop / seconds / 1e12 if flop and seconds > 0 else None,
        }
    for name in ("generation", "forward"):
        model_s = sum(s["model_calls_s"][name] for s in steps)
        phases[name]["model_calls_share"] = model_s / max(sum(s["phases_s"][name] for s in steps), 1e-12)
    achieved = sum(sum(s["flop"].values()) for s in steps) / total_s / 1e12
    bf16_faster = rates.get("bfloat16", 0) > rates["float32"]
    return {
        "s_per_step": total_s / len(steps),
        "phases": phases,
        "achieved_tflops": achieved,
        "fraction_of_float32": achieved / rates["float32"],
        "fraction_of_bfloat16": achieved / rates["bfloat16"] if bf16_faster else None,
    }


def operator_table(run, step: int, top: int) -> dict[str, Any]:
    """One more step under ``torch.profiler``: the operators with the most self CPU time, matrix ones marked."""
    from torch.profiler import ProfilerActivity, profile

    from rlhub.trainers.loop import train_step

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step(run, step)
    averages = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in averages) or 1
    matrix = sum(e.self_cpu_time_total for e in averages if e.key.startswith(MATRIX_OPS))
    return {
        "matrix_share_of_self_time": matrix / total,
        "ops": [
            {
                "op": e.key,
                "self_ms": e.self_cpu_time_total / 1e3,
                "share": e.self_cpu_time_total / total,
                "calls": e.count,
                "matrix": e.key.startswith(MATRIX_OPS),
            }
            for e in averages[:top]
        ],
    }


def profile(
    settings: TrainerSettings, workdir: Path, *, steps: int, warmup: int, ops: int = 0, matmul_s: float = 1.0
) -> dict[str, Any]:
    """Train ``warmup + steps`` float32 steps in this process, timing each step's phases.

    Args:
        settings: The run (recipe, sizes, threads); its ``micro_batch`` None keeps the recipe's.
        workdir: Where the run's folder goes.
        steps: Timed steps, after the warm-up.
        warmup: Steps run first and left out of the figures.
        ops: Operators listed from one more step under ``torch.profiler``; 0 skips it.
        matmul_s: Seconds per dtype for each matmul-rate measurement (before and after the steps).

    Returns:
        The record: CPU, threads, matmul rates, weights, per-step phases and their summary.
    """
    import torch

    from bench.common import cpu_info, matmul_tflops, resolve_recipe
    from rlhub.trainers.loop import set_up, train_step
    from rlhub.trainers.recipe import load_recipe

    if settings.micro_batch is None:
        micro_batch = load_recipe(settings.recipe, settings.overrides).training.micro_batch_size
        settings = dataclasses.replace(settings, micro_batch=micro_batch)
    recipe = resolve_recipe(settings, workdir)
    run = set_up(recipe, None, "step_profile", resume=False, overwrite=True)
    threads, load_before = torch.get_num_threads(), os.getloadavg()[0]
    before = matmul_tflops(threads, seconds=matmul_s)
    weights = matmul_weights(run.policy)
    clock = PhaseClock()
    instrument(run, clock)
    records = []
    for step in range(warmup + steps):
        clock.reset()
        start = time.perf_counter()
        metrics, _ = train_step(run, step)
        records.append(step_record(clock, time.perf_counter() - start, sum(weights.values()), metrics))
        print(f"step {step + 1}: {records[-1]['step_s']:.1f} s, reward {metrics['reward']:.3f}", flush=True)
    after = matmul_tflops(threads, seconds=matmul_s)
    rates = {dtype: max(before[dtype], after[dtype]) for dtype in before}
    return {
        **cpu_info(),
        "settings": {**describe(recipe), "steps_timed": steps, "warmup_steps": warmup},
        "threads": threads,
        "interop_threads": torch.get_num_interop_threads(),
        "thread_environment": {name: os.environ.get(name) for name in THREAD_ENVIRONMENT},
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "matmul_tflops": rates,
        "matmul_tflops_before_after": {"before": before, "after": after},
        "matmul_weights": weights,
        "steps": records,
        **summarize(records[warmup:], rates),
        **({"operators": operator_table(run, warmup + steps, ops)} if ops else {}),
    }


def print_run(name: str, record: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    emulated = " (emulated)" if record["cpu_isa_limits"] else ""
    table = Table(title=f"{name}{emulated}: ATen {record['cpu_capability']}, {record['threads']} threads")
    for column in ("phase", "s/step", "share", "TFLOP/s", "model calls"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for phase, p in record["phases"].items():
        tflops = "-" if p["tflops"] is None else f"{p['tflops']:.3f}"
        calls = f"{p['model_calls_share']:.0%}" if "model_calls_share" in p else "-"
        table.add_row(phase, f"{p['s_per_step']:.2f}", f"{p['share']:.1%}", tflops, calls)
    console = Console(width=140)
    console.print(table)
    bf16 = record["fraction_of_bfloat16"]
    console.print(
        f"step {record['s_per_step']:.2f} s, {record['achieved_tflops']:.3f} TFLOP/s = "
        f"{record['fraction_of_float32']:.1%} of float32 matmul {record['matmul_tflops']['float32']:.3f}"
        + ("" if bf16 is None else f", {bf16:.1%} of bfloat16 matmul {record['matmul_tflops']['bfloat16']:.3f}"),
        highlight=False,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2, help="timed steps (after the warm-up)")
    p.add_argument("--warmup", type=int, default=1, help="steps run first and left out of the figures")
    p.add_argument("--prompts", type=int, default=None, help="prompts per step (default: the recipe's)")
    p.add_argument("--group", type=int, default=None, help="completions per prompt (default: the recipe's)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the recipe's")
    p.add_argument("--micro-batch", type=int, default=None, help="completions per forward/backward (the recipe's)")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch threads")
    p.add_argument("--recipe", default=str(QUICKSTART))
    p.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override key=value")
    p.add_argument("--isa", nargs="+", choices=list(ISA_RUNS), default=list(ISA_RUNS), help="runs, in order")
    p.add_argument("--ops", type=int, default=0, help="list this many operators from one more, profiled step")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", dest="json_path", default=None, help="write the results here")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> TrainerSettings:
    return TrainerSettings(
        recipe=args.recipe,
        prompts=args.prompts,
        group=args.group,
        max_new_tokens=args.max_new_tokens,
        micro_batch=args.micro_batch,
        threads=args.threads,
        overrides=[*args.overrides, "model.dtype=float32"],
    )


def child_argv(args: argparse.Namespace) -> list[str]:
    """The arguments that give a child run the same settings."""
    argv = ["--recipe", args.recipe, *[f"--set={o}" for o in args.overrides]]
    for flag in ("steps", "warmup", "threads", "ops", "prompts", "group", "max_new_tokens", "micro_batch"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return argv


def run_isa(isa: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One ``--isa`` run in a child process started with that ISA's limits (and no others); its record."""
    out = workdir / f"{isa}.json"
    limits = ISA_RUNS[isa]
    env = {k: v for k, v in os.environ.items() if k not in ISA_LIMITS}
    env.update(limits, WANDB_MODE="disabled", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    print(f"--- {isa}" + (f" (emulated: {', '.join(f'{k}={v}' for k, v in limits.items())})" if limits else ""))
    command = [sys.executable, "-m", "bench.step_profile", *child_argv(args), "--child", "--json", str(out)]
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rlhub-step-profile-") as tmp:
        if args.child:
            record = profile(settings_from(args), Path(tmp), steps=args.steps, warmup=args.warmup, ops=args.ops)
            write_json(args.json_path, record)
            return record
        runs = {}
        for isa in args.isa:
            runs[isa] = run_isa(isa, args, Path(tmp))
            print_run(isa, runs[isa])
    out = {"benchmark": "step_profile", "machine": machine_info(), "runs": runs}
    write_json(args.json_path, out)
    return out


if __name__ == "__main__":
    main()
