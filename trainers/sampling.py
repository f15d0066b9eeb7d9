"""Dynamic sampling: draw more prompts until a step's groups all carry a learning signal.

A group whose ``group_size`` rewards all tie (every completion right, or every one wrong) has zero
advantage under group baselines and teaches nothing. With ``algorithm.dynamic_sampling: {max_draws: K}``
the rollout step draws batches of ``training.prompts_per_step`` prompts from the stream (each process its
interleaved slice, as without it) and keeps the groups whose rewards differ, until every process holds
``prompts_per_step`` of them or K draws were made (DAPO's dynamic sampling; verl's ``filter_groups``).

Design choices:

- The step's size stays fixed. When K draws leave a process short, it pads with tied groups it drew (their
  advantage is zero, so they add nothing to the gradient; on one process their micro-batches are skipped).
  A fixed size keeps every process running the same micro-batches and collective ops, and keeps
  ``training.micro_batch_size`` dividing the step.
- The processes agree on the number of draws: each draw ends with an all-reduce of "still short", and all
  of them draw again while any one is short.
- Groups beyond ``prompts_per_step`` are dropped, not carried over: the next step samples afresh with the
  updated policy, and the sampler has no state beyond the stream position, which the checkpoint stores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rlhub.errors import ConfigError


@dataclass
class Groups:
    """Prompts and their scored completions, laid out group by group (``group_size`` per prompt)."""

    examples: list
    prompt_ids: list[list[int]]
    completions: list
    scores: list
    rewards: torch.Tensor

    def tied(self, group_size: int) -> list[bool]:
        """For each prompt, whether its completions' rewards are all equal."""
        spread = self.rewards.view(-1, group_size)
        return (spread.max(1).values == spread.min(1).values).tolist()

    def pick(self, indices: list[int], group_size: int) -> Groups:
        """The groups of the prompts at ``indices``, in that order (completions re-pointed at their prompts)."""
        rows = [i * group_size + j for i in indices for j in range(group_size)]
        new_index = {old: new for new, old in enumerate(indices)}
        return Groups(
            examples=[self.examples[i] for i in indices],
            prompt_ids=[self.prompt_ids[i] for i in indices],
            completions=[
                dataclasses.replace(self.completions[r], prompt_index=new_index[self.completions[r].prompt_index])
                for r in rows
            ],
            scores=[self.scores[r] for r in rows],
            rewards=self.rewards[rows],
        )


def concat(parts: list[Groups]) -> Groups:
    """Several draws' groups as one batch, prompts numbered in order."""
    examples, prompt_ids, completions, scores = [], [], [], []
    for part in parts:
        offset = len(examples)
        examples += part.examples
        prompt_ids += part.prompt_ids
        completions += [dataclasses.replace(c, prompt_index=c.prompt_index + offset) for c in part.completions]
        scores += part.scores
    rewards = torch.cat([p.rewards for p in parts]) if parts else torch.zeros(0)
    return Groups(examples, prompt_ids, completions, scores, rewards)


def check_supported(recipe) -> None:
    """Refuse, in one line each, the set-ups dynamic sampling does not cover."""
    if recipe.algorithm.dynamic_sampling is None:
        return
    if recipe.algorithm.group_size < 2:
        raise ConfigError(
            "algorithm.dynamic_sampling keeps groups whose rewards differ, which needs algorithm.group_size >= 2; "
            "raise group_size or remove algorithm.dynamic_sampling"
        )
    if recipe.training.max_off_policy_steps:
        raise ConfigError(
            "algorithm.dynamic_sampling does not run with asynchronous rollouts yet; "
            "set training.max_off_policy_steps=0 or remove algorithm.dynamic_sampling"
        )


def fill(
    draw: Callable[[], Groups],
    *,
    size: int,
    group_size: int,
    max_draws: int,
    all_sum: Callable[[list[float]], list[float]],
) -> tuple[Groups, dict[str, float]]:
    """Draw until this step holds ``size`` groups with unequal rewards on every process, or ``max_draws`` draws.

    Args:
        draw: Samples and scores this process's slice of the next ``size`` prompts of the stream.
        size: Groups per process per step (``training.prompts_per_step``).
        group_size: Completions per prompt.
        max_draws: The most draws a step makes (K).
        all_sum: Sums a short list of numbers across processes (a collective op: every process calls it
            the same number of times).

    Returns:
        ``(groups, metrics)``: ``size`` groups, those with unequal rewards first (tied ones pad a short step),
        and ``sampling/draws_per_step`` and ``sampling/zero_variance_share`` (of every group drawn, on all
        processes).
    """
    informative, tied, draws = [], [], 0
    while True:
        batch = draw()
        draws += 1
        flags = batch.tied(group_size)
        informative.append(batch.pick([i for i, t in enumerate(flags) if not t], group_size))
        tied.append(batch.pick([i for i, t in enumerate(flags) if t], group_size))
        short = sum(len(g.examples) for g in informative) < size
        # Every process takes part in this all-reduce on every draw, so all stop after the same draw.
        (any_short,) = all_sum([float(short)])
        if not any_short or draws >= max_draws:
            break
    merged = concat(informative + tied)
    n_tied, n_drawn = all_sum([float(sum(len(g.examples) for g in tied)), float(len(merged.examples))])
    metrics = {"sampling/draws_per_step": float(draws), "sampling/zero_variance_share": n_tied / max(n_drawn, 1.0)}
    return merged.pick(list(range(size)), group_size), metrics
