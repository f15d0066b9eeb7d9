"""The agent-episodes benchmark: repofix-v0 episodes at two concurrencies, their sandbox time, the scripted policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a folder of the checkout, not an installed package
    sys.path.append(str(ROOT))

from bench import report  # noqa: E402
from bench.__main__ import BENCHMARKS  # noqa: E402

PARTS = ("workspace open", "run_tests", "hidden tests", "workspace close")
RESULT = {
    "env": "repofix-v0",
    "examples": 64,
    "rounds": 3,
    "concurrency": [1, 16],
    "episodes_per_s": {"1": 4.0, "16": 12.0},
    "ratio_highest_over_lowest": 3.0,
    "sandbox_s_per_episode": {
        "1": dict(zip(PARTS, (0.15, 0.04, 0.01, 0.002))),
        "16": dict(zip(PARTS, (0.7, 0.2, 0.07, 0.005))),
    },
    "sandbox_calls_per_episode": {c: dict(zip(PARTS, (1.0, 2.0, 1.0, 1.0))) for c in ("1", "16")},
    "turns_per_episode": {"1": 5.5, "16": 5.5},
}


def _bench(tmp_path: Path, *arguments: str) -> dict:
    from rlhub.sandbox import bwrap_problem

    if bwrap_problem():
        pytest.skip(f"the agent-episodes benchmark needs bwrap: {bwrap_problem()}")
    out = tmp_path / "agent_episodes.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.agent_episodes", *arguments, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(out.read_text())


def test_rows_state_both_concurrencies_their_ratio_and_sandbox_seconds():
    speed, sandbox = report.ROWS["agent_episodes"](report.figures("agent_episodes", RESULT))
    assert "`repofix-v0`, 64 test examples" in speed[0] and "5.5 turns" in speed[0]
    assert list(speed[1:5]) == ["1 at a time: 4.00/s", "16 concurrent: 12.00/s", "3.00x", "-"]
    assert "2 run_tests each" in sandbox[0]
    assert sandbox[1] == "1 at a time: open 0.15 s, run_tests 0.04 s, hidden tests 0.01 s, close 0.002 s"
    assert sandbox[2].startswith("16 concurrent: open 0.70 s")


@pytest.mark.slow
def test_the_benchmark_plays_and_scores_every_episode_at_each_concurrency(tmp_path):
    result = _bench(tmp_path, "--per-level", "1", "--rounds", "2", "--concurrency", "1", "2")
    assert result["examples"] == 2 and set(result["episodes_per_s"]) == {"1", "2"}
    assert all(len(rounds) == 2 for rounds in result["episodes_per_s_by_round"].values())
    # Level 1 takes 5 turns (one fix), level 2 takes 6 (two fixes); each episode runs the tests twice.
    assert result["turns_per_episode"] == {"1": 5.5, "2": 5.5}
    for concurrency in ("1", "2"):
        calls = result["sandbox_calls_per_episode"][concurrency]
        assert calls == {"workspace open": 1.0, "run_tests": 2.0, "hidden tests": 1.0, "workspace close": 1.0}
        assert all(seconds > 0 for seconds in result["sandbox_s_per_episode"][concurrency].values())
    assert result["backend"] == "bwrap" and result["machine"]["cpu"] and "cpu_isa" in result["machine"]
    figures = report.figures("agent_episodes", result)
    assert report.ROWS["agent_episodes"](figures)[0][3] == f"{result['ratio_highest_over_lowest']:.2f}x"
    assert "agent_episodes" in BENCHMARKS and "--per-level" in BENCHMARKS["agent_episodes"].quick


@pytest.mark.slow
def test_the_policy_mode_scores_operator_flips_and_counts_their_cost(tmp_path):
    result = _bench(tmp_path, "--policy", "operator-flip", "--per-level", "2")
    assert result["mode"] == "policy" and set(result["levels"]) == {"1", "2"}
    for level in result["levels"].values():
        assert level["examples"] == 2 and 0 <= level["solved"] <= 2
        assert level["rewards"]["correct"] == level["solved"] / 2
        assert level["rewards"]["turns"] >= 2  # it always runs the tests and reads the failing modules first
        assert level["sandbox_calls_per_episode"]["run_tests"] >= 1
        assert level["sandbox_calls_per_episode"]["hidden tests"] == 1.0  # scored once, when the episode ends
        assert level["sandbox_s_per_episode"]["workspace open"] > 0
