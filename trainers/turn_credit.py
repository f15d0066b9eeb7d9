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

Training uses it under ``algorithm.credit: turn`` (trainers/loop.py, step 4): :func:`assign_turn_advantages`
turns a step's episodes (their turn spans and turn rewards, recorded by rollout) into per-token advantages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rlhub.trainers.forward import MicroBatch


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


def episode_turn_rewards(turn_rewards: Sequence[float], turns: int, final_reward: float) -> list[float]:
    """One episode's reward per turn: the env's turn rewards, and the final reward added to the last turn.

    Args:
        turn_rewards: The env's ``turn_reward`` of each turn it replied to (``Episode.turn_rewards``).
        turns: How many turns the model took (``len(Episode.turn_spans)``, >= 1).
        final_reward: The rubric's score of the episode.

    Returns:
        ``turns`` rewards. The last turn is normally the answer, which the env does not reply to; an episode
        cut short after a reply (its token budget spent) gets the final reward on that replied-to turn.

    Example:
        >>> episode_turn_rewards([0.5], 2, 1.0), episode_turn_rewards([0.5, 0.5], 2, 1.0)
        ([0.5, 1.0], [0.5, 1.5])
    """
    rewards = [float(r) for r in turn_rewards] + [0.0] * (turns - len(turn_rewards))
    rewards[-1] += final_reward
    return rewards


def token_advantages(episodes: Sequence, final_rewards: Sequence[float], group_size: int) -> list[np.ndarray]:
    """Per-token advantages of a step's episodes: every token of turn t gets that turn's ``A_t``.

    Args:
        episodes: Episodes laid out group by group, ``group_size`` of one prompt each, with ``token_ids``,
            ``turn_spans`` and ``turn_rewards`` (``rlhub.generation.rollout.Episode``).
        final_rewards: Each episode's final reward (the rubric's score).
        group_size: G, the episodes per group.

    Returns:
        For each episode, one advantage per entry of its ``token_ids`` (0 on the environment's tokens).
    """
    out = []
    for start in range(0, len(episodes), group_size):
        group = episodes[start : start + group_size]
        rewards = [
            episode_turn_rewards(ep.turn_rewards, len(ep.turn_spans), float(final))
            for ep, final in zip(group, final_rewards[start : start + group_size])
        ]
        for ep, advantages in zip(group, turn_advantages(rewards)):
            per_token = np.zeros(len(ep.token_ids))
            for (begin, end), advantage in zip(ep.turn_spans, advantages):
                per_token[begin:end] = advantage
            out.append(per_token)
    return out


def assign_turn_advantages(
    episodes: Sequence, rewards: torch.Tensor, group_size: int, batches: list[tuple[list[int], MicroBatch]]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Store each micro-batch's per-token advantages ([B, T], as PPO's are); what ``algorithm.credit: turn``
    puts in place of the algorithm's per-sequence advantages.

    Args:
        episodes: The step's episodes, group by group.
        rewards: [N] their final rewards.
        group_size: G.
        batches: The step's micro-batches, (indices into ``episodes``, batch); ``batch.advantages`` is set.

    Returns:
        Each episode's first-turn advantage [N] (its total reward against the other episodes' mean: RLOO's
        advantage), for the completions table; and metrics.
    """
    per_token = token_advantages(episodes, rewards.tolist(), group_size)
    for idx, batch in batches:
        mask = batch.loss_mask
        advantages = torch.zeros(mask.shape, dtype=torch.float32)
        for row, i in enumerate(idx):
            advantages[row, : len(per_token[i])] = torch.from_numpy(per_token[i])
        batch.advantages = advantages.to(mask.device)
    first = [float(tokens[ep.turn_spans[0][0]]) for tokens, ep in zip(per_token, episodes)]
    turn_rewards = [r for ep in episodes for r in ep.turn_rewards]
    metrics = {"rewards/turn_reward/mean": float(np.mean(turn_rewards)) if turn_rewards else 0.0}
    return torch.tensor(first, dtype=torch.float32), metrics
