"""GRPO: group-relative policy optimization (Shao et al. 2024), with the Dr. GRPO and DAPO variants.

Each prompt gets G completions; a completion's advantage is its reward minus its group's mean
(divided by the group's std unless ``scale_rewards="none"``). The loss is PPO's clipped surrogate on
the importance ratio to the sampling policy, plus an optional k3 KL to the reference policy.
"""

from __future__ import annotations

import torch

from rlhub.trainers.algorithm import PolicyGradient
from rlhub.trainers.losses import BatchTotals, aggregate, clipped_surrogate, kl_k3
from rlhub.trainers.recipe import AlgorithmSection


class GRPO(PolicyGradient):
    """Advantages and loss of GRPO; the shared loop does everything else (see ``algorithm.py``)."""

    def __init__(self, config: AlgorithmSection):
        super().__init__(config)
        self.eps_low = config.epsilon
        self.eps_high = config.epsilon_high if config.epsilon_high is not None else config.epsilon

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """Per-sequence advantages from rewards laid out group by group ([P * G] -> [P * G]).

        >>> GRPO(AlgorithmSection(group_size=2)).advantages(torch.tensor([1.0, 0.0, 0.5, 0.5])).tolist()
        [0.7070..., -0.7070..., 0.0, 0.0]
        """
        groups = rewards.view(-1, self.group_size)
        centred = groups - groups.mean(dim=1, keepdim=True)
        if self.config.scale_rewards == "group":
            centred = centred / (groups.std(dim=1, keepdim=True) + 1e-4)
        return centred.flatten()

    def loss(
        self,
        logp: torch.Tensor,
        old_logp: torch.Tensor,
        ref_logp: torch.Tensor | None,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        totals: BatchTotals,
        is_weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The micro-batch's share of the batch loss, and per-token statistics for logging.

        Args:
            logp, old_logp, ref_logp: [B, T] token log-probs under the current, sampling and reference policy.
            advantages: [B] per-sequence advantages, or [B, T] per-token ones (``algorithm.credit: turn``).
            mask: [B, T] 1 on completion tokens the loss covers.
            totals: Counts over the whole optimizer batch.
            is_weight: [B, T] importance weights of samples from an older policy (asynchronous rollouts),
                applied to the policy-gradient term; None: on-policy.
        """
        per_token_advantages = advantages if advantages.dim() == 2 else advantages[:, None]
        per_token, clipped = clipped_surrogate(logp, old_logp, per_token_advantages, self.eps_low, self.eps_high)
        if is_weight is not None:
            per_token = per_token * is_weight
        stats = {"clipped": clipped.float()}
        if ref_logp is not None:
            kl = kl_k3(logp, ref_logp)
            per_token = per_token + self.config.beta * kl
            stats["kl"] = kl.detach()
        return aggregate(per_token, mask, self.config.loss_type, totals), stats
