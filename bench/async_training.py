"""Benchmark: synchronous against asynchronous off-policy GRPO on the quickstart, one after the other.

    python -m bench.async_training [--steps 12] [--prompts 2] [--k 1] [--json out.json]

Runs ``rlhub train recipes/quickstart.yaml`` in fresh processes with the same settings and seed, in the
order ``--order`` gives (default sync, async, async, sync, so a drift in machine load weighs on both):
``training.max_off_policy_steps=0`` (sample, then train, in turn) and ``=k`` (a worker process samples the
next batches while the trainer updates, trainers/async_rollout.py). The CPU cores are split the way each
mode uses them: the synchronous trainer gets every core; the asynchronous trainer and its worker get half
each (``training.num_threads``).

Figures, from each run's ``metrics.jsonl`` (time is the sum of ``charts/step_time``, which for the
asynchronous run includes waiting for the worker, its start-up included):

- samples/s and s/step over all steps, per run and their mean per mode;
- the reward at equal wall-clock time: the mean reward of the last ``--window`` steps each run finished
  within the shortest run's total time (runs of a mode repeat the same seed, so their curves differ
  only through timing and, for async, not at all: its schedule does not depend on timing);
- the synchronous run's per-phase times (generation, reward, update), which docs/scaling.md's
  projection starts from, and the asynchronous run's wait, overlap, staleness and importance weights.

The modes do not alternate step by step (the asynchronous one needs its two processes at once), so load
on a shared machine can drift between runs: the 1-minute load average is recorded before each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import QUICKSTART, ROOT, default_threads, fmean, machine_info, write_json


def train(out: Path, args: argparse.Namespace, k: int, threads: int) -> dict:
    """One run of the quickstart in its own process; returns its per-step rows and wall time."""
    settings = {
        "training.max_steps": args.steps,
        "training.prompts_per_step": args.prompts,
        "algorithm.group_size": args.group,
        "training.micro_batch_size": args.prompts * args.group,
        "training.max_new_tokens": args.max_new_tokens,
        "training.max_off_policy_steps": k,
        "training.num_threads": threads,
        "training.save_every": 0,
        "training.output_dir": str(out),
        "logging.wandb": False,
        "logging.completions_every": 0,
    }
    command = [sys.executable, "-m", "rlhub", "train", str(QUICKSTART), "--no-plot"]
    for key, value in settings.items():
        command += ["--set", f"{key}={json.dumps(value)}"]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"rows": [r for r in rows if "reward" in r], "process_wall_s": wall, "load_1min": load, "threads": threads}


def summarize(run: dict, samples_per_step: int) -> dict:
    rows = run["rows"]
    times = [r["charts/step_time"] for r in rows]
    elapsed, total = [], 0.0
    for t in times:
        total += t
        elapsed.append(total)
    out = {
        "steps": len(rows),
        "train_s": total,
        "process_wall_s": run["process_wall_s"],
        "load_1min": run["load_1min"],
        "threads": run["threads"],
        "s_per_step": total / len(rows),
        "samples_per_s": samples_per_step * len(rows) / total,
        "curve": [[round(e, 2), r["reward"]] for e, r in zip(elapsed, rows)],
        "generation_s": fmean([r["charts/generation_time"] for r in rows]),
        "reward_s": fmean([r["charts/reward_time"] for r in rows]),
    }
    out["update_s"] = out["s_per_step"] - out["generation_s"] - out["reward_s"]
    for key in ("async/wait_s", "async/overlap_s", "async/generation_s", "async/staleness_mean", "async/dropped"):
        if key in rows[0]:  # async: generation_s above is the trainer's wait; the worker's time is its own key
            out["worker_" + key.removeprefix("async/")] = fmean([r[key] for r in rows])
    for key in ("async/is_weight_mean", "async/is_truncated"):
        values = [r[key] for r in rows if key in r]
        if values:
            out[key.removeprefix("async/")] = fmean(values)
    return out


def reward_at(curve: list[list[float]], budget: float, window: int) -> float | None:
    """Mean reward of the last ``window`` steps finished within ``budget`` seconds."""
    done = [reward for elapsed, reward in curve if elapsed <= budget + 1e-9]
    return fmean(done[-window:]) if done else None


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.async_training", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--k", type=int, default=1, help="training.max_off_policy_steps of the asynchronous run")
    p.add_argument("--window", type=int, default=3, help="steps averaged for the reward at equal time")
    p.add_argument("--order", default="sync,async,async,sync", help="the runs, in order (sync or async each)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    cores = default_threads()
    samples = args.prompts * args.group
    runs: dict[str, list[dict]] = {"sync": [], "async": []}
    with tempfile.TemporaryDirectory(prefix="rlhub-async-bench-") as tmp:
        for i, mode in enumerate(args.order.split(",")):
            k, threads = (0, cores) if mode == "sync" else (args.k, max(cores // 2, 1))
            runs[mode].append(summarize(train(Path(tmp) / f"{i}-{mode}", args, k, threads), samples))
    budget = min(r["train_s"] for mode in runs.values() for r in mode)
    mean = {
        mode: {key: fmean([r[key] for r in rs]) for key in ("samples_per_s", "s_per_step")} for mode, rs in runs.items()
    }
    result = {
        "machine": machine_info(),
        "settings": vars(args) | {"json": str(args.json) if args.json else None},
        "runs": runs,
        "mean": mean,
        "equal_time_s": budget,
        "reward_at_equal_time": {
            mode: [reward_at(r["curve"], budget, args.window) for r in rs] for mode, rs in runs.items()
        },
        "samples_per_s_ratio": mean["async"]["samples_per_s"] / mean["sync"]["samples_per_s"],
    }
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1, default=str))
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
