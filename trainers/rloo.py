"""RLOO: REINFORCE with a leave-one-out baseline (Ahmadian et al. 2024).

A completion's advantage is its reward minus the mean reward of the *other* G-1 completions of its
prompt, which is unbiased (its own reward is not in its baseline) and needs no critic. The loss is
GRPO's clipped surrogate, so several optimizer passes per batch stay safe.
"""

from __future__ import annotations

import torch

from rlhub.trainers.grpo import GRPO


class RLOO(GRPO):
    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """r_i - mean_{j != i} r_j within each group.

        >>> from rlhub.trainers.recipe import AlgorithmSection
        >>> RLOO(AlgorithmSection(group_size=3)).advantages(torch.tensor([3.0, 0.0, 0.0])).tolist()
        [3.0, -1.5, -1.5]
        """
        groups = rewards.view(-1, self.group_size)
        others = (groups.sum(dim=1, keepdim=True) - groups) / (self.group_size - 1)
        return (groups - others).flatten()
