"""Policy-gradient pieces every algorithm shares: token log-probs, the clipped surrogate, KL, aggregation."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchTotals:
    """Counts over the whole optimizer batch (all micro-batches), so each micro-batch's loss is scaled
    to its share of the batch loss and gradient accumulation gives exactly the full-batch gradient."""

    sequences: int
    tokens: int
    max_new_tokens: int


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(token) for each position: ``logits`` [B, T, V], ``tokens`` [B, T] -> [B, T].

    The trainer gets these chunk by chunk from ``CompletionLogits`` (never all [B, T, V] logits at once);
    this whole-tensor form is the reference its tests compare with.
    """
    logits = logits.float() / temperature
    return logits.gather(-1, tokens[..., None]).squeeze(-1) - logits.logsumexp(-1)


@torch.no_grad()
def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of the sampling distribution at each position: [B, T, V] -> [B, T]."""
    logp = (logits.float() / temperature).log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, eps_low: float, eps_high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped objective as a per-token loss, and which tokens were clipped.

    ``advantages`` is [B, T] (or [B, 1], broadcast). Returns (loss [B, T], clipped [B, T] bool).
    """
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high) * advantages
    loss = -torch.minimum(unclipped, clipped)
    return loss, (clipped < unclipped)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(policy || reference) per token: always >= 0, unbiased."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, loss_type: str, totals: BatchTotals) -> torch.Tensor:
    """Reduce a per-token loss over a micro-batch, as its share of the full-batch loss.

    - ``grpo``: mean over each sequence's tokens, then mean over sequences (long answers weigh less per token);
    - ``dr_grpo``: sum over tokens / (sequences x max_new_tokens), a constant normalizer (Liu et al. 2025);
    - ``dapo``: sum over tokens / all tokens in the batch, every token weighs the same (Yu et al. 2025).
    """
    mask = mask.to(per_token.dtype)
    if loss_type == "grpo":
        per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq.sum() / totals.sequences
    if loss_type == "dr_grpo":
        return (per_token * mask).sum() / (totals.sequences * totals.max_new_tokens)
    if loss_type == "dapo":
        return (per_token * mask).sum() / max(totals.tokens, 1)
    raise ValueError(f"unknown loss_type {loss_type!r}; use grpo, dr_grpo or dapo")
