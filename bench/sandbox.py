"""Programs per second through the sandbox, against starting a process per program.

    python bench/sandbox.py [--n 500] [--workers N] [--json out.json]

Runs the same small programs (each computes and prints a sum, and its output is checked) three
ways, side by side in one run, each with N programs in flight (default: one per CPU):

- python per program: ``python -I -S -B -X utf8 -c CODE`` (the flags the sandbox's interpreter
  uses; without -S, site's .pth hooks make each start several times slower here);
- bwrap + python per program: the same command inside the same bwrap sandbox a worker gets;
- warm pool: ``SandboxPool(backend="bwrap").run_batch``, after the workers have started.

Where a Docker engine answers and the sandbox image exists (``--docker auto``, the default;
scripts/test-docker.sh builds it and $RLHUB_SANDBOX_IMAGE names it), two more rows:

- docker run + python per program: ``docker run --rm --network none IMAGE python3 -c CODE``, on
  fewer programs (``--docker-n``), as a container per program costs about a second;
- warm pool (docker): ``SandboxPool(backend="docker").run_batch``;

and the cold start of each backend: seconds from ``SandboxPool(workers=1)`` to its one worker's
ready message (the median of ``--cold-starts``).

Ratios are against bwrap + python per program, the cheapest way to get the same isolation
without warm workers.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from rich.console import Console
from rich.table import Table

from bench.common import machine_info
from rlhub.sandbox import SandboxPool, bwrap_problem
from rlhub.sandbox.backends import PYTHON_FLAGS, bwrap_python_command

WARMUP = 20


def make_programs(n: int) -> list[tuple[str, str]]:
    """(code, expected stdout) pairs, all different."""
    programs = []
    for index in range(n):
        limit = 100 + index % 400
        programs.append((f"print(sum(i * i for i in range({limit})))", f"{sum(i * i for i in range(limit))}\n"))
    return programs


def per_process_rate(argv_for, programs: list[tuple[str, str]], workers: int) -> float:
    """Programs per second when each program is its own process (``argv_for(code)``)."""

    def run(program: tuple[str, str]) -> None:
        code, expected = program
        completed = subprocess.run(argv_for(code), capture_output=True, text=True, timeout=60, check=False)
        if completed.stdout != expected:
            raise RuntimeError(f"wrong output {completed.stdout!r} ({completed.stderr.strip()[-300:]})")

    with ThreadPoolExecutor(workers) as threads:
        list(threads.map(run, programs[:WARMUP]))
        started = time.perf_counter()
        list(threads.map(run, programs))
        return len(programs) / (time.perf_counter() - started)


def pool_rate(programs: list[tuple[str, str]], workers: int, backend: str = "bwrap") -> tuple[float, float]:
    """(programs per second, seconds to start the workers) for the warm pool of ``backend``."""
    with SandboxPool(workers=workers, backend=backend) as pool:
        started = time.perf_counter()
        pool.warm()
        startup = time.perf_counter() - started
        pool.run_batch([code for code, _ in programs[:WARMUP]])
        started = time.perf_counter()
        results = pool.run_batch([code for code, _ in programs])
        elapsed = time.perf_counter() - started
    for result, (_, expected) in zip(results, programs):
        if (result.status, result.stdout) != ("ok", expected):
            raise RuntimeError(f"wrong result {result}")
    return len(programs) / elapsed, startup


def cold_start(backend: str, times: int) -> float:
    """Median seconds from creating a one-worker pool to its worker's ready message."""
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        with SandboxPool(workers=1, backend=backend) as pool:
            pool.warm()
            seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def docker_problem() -> str | None:
    """Why the docker arm cannot run here, or None if it can."""
    try:
        from rlhub.sandbox.docker_backend import DockerBackend

        DockerBackend().close()
    except Exception as exc:  # any failure means no docker rows, said in words
        return str(exc)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="programs per mode")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="programs in flight")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--docker", choices=["auto", "on", "off"], default="auto", help="the docker rows")
    parser.add_argument("--docker-n", type=int, default=40, help="programs for docker run per program")
    parser.add_argument("--cold-starts", type=int, default=5, help="cold starts timed per backend")
    args = parser.parse_args()
    problem = bwrap_problem()
    if problem is not None:
        sys.exit(f"bench/sandbox.py needs bwrap: {problem}")

    load_before = os.getloadavg()[0]
    programs = make_programs(args.n)
    bare = per_process_rate(lambda code: [sys.executable, *PYTHON_FLAGS, "-c", code], programs, args.workers)
    bwrap = per_process_rate(lambda code: bwrap_python_command([*PYTHON_FLAGS, "-c", code]), programs, args.workers)
    pool, startup = pool_rate(programs, args.workers)

    rates = {"python per program": bare, "bwrap + python per program": bwrap, "warm pool (bwrap)": pool}
    cold = {"bwrap": cold_start("bwrap", args.cold_starts)}
    docker_startup = None
    docker_skipped = docker_problem() if args.docker != "off" else "--docker off"
    if docker_skipped is not None and args.docker == "on":
        sys.exit(f"bench/sandbox.py --docker on: {docker_skipped}")
    if docker_skipped is None:
        from rlhub.sandbox.docker_backend import DockerBackend

        image = DockerBackend().image

        def docker_run(code: str) -> list[str]:
            return ["docker", "run", "--rm", "--network", "none", image, "python3", *PYTHON_FLAGS, "-c", code]

        rates["docker run + python per program"] = per_process_rate(docker_run, programs[: args.docker_n], args.workers)
        rates["warm pool (docker)"], docker_startup = pool_rate(programs, args.workers, backend="docker")
        cold["docker"] = cold_start("docker", args.cold_starts)
    table = Table(title=f"{args.n} programs, {args.workers} in flight, {os.cpu_count()} CPUs")
    table.add_column("mode")
    table.add_column("programs/s", justify="right")
    table.add_column("ms/program", justify="right")
    table.add_column("vs bwrap + python", justify="right")
    for mode, rate in rates.items():
        table.add_row(mode, f"{rate:.0f}", f"{1000 / rate:.2f}", f"{rate / bwrap:.1f}x")
    console = Console()
    console.print(table)
    console.print(f"warm pool start-up ({args.workers} workers, in parallel): {startup:.2f} s")
    for backend, seconds in cold.items():
        console.print(f"cold start of one {backend} worker (median of {args.cold_starts}): {seconds:.2f} s")
    if docker_skipped is not None:
        console.print(f"docker rows left out: {docker_skipped}")
    else:
        console.print(f"warm docker pool start-up ({args.workers} workers, in parallel): {docker_startup:.2f} s")
    # Other work on the machine skews every row; the 1-minute load average says how much there was.
    console.print(f"load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")

    if args.json:
        report = {
            "n": args.n,
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "programs_per_s": rates,
            "ratio_vs_bwrap_per_program": {mode: rate / bwrap for mode, rate in rates.items()},
            "pool_startup_s": startup,
            "docker_pool_startup_s": docker_startup,
            "cold_start_s": cold,
            "docker_left_out": docker_skipped,
            "load_average_before_after": [load_before, os.getloadavg()[0]],
            "machine": machine_info(),
        }
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
