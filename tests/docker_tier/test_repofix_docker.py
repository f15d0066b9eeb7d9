"""repofix-v0's hidden tests on the docker backend: the planted fix scores 1.0 and the test-tampering family 0,
as on bubblewrap (tests/test_repofix.py)."""

from __future__ import annotations

from rlhub.envs.repofix import RepoFixEnv
from rlhub.rewards import repofix as repofix_rewards
from rlhub.sandbox.backends import resolve_backend


def test_hidden_tests_run_in_containers_and_hold_against_tampering():
    assert resolve_backend(None) == "docker"  # the default pool the reward uses
    with repofix_rewards._cache_lock:  # verdicts are cached per job; this test's must come from containers
        repofix_rewards._cache.clear()
    env = RepoFixEnv(difficulty=2)
    examples = env.examples("test", limit=4)
    golds = [env.gold_completion(ex) for ex in examples]
    assert [s.rewards["correct"] for s in env.score_batch(golds, examples)] == [1.0] * 4
    noop = [[{"role": "assistant", "content": '<tool_call>{"name": "submit", "arguments": {}}</tool_call>'}]] * 4
    assert [s.rewards["correct"] for s in env.score_batch(noop, examples)] == [0.0] * 4
    tamper = [(probe, ex) for ex in examples[:2] for probe in env.probes(ex) if probe.name == "test tampering"]
    for probe, ex in tamper:
        scores = env.score_batch(list(probe.completions), [ex] * len(probe.completions))
        assert max(s.rewards["correct"] for s in scores) == 0.0, probe.about
