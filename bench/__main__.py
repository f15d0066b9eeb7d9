"""Run rlhub's benchmarks in one command and summarize them.

    python -m bench                      # all nine, full sizes (about 2 h on 2 idle cores; learning_efficiency 70 min)
    python -m bench --quick              # the same code paths at small sizes (a dry run, about 8 min)
    python -m bench --only sandbox math_verification
    python -m bench --table              # the README's Performance table from bench/results/summary.json
    python -m bench --refigure           # summary.json's figures again from the results (after a report change)

Each benchmark runs as its own subprocess (``python -m bench.<name> ... --json OUT/<name>.json``), one
after another, so a crash or a hang fails that benchmark only, and its peak memory is its own (the
``ru_maxrss`` of its process tree's largest process, from ``wait4``). Its output is shown as it runs
and kept in ``OUT/logs/<name>.log``. Afterwards ``OUT/summary.json`` holds the date, the machine (CPU
model, cores, RAM, torch version), the git commit and each benchmark's status, time, peak memory and
headline figures (``bench/report.py``); ``--only`` replaces the named entries of an existing summary
and keeps the others. Sizes are in ``BENCHMARKS`` below; ``--quick`` writes to a temporary folder
unless ``--out`` says otherwise, so a dry run never replaces the checked-in results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.report import figures, render_table, rows
from bench.trainer_vs_trl import time_limit_s

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results"
QUICK_OUT = Path(tempfile.gettempdir()) / "rlhub-bench-quick"


@dataclass(frozen=True)
class Benchmark:
    about: str
    full: str
    """Arguments for the full run (sized for the 30-minute budget on 2 cores)."""
    quick: str
    """Arguments for ``--quick``: the same code path at sizes that only check it runs."""
    expected_s: int
    """About how long the full run takes on an idle 2-core machine."""
    timeout_s: int
    """Kill it after this long (full sizes; quick runs get the same limit). A benchmark with time budgets of its
    own gets a limit above their sum, so its budgets, not the kill, end it and it still reports."""


BENCHMARKS: dict[str, Benchmark] = {
    "trainer_vs_trl": Benchmark(
        "1. rlhub GRPO vs TRL GRPOTrainer: samples/s and reward after the same steps",
        full="--steps 4 --warmup 1 --prompts 2 --group 8 --max-new-tokens 48",
        quick="--steps 1 --warmup 1 --prompts 2 --group 2 --max-new-tokens 24 --budget 120",
        expected_s=450,
        timeout_s=int(time_limit_s()),  # each arm's --budget (default), its loading, the dtype probe
    ),
    "learning_curves": Benchmark(
        "2. reward against training time on the quickstart, same budget for both",
        # 2 prompts x 8 (16 samples per step, the quickstart's env, model, G and lengths): at the recipe's
        # 4 x 8, TRL's single 32-sample micro-batch took 16 GB and was killed by the OOM killer on 24 GB.
        full="--budget 300 --prompts 2",
        quick="--budget 90 --prompts 2 --group 2 --max-new-tokens 24",
        expected_s=640,
        timeout_s=1200,
    ),
    "sandbox": Benchmark(
        "3. isolated programs/s: python per program, bwrap per program, warm pool",
        full="--n 1000",
        quick="--n 100",
        expected_s=30,
        timeout_s=600,
    ),
    "math_verification": Benchmark(
        "4. math_equal vs math-verify: answers/s and accuracy on mixed pairs",
        full="--gsm8k 400 --repeats 5",
        quick="--gsm8k 40 --repeats 2",
        expected_s=90,
        timeout_s=900,
    ),
    "overhead": Benchmark(
        "5. reward time share of step time; peak RSS with and without the KL reference",
        full="--steps 2 --warmup 1",
        quick="--steps 1 --warmup 1 --prompts 2 --group 2 --max-new-tokens 24 --code-max-new-tokens 48",
        expected_s=660,  # 644 s idle on the 2-core EPYC, 2026-12-07: four trainer processes
        timeout_s=1200,
    ),
    "hub": Benchmark(
        "6. an installed env package scoring in its sandbox vs in-process: completions/s at batch 1 and 64",
        full="--budget 2 --rounds 5",
        quick="--budget 0.2 --rounds 2",
        expected_s=60,
        timeout_s=600,
    ),
    "agent_episodes": Benchmark(
        "7. repofix-v0 agent episodes/s on bwrap, 1 and 16 at once: a scripted agent's tool calls, then its scoring",
        full="--per-level 32 --rounds 3",
        quick="--per-level 2 --rounds 1",
        expected_s=90,
        timeout_s=600,
    ),
    "learning_efficiency": Benchmark(
        "8. held-out gain at equal wall clock: dynamic sampling + curriculum vs uniform sampling, two envs",
        full="--budget 600 --n 255",
        quick="--budget 60 --n 6 --envs arithmetic-v1",
        expected_s=4200,
        timeout_s=7200,
    ),
    "step_profile": Benchmark(
        "9. a float32 step's phases against the matmul rate, native and AVX2",
        full="--steps 2 --warmup 1",
        quick="--steps 1 --warmup 1 --prompts 2 --group 2 --max-new-tokens 24",
        expected_s=300,
        timeout_s=2400,
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run rlhub's benchmarks (each in its own process) and write OUT/<name>.json and OUT/summary.json.",
        epilog="benchmarks: " + "; ".join(f"{name}: {b.about}" for name, b in BENCHMARKS.items()),
    )
    p.add_argument("--quick", action="store_true", help="small sizes: checks every benchmark runs, in minutes")
    p.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME", help="run only these benchmarks")
    p.add_argument("--out", type=Path, default=None, help=f"results folder (default {DEFAULT_OUT.relative_to(ROOT)})")
    p.add_argument("--table", action="store_true", help="print the README's Performance table from OUT/summary.json")
    p.add_argument(
        "--refigure",
        action="store_true",
        help="recompute OUT/summary.json's headline figures from each benchmark's OUT/<name>.json; runs nothing",
    )
    args = p.parse_args(argv)
    if args.out is None:
        args.out = QUICK_OUT if args.quick else DEFAULT_OUT
    return args


def tee(stream, log_path: Path) -> None:
    """Copy a benchmark's output to the terminal and to its log as it comes."""
    with log_path.open("w", encoding="utf-8") as log:
        for line in stream:
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)


def run_one(name: str, bench: Benchmark, out: Path, quick: bool, commit: str | None) -> dict:
    """Run one benchmark in its own process group; return its summary entry."""
    json_path, log_path = out / f"{name}.json", out / "logs" / f"{name}.log"
    json_path.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    arguments = (bench.quick if quick else bench.full).split()
    command = [sys.executable, "-m", f"bench.{name}", *arguments, "--json", str(json_path)]
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": str(max(shutil.get_terminal_size((140, 24)).columns, 140)),
    }
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its trainer children share its process group, so a timeout ends them too
    )
    copier = threading.Thread(target=tee, args=(proc.stdout, log_path), daemon=True)
    copier.start()
    status, timed_out = None, False
    while status is None:
        pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status = wait_status
        elif time.perf_counter() - started > bench.timeout_s:
            os.killpg(proc.pid, signal.SIGKILL)
            timed_out = True
            _, status, usage = os.wait4(proc.pid, 0)
        else:
            time.sleep(0.5)
    proc.returncode = os.waitstatus_to_exitcode(status)
    copier.join(timeout=10)
    entry = {
        "about": bench.about,
        "command": " ".join(["python", "-m", f"bench.{name}", *arguments]),
        "date": datetime.date.today().isoformat(),
        "git_commit": commit,
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "returncode": proc.returncode,
        "json": json_path.name,
        "log": str(log_path.relative_to(out)),
        "status": "ok",
        "error": None,
        "figures": None,
    }
    if timed_out:
        entry.update(status="timeout", error=f"killed after {bench.timeout_s} s")
    elif proc.returncode != 0 or not json_path.is_file():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        entry.update(status="failed", error="\n".join(tail) or f"exit code {proc.returncode}, no JSON")
    else:
        read_figures(name, json_path, entry)
    return entry


def read_figures(name: str, json_path: Path, entry: dict) -> None:
    """Set ``entry``'s figures from a finished run's JSON, and its status: ok, or failed if they cannot be read."""
    try:
        entry["figures"] = figures(name, json.loads(json_path.read_text()))
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        entry.update(status="failed", error=f"{json_path.name} lacks a headline figure: {exc!r}", figures=None)
    else:
        entry.update(status="ok", error=None)


def refigure(summary: dict, out: Path, names: list[str] | None) -> list[str]:
    """Recompute the figures of the entries whose run finished and wrote its JSON (after a change to
    ``bench/report.py``); an entry marked failed only because its figures could not be read becomes ok again.
    Returns one line per entry that was not recomputed, with why."""
    skipped = []
    for name, entry in summary.get("benchmarks", {}).items():
        if names and name not in names:
            continue
        json_path = out / entry.get("json", f"{name}.json")
        if entry.get("returncode") != 0 or not json_path.is_file():
            skipped.append(f"{name}: its run did not finish with a JSON result; run it again with --only {name}")
            continue
        read_figures(name, json_path, entry)
    return skipped


def load_summary(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_summary(path: Path, summary: dict) -> None:
    path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")


def print_summary(summary: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(shutil.get_terminal_size((160, 24)).columns, 120))
    status = Table(title=f"python -m bench{' --quick' if summary['quick'] else ''}: {out}")
    for column in ("benchmark", "status", "time", "peak RSS"):
        status.add_column(column, justify="left" if column in ("benchmark", "status") else "right")
    for name, entry in summary["benchmarks"].items():
        wall, rss = entry.get("wall_s"), entry.get("peak_rss_mb")
        status.add_row(
            name,
            entry.get("status", "?"),
            "-" if wall is None else f"{wall:.0f} s",
            "-" if rss is None else f"{rss:,.0f} MiB",
        )
    console.print(status)
    figures_table = Table(title="headline figures (ratios: rlhub over the anchor)", show_lines=True)
    for column in ("what", "anchor", "rlhub", "ratio", "target", "CPU", "precision"):
        figures_table.add_column(column)
    for row in rows(summary):
        figures_table.add_row(*row)
    console.print(figures_table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary_path = args.out / "summary.json"
    if (args.table or args.refigure) and not summary_path.is_file():
        sys.exit(f"{summary_path} does not exist; run `python -m bench` first")
    if args.table:
        sys.stdout.write(render_table(load_summary(summary_path)))
        return 0
    if args.refigure:
        summary = load_summary(summary_path)
        for line in refigure(summary, args.out, args.only):
            print(line, file=sys.stderr)
        write_summary(summary_path, summary)
        print(f"recomputed the figures in {summary_path}")
        return 0 if all(e["status"] == "ok" for e in summary["benchmarks"].values()) else 1

    from bench.common import machine_info

    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(BENCHMARKS)
    previous = load_summary(summary_path) if args.only else {}
    if previous.get("quick") != args.quick:
        previous = {}
    kept = {k: v for k, v in previous.get("benchmarks", {}).items() if k not in names}
    summary = {
        "suite": "python -m bench" + (" --quick" if args.quick else ""),
        "date": datetime.date.today().isoformat(),
        "quick": args.quick,
        "machine": machine_info(),
        "benchmarks": {},
    }
    expected = sum(BENCHMARKS[n].expected_s for n in names) / 60
    print(f"running {', '.join(names)}{' (quick)' if args.quick else f'; about {expected:.0f} min on 2 idle cores'}")
    for name in names:
        print(f"\n=== {name}: {BENCHMARKS[name].about}", flush=True)
        entry = run_one(name, BENCHMARKS[name], args.out, args.quick, summary["machine"]["git_commit"])
        kept[name] = entry
        print(f"=== {name}: {entry['status']} in {entry['wall_s']:.0f} s", flush=True)
    summary["benchmarks"] = {name: kept[name] for name in BENCHMARKS if name in kept}
    write_summary(summary_path, summary)
    print()
    print_summary(summary, args.out)
    table_command = "python -m bench --table" + ("" if args.out == DEFAULT_OUT else f" --out {args.out}")
    print(f"wrote {summary_path}; the README's Performance table: {table_command}")
    return 0 if all(e["status"] == "ok" for e in summary["benchmarks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
