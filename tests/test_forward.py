"""The training forward: the shared prompt gives exactly the gradients of separate rows, and the chunked
log-probs exactly those of the full logits."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_model

from rlhub.trainers import forward as forward_module
from rlhub.trainers.critic import ValueHead
from rlhub.trainers.forward import CompletionLogits, make_batch
from rlhub.trainers.losses import token_entropy, token_logprobs


@pytest.fixture(scope="module")
def lora_model():
    from peft import LoraConfig, get_peft_model

    model, _ = tiny_model(seed=1)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    return model.float()


def _batch():
    prompts = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    index = [0, 0, 1, 2, 2, 1]
    completions = [[20, 21, 22], [23], [24, 25], [26, 27, 28, 29], [30], [31, 32]]
    logprobs = [[-1.0] * len(c) for c in completions]
    return make_batch(prompts, index, completions, logprobs, pad_id=0, device="cpu")


def test_shared_prefix_matches_separate_rows(lora_model):
    batch = _batch()
    results = {}
    for share in (True, False):
        lora_model.zero_grad()
        logits = CompletionLogits(lora_model, share_prefix=share)(batch, mode="logits")
        logp = token_logprobs(logits, batch.completion)
        loss = (logp * batch.completion_mask).sum()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in lora_model.named_parameters() if p.requires_grad}
        results[share] = (logp.detach() * batch.completion_mask, grads)
    (lp_shared, g_shared), (lp_sep, g_sep) = results[True], results[False]
    torch.testing.assert_close(lp_shared, lp_sep, atol=1e-5, rtol=1e-5)
    assert g_shared.keys() == g_sep.keys() and g_shared
    for name in g_shared:
        # Equal up to float32 rounding (the two paths sum in different orders), relative to the tensor's scale.
        scale = g_sep[name].abs().max()
        assert scale > 0 and (g_shared[name] - g_sep[name]).abs().max() <= 1e-4 * scale, name


def test_make_batch_runs_each_prompt_once():
    batch = _batch()
    assert batch.prompt_ids.shape[0] == 3 and batch.rows.tolist() == [0, 0, 1, 2, 2, 1]
    assert batch.completion_mask.sum(1).tolist() == [3, 1, 2, 4, 1, 2]
    assert batch.prompt_mask[1].tolist() == [0, 0, 0, 1, 1]  # left-padded


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


@pytest.mark.parametrize("share", [True, False])
def test_chunked_logprobs_match_full_logits(lora_model, monkeypatch, share):
    """Chunks of 3 rows (several per micro-batch): same log-probs, entropies and LoRA gradients as
    log-softmaxing the whole [B, T, V] logits, at a sampling temperature, with and without autograd."""
    monkeypatch.setattr(forward_module, "CHUNK_ELEMENTS", 3 * lora_model.config.vocab_size)
    batch, temperature = _batch(), 0.7
    mask = batch.completion_mask
    module = CompletionLogits(lora_model, share_prefix=share)

    lora_model.zero_grad()
    logits = module(batch, mode="logits")
    full = token_logprobs(logits, batch.completion, temperature) * mask
    full_entropy = token_entropy(logits.detach(), temperature) * mask
    (full * torch.linspace(0.5, 1.5, full.numel()).view_as(full)).sum().backward()
    full_grads = _grads(lora_model)

    lora_model.zero_grad()
    logp, entropy = module(batch, temperature=temperature)
    (logp * torch.linspace(0.5, 1.5, logp.numel()).view_as(logp)).sum().backward()
    chunk_grads = _grads(lora_model)

    assert logp.dtype == entropy.dtype == torch.float32 and not entropy.requires_grad
    torch.testing.assert_close(logp.detach(), full.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy, full_entropy, atol=1e-5, rtol=1e-5)
    assert (logp.detach()[mask == 0] == 0).all() and (full.detach()[mask > 0] < 0).all()
    assert chunk_grads.keys() == full_grads.keys() and chunk_grads
    for name in full_grads:
        scale = full_grads[name].abs().max()
        assert scale > 0 and (chunk_grads[name] - full_grads[name]).abs().max() <= 1e-4 * scale, name
    with torch.no_grad():  # the reference / KL path
        torch.testing.assert_close(module(batch, temperature=temperature)[0], full.detach(), atol=1e-5, rtol=1e-5)


def test_chunked_logprobs_with_values_match_full_logits(lora_model, monkeypatch):
    """PPO's shared critic: one pass gives chunked log-probs and the values of the same hidden states."""
    monkeypatch.setattr(forward_module, "CHUNK_ELEMENTS", 2 * lora_model.config.vocab_size)
    torch.manual_seed(0)
    head = ValueHead(lora_model.config.hidden_size)
    torch.nn.init.normal_(head.linear.weight)
    module, batch = CompletionLogits(lora_model, value_head=head), _batch()
    logits, values = module(batch, mode="both")
    logp, entropy, values_chunked = module(batch, mode="logprobs_values")
    assert not entropy.requires_grad and (entropy * batch.completion_mask > 0).any()
    full = token_logprobs(logits, batch.completion) * batch.completion_mask
    torch.testing.assert_close(logp, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(values_chunked, values)
    assert values.abs().max() > 0


def test_forward_rejects_unknown_mode(lora_model):
    with pytest.raises(ValueError, match="unknown mode 'logit'"):
        CompletionLogits(lora_model)(_batch(), mode="logit")
