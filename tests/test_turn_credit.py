"""Per-turn credit stays unbiased when the policy decides how long an episode lasts.

A tabular MDP in the shape of a tool episode: at each of up to three turns the softmax policy answers (the
episode ends; the answer is right with a probability that grows with the tool calls made before), calls a tool
(a small cost) or makes a malformed call (a larger cost); the third turn ends the episode whatever it does. The
exact gradient of the expected total reward comes from enumerating every episode; estimators are averaged over
many sampled groups and compared with it by a z-test on the groups' standard error, for 20 random policies.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlhub.trainers.turn_credit import turn_advantages

TURNS, ANSWER, CALL, BAD_CALL = 3, 0, 1, 2
ACCURACY = np.array([0.05, 0.6, 0.9])
"""P(the answer is right | the turn it is given at): each earlier tool call helps."""
CALL_REWARD, BAD_CALL_REWARD = -0.05, -0.3
GROUP, GROUPS, SEEDS = 8, 2500, 20


def policy(theta: np.ndarray) -> np.ndarray:
    z = np.exp(theta - theta.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def expected_reward(turn: int, action: int) -> float:
    return {ANSWER: ACCURACY[turn], CALL: CALL_REWARD, BAD_CALL: BAD_CALL_REWARD}[action]


def exact(theta: np.ndarray) -> tuple[float, np.ndarray]:
    """The expected total reward and its gradient in ``theta``, summed over every possible episode."""
    pi, value, grad = policy(theta), 0.0, np.zeros_like(theta)

    def walk(turn: int, prob: float, score: np.ndarray, total: float) -> None:
        nonlocal value, grad
        for action in range(3):
            p, s = prob * pi[turn, action], score.copy()
            s[turn] += np.eye(3)[action] - pi[turn]
            r = total + expected_reward(turn, action)
            if action == ANSWER or turn == TURNS - 1:
                value, grad = value + p * r, grad + p * r * s
            else:
                walk(turn + 1, p, s, r)

    walk(0, 1.0, np.zeros_like(theta), 0.0)
    return value, grad


def sample(theta: np.ndarray, rng: np.random.Generator, n: int):
    """``n`` episodes: per-turn rewards (0 after the end), whether each turn was played, and each turn's score
    function grad log pi(a_t | t) (zero after the end)."""
    pi = policy(theta)
    actions = np.stack([(rng.random(n)[:, None] > pi[t].cumsum()[None, :-1]).sum(axis=1) for t in range(TURNS)], 1)
    stops = actions == ANSWER
    stops[:, -1] = True
    played = np.arange(TURNS)[None, :] <= stops.argmax(axis=1)[:, None]
    right = rng.random((n, TURNS)) < ACCURACY[None, :]
    rewards = np.select([actions == ANSWER, actions == CALL], [right * 1.0, CALL_REWARD], BAD_CALL_REWARD) * played
    scores = (np.eye(3)[actions] - pi[None]) * played[..., None]
    return rewards, played, scores


def proposed(rewards, played, scores):
    """turn_advantages per group; each episode's gradient is its turns' advantages times their scores."""
    lengths = played.sum(axis=1)
    advantages = np.zeros_like(rewards)
    for start in range(0, len(rewards), GROUP):
        group = [rewards[i, : lengths[i]] for i in range(start, start + GROUP)]
        for i, a in enumerate(turn_advantages(group), start):
            advantages[i, : len(a)] = a
    return advantages[..., None] * scores


def per_turn_normalised(rewards, played, scores):
    """Naive: each turn's reward normalised across the group's episodes that played that turn, as if the turns
    were independent bandits."""
    r, m = rewards.reshape(-1, GROUP, TURNS), played.reshape(-1, GROUP, TURNS)
    count = m.sum(axis=1, keepdims=True)
    mean = (r * m).sum(axis=1, keepdims=True) / np.maximum(count, 1)
    std = np.sqrt((((r - mean) * m) ** 2).sum(axis=1, keepdims=True) / np.maximum(count - 1, 1))
    advantages = np.where(count > 1, (r - mean) / (std + 1e-4), 0.0) * m
    return advantages.reshape(rewards.shape)[..., None] * scores


def length_normalised(rewards, played, scores):
    """Naive: the proposed advantages, but each episode's gradient divided by its number of turns (a per-sequence
    token mean)."""
    return proposed(rewards, played, scores) / played.sum(axis=1)[:, None, None]


def z_scores(estimator, seed: int) -> np.ndarray:
    """(estimate - exact) / standard error, per parameter, from GROUPS groups of a random policy."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 1.0, (TURNS, 3))
    per_episode = estimator(*sample(theta, rng, GROUP * GROUPS))
    per_group = per_episode.reshape(GROUPS, GROUP, TURNS, 3).mean(axis=1)  # the estimate: a mean over episodes
    error = per_group.std(axis=0, ddof=1) / np.sqrt(GROUPS)
    return (per_group.mean(axis=0) - exact(theta)[1]) / error


@pytest.fixture(scope="module")
def z():
    return {
        fn.__name__: np.stack([z_scores(fn, seed) for seed in range(SEEDS)])
        for fn in (proposed, per_turn_normalised, length_normalised)
    }


def test_the_exact_gradient_is_the_derivative_of_the_expected_reward():
    theta, step = np.random.default_rng(0).normal(0.0, 1.0, (TURNS, 3)), 1e-6
    numeric = np.zeros_like(theta)
    for index in np.ndindex(theta.shape):
        bump = np.zeros_like(theta)
        bump[index] = step
        numeric[index] = (exact(theta + bump)[0] - exact(theta - bump)[0]) / (2 * step)
    assert np.allclose(exact(theta)[1], numeric, atol=1e-7)


def test_returns_to_go_with_a_leave_one_out_baseline_are_unbiased(z):
    # 20 policies x 9 parameters: each |z| under 4.5 (a false alarm anywhere ~ 1e-3), and z^2 averages ~1.
    assert np.abs(z["proposed"]).max() < 4.5, np.abs(z["proposed"]).max(axis=(1, 2))
    assert 0.6 < (z["proposed"] ** 2).mean() < 1.6


def test_per_turn_normalisation_is_biased(z):
    # The same samples, so the same noise: its error is many standard errors for every policy.
    assert (np.abs(z["per_turn_normalised"]).max(axis=(1, 2)) > 10).all()


def test_dividing_by_episode_length_is_biased(z):
    assert (np.abs(z["length_normalised"]).max(axis=(1, 2)) > 10).all()


def test_per_turn_normalisation_learns_to_answer_before_calling_the_tool():
    """It credits the first turn's action with that turn's reward only: at a uniform policy the exact gradient
    moves the first turn towards calling the tool (answers improve after it), the naive estimate towards answering
    at once (its own reward beats the call's cost)."""
    theta = np.zeros((TURNS, 3))
    samples = sample(theta, np.random.default_rng(0), GROUP * GROUPS)
    true = exact(theta)[1][0, CALL] - exact(theta)[1][0, ANSWER]
    assert true > 0
    for estimator, low, high in ((proposed, -4, 4), (per_turn_normalised, -np.inf, -10)):
        per_group = estimator(*samples).reshape(GROUPS, GROUP, TURNS, 3).mean(axis=1)
        preference = per_group[:, 0, CALL] - per_group[:, 0, ANSWER]
        z = (preference.mean() - true) / (preference.std(ddof=1) / np.sqrt(GROUPS))
        assert low < z < high, (estimator.__name__, z)
    assert preference.mean() < 0  # the naive estimate points the other way


def test_turn_advantages_edge_cases():
    assert turn_advantages([[1.0, 2.0]])[0].tolist() == [3.0, 2.0]  # alone: no baseline, the returns-to-go
    assert [a.tolist() for a in turn_advantages([[1.0], [1.0]])] == [[0.0], [0.0]]
    assert turn_advantages([]) == [] and turn_advantages([[]])[0].tolist() == []
