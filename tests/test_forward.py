"""The shared-prompt training forward gives exactly the logits and gradients of separate rows."""

from __future__ import annotations

import pytest
import torch

from rlhub.models import tiny_model
from rlhub.trainers.forward import CompletionLogits, make_batch
from rlhub.trainers.losses import token_logprobs


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
        logits = CompletionLogits(lora_model, share_prefix=share)(batch)
        logp = token_logprobs(logits, batch["completion"])
        loss = (logp * batch["completion_mask"]).sum()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in lora_model.named_parameters() if p.requires_grad}
        results[share] = (logp.detach() * batch["completion_mask"], grads)
    (lp_shared, g_shared), (lp_sep, g_sep) = results[True], results[False]
    torch.testing.assert_close(lp_shared, lp_sep, atol=1e-5, rtol=1e-5)
    assert g_shared.keys() == g_sep.keys() and g_shared
    for name in g_shared:
        # Equal up to float32 rounding (the two paths sum in different orders), relative to the tensor's scale.
        scale = g_sep[name].abs().max()
        assert scale > 0 and (g_shared[name] - g_sep[name]).abs().max() <= 1e-4 * scale, name


def test_make_batch_runs_each_prompt_once():
    batch = _batch()
    assert batch["prompt_ids"].shape[0] == 3 and batch["rows"].tolist() == [0, 0, 1, 2, 2, 1]
    assert batch["completion_mask"].sum(1).tolist() == [3, 1, 2, 4, 1, 2]
    assert batch["prompt_mask"][1].tolist() == [0, 0, 0, 1, 1]  # left-padded
