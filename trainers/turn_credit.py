"""Per-turn credit for multi-turn episodes: an advantage for each turn from per-turn rewards.

The estimator (returns-to-go with a leave-one-out baseline per turn index). A group holds G episodes of one
prompt; episode i has turns t = 0 .. L_i - 1 with rewards r_t^i (an env's ``turn_reward`` for intermediate
turns, the rubric's score for the last), and the policy decides L_i (it stops by answering). Then

    G_t^i = r_t^i + r_{t+1}^i + ... + r_{L_i - 1}^i          (return-to-go of turn t)
    b_t^i = mean of G_t^j over the other episodes j != i that reached turn t (0 if none did)
    A_t^i = G_t^i - b_t^i

and every token of turn t of episode i gets A_t^i, so the policy gradient is

    g = (1/G) sum_i sum_{t < L_i} A_t^i * grad log pi(turn t of episode i | its history).

It is unbiased for the gradient of the expected total reward, however the policy sets episode lengths:
a turn's return-to-go holds every reward its action leads to, stopping early included (no discount, no
truncation of the future), and b_t^i depends only on the other episodes, which are independent of episode i,
so its term has zero mean. Two things commonly done break that, and must not be done with these advantages:
normalising each turn's own reward across the group at that turn index as if the turns were independent
(it ignores what a turn's action does to the later turns' rewards, and rescales), and dividing an episode's
loss by its length (the policy's choice of length then weighs its own gradient). tests/test_turn_credit.py
checks both claims against the exact gradient of a small tabular MDP.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def turn_advantages(rewards: Sequence[Sequence[float]]) -> list[np.ndarray]:
    """Per-turn advantages of a group of episodes: returns-to-go minus a leave-one-out baseline per turn index.

    Args:
        rewards: For each of the G episodes of a group, its per-turn rewards (lengths may differ; G >= 1).

    Returns:
        For each episode, one advantage per turn (``A_t^i`` in the module docstring). Weigh each turn's
        log-prob gradient by it and average over the G episodes, not over turns or tokens.

    Example:
        >>> [a.tolist() for a in turn_advantages([[0.0, 1.0], [0.5], [0.0, 0.0, 1.0]])]
        [[0.25, 0.0], [-0.5], [0.25, 0.0, 1.0]]
    """
    returns = [np.cumsum(np.asarray(r, dtype=float)[::-1])[::-1] for r in rewards]
    width = max((len(g) for g in returns), default=0)
    padded = np.zeros((len(returns), width))
    reached = np.zeros((len(returns), width))
    for i, g in enumerate(returns):
        padded[i, : len(g)], reached[i, : len(g)] = g, 1.0
    others = reached.sum(axis=0) - reached  # how many other episodes reached each turn
    baseline = np.divide(padded.sum(axis=0) - padded, others, out=np.zeros_like(padded), where=others > 0)
    return [g - baseline[i, : len(g)] for i, g in enumerate(returns)]
