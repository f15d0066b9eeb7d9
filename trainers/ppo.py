"""PPO with a learned critic (Schulman et al. 2017), as RLHF/RLVR uses it (Ouyang et al. 2022; Hu et al. 2025).

A critic predicts, at every completion token, the reward still to come. The verifiable reward arrives at
the completion's last token; with ``algorithm.beta > 0`` each token also pays ``beta * (log pi - log
ref)``, a KL penalty folded into the reward (not a loss term, unlike GRPO). GAE(gamma, lambda) turns
rewards and values into per-token advantages, which are whitened over the batch and fed to the same
clipped surrogate as GRPO; the critic regresses the GAE returns with a clipped value loss.

Environment tokens (tool results in multi-turn episodes) carry no action: GAE skips them, so a model
token's "next state" is the next model token, however many tool tokens sit between.

The critic's networks are built in ``critic.py``; this module holds the math and plugs the critic into
the shared loop through the algorithm contract's hooks (``algorithm.py``): it builds and prepares the
critic, computes its values and GAE before the update, adds the value loss, steps the critic's optimizer
and saves it in checkpoints.
"""

from __future__ import annotations

import torch

from rlhub.errors import ConfigError
from rlhub.trainers.algorithm import PolicyGradient
from rlhub.trainers.critic import Critic, build_critic
from rlhub.trainers.losses import BatchTotals, aggregate, clipped_surrogate, kl_k3
from rlhub.trainers.recipe import AlgorithmSection, CriticSection


def token_rewards(
    scores: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor | None = None, beta: float = 0.0
) -> torch.Tensor:
    """Per-token rewards [B, T]: ``-beta * kl`` on every model token, plus the score on the last one.

    >>> token_rewards(torch.tensor([1.0, 2.0]), torch.tensor([[1, 1, 0], [1, 0, 1]])).tolist()
    [[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]
    """
    mask = mask.to(torch.float32)
    out = torch.zeros_like(mask)
    if kl is not None and beta:
        out = out - beta * kl.to(torch.float32) * mask
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = torch.where(mask > 0, positions, -1).amax(dim=1)
    has = last >= 0
    rows = torch.arange(mask.shape[0], device=mask.device)[has]
    out[rows, last[has]] += scores.to(out)[has]
    return out


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over the model tokens of each row ([B, T] -> advantages, returns).

    Masked-out positions (padding, tool results) are skipped: the value after a model token is the value
    at the next *model* token, and the state after the last one is terminal (value 0).

    >>> adv, ret = gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]]), torch.ones(1, 2), 1.0, 1.0)
    >>> adv.tolist(), ret.tolist()
    ([[0.5, 0.5]], [[1.0, 1.0]])
    """
    mask = mask.to(torch.float32)
    rewards, values = rewards.to(torch.float32), values.to(torch.float32)
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    running = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        m = mask[:, t] > 0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        step = delta + gamma * lam * running
        advantages[:, t] = torch.where(m, step, torch.zeros_like(step))
        running = torch.where(m, step, running)
        next_value = torch.where(m, values[:, t], next_value)
    returns = (advantages + values) * mask
    return advantages, returns


def whiten(values: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """Zero mean, unit variance over the masked positions of several [B, T] tensors taken together.

    >>> values = [torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[5.0]])]
    >>> out = whiten(values, [torch.tensor([[1, 1, 0]]), torch.ones(1, 1)])
    >>> [[round(v, 3) for v in o.flatten().tolist()] for o in out]
    [[-1.0, 0.0, 0.0], [1.0]]
    """
    masks = [m.to(torch.float32) for m in masks]
    n = sum(m.sum() for m in masks).clamp(min=1)
    mean = sum((v * m).sum() for v, m in zip(values, masks)) / n
    var = sum((((v - mean) * m) ** 2).sum() for v, m in zip(values, masks)) / (n - 1).clamp(min=1)
    return [(v - mean) * torch.rsqrt(var + 1e-8) * m for v, m in zip(values, masks)]


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token squared error to the returns; with ``clip``, PPO's pessimistic clipped variant.

    Returns (loss [B, T], clipped [B, T] bool: where the clipped branch was the larger one).
    """
    err = (values - returns) ** 2
    if clip is None:
        return 0.5 * err, torch.zeros_like(err, dtype=torch.bool)
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    err_clipped = (clipped_values - returns) ** 2
    return 0.5 * torch.maximum(err, err_clipped), err_clipped > err


class PPO(PolicyGradient):
    """Token-level advantages from a critic; the clipped surrogate plus a clipped value loss."""

    uses_critic = True  # built with the recipe's critic section as well

    def __init__(self, config: AlgorithmSection, critic: CriticSection | None = None):
        super().__init__(config)
        self.critic_config = critic = critic or CriticSection()
        self.eps_low = config.epsilon
        self.eps_high = config.epsilon_high if config.epsilon_high is not None else config.epsilon
        self.value_coef = critic.value_coef
        self.value_clip = critic.value_clip
        self.critic: Critic | None = None
        self._state: dict = {}
        self._frozen = False

    # --- the critic's life in the loop (hooks of the algorithm contract) ----------------------------
    def build(self, recipe, accelerator, model, tokenizer):
        if accelerator.distributed_type.value == "DEEPSPEED":
            raise ConfigError(
                "ppo's critic has an optimizer of its own, which accelerate's DeepSpeed integration does not take; "
                "launch with recipes/accelerate/ddp.yaml or fsdp.yaml"
            )
        self._part, self._params = build_critic(recipe, model, tokenizer)
        # shared: the value head runs inside the policy's forward module, on its last hidden state.
        return self._part if self.critic_config.kind == "shared" else None

    def prepare(self, recipe, accelerator, forward, model, tokenizer) -> None:
        t, c = recipe.training, self.critic_config
        optimizer = torch.optim.AdamW(self._params, lr=c.learning_rate or t.learning_rate, weight_decay=t.weight_decay)
        shared = c.kind == "shared"
        if shared:
            module, optimizer = forward, accelerator.prepare(optimizer)
        else:
            module, optimizer = accelerator.prepare(self._part, optimizer)
        self.critic = Critic(shared, module, optimizer, self._params, c.warmup_steps)
        weights = accelerator.unwrap_model(forward).value_head if shared else module
        self._state = {"critic": weights, "critic_optimizer": optimizer}

    def checkpoint_state(self) -> dict:
        return self._state

    def frozen_steps(self, recipe) -> int:
        return self.critic_config.warmup_steps

    def policy_frozen(self, step: int) -> bool:
        """PPO's value warm-up: the critic learns from the frozen policy's samples first."""
        self._frozen = step < self.critic_config.warmup_steps
        return self._frozen

    def skips_tied(self) -> bool:
        return False  # token advantages from the critic are not zero when rewards tie

    def assign_advantages(self, rewards, batches, ref_logps):
        """The critic's values of the rollout, GAE per micro-batch, whitened over the step.

        Stores ``old_values``, ``returns`` and ``advantages`` ([B, T]) in each micro-batch; returns per-sequence
        mean advantages (for the completions table) and critic metrics.
        """
        raw, masks = [], []
        with torch.no_grad():
            for k, (idx, batch) in enumerate(batches):
                values = self.critic.module(batch, mode="values").float()
                adv, returns = self.token_advantages(
                    rewards[idx].to(values.device), batch.loss_mask, values, batch.old_logp, ref_logps.get(k)
                )
                batch.old_values, batch.returns = values, returns
                raw.append(adv)
                masks.append(batch.loss_mask)
        per_sequence = []
        for (_, batch), adv in zip(batches, self.whiten(raw, masks)):
            batch.advantages = adv
            m = batch.loss_mask
            per_sequence.append((adv * m).sum(-1) / m.sum(-1).clamp(min=1))
        m = torch.cat([b.loss_mask.flatten() for _, b in batches]) > 0
        values = torch.cat([b.old_values.flatten() for _, b in batches])[m]
        returns = torch.cat([b.returns.flatten() for _, b in batches])[m]
        raw_adv = torch.cat([a.flatten() for a in raw])[m]
        var = returns.var() if returns.numel() > 1 else torch.tensor(0.0)
        metrics = {
            "values/mean": float(values.mean()) if values.numel() else 0.0,
            "values/returns_mean": float(returns.mean()) if returns.numel() else 0.0,
            "values/advantage_mean": float(raw_adv.mean()) if raw_adv.numel() else 0.0,
            # 1 - Var(returns - values) / Var(returns): 1 is a perfect critic, <= 0 no better than a constant.
            "values/explained_variance": float(1 - (returns - values).var() / var) if var > 0 else 0.0,
        }
        return torch.cat(per_sequence).cpu(), metrics

    def micro_batch_loss(self, forward, batch, ref_logp, totals, temperature, policy_frozen, correction=None):
        if correction is not None:  # the recipe check refuses this before a run starts
            raise ConfigError("ppo does not take asynchronous rollouts; set training.max_off_policy_steps=0")
        if self.critic.shared:
            logp, entropy, values = forward(
                batch, mode="logprobs_values", temperature=temperature, detach_values=policy_frozen
            )
        else:
            logp, entropy = forward(batch, temperature=temperature)
            values = self.critic.module(batch, mode="values")
        loss, stats = self.loss(
            logp,
            batch.old_logp,
            ref_logp,
            batch.advantages,
            batch.loss_mask,
            totals,
            values=values,
            old_values=batch.old_values,
            returns=batch.returns,
            policy_weight=0.0 if policy_frozen else 1.0,
        )
        return loss, stats, logp, entropy

    def no_sync_modules(self) -> list:
        return [] if self.critic.shared else [self.critic.module]

    def after_backward(self, accelerator, max_grad_norm, ran) -> dict[str, float]:
        grad_norm = 0.0
        if ran:
            grad_norm = float(accelerator.clip_grad_norm_(self.critic.params, max_grad_norm))
            self.critic.optimizer.step()
            self.critic.optimizer.zero_grad(set_to_none=True)
        return {"losses/critic_grad_norm": grad_norm, "charts/policy_frozen": float(self._frozen)}

    # --- the math -------------------------------------------------------------------------------------
    def token_advantages(
        self,
        scores: torch.Tensor,
        mask: torch.Tensor,
        old_values: torch.Tensor,
        old_logp: torch.Tensor,
        ref_logp: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE advantages and returns for a batch of completions ([B] scores, [B, T] the rest).

        Whitening (``algorithm.whiten_advantages``) is left to :meth:`whiten`, applied to the whole step's
        advantages at once.
        """
        kl = (old_logp - ref_logp) if ref_logp is not None else None
        rewards = token_rewards(scores, mask, kl, self.config.beta)
        return gae(rewards, old_values, mask, self.config.gamma, self.config.lam)

    def whiten(self, advantages: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        """The step's advantages (one [B, T] tensor per micro-batch), whitened together when configured."""
        if self.config.whiten_advantages:
            return whiten(advantages, masks)
        return [a * m.to(a.dtype) for a, m in zip(advantages, masks)]

    def loss(
        self,
        logp: torch.Tensor,
        old_logp: torch.Tensor,
        ref_logp: torch.Tensor | None,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        totals: BatchTotals,
        *,
        values: torch.Tensor,
        old_values: torch.Tensor,
        returns: torch.Tensor,
        policy_weight: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Policy loss (x ``policy_weight``; 0 during value warm-up) + ``value_coef`` x value loss.

        Args:
            advantages, values, old_values, returns: [B, T] per-token tensors.
            Others as in :meth:`rlhub.trainers.grpo.GRPO.loss`.
        """
        policy, clipped = clipped_surrogate(logp, old_logp, advantages, self.eps_low, self.eps_high)
        vloss, vclipped = value_loss(values.float(), old_values, returns, self.value_clip)
        policy_loss = aggregate(policy, mask, self.config.loss_type, totals)
        v_loss = aggregate(vloss, mask, self.config.loss_type, totals)
        stats = {
            "clipped": clipped.float(),
            "value_clip_fraction": vclipped.float(),
            "value_abs_error": (values.detach().float() - returns).abs(),
            "pg_loss": policy_loss.detach(),
            "value_loss": v_loss.detach(),
        }
        if ref_logp is not None:
            stats["kl"] = kl_k3(logp, ref_logp).detach()
        return policy_weight * policy_loss + self.value_coef * v_loss, stats
