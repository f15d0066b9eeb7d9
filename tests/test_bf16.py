"""bfloat16 training: bf16 weights and activations, float32 LoRA parameters, optimizer state and log-probs."""

from __future__ import annotations

import json

import pytest
import torch

from rlhub.trainers.recipe import load_recipe


def _in(dtype: str) -> dict:
    """A tiny run's overrides (tests/conftest.py) for training in ``dtype``."""
    return {
        "model.dtype": dtype,
        "rewards": {"correct": 1.0, "format": 0.5},
        "algorithm.beta": 0.04,  # the KL term's reference pass in bf16 too, and no micro-batch is skipped
        "training.micro_batch_size": 8,
    }


def test_bf16_model_keeps_its_adapter_in_float32(tiny_model_dir, tiny_settings, tmp_path):
    from rlhub.trainers.forward import CompletionLogits, make_batch
    from rlhub.trainers.losses import token_logprobs
    from rlhub.trainers.model import load_trainable

    model, _ = load_trainable(tiny_model_dir, load_recipe(None, tiny_settings(tmp_path, **_in("bfloat16"))))
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
    trainable = {p.dtype for p in model.parameters() if p.requires_grad}
    assert frozen == {torch.bfloat16} and trainable == {torch.float32}

    batch = make_batch([[5, 6, 7], [8, 9]], [0, 1, 1], [[20, 21], [22], [23, 24, 25]], [[0.0] * 3] * 3, 0, "cpu")
    logp, entropy = CompletionLogits(model)(batch)
    assert logp.dtype == entropy.dtype == torch.float32
    full = token_logprobs(CompletionLogits(model)(batch, mode="logits"), batch.completion)
    torch.testing.assert_close(logp, full * batch.completion_mask)
    logp.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-4), ("bfloat16", 0.1)])
def test_sampling_and_training_log_probs_agree(tiny_run, tmp_path, dtype, tolerance):
    """ratio/mean and ratio/max compare the sampler's log-probs with the training forward's on the same
    weights: 1 up to float rounding in float32, within bf16's rounding in bfloat16. The trained adapter
    and its optimizer state stay float32."""
    out = tmp_path / "run"
    result = tiny_run(out, recipe_name="tiny", **_in(dtype))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    ratios = [(r["ratio/mean"], r["ratio/max"]) for r in rows if "ratio/mean" in r]
    assert ratios, "no micro-batch trained: the test needs reward differences"
    for mean_ratio, max_ratio in ratios:
        assert abs(mean_ratio - 1) < tolerance and abs(max_ratio - 1) < 10 * tolerance, (mean_ratio, max_ratio)

    from safetensors.torch import load_file

    ckpt = result.summary["checkpoint"]
    adapter = load_file(f"{ckpt}/adapter/adapter_model.safetensors")
    assert adapter and {t.dtype for t in adapter.values()} == {torch.float32}
    state = torch.load(f"{ckpt}/optimizer.pt", weights_only=False)["state"]
    assert state and {s["exp_avg"].dtype for s in state.values()} == {torch.float32}
