"""Skipping a micro-batch of tied groups is exact: the update equals the one that runs every micro-batch.

With one process and no KL term, a sequence with zero advantage adds nothing to the gradient, so the loop
skips the forward/backward of a micro-batch made only of such sequences; the loss normalizers still count
them. This runs the same steps with skipping on and off and compares the weights, and the metric that
counts the skipped micro-batches.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

# Odd answers: every completion scores 0, the group ties and its micro-batch has nothing to learn from.
# Even answers: the vowel share, which differs between completions.
PARITY_REWARD = """
def vowels_on_even(completions, answer, **kwargs):
    out = []
    for c, a in zip(completions, answer):
        text = c if isinstance(c, str) else c[-1]["content"]
        out.append(sum(ch in "aeiou" for ch in text) / max(len(text), 1) if int(a) % 2 == 0 else 0.0)
    return out
"""
PROMPTS, GROUP, STEPS = 4, 4, 3


@pytest.fixture
def parity_reward(tmp_path, monkeypatch):
    (tmp_path / "parity_reward.py").write_text(PARITY_REWARD)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    return "parity_reward:vowels_on_even"


def run(tiny_run, reward, out, loss_type):
    """A tiny run (tests/conftest.py) of STEPS steps on ``reward`` alone; its metrics rows and final adapter."""
    from safetensors.torch import load_file

    values = {
        "rewards": {reward: 1.0, "correct": 0.0, "format": 0.0},
        "algorithm.group_size": GROUP,
        "algorithm.loss_type": loss_type,
        "training.prompts_per_step": PROMPTS,
        "training.micro_batch_size": GROUP,  # one group per micro-batch
        "training.max_grad_norm": 1e6,  # no clipping, which would hide a wrongly scaled gradient
        "training.num_threads": 1,
        "logging.completions_every": 0,
    }
    result = tiny_run(out, STEPS, **values)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    adapter = load_file(f"{result.summary['checkpoint']}/adapter/adapter_model.safetensors")
    return rows, adapter


@pytest.mark.slow
@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_skipping_tied_micro_batches_leaves_the_update_unchanged(
    loss_type, tiny_run, parity_reward, tmp_path, monkeypatch
):
    from rlhub.trainers import loop

    skipped_rows, skipped = run(tiny_run, parity_reward, tmp_path / "skip", loss_type)
    monkeypatch.setattr(loop, "SKIP_TIED_MICRO_BATCHES", False)
    full_rows, full = run(tiny_run, parity_reward, tmp_path / "full", loss_type)

    # The metric counts one skipped micro-batch per tied group here, and none when every one runs.
    counts = [r["charts/skipped_micro_batches"] for r in skipped_rows]
    assert counts == [r["charts/zero_advantage_groups"] * PROMPTS for r in skipped_rows]
    assert any(0 < c < PROMPTS for c in counts), f"no step mixed skipped and trained micro-batches: {counts}"
    assert [r["charts/skipped_micro_batches"] for r in full_rows] == [0.0] * STEPS
    # Same samples in both runs (the rewards match step for step), and the same weights after every update.
    assert [r["reward"] for r in skipped_rows] == [r["reward"] for r in full_rows]
    assert skipped.keys() == full.keys() and any(v.abs().sum() > 0 for k, v in full.items() if "lora_B" in k)
    for name in full:
        torch.testing.assert_close(skipped[name], full[name], rtol=1e-5, atol=1e-7, msg=name)
