"""The training forward pass: log-prob logits for completion tokens, the shared prompt computed once.

A step trains on P prompts x G completions. Running each [prompt | completion] row separately would
push every prompt through the model G times, forward and backward; here each distinct prompt of a
micro-batch is run once, its KV cache indexed out to its completions, and the completions run on top.
Autograd sums the completions' gradients into the one prompt pass, so the gradient is exactly that of
the separate rows (tests/test_forward.py checks this) at a fraction of the cost when prompts are long.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rlhub.generation.rollout import kv_cache_name, left_pad, positions


@dataclass
class MicroBatch:
    """One micro-batch of a step's completions as tensors, each buffer named (as cleanrl names ``b_logprobs``).

    :func:`make_batch` fills the first seven fields; the rest start as None and are written by the step that
    computes them: the loop's advantages step (through the algorithm or per-turn credit), PPO's critic, and
    the asynchronous path's correction. B is the number of completions, T the longest completion, P the
    number of distinct prompts and L the longest of them.
    """

    prompt_ids: torch.Tensor
    """[P, L] the distinct prompts' token ids, left-padded (each prompt runs once)."""
    prompt_mask: torch.Tensor
    """[P, L] 1 on prompt tokens, 0 on padding."""
    rows: torch.Tensor
    """[B] which row of ``prompt_ids`` each completion answers."""
    completion: torch.Tensor
    """[B, T] completion token ids (the model's and, in episodes, the environment's), right-padded."""
    completion_mask: torch.Tensor
    """[B, T] 1 on completion tokens, which attention sees; 0 on padding."""
    old_logp: torch.Tensor
    """[B, T] the behaviour policy's log-probs: the sampler's log-prob of each model token, 0 elsewhere. Under
    asynchronous rollouts the sampler is up to ``training.max_off_policy_steps`` versions old."""
    loss_mask: torch.Tensor
    """[B, T] 1 on the tokens the loss covers (the model's own), 0 on environment tokens and padding."""
    advantages: torch.Tensor | None = None
    """[B] per-sequence advantages, or [B, T] per-token ones (PPO; ``algorithm.credit: turn``); set in step 4."""
    old_values: torch.Tensor | None = None
    """PPO: [B, T] the critic's values of the rollout, what the clipped value loss stays near."""
    returns: torch.Tensor | None = None
    """PPO: [B, T] GAE returns, the critic's regression targets."""
    before_logp: torch.Tensor | None = None
    """Asynchronous rollouts: [B, T] the policy's log-probs before this step's update (recorded on the first
    pass), which the ratio is clipped against; the gap to ``old_logp`` is corrected by importance weights."""


class CompletionLogits(nn.Module):
    """Wraps a causal LM (plain or peft) so one ``forward`` gives what the loss needs for completion tokens:
    their log-probs and entropies (computed chunk by chunk from the last hidden state, never the whole
    [B, T, V] logits at once), and, with a ``value_head``, [B, T] values of the states they are predicted from.

    It is an ``nn.Module`` so DDP/FSDP wrap it whole: both model calls happen inside one wrapped forward.

    Args:
        model: The policy (or a separate critic's trunk).
        share_prefix: Run each distinct prompt once (needs a KV cache, so not with gradient checkpointing).
        value_head: Maps the last hidden state [..., H] to [..., 1] (PPO's critic); None for no values.
    """

    def __init__(self, model: nn.Module, share_prefix: bool = True, value_head: nn.Module | None = None):
        super().__init__()
        self.model = model
        self.share_prefix = share_prefix
        self.value_head = value_head

    def forward(
        self,
        batch: MicroBatch,
        mode: str = "logprobs",
        temperature: float = 1.0,
        detach_values: bool = False,
    ):
        """What to compute, by ``mode``:

        - "logprobs": (log-probs, entropies), both [B, T] float32, the log-probs of ``batch.completion``
          at ``temperature``; entropies carry no gradient. Padding positions hold 0.
        - "logprobs_values": (log-probs, entropies, values).
        - "values": values [B, T].
        - "logits": the full [B, T, V] logits (what the chunked path avoids; kept as its reference in tests);
          "both": (logits, values).

        ``detach_values`` stops the value loss's gradient at the head (trains the head alone).
        """
        if mode not in ("logprobs", "logprobs_values", "values", "logits", "both"):
            raise ValueError(f"unknown mode {mode!r}; use logprobs, logprobs_values, values, logits or both")
        want_values = mode in ("values", "both", "logprobs_values")
        want_logprobs = mode.startswith("logprobs")
        if want_values and self.value_head is None:
            raise ValueError("this CompletionLogits has no value_head")
        run = self._shared if self.share_prefix else self._separate
        logits, hidden = run(batch, keep_logits=mode in ("logits", "both"), hidden=want_values or want_logprobs)
        if mode == "logits":
            return logits
        out: tuple = ()
        if want_logprobs:
            head = _unwrap(self.model).get_output_embeddings()
            out = chunked_logprobs(head, hidden, batch.completion, batch.completion_mask, temperature)
        if want_values:
            states = hidden.detach() if detach_values else hidden
            values = self.value_head(states.to(next(self.value_head.parameters()).dtype)).squeeze(-1)
            if mode == "values":
                return values
            out = (logits, values) if mode == "both" else (*out, values)
        return out

    def _shared(self, batch, keep_logits: bool = True, hidden: bool = False):
        from transformers import DynamicCache

        prompt_ids, prompt_mask, rows = batch.prompt_ids, batch.prompt_mask, batch.rows
        completion, width = batch.completion, batch.completion.shape[1]
        kv = kv_cache_name()
        out = self.model(
            input_ids=prompt_ids,
            attention_mask=prompt_mask,
            position_ids=positions(prompt_mask),
            **{kv: DynamicCache()},
            use_cache=True,
            logits_to_keep=1,
            output_hidden_states=hidden,
        )
        # Position -1 of the (left-padded) prompt predicts each completion's first token.
        first = _take_rows(out.logits, rows) if keep_logits else None
        first_h = _take_rows(out.hidden_states[-1][:, -1:], rows) if hidden else None
        if width == 1:
            return first, first_h
        cache = getattr(out, kv)
        for layer in cache.layers:
            layer.keys, layer.values = _take_rows(layer.keys, rows), _take_rows(layer.values, rows)
        mask = torch.cat([prompt_mask[rows], batch.completion_mask[:, :-1].long()], dim=1)
        start = prompt_mask.sum(-1)[rows, None]
        pos = start + torch.arange(width - 1, device=start.device)[None]
        rest = self.model(
            input_ids=completion[:, :-1],
            attention_mask=mask,
            position_ids=pos,
            **{kv: cache},
            use_cache=True,
            logits_to_keep=0 if keep_logits else 1,
            output_hidden_states=hidden,
        )
        logits = torch.cat([first, rest.logits], dim=1) if keep_logits else None
        states = torch.cat([first_h, rest.hidden_states[-1]], dim=1) if hidden else None
        return logits, states

    def _separate(self, batch, keep_logits: bool = True, hidden: bool = False):
        prompt_mask, rows, completion = batch.prompt_mask, batch.rows, batch.completion
        width = completion.shape[1]
        input_ids = torch.cat([batch.prompt_ids[rows], completion], dim=1)
        mask = torch.cat([prompt_mask[rows], batch.completion_mask.long()], dim=1)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions(mask),
            logits_to_keep=width + 1 if keep_logits else 1,
            use_cache=False,
            output_hidden_states=hidden,
        )
        logits = out.logits[:, :-1] if keep_logits else None
        states = out.hidden_states[-1][:, -(width + 1) : -1] if hidden else None
        return logits, states


def _unwrap(model: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (its LoRA layers stay in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


# Rows of logits per chunk: 2**24 floats (64 MiB) of [rows, V] logits at a time, e.g. 341 rows for a 49k vocabulary.
CHUNK_ELEMENTS = 2**24


def chunked_logprobs(
    head: nn.Module,
    hidden: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 1.0,
    chunk_elements: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of ``tokens`` and entropies from the last hidden state, a few hundred rows of logits at a time.

    Only positions where ``mask`` is set are computed (0 elsewhere). Under autograd each chunk runs in
    ``torch.utils.checkpoint``: its logits are freed after the forward and recomputed in the backward, so
    the peak holds one chunk's logits instead of the micro-batch's [B, T, V] (and their log-softmax). The
    values and gradients are those of ``token_logprobs(head(hidden), tokens)`` per position.

    Args:
        head: The LM head (a module: a LoRA layer on it, or its trained weights, get their gradients).
        hidden: [B, T, H] last hidden states, position t predicting ``tokens[:, t]``.
        tokens: [B, T] token ids.
        mask: [B, T] 1 where a log-prob is wanted.
        temperature: Logits are divided by it, as in sampling.
        chunk_elements: Logits held at once (rows x vocabulary); default ``CHUNK_ELEMENTS``.

    Returns:
        (log-probs, entropies), [B, T] float32; entropies carry no gradient.
    """
    from torch.utils.checkpoint import checkpoint

    where = mask.flatten().nonzero().squeeze(-1)
    states = hidden.flatten(0, 1).index_select(0, where)
    targets = tokens.flatten().index_select(0, where)
    rows = max(1, (chunk_elements or CHUNK_ELEMENTS) // head.weight.shape[0])
    grad = torch.is_grad_enabled() and states.requires_grad
    logps, entropies = [], []
    for start in range(0, len(where), rows):
        h, t = states[start : start + rows], targets[start : start + rows]
        if grad:
            lp, ent = checkpoint(_head_logprobs, head, h, t, temperature, use_reentrant=False)
        else:
            lp, ent = _head_logprobs(head, h, t, temperature)
        logps.append(lp)
        entropies.append(ent)
    flat = hidden.new_zeros(tokens.numel(), dtype=torch.float32)
    logp = flat.index_put((where,), torch.cat(logps)) if logps else flat
    entropy = flat.detach().index_put((where,), torch.cat(entropies).detach()) if entropies else flat.detach()
    return logp.view_as(tokens), entropy.view_as(tokens)


def _head_logprobs(head: nn.Module, hidden: torch.Tensor, tokens: torch.Tensor, temperature: float):
    """[N, H] states -> (log p(token) [N], entropy [N]) through one chunk of [N, V] float32 logits."""
    logits = head(hidden).float() / temperature
    lse = logits.logsumexp(-1)
    logp = logits.gather(-1, tokens[:, None]).squeeze(-1) - lse
    with torch.no_grad():
        entropy = lse - (logits - lse[:, None]).exp_().mul_(logits).sum(-1)
    return logp, entropy


def _take_rows(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``t[rows]``, with a deterministic backward when ``rows`` is sorted (completions grouped by prompt).

    Indexing with repeated rows backpropagates through an accumulating scatter whose summation order
    varies between runs on a multi-threaded CPU; expand + cat sums in a fixed order.
    """
    if rows.numel() > 1 and bool((rows[1:] >= rows[:-1]).all()):
        counts = torch.bincount(rows, minlength=t.shape[0]).tolist()
        return torch.cat([t[i : i + 1].expand(c, *t.shape[1:]) for i, c in enumerate(counts) if c])
    return t[rows]


def make_batch(
    prompt_ids: list[list[int]],
    prompt_index: list[int],
    completions: list[list[int]],
    logprobs: list[list[float]],
    pad_id: int,
    device,
    loss_masks: list[list[int]] | None = None,
) -> MicroBatch:
    """Tensors for one micro-batch: distinct prompts once (left-padded), completions right-padded.

    Args:
        prompt_ids: Token ids of every prompt of the step.
        prompt_index: For each completion, which prompt it answers.
        completions: Completion token ids.
        logprobs: The sampling log-prob of each completion token (the "old" policy).
        loss_masks: 1 on the tokens the loss covers (the model's own); default: every completion token.
            Environment tokens (tool results) stay visible to attention but out of the loss.
    """
    distinct = sorted(set(prompt_index))
    where = {p: i for i, p in enumerate(distinct)}
    ids_p, mask_p = left_pad([prompt_ids[p] for p in distinct], pad_id, device)
    width = max(len(c) for c in completions)
    comp = torch.full((len(completions), width), pad_id, dtype=torch.long)
    comp_mask = torch.zeros((len(completions), width), dtype=torch.float32)
    old = torch.zeros((len(completions), width), dtype=torch.float32)
    loss_mask = torch.zeros((len(completions), width), dtype=torch.float32)
    for i, (tokens, lps) in enumerate(zip(completions, logprobs)):
        comp[i, : len(tokens)] = torch.tensor(tokens)
        comp_mask[i, : len(tokens)] = 1
        old[i, : len(lps)] = torch.tensor(lps)
        loss_mask[i, : len(tokens)] = torch.tensor(loss_masks[i], dtype=torch.float32) if loss_masks else 1
    return MicroBatch(
        prompt_ids=ids_p,
        prompt_mask=mask_p,
        rows=torch.tensor([where[p] for p in prompt_index], device=device),
        completion=comp.to(device),
        completion_mask=comp_mask.to(device),
        old_logp=old.to(device),
        loss_mask=loss_mask.to(device),
    )
