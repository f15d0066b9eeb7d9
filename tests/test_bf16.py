"""bfloat16 training: bf16 weights and activations, float32 LoRA parameters, optimizer state and log-probs."""

from __future__ import annotations

import json

import pytest
import torch

from rlhub.trainers.recipe import load_recipe


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from tiny_models import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0))


def _recipe(model_dir: str, out, dtype: str):
    values = {
        "model.name": model_dir,
        "model.dtype": dtype,
        "env.id": "arithmetic-v1",
        "env.config": {"difficulty": 1},
        "rewards": {"correct": 1.0, "format": 0.5},
        "algorithm.group_size": 4,
        "algorithm.beta": 0.04,  # the KL term's reference pass in bf16 too, and no micro-batch is skipped
        "training.max_steps": 2,
        "training.prompts_per_step": 2,
        "training.micro_batch_size": 8,
        "training.max_new_tokens": 8,
        "training.learning_rate": 1e-2,
        "training.save_every": 0,
        "training.output_dir": str(out),
        "logging.wandb": False,
    }
    return load_recipe(None, [f"{k}={json.dumps(v)}" for k, v in values.items()])


def test_bf16_model_keeps_its_adapter_in_float32(tiny_model_dir, tmp_path):
    from rlhub.trainers.forward import CompletionLogits, make_batch
    from rlhub.trainers.losses import token_logprobs
    from rlhub.trainers.model import load_trainable

    model, _ = load_trainable(tiny_model_dir, _recipe(tiny_model_dir, tmp_path, "bfloat16"))
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
    trainable = {p.dtype for p in model.parameters() if p.requires_grad}
    assert frozen == {torch.bfloat16} and trainable == {torch.float32}

    batch = make_batch([[5, 6, 7], [8, 9]], [0, 1, 1], [[20, 21], [22], [23, 24, 25]], [[0.0] * 3] * 3, 0, "cpu")
    logp, entropy = CompletionLogits(model)(batch)
    assert logp.dtype == entropy.dtype == torch.float32
    full = token_logprobs(CompletionLogits(model)(batch, mode="logits"), batch["completion"])
    torch.testing.assert_close(logp, full * batch["completion_mask"])
    logp.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-4), ("bfloat16", 0.1)])
def test_sampling_and_training_log_probs_agree(tiny_model_dir, tmp_path, dtype, tolerance):
    """ratio/mean and ratio/max compare the sampler's log-probs with the training forward's on the same
    weights: 1 up to float rounding in float32, within bf16's rounding in bfloat16. The trained adapter
    and its optimizer state stay float32."""
    from rlhub.trainers.loop import train

    out = tmp_path / "run"
    result = train(_recipe(tiny_model_dir, out, dtype), recipe_name="tiny", progress=False)
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
