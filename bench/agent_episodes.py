"""repofix-v0 episodes per second on the bwrap backend, one at a time and 16 at once; the scripted policy's score.

    python -m bench.agent_episodes [--per-level 32] [--rounds 3] [--concurrency 1 16] [--json out.json]
    python -m bench.agent_episodes --policy operator-flip [--per-level 50] [--seed 0] [--json out.json]

Throughput (the default; the suite's ``agent_episodes``): the first ``--per-level`` ``test`` examples of
repofix-v0 at difficulty 1 and at difficulty 2 (seed 0), each played by a scripted agent through
``env.respond``, the path the trainers' rollouts take: ``list_files``; ``read_file`` of the files to fix and
``run_tests``; the planted fixes as ``edit_file`` calls, one turn each (the gold transcript's calls);
``run_tests``; ``submit``. The thread that played an episode then scores it with ``env.score_batch`` (the
hidden tests, in the sandbox pool). Each episode's workspace is a bwrap sandbox, opened on its first
``run_tests`` and closed when it submits. Episodes run in threads, at each concurrency in turn, in alternating
rounds (1, 16, then 16, 1, ...) so both meet the same load; every round plays the whole set, and an episode
that does not score ``correct`` 1.0 fails the run. Reported: the median round's episodes/s per concurrency and
their ratio, highest over 1; per episode, the sandbox's seconds by part (opening and closing the workspace,
``run_tests``, the hidden tests: call latencies summed over threads, so waiting at high concurrency counts)
and the turns.

Scripted baseline (``--policy operator-flip``): ``operator_flip_policy`` plays the first ``--per-level`` test
examples of each level, one episode at a time; reported per level: the mean ``correct``, ``pass_rate`` and
``format``, turns, edits, tool errors, and the sandbox's seconds per episode. repofix-v0's docstring (its
card) quotes these figures.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from rich.console import Console
from rich.table import Table

from bench.common import machine_info, write_json

ENV_ID = "repofix-v0"
LEVELS = (1, 2)
PARTS = ("workspace open", "run_tests", "hidden tests", "workspace close")
"""The sandbox's work in an episode, timed apart."""
POLICIES = ("operator-flip",)


class SandboxClock:
    """Seconds and calls in each of :data:`PARTS`, summed over all threads while :meth:`timing` is on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.seconds = dict.fromkeys(PARTS, 0.0)
            self.calls = dict.fromkeys(PARTS, 0)

    def per_episode(self, episodes: int) -> tuple[dict[str, float], dict[str, float]]:
        """Seconds and calls per episode, by part."""
        with self._lock:
            return (
                {part: s / episodes for part, s in self.seconds.items()},
                {part: n / episodes for part, n in self.calls.items()},
            )

    def _timed(self, part: str, method):
        @functools.wraps(method)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds[part] += time.perf_counter() - started
                    self.calls[part] += 1

        return timed

    @contextlib.contextmanager
    def timing(self):
        """Time the workspace's and the sandbox pool's methods that an episode's parts go through."""
        from rlhub.env import Workspace
        from rlhub.sandbox import SandboxPool

        # repofix's run_tests is the only caller of Workspace.run; its hidden tests the only caller of run_calls.
        targets = {
            "workspace open": (Workspace, "__init__"),
            "run_tests": (Workspace, "run"),
            "hidden tests": (SandboxPool, "run_calls"),
            "workspace close": (Workspace, "close"),
        }
        originals = {part: getattr(owner, name) for part, (owner, name) in targets.items()}
        for part, (owner, name) in targets.items():
            setattr(owner, name, self._timed(part, originals[part]))
        try:
            yield self
        finally:
            for part, (owner, name) in targets.items():
                setattr(owner, name, originals[part])


def forget_hidden_verdicts() -> None:
    """Empty repofix's hidden-test cache: each round replays the same edits, and a cached verdict skips the sandbox."""
    from rlhub.rewards import repofix

    with repofix._cache_lock:
        repofix._cache.clear()


def agent_turns(example) -> list:
    """The scripted agent's turns: look, read and test, the planted fixes (one turn each), test, submit."""
    from rlhub.rewards.tool_calls import ToolCall

    paths = dict.fromkeys(path for path, _, _ in example.answer)
    fixes = [ToolCall("edit_file", {"path": p, "search": s, "replace": r}) for p, s, r in example.answer]
    return [
        [ToolCall("list_files", {})],
        [*(ToolCall("read_file", {"path": path}) for path in paths), ToolCall("run_tests", {})],
        *([fix] for fix in fixes),
        [ToolCall("run_tests", {})],
        [ToolCall("submit", {})],
    ]


def play_and_score(env, example) -> tuple[int, float]:
    """One episode through ``env.respond``, then ``env.score_batch``: its turns and its ``correct`` reward."""
    from rlhub.env import EpisodeState
    from rlhub.rewards.tool_calls import format_tool_calls

    state, messages = EpisodeState(example=example), list(example.prompt)
    try:
        for calls in agent_turns(example):
            messages.append({"role": "assistant", "content": format_tool_calls(calls)})
            messages += env.respond(messages, state)
            if state.done:
                break
    finally:
        state.close()
    score = env.score_batch([messages[len(example.prompt) :]], [example])[0]
    return state.turns, score.rewards["correct"]


def throughput_round(jobs: list, concurrency: int, clock: SandboxClock) -> dict:
    """Play and score every ``(env, example)`` of ``jobs`` with ``concurrency`` threads; the round's figures."""
    forget_hidden_verdicts()
    clock.reset()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency, thread_name_prefix="bench-episode") as pool:
        outcomes = list(pool.map(lambda job: play_and_score(*job), jobs))
    elapsed = time.perf_counter() - started
    failed = [example.id for (_, example), (_, correct) in zip(jobs, outcomes) if correct != 1.0]
    if failed:
        sys.exit(f"the planted fixes did not score correct 1.0 on {failed}: the env or its sandbox is broken")
    seconds, calls = clock.per_episode(len(jobs))
    return {
        "episodes_per_s": len(jobs) / elapsed,
        "sandbox_s_per_episode": seconds,
        "sandbox_calls_per_episode": calls,
        "turns_per_episode": statistics.mean(turns for turns, _ in outcomes),
    }


def throughput(args: argparse.Namespace, clock: SandboxClock) -> dict:
    import rlhub

    envs = {level: rlhub.make(ENV_ID, difficulty=level) for level in LEVELS}
    jobs = [(envs[level], ex) for level in LEVELS for ex in envs[level].examples("test", args.per_level, args.seed)]
    for env, example in jobs:
        if len(agent_turns(example)) > env.config.max_turns:
            sys.exit(f"{example.id}: the scripted agent needs more than the level's {env.config.max_turns} turns")
    throughput_round(jobs[:1] + jobs[-1:], 1, clock)  # warm-up: the sandbox pool starts, modules load
    rounds = {str(c): [] for c in args.concurrency}
    for index in range(args.rounds):
        for concurrency in args.concurrency if index % 2 == 0 else args.concurrency[::-1]:
            rounds[str(concurrency)].append(throughput_round(jobs, concurrency, clock))

    def median(concurrency: str, *keys: str) -> float:
        values = rounds[concurrency]
        for key in keys:
            values = [value[key] for value in values]
        return statistics.median(values)

    per_s = {c: median(c, "episodes_per_s") for c in rounds}
    low, high = str(min(args.concurrency)), str(max(args.concurrency))
    report = {
        "mode": "throughput",
        "examples": len(jobs),
        "levels": list(LEVELS),
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "episodes_per_s": per_s,
        "episodes_per_s_by_round": {c: [r["episodes_per_s"] for r in by] for c, by in rounds.items()},
        "ratio_highest_over_lowest": per_s[high] / per_s[low],
        "sandbox_s_per_episode": {c: {p: median(c, "sandbox_s_per_episode", p) for p in PARTS} for c in rounds},
        "sandbox_calls_per_episode": {c: {p: median(c, "sandbox_calls_per_episode", p) for p in PARTS} for c in rounds},
        "turns_per_episode": {c: median(c, "turns_per_episode") for c in rounds},
    }
    table = Table(
        title=f"{ENV_ID}, {len(jobs)} episodes (levels 1-2), median of {args.rounds} rounds; sandbox s per episode"
    )
    for column in ("in flight", "episodes/s", *PARTS, "turns"):
        table.add_column(column, justify="right")
    for c in rounds:
        parts, turns = report["sandbox_s_per_episode"][c], report["turns_per_episode"][c]
        table.add_row(c, f"{per_s[c]:.2f}", *(f"{parts[p]:.3f}" for p in PARTS), f"{turns:.1f}")
    Console().print(table)
    Console().print(f"{high} concurrent over {low}: {report['ratio_highest_over_lowest']:.2f}x")
    return report


def policy_baseline(args: argparse.Namespace, clock: SandboxClock) -> dict:
    import rlhub
    from rlhub.envs.repofix import operator_flip_policy

    by_level = {}
    for level in LEVELS:
        env = rlhub.make(ENV_ID, difficulty=level)
        examples = env.examples("test", args.per_level, args.seed)
        forget_hidden_verdicts()
        clock.reset()
        started = time.perf_counter()
        transcripts = [operator_flip_policy(env, example) for example in examples]
        elapsed = time.perf_counter() - started
        env.close()
        seconds, calls = clock.per_episode(len(examples))  # the hidden tests ran when each episode ended (env.step)
        scores = env.score_batch(transcripts, examples)  # the same verdicts, from the cache
        means = {key: statistics.mean(s.rewards[key] for s in scores) for key in scores[0].rewards}
        by_level[str(level)] = {
            "examples": len(examples),
            "solved": sum(s.rewards["correct"] == 1.0 for s in scores),
            "rewards": means,
            "wall_s_per_episode": elapsed / len(examples),
            "sandbox_s_per_episode": seconds,
            "sandbox_calls_per_episode": calls,
        }
    table = Table(title=f"{ENV_ID}: operator_flip_policy, first {args.per_level} test examples (seed {args.seed})")
    columns = ("level", "correct", "pass_rate", "format", "turns", "edits", "run_tests", "sandbox s", "wall s")
    for column in columns:
        table.add_column(column, justify="right")
    for level, f in by_level.items():
        r = f["rewards"]
        table.add_row(
            level,
            f"{f['solved']}/{f['examples']}",
            f"{r['pass_rate']:.3f}",
            f"{r['format']:.2f}",
            f"{r['turns']:.2f}",
            f"{r['edits']:.2f}",
            f"{f['sandbox_calls_per_episode']['run_tests']:.2f}",
            f"{sum(f['sandbox_s_per_episode'].values()):.3f}",
            f"{f['wall_s_per_episode']:.3f}",
        )
    Console().print(table)
    return {"mode": "policy", "policy": args.policy, "levels": by_level}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-level", type=int, default=32, help="test examples of each level (1 and 2)")
    parser.add_argument("--seed", type=int, default=0, help="the examples' seed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per concurrency; the median round is reported")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16], help="episodes in flight at once")
    parser.add_argument("--policy", choices=POLICIES, help="instead: measure this scripted policy's score and cost")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    from rlhub.sandbox import bwrap_problem

    problem = bwrap_problem()
    if problem is not None:
        sys.exit(f"bench/agent_episodes.py measures the bwrap backend, which does not run here: {problem}")
    os.environ["RLHUB_SANDBOX"] = "bwrap"  # workspaces and the hidden tests' pool alike, never the fallback

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with SandboxClock().timing() as clock:
        figures = policy_baseline(args, clock) if args.policy else throughput(args, clock)
    # Other work on the machine skews every figure; the 1-minute load average says how much there was.
    Console().print(f"load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    report = {
        "env": ENV_ID,
        "backend": "bwrap",
        "seed": args.seed,
        "per_level": args.per_level,
        **figures,
        "wall_s": time.perf_counter() - started,
        "machine": machine_info(),
        "load_average_before_after": [load_before, os.getloadavg()[0]],
    }
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
