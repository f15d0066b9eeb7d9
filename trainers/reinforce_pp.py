"""REINFORCE++-style baseline: rewards normalized over the whole batch, not per prompt (Hu 2025).

Each completion's advantage is its reward minus the batch mean, divided by the batch std, so prompts
that are easy for every sample do not get their small differences blown up as GRPO's per-group
std does. The KL to the reference enters as GRPO's k3 loss term (``algorithm.beta``); the paper
folds a per-token KL into the reward instead.
"""

from __future__ import annotations

import torch

from rlhub.trainers.grpo import GRPO


class ReinforcePlusPlus(GRPO):
    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """(r - mean) / std over the batch.

        >>> from rlhub.trainers.recipe import AlgorithmSection
        >>> adv = ReinforcePlusPlus(AlgorithmSection(group_size=2)).advantages(torch.tensor([1.0, 1.0, 1.0, 5.0]))
        >>> [round(a, 3) for a in adv.tolist()]
        [-0.5, -0.5, -0.5, 1.5]
        """
        centred = rewards - rewards.mean()
        std = rewards.std() if rewards.numel() > 1 else torch.tensor(0.0)
        return centred / (std + 1e-4) if std > 0 else centred
