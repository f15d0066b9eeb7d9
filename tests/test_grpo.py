"""GRPO's math on tiny hand-computed cases: advantages, clipping, KL, loss aggregation."""

from __future__ import annotations

import math

import pytest
import torch

from rlhub.trainers.grpo import GRPO
from rlhub.trainers.losses import BatchTotals, aggregate, clipped_surrogate, kl_k3
from rlhub.trainers.recipe import AlgorithmSection


def test_group_advantages_centre_and_scale_within_each_group():
    algo = GRPO(AlgorithmSection(group_size=3))
    adv = algo.advantages(torch.tensor([1.0, 0.0, 2.0, 5.0, 5.0, 5.0]))
    std = torch.tensor([1.0, 0.0, 2.0]).std().item()  # unbiased, as torch computes it: 1.0
    assert adv[:3].tolist() == pytest.approx([0.0, -1 / (std + 1e-4), 1 / (std + 1e-4)], rel=1e-6)
    assert adv[3:].tolist() == [0.0, 0.0, 0.0]  # no spread, nothing to learn


def test_dr_grpo_does_not_scale_by_std():
    algo = GRPO(AlgorithmSection(group_size=2, scale_rewards="none"))
    assert algo.advantages(torch.tensor([3.0, 1.0])).tolist() == [1.0, -1.0]


def test_clipped_surrogate_clips_only_in_the_direction_of_the_advantage():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.5, 0.5]]))  # ratios 1.5, 0.5, 1.5, 0.5
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    loss, clipped = clipped_surrogate(logp, old, adv, eps_low=0.2, eps_high=0.28)
    # A>0: min(1.5, 1.28) -> 1.28 (clipped); min(0.5, 0.8) -> 0.5 (not clipped)
    # A<0: min(-1.5, -1.28) -> -1.5 (not clipped); min(-0.5, -0.8) -> -0.8 (clipped)
    assert (-loss).tolist()[0] == pytest.approx([1.28, 0.5, -1.5, -0.8])
    assert clipped.tolist()[0] == [True, False, False, True]


def test_kl_k3_is_zero_at_equality_and_matches_its_formula():
    logp = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-1.0, -1.5])
    kl = kl_k3(logp, ref)
    assert kl[0] == 0.0
    assert kl[1].item() == pytest.approx(math.exp(0.5) - 0.5 - 1)


@pytest.mark.parametrize(
    "loss_type, expected",
    [
        # per-token loss 1 everywhere; sequence lengths 1 and 3; batch of 2 sequences, 4 tokens, budget 5
        ("grpo", (1 / 1 + 3 / 3) / 2),
        ("dr_grpo", 4 / (2 * 5)),
        ("dapo", 4 / 4),
    ],
)
def test_aggregation_variants(loss_type, expected):
    per_token = torch.ones(2, 3)
    mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    totals = BatchTotals(sequences=2, tokens=4, max_new_tokens=5)
    assert aggregate(per_token, mask, loss_type, totals).item() == pytest.approx(expected)


def test_micro_batches_sum_to_the_full_batch_loss():
    torch.manual_seed(0)
    per_token, mask = torch.rand(4, 5), (torch.rand(4, 5) > 0.3).float()
    totals = BatchTotals(sequences=4, tokens=int(mask.sum()), max_new_tokens=5)
    for loss_type in ("grpo", "dr_grpo", "dapo"):
        whole = aggregate(per_token, mask, loss_type, totals)
        halves = [aggregate(per_token[s], mask[s], loss_type, totals) for s in (slice(0, 2), slice(2, 4))]
        parts = halves[0] + halves[1]
        assert parts.item() == pytest.approx(whole.item()), loss_type


def test_loss_gradient_pushes_up_positive_advantage_tokens():
    algo = GRPO(AlgorithmSection(group_size=2, beta=0.0))
    logp = torch.tensor([[-1.0, -1.0], [-1.0, -1.0]], requires_grad=True)
    mask = torch.ones(2, 2)
    loss, _ = algo.loss(logp, logp.detach(), None, torch.tensor([1.0, -1.0]), mask, BatchTotals(2, 4, 2))
    loss.backward()
    assert (logp.grad[0] < 0).all() and (logp.grad[1] > 0).all()  # descent raises row 0, lowers row 1


def test_kl_term_adds_to_the_loss_when_policy_moves():
    algo = GRPO(AlgorithmSection(group_size=2, beta=0.5))
    logp, ref = torch.tensor([[-1.0], [-1.0]]), torch.tensor([[-2.0], [-1.0]])
    loss, stats = algo.loss(logp, logp, ref, torch.zeros(2), torch.ones(2, 1), BatchTotals(2, 2, 1))
    assert loss.item() == pytest.approx(0.5 * (math.exp(-1) + 1 - 1) / 2)
    assert stats["kl"][1].item() == 0.0


def test_rloo_leaves_each_completion_out_of_its_own_baseline():
    from rlhub.trainers.rloo import RLOO

    adv = RLOO(AlgorithmSection(group_size=4)).advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0]))
    assert adv.tolist() == pytest.approx([1 - 1 / 3, -2 / 3, -2 / 3, 1 - 1 / 3, 0.0, 0.0, 0.0, 0.0])


def test_reinforce_pp_normalizes_over_the_batch_not_the_group():
    from rlhub.trainers.reinforce_pp import ReinforcePlusPlus

    rewards = torch.tensor([0.0, 1.0, 10.0, 11.0])
    adv = ReinforcePlusPlus(AlgorithmSection(group_size=2)).advantages(rewards)
    expected = (rewards - rewards.mean()) / (rewards.std() + 1e-4)
    assert adv.tolist() == pytest.approx(expected.tolist())
    assert adv[0] < 0 < adv[2]  # the group-level view (GRPO) would give both groups +-0.707
