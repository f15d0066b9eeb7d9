"""The algorithm contract: what the training loop asks of an RL algorithm, and the name -> class table.

The loop (``loop.py``) owns rollout, rewards, micro-batching, reference log-probs, the optimizer,
logging and checkpoints. An algorithm decides two things: each completion's advantage, and the loss of
a micro-batch. GRPO, RLOO and REINFORCE++ implement only those (:meth:`Algorithm.advantages` and
:meth:`Algorithm.loss`); PPO also trains a critic, which it plugs in through the optional hooks that
:class:`PolicyGradient` gives defaults for.

To add an algorithm, subclass :class:`PolicyGradient` (or ``GRPO``), write ``advantages`` and ``loss``,
then add a line to :data:`ALGORITHMS` or name the class by path in a recipe
(``algorithm.name: mypackage.mymodule:MyAlgorithm``). docs/training.md shows a 20-line example.

One step, as the loop calls the contract::

    frozen = algo.policy_frozen(step)
    per_sequence, metrics = algo.assign_advantages(rewards, batches, ref_logps)   # stores batch.advantages
    for each pass, for each micro-batch:
        loss, stats, logp, entropy = algo.micro_batch_loss(forward, batch, ref_logp, totals, temperature, frozen)
        backward(loss)
    metrics |= algo.after_backward(accelerator, max_grad_norm, ran)                # its own optimizers
    policy optimizer step unless frozen
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

from rlhub.errors import ConfigError
from rlhub.trainers.forward import MicroBatch
from rlhub.trainers.losses import BatchTotals

if TYPE_CHECKING:
    from rlhub.trainers.recipe import AlgorithmSection, Recipe

# Recipe name -> "module:Class". A recipe may also give any importable "module:Class" path.
ALGORITHMS = {
    "grpo": "rlhub.trainers.grpo:GRPO",
    "ppo": "rlhub.trainers.ppo:PPO",
    "rloo": "rlhub.trainers.rloo:RLOO",
    "reinforce_pp": "rlhub.trainers.reinforce_pp:ReinforcePlusPlus",
}

Batch = MicroBatch
"""What the loop hands an algorithm for each micro-batch: a :class:`~rlhub.trainers.forward.MicroBatch`, whose
fields say what the loop fills and what an algorithm (``advantages``; PPO's ``old_values`` and ``returns``) adds."""


@runtime_checkable
class Algorithm(Protocol):
    """What the loop calls. ``PolicyGradient`` implements every hook but ``advantages`` and ``loss``."""

    config: AlgorithmSection

    @property
    def needs_reference(self) -> bool:
        """True when the loss needs the reference policy's log-probs (the loop computes them with the
        LoRA adapter disabled and passes them as ``ref_logp``; None otherwise)."""

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """Per-sequence advantages from the step's rewards, laid out prompt by prompt, G completions
        each ([P * G] -> [P * G])."""

    def loss(
        self,
        logp: torch.Tensor,
        old_logp: torch.Tensor,
        ref_logp: torch.Tensor | None,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        totals: BatchTotals,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The micro-batch's share of the batch loss, and statistics to log.

        ``logp``/``old_logp``/``ref_logp`` are [B, T] token log-probs under the policy being trained, the
        policy that sampled and the reference; ``advantages`` what :meth:`assign_advantages` stored for
        this micro-batch; ``mask`` [B, T] is 1 on the completion tokens the loss covers; ``totals`` counts
        the whole optimizer batch, so that accumulated micro-batch losses add up to the batch loss.
        Statistics: [B, T] per-token tensors (logged as masked means) or scalars (logged as batch sums).
        An algorithm that takes asynchronous rollouts (``training.max_off_policy_steps``) also accepts
        ``is_weight=None``: [B, T] importance weights of stale samples, applied to the policy term.
        """

    # Optional hooks, with defaults in PolicyGradient: an algorithm with trainable parts of its own.
    def build(self, recipe: Recipe, accelerator, model: nn.Module, tokenizer) -> nn.Module | None:
        """Called once before the policy is wrapped; may return a head to compute inside the policy's
        forward pass (PPO's shared value head)."""

    def prepare(self, recipe: Recipe, accelerator, forward: nn.Module, model: nn.Module, tokenizer) -> None:
        """Called once after the policy is wrapped: build and ``accelerator.prepare`` own modules."""

    def checkpoint_state(self) -> dict[str, Any]:
        """Modules and optimizers saved in, and restored from, every checkpoint."""

    def frozen_steps(self, recipe: Recipe) -> int:
        """How many first steps leave the policy untouched (its learning-rate schedule starts after)."""

    def policy_frozen(self, step: int) -> bool:
        """Whether ``step`` (0-based) leaves the policy untouched."""

    def skips_tied(self) -> bool:
        """Whether a micro-batch whose per-sequence advantages are all 0 adds nothing to the gradient
        (so the loop may skip it)."""

    def assign_advantages(
        self, rewards: torch.Tensor, batches: list[tuple[list[int], MicroBatch]], ref_logps: dict[int, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Store each micro-batch's ``batch.advantages``; return per-sequence advantages [N] (for
        skipping and the completions table) and metrics."""

    def micro_batch_loss(
        self,
        forward: nn.Module,
        batch: MicroBatch,
        ref_logp: torch.Tensor | None,
        totals: BatchTotals,
        temperature: float,
        policy_frozen: bool,
        correction=None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Run the forward pass and :meth:`loss`: (loss, stats, log-probs [B, T], entropies [B, T]).

        ``correction`` (asynchronous rollouts, ``training.max_off_policy_steps``): ``(batch, logp) ->
        (old_logp, is_weight)``, the log-probs to clip against and per-token importance weights of stale
        samples, passed to ``loss`` as ``is_weight``; None: on-policy."""

    def no_sync_modules(self) -> list[nn.Module]:
        """Own wrapped modules whose gradient all-reduce waits for the last micro-batch."""

    def after_backward(self, accelerator, max_grad_norm: float, ran: bool) -> dict[str, float]:
        """After each pass's micro-batches (``ran``: any ran): step own optimizers; return metrics."""


class PolicyGradient:
    """Base class: an algorithm that only shapes advantages and the loss over the policy's log-probs."""

    def __init__(self, config: AlgorithmSection):
        self.config = config
        self.group_size = config.group_size

    @property
    def needs_reference(self) -> bool:
        return self.config.beta > 0

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, logp, old_logp, ref_logp, advantages, mask, totals):
        raise NotImplementedError

    def build(self, recipe, accelerator, model, tokenizer) -> nn.Module | None:
        return None

    def prepare(self, recipe, accelerator, forward, model, tokenizer) -> None:
        return None

    def checkpoint_state(self) -> dict[str, Any]:
        return {}

    def frozen_steps(self, recipe) -> int:
        return 0

    def policy_frozen(self, step: int) -> bool:
        return False

    def skips_tied(self) -> bool:
        return not self.needs_reference

    def assign_advantages(self, rewards, batches, ref_logps):
        advantages = self.advantages(rewards)
        for idx, batch in batches:
            batch.advantages = advantages[idx].to(batch.loss_mask.device)
        return advantages, {}

    def micro_batch_loss(self, forward, batch, ref_logp, totals, temperature, policy_frozen, correction=None):
        logp, entropy = forward(batch, temperature=temperature)
        old_logp, extra = batch.old_logp, {}
        if correction is not None:
            old_logp, extra["is_weight"] = correction(batch, logp)
        loss, stats = self.loss(logp, old_logp, ref_logp, batch.advantages, batch.loss_mask, totals, **extra)
        return loss, stats, logp, entropy

    def no_sync_modules(self) -> list[nn.Module]:
        return []

    def after_backward(self, accelerator, max_grad_norm, ran) -> dict[str, float]:
        return {}


def load_algorithm(recipe: Recipe) -> Algorithm:
    """The recipe's ``algorithm.name`` (a name in :data:`ALGORITHMS` or a ``module:Class`` path), built."""
    from rlhub.resolve import resolve

    name = recipe.algorithm.name
    try:
        cls = resolve(ALGORITHMS.get(name, name), what="algorithm.name")
    except ConfigError as exc:
        raise ConfigError(
            f"algorithm.name {name!r} is neither one of {sorted(ALGORITHMS)} nor an importable module:Class path "
            f"({str(exc).partition(': ')[2] or exc})"
        ) from None
    algorithm = cls(recipe.algorithm, recipe.critic) if getattr(cls, "uses_critic", False) else cls(recipe.algorithm)
    missing = [m for m in ("advantages", "loss", "micro_batch_loss", "assign_advantages") if not hasattr(algorithm, m)]
    if missing:
        raise ConfigError(
            f"algorithm {name!r} lacks {', '.join(missing)}; subclass rlhub.trainers.algorithm.PolicyGradient"
        )
    return algorithm
