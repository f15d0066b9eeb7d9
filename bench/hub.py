"""Scoring throughput of an env package in its sandbox, against the same env in the trainer's process.

    python -m bench.hub [--budget 2] [--rounds 5] [--batch-sizes 1 64] [--json out.json]

Builds a small env package the way the hub's tests do (``tests/hub_packages.py``: a scaffolded package whose env
is rlhub's arithmetic), pip-installs it into a temporary folder and makes its env twice:

- sandbox: as every installed package runs by default, ``rlhub.make`` returns a ``SandboxedEnv`` whose env
  serves rlhub-env/1 from its bubblewrap sandbox behind the package's declared capabilities;
- in-process: the same package trusted (``$RLHUB_TRUST``), its env class in this process.

Both score the same completions (gold answers alternating with another example's answer, in the env's format)
with ``env.score_batch``, at each batch size, and must agree on every reward before anything is timed. Arms take
turns in rounds (in-process, sandbox, then sandbox, in-process, ...) so both meet the same load on a shared
machine; in each round an arm scores batches for ``--budget`` seconds. Reported: the median round's
completions/s per arm and batch size, and their ratio, sandbox over in-process (target: at least 0.5 at batch
64, issue 24). Also timed: starting the sandboxed env, and loading the registry with the package's entries read
in its sandbox against read from the entries cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.common import machine_info, write_json

SLUG = "hub-bench"
ENV_ID = f"{SLUG}-v0"
PACKAGE = f"rlhub-env-{SLUG}"
ARMS = ("in-process", "sandbox")
TARGET_RATIO_64 = 0.5


def install_package(root: Path) -> Path:
    """The bench's env package, built and pip-installed under ``root``; the folder it is installed in."""
    from tests.hub_packages import install_packages, write_package  # tests/: a folder of the checkout

    site = root / "site"
    install_packages([write_package(root, SLUG, "pass", {}, slug=SLUG)], site)
    return site


def batch(env, size: int) -> tuple[list[str], list]:
    """``size`` examples, and completions for them: even ones gold, odd ones another example's gold (wrong)."""
    examples = env.examples("train", limit=size + 1)
    golds = [env.gold_completion(example) for example in examples]
    completions = [golds[i] if i % 2 == 0 else golds[i + 1] for i in range(size)]
    return completions, examples[:size]


def rate(env, completions: list[str], examples: list, size: int, budget_s: float) -> float:
    """Completions per second scored by ``env`` in batches of ``size``, for about ``budget_s`` seconds."""
    batches = [(completions[i : i + size], examples[i : i + size]) for i in range(0, len(completions), size)]
    done, started = 0, time.perf_counter()
    while True:
        for batch_completions, batch_examples in batches:
            env.score_batch(batch_completions, batch_examples)
            done += len(batch_completions)
        elapsed = time.perf_counter() - started
        if elapsed >= budget_s:
            return done / elapsed


def registry_load_s() -> float:
    from rlhub.env import registry

    registry.clear_cache()
    started = time.perf_counter()
    registry.get_spec(ENV_ID)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=2.0, help="seconds each arm scores per round and batch size")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per batch size; the median round is reported")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64], help="completions per score_batch")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    from rlhub.hub.client import SandboxedEnv
    from rlhub.sandbox import bwrap_problem

    problem = bwrap_problem()
    if problem is not None:
        sys.exit(f"bench/hub.py needs bwrap: {problem}")

    import rlhub

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rlhub-bench-hub-") as tmp:
        os.environ["RLHUB_CACHE"] = str(Path(tmp, "cache"))  # the entries cache, away from the user's
        sys.path.insert(0, str(install_package(Path(tmp))))
        loads = {"entries read in the sandbox": registry_load_s(), "entries from the cache": registry_load_s()}
        started = time.perf_counter()
        envs = {"sandbox": rlhub.make(ENV_ID)}
        start_s = time.perf_counter() - started
        try:
            os.environ["RLHUB_TRUST"] = PACKAGE
            envs["in-process"] = rlhub.make(ENV_ID)
            if not isinstance(envs["sandbox"], SandboxedEnv) or isinstance(envs["in-process"], SandboxedEnv):
                sys.exit(f"expected {ENV_ID} sandboxed, then in-process when trusted; got {envs}")
            completions, examples = batch(envs["in-process"], max(args.batch_sizes))
            scores = {arm: env.score_batch(completions, examples) for arm, env in envs.items()}
            if [s.rewards for s in scores["sandbox"]] != [s.rewards for s in scores["in-process"]]:
                sys.exit("the sandboxed env's rewards differ from the in-process env's on the same completions")
            by_round = {arm: {str(size): [] for size in args.batch_sizes} for arm in ARMS}
            for size in args.batch_sizes:
                for index in range(args.rounds):
                    for arm in ARMS if index % 2 == 0 else ARMS[::-1]:
                        by_round[arm][str(size)].append(rate(envs[arm], completions, examples, size, args.budget))
        finally:
            envs["sandbox"].close()
    per_s = {arm: {size: statistics.median(rates) for size, rates in sizes.items()} for arm, sizes in by_round.items()}
    ratios = {size: per_s["sandbox"][size] / per_s["in-process"][size] for size in per_s["sandbox"]}

    table = Table(title=f"{ENV_ID} (arithmetic) scoring, completions/s: median of {args.rounds} rounds")
    for column in ("batch size", *ARMS, "sandbox / in-process"):
        table.add_column(column, justify="right")
    for size, ratio in ratios.items():
        table.add_row(size, *(f"{per_s[arm][size]:,.0f}" for arm in ARMS), f"{ratio:.2f}")
    console = Console()
    console.print(table)
    console.print(f"starting the sandboxed env: {start_s:.2f} s")
    for what, seconds in loads.items():
        console.print(f"registry load, {what}: {seconds:.3f} s")
    # Other work on the machine skews every row; the 1-minute load average says how much there was.
    console.print(f"load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")

    report = {
        "env": ENV_ID,
        "batch_sizes": args.batch_sizes,
        "rounds": args.rounds,
        "budget_s": args.budget,
        "completions_per_s": per_s,
        "completions_per_s_by_round": by_round,
        "ratio_sandbox_over_in_process": ratios,
        "target_ratio_at_64": TARGET_RATIO_64,
        "sandbox_start_s": start_s,
        "registry_load_s": loads,
        "machine": machine_info(),
        "load_average_before_after": [load_before, os.getloadavg()[0]],
    }
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
