"""PPO's math on hand-computed cases, and its critic through the training forward."""

from __future__ import annotations

import pytest
import torch

from rlhub.trainers.losses import BatchTotals
from rlhub.trainers.ppo import PPO, gae, token_rewards, value_loss, whiten
from rlhub.trainers.recipe import AlgorithmSection, CriticSection, load_recipe


def test_the_score_lands_on_the_last_model_token_and_kl_on_every_one():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 1]])
    kl = torch.tensor([[0.1, 0.2, 0.3, 9.0], [0.5, 0.0, 9.0, 0.0]])
    out = token_rewards(torch.tensor([1.0, -1.0]), mask, kl, beta=0.5)
    expected = torch.tensor([[-0.05, -0.1, 1 - 0.15, 0.0], [-0.25, 0.0, 0.0, -1.0]])
    assert torch.allclose(out, expected)


def test_gae_matches_a_hand_computation():
    # gamma 0.9, lambda 0.5; deltas 0.16, 0.14, 0.4 -> A2 = 0.4, A1 = 0.14 + 0.45 * 0.4, A0 = 0.16 + 0.45 * A1.
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.2, 0.4, 0.6]])
    adv, ret = gae(rewards, values, torch.ones(1, 3), gamma=0.9, lam=0.5)
    assert adv[0].tolist() == pytest.approx([0.304, 0.32, 0.4])
    assert ret[0].tolist() == pytest.approx([0.504, 0.72, 1.0])


def test_gae_with_lambda_one_and_gamma_one_is_the_return_minus_the_value():
    rewards = torch.tensor([[0.0, 0.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 1.0, 1.5, 0.0]])
    adv, ret = gae(rewards, values, torch.ones(1, 4), gamma=1.0, lam=1.0)
    assert adv[0].tolist() == pytest.approx([1.5, 1.0, 0.5, 2.0])
    assert ret[0].tolist() == pytest.approx([2.0] * 4)


def test_gae_steps_over_environment_tokens():
    # Token 1 is a tool result (mask 0): token 0's next state is token 2, and token 1 gets no advantage.
    mask = torch.tensor([[1, 0, 1]])
    adv, ret = gae(torch.tensor([[0.0, 5.0, 1.0]]), torch.tensor([[0.2, 9.9, 0.6]]), mask, 0.9, 0.5)
    assert adv[0].tolist() == pytest.approx([0.34 + 0.45 * 0.4, 0.0, 0.4])
    assert ret[0, 1] == 0


def test_whitening_spans_all_micro_batches_and_ignores_masked_tokens():
    a = [torch.tensor([[1.0, 2.0, 100.0]]), torch.tensor([[3.0, 4.0]])]
    masks = [torch.tensor([[1, 1, 0]]), torch.ones(1, 2)]
    out = whiten(a, masks)
    flat = torch.cat([out[0][0, :2], out[1][0]])
    assert float(flat.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(flat.std()) == pytest.approx(1.0, abs=1e-4)
    assert out[0][0, 2] == 0


def test_value_loss_clipping_is_pessimistic():
    # Moving 1.0 -> 0.5 towards a return of 0 is beyond the 0.2 clip: the clipped, larger error counts.
    loss, clipped = value_loss(torch.tensor([0.5]), torch.tensor([1.0]), torch.tensor([0.0]), clip=0.2)
    assert loss.item() == pytest.approx(0.5 * 0.8**2) and clipped.item()
    # Moving away from the return: the unclipped error is already the larger one.
    loss, clipped = value_loss(torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([0.0]), clip=0.2)
    assert loss.item() == pytest.approx(0.5) and not clipped.item()
    loss, _ = value_loss(torch.tensor([0.5]), torch.tensor([1.0]), torch.tensor([0.0]), clip=None)
    assert loss.item() == pytest.approx(0.125)


def _loss_inputs():
    logp = torch.tensor([[-1.0, -2.0], [-1.5, -0.5]], requires_grad=True)
    values = torch.tensor([[0.1, 0.2], [0.3, 0.4]], requires_grad=True)
    return {
        "logp": logp,
        "old_logp": logp.detach().clone(),
        "ref_logp": None,
        "advantages": torch.tensor([[1.0, 1.0], [-1.0, -1.0]]),
        "mask": torch.ones(2, 2),
        "totals": BatchTotals(sequences=2, tokens=4, max_new_tokens=2),
        "values": values,
        "old_values": values.detach().clone(),
        "returns": torch.tensor([[1.0, 1.0], [0.0, 0.0]]),
    }


def test_ppo_loss_pushes_good_tokens_up_and_values_towards_returns():
    ppo = PPO(AlgorithmSection(name="ppo"), CriticSection(value_coef=0.5, value_clip=None))
    x = _loss_inputs()
    loss, stats = ppo.loss(**x)
    loss.backward()
    assert (x["logp"].grad[0] < 0).all() and (x["logp"].grad[1] > 0).all()  # descent raises row 0, lowers row 1
    # d/dv of value_coef 0.5 x 0.5 (v - R)^2 / 4 tokens = 0.5 (v - R) / 4.
    expected = 0.5 * (x["values"].detach() - x["returns"]) / 4
    assert torch.allclose(x["values"].grad, expected)
    assert stats["value_loss"].item() == pytest.approx(float(0.5 * ((x["values"].detach() - x["returns"]) ** 2).mean()))


def test_value_warm_up_leaves_the_policy_gradient_at_zero():
    ppo = PPO(AlgorithmSection(name="ppo"))
    x = _loss_inputs()
    loss, _ = ppo.loss(**x, policy_weight=0.0)
    loss.backward()
    assert (x["logp"].grad == 0).all() and (x["values"].grad != 0).any()


def test_ppo_token_advantages_apply_the_kl_penalty():
    ppo = PPO(AlgorithmSection(name="ppo", beta=1.0, gamma=1.0, lam=1.0))
    mask = torch.ones(1, 2)
    old, ref = torch.tensor([[-1.0, -1.0]]), torch.tensor([[-1.5, -1.0]])
    _, ret = ppo.token_advantages(torch.tensor([1.0]), mask, torch.zeros(1, 2), old, ref)
    assert ret[0].tolist() == pytest.approx([0.5, 1.0])  # token 0 pays 1.0 * (log pi - log ref) = 0.5


def test_shared_and_separate_forwards_give_the_values_of_each_prefix():
    from tiny_models import tiny_model

    from rlhub.trainers.critic import ValueHead
    from rlhub.trainers.forward import CompletionLogits, make_batch

    model, _ = tiny_model(seed=2)
    head = ValueHead(model.config.hidden_size)
    torch.nn.init.normal_(head.linear.weight)
    prompts, completions = [[5, 6, 7], [8, 9]], [[20, 21, 22], [23], [24, 25]]
    batch = make_batch(prompts, [0, 0, 1], completions, [[0.0] * len(c) for c in completions], 0, "cpu")
    shared = CompletionLogits(model, share_prefix=True, value_head=head)(batch, mode="values")
    separate = CompletionLogits(model, share_prefix=False, value_head=head)(batch, mode="values")
    mask = batch.completion_mask
    assert torch.allclose(shared * mask, separate * mask, atol=1e-5)
    # The value before completion token t is the head on the last hidden state of prompt + completion[:t].
    prompt, comp = prompts[0], completions[0]
    for t in range(len(comp)):
        ids = torch.tensor([prompt + comp[:t]])
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0, -1]
        assert float(head(hidden).detach()) == pytest.approx(float(shared[0, t]), abs=1e-5)
    logits, values = CompletionLogits(model, value_head=head)(batch, mode="both")
    assert torch.allclose(values, shared) and logits.shape[:2] == values.shape


@pytest.mark.parametrize(
    "override, message",
    [
        ("critic.warmup_steps=2", r"critic\.warmup_steps applies only to algorithm\.name=ppo"),
        ("algorithm.lam=0.9", r"algorithm\.lam applies only to algorithm\.name=ppo"),
        ("algorithm.group_size=1", r"group_size must be >= 2 for grpo"),
    ],
)
def test_ppo_settings_on_other_algorithms_are_refused(override, message):
    from rlhub.errors import ConfigError

    common = ["training.micro_batch_size=4"]
    with pytest.raises(ConfigError, match=message):
        load_recipe(None, [*common, override])
    load_recipe(None, [*common, "algorithm.name=ppo", override])  # fine for ppo


def test_ppo_under_deepspeed_is_refused_in_one_line(tiny_model_dir, tmp_path, monkeypatch):
    """accelerate's DeepSpeed integration takes one optimizer; PPO's critic has its own: refuse, name the fix."""
    import accelerate
    from accelerate.utils import DistributedType

    from rlhub.errors import ConfigError
    from rlhub.trainers.loop import train

    class DeepSpeedAccelerator(accelerate.Accelerator):  # what `accelerate launch` with a DeepSpeed config gives
        @property
        def distributed_type(self):
            return DistributedType.DEEPSPEED

    monkeypatch.setattr(accelerate, "Accelerator", DeepSpeedAccelerator)
    values = {"model.name": tiny_model_dir, "algorithm.name": "ppo"}
    values |= {"training.output_dir": str(tmp_path / "run"), "logging.wandb": False}
    recipe = load_recipe(None, values)
    with pytest.raises(ConfigError) as refused:
        train(recipe, progress=False)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("ppo's critic has an optimizer of its own")
    assert message.endswith("launch with recipes/accelerate/ddp.yaml or fsdp.yaml")
