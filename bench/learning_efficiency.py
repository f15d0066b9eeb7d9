"""Benchmark: held-out gain at equal wall clock, dynamic sampling + curriculum against uniform sampling.

    python -m bench.learning_efficiency [--budget 600] [--n 255] [--envs arithmetic-v1 codegen-v0] [--json out.json]

With ``--workdir DIR`` the runs and evals stay in DIR, and a run cut off (by the suite's time limit, say) is
resumed by the same command: arms whose logged steps reached the budget and evals that wrote their ``eval.json``
are reused, not redone. Without it they live in a temporary folder.

For each env (both have difficulty levels, so a curriculum applies), two runs of the quickstart recipe
(``recipes/quickstart.yaml``: the embedded SmolLM2-135M-Instruct + LoRA, GRPO; the env's own config from
``ENV_SETTINGS``) train for the same wall-clock ``--budget``, one after the other on the same machine:

- ``uniform``: every prompt's level drawn uniformly (``training.curriculum: {band: [0, 1]}``, which counts every
  level as inside the band), no dynamic sampling: each step trains on whatever groups it drew;
- ``adaptive``: levels drawn where their running pass rate is inside [0.1, 0.9]
  (``training.curriculum: {band: [0.1, 0.9]}``) and dynamic sampling (``algorithm.dynamic_sampling:
  {max_draws: 2}``): groups whose rewards all tie are replaced by fresh draws.

Each run is a ``rlhub train`` process that checkpoints every step; when the step times it has logged
(``charts/step_time``: sampling, scoring and the update, dynamic sampling's extra draws included; not loading
the model nor writing checkpoints) reach the budget, it is stopped, and its last checkpoint is what was learned.
Then the base model and both adapters are evaluated greedily (pass@1, ``rlhub eval``) on the same held-out
test examples: ``--n`` split evenly over the env's levels, each with the recipe's prompt settings.

Reported per env: pass@1 of the base model and of each arm, each arm's gain over the base with its paired 95%
interval, and the efficiency ratio (adaptive gain / uniform gain) with a 95% bootstrap interval over examples
(resampled in pairs, so both gains see the same examples). A ratio whose uniform gain is not above zero is not
defined; the report then says so and gives the difference of the gains with its paired interval instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.common import QUICKSTART, machine_info, write_json

ENV_SETTINGS = {
    "arithmetic-v1": {"config": {"prompt_style": "user", "few_shot": 2}, "max_new_tokens": 64},
    "codegen-v0": {"config": {}, "max_new_tokens": 160},
}
"""The envs this benchmark knows how to run, with the env config and completion length their runs use."""
ARMS = {
    "uniform": ["training.curriculum={band: [0.0, 1.0]}"],
    "adaptive": ["training.curriculum={band: [0.1, 0.9]}", "algorithm.dynamic_sampling={max_draws: 2}"],
}
POLL_S = 0.5
Z_95 = 1.959964
BOOTSTRAP = 2000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=600.0, help="seconds of training steps per arm")
    p.add_argument("--n", type=int, default=255, help="held-out test examples per env, split over its levels")
    p.add_argument("--envs", nargs="+", default=list(ENV_SETTINGS), choices=list(ENV_SETTINGS))
    p.add_argument("--recipe", default=str(QUICKSTART), help="the recipe both arms train (default: the quickstart)")
    p.add_argument("--model", default=None, help="model.name override (default: the recipe's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="further recipe overrides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument(
        "--workdir",
        type=Path,
        help="keep the runs and evals in this folder, and reuse what an earlier run with the same settings finished "
        "there (an arm whose steps reached the budget, an eval that wrote its eval.json); default: a temporary folder",
    )
    return p.parse_args(argv)


def run(command: list[str], log: Path, stop_when: Callable[[], bool] | None = None) -> bool:
    """Run ``command`` in its own process group, output to ``log``; False when ``stop_when()`` stopped it.

    Raises:
        RuntimeError: The command failed (with the end of its log).
    """
    with log.open("a", encoding="utf-8") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while proc.poll() is None:
                if stop_when is not None and stop_when():
                    os.killpg(proc.pid, signal.SIGKILL)  # checkpoints are written atomically: the last stays whole
                    proc.wait()
                    return False
                time.sleep(POLL_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:5])} ... exited with {proc.returncode}; its log ends:\n{tail(log)}")
    return True


def training_progress(metrics: Path) -> tuple[float, int]:
    """The summed step times a run has logged so far (``charts/step_time`` in its ``metrics.jsonl``), and its steps."""
    if not metrics.is_file():
        return 0.0, 0
    total, steps = 0.0, 0
    for line in metrics.read_text(encoding="utf-8").splitlines():
        try:
            step_s = json.loads(line).get("charts/step_time")
        except ValueError:  # a line still being written
            continue
        if step_s is not None:
            total, steps = total + float(step_s), steps + 1
    return total, steps


def budget_spent(out: Path, budget: float) -> bool:
    """Whether the run in ``out`` has trained for ``budget`` seconds and checkpointed its last counted step."""
    from rlhub.trainers.checkpoint import latest

    seconds, steps = training_progress(out / "metrics.jsonl")
    if seconds < budget:
        return False
    checkpoint = latest(out)  # written just after the step's metrics; a step begun since is cut off
    return checkpoint is not None and int(checkpoint.name.removeprefix("step-")) >= steps


def tail(log: Path, chars: int = 3000) -> str:
    """The end of a log (the work folder, and the log with it, is removed when the benchmark ends)."""
    return log.read_text(encoding="utf-8", errors="replace")[-chars:]


def train_arm(args, env_id: str, arm: str, workdir: Path) -> dict:
    """One arm's run for ``args.budget`` seconds; its last checkpoint's adapter and how far it got."""
    settings = ENV_SETTINGS[env_id]
    out = workdir / f"{env_id}-{arm}"
    overrides = [
        f"env.id={env_id}",
        f"env.config={json.dumps(settings['config'])}",
        f"training.max_new_tokens={settings['max_new_tokens']}",
        "training.max_steps=100000",
        "training.save_every=1",
        f"training.seed={args.seed}",
        f"training.output_dir={out.as_posix()}",
        "logging.wandb=false",
        "logging.completions_every=0",
        "eval.every=0",
        *ARMS[arm],
        *args.overrides,
    ]
    if args.model:
        overrides.append(f"model.name={args.model}")
    command = [sys.executable, "-m", "rlhub", "train", args.recipe, "--overwrite", "--no-plot"]
    for override in overrides:
        command += ["--set", override]
    started = time.perf_counter()
    log = workdir / f"{env_id}-{arm}.log"
    if budget_spent(out, args.budget):  # finished by an earlier run in this --workdir
        finished, elapsed = False, None
    else:
        finished = run(command, log, stop_when=lambda: budget_spent(out, args.budget))
        elapsed = time.perf_counter() - started
    from rlhub.trainers.checkpoint import latest

    checkpoint = latest(out)  # a checkpoint cut off while being written is not the latest
    if checkpoint is None:
        raise RuntimeError(f"{env_id} {arm}: no step finished within {args.budget:.0f} s; its log ends:\n{tail(log)}")
    recipe = json.loads((out / "recipe.json").read_text(encoding="utf-8"))
    return {
        "adapter": str(checkpoint / "adapter"),
        "dtype": recipe["model"]["dtype"],  # what `model.dtype: auto` chose on this machine
        "steps": int(checkpoint.name.removeprefix("step-")),
        "wall_s": elapsed,  # the process's: loading the model and writing checkpoints included; None: reused
        "step_s": training_progress(out / "metrics.jsonl")[0],  # what the budget counts (a cut-off step too)
        "stopped": "finished its max_steps" if finished else "budget reached",
    }


def evaluate(args, env_id: str, model: str, workdir: Path, name: str) -> dict[str, float]:
    """pass@1 per held-out example id (greedy), over ``args.n`` test examples spread over the env's levels."""
    import rlhub

    levels = rlhub.make(env_id).levels
    per_level = [args.n // len(levels) + (i < args.n % len(levels)) for i in range(len(levels))]
    settings = ENV_SETTINGS[env_id]
    passed: dict[str, float] = {}
    for level, n in zip(levels, per_level):
        if n == 0:
            continue
        folder = workdir / f"eval-{name}-{env_id}-level{level}"
        command = [sys.executable, "-m", "rlhub", "eval", env_id, "--model", model, "-n", str(n), "--out", str(folder)]
        command += ["--max-new-tokens", str(settings["max_new_tokens"]), "--no-plot", "--json"]
        for key, value in {**settings["config"], "difficulty": level}.items():
            command += ["--config", f"{key}={json.dumps(value)}"]
        if not (folder / "eval.json").is_file():  # else finished by an earlier run in this --workdir
            run(command, workdir / f"eval-{name}.log")
        for record in json.loads((folder / "eval.json").read_text())["records"]:
            passed[f"{level}/{record['id']}"] = float(record["passed"])
    return passed


def paired_interval(diffs: list[float]) -> tuple[float, float, float]:
    """The mean of paired differences and its normal-approximation 95% interval."""
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else float("inf")
    return mean, mean - Z_95 * sd / math.sqrt(n), mean + Z_95 * sd / math.sqrt(n)


def efficiency(base: dict[str, float], uniform: dict[str, float], adaptive: dict[str, float], seed: int) -> dict:
    """Both gains over the base and their ratio, with intervals, on the examples all three evals scored."""
    ids = sorted(base)
    gain_u = [uniform[i] - base[i] for i in ids]
    gain_a = [adaptive[i] - base[i] for i in ids]
    report = {
        "examples": len(ids),
        "gain_uniform": paired_interval(gain_u),
        "gain_adaptive": paired_interval(gain_a),
        "gain_difference": paired_interval([a - u for a, u in zip(gain_a, gain_u)]),
    }
    mean_u = sum(gain_u) / len(ids)
    if mean_u <= 0:
        report["ratio"] = None
        report["ratio_note"] = "uniform sampling gained nothing: the ratio is not defined; see gain_difference"
        return report
    rng, ratios = random.Random(seed), []
    for _ in range(BOOTSTRAP):
        sample = [rng.randrange(len(ids)) for _ in ids]
        u, a = sum(gain_u[j] for j in sample), sum(gain_a[j] for j in sample)
        if u > 0:
            ratios.append(a / u)
    ratios.sort()
    low = ratios[int(0.025 * len(ratios))] if ratios else None
    high = ratios[int(0.975 * len(ratios)) - 1] if ratios else None
    report["ratio"] = (sum(gain_a) / sum(gain_u), low, high)
    skipped = BOOTSTRAP - len(ratios)
    report["ratio_note"] = f"bootstrap over examples; {skipped} of {BOOTSTRAP} resamples had no uniform gain"
    return report


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    console = Console()
    results = {}
    with tempfile.TemporaryDirectory(prefix="rlhub-bench-efficiency-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for env_id in args.envs:
            console.print(f"[bold]{env_id}[/]: training each arm for {args.budget:.0f} s")
            arms = {arm: train_arm(args, env_id, arm, workdir) for arm in ARMS}
            base_model = args.model or _recipe_model(args.recipe)
            passed = {"base": evaluate(args, env_id, base_model, workdir, "base")}
            for arm, info in arms.items():
                passed[arm] = evaluate(args, env_id, info["adapter"], workdir, arm)
            results[env_id] = {
                "arms": arms,
                "pass_at_1": {name: sum(p.values()) / len(p) for name, p in passed.items()},
                **efficiency(passed["base"], passed["uniform"], passed["adaptive"], args.seed),
            }
    _print(console, results, args)
    report = {
        "budget_s": args.budget,
        "n": args.n,
        "recipe": args.recipe,
        "arms": ARMS,
        "envs": results,
        "machine": machine_info(),
    }
    write_json(args.json, report)
    return report


def _recipe_model(recipe: str) -> str:
    from rlhub.trainers.recipe import load_recipe

    return load_recipe(recipe).model.name


def _print(console: Console, results: dict, args) -> None:
    table = Table(title=f"held-out pass@1 after {args.budget:.0f} s of training per arm (greedy, n={args.n})")
    for column in ("env", "base", "uniform", "adaptive", "steps (u / a)", "adaptive / uniform gain"):
        table.add_column(column, justify="right")
    for env_id, r in results.items():
        p = r["pass_at_1"]
        ratio = r["ratio"]
        shown = f"{ratio[0]:.2f} [{ratio[1]:.2f}, {ratio[2]:.2f}]" if ratio and ratio[1] is not None else "n/a"
        steps = f"{r['arms']['uniform']['steps']} / {r['arms']['adaptive']['steps']}"
        table.add_row(env_id, f"{p['base']:.3f}", f"{p['uniform']:.3f}", f"{p['adaptive']:.3f}", steps, shown)
    console.print(table)
    for env_id, r in results.items():
        if r["ratio"] is None:
            console.print(f"{env_id}: {r['ratio_note']}")
        d = r["gain_difference"]
        console.print(f"{env_id}: adaptive gain - uniform gain {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] (paired 95%)")


if __name__ == "__main__":
    main()
