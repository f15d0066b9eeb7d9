"""Per-turn credit in training (``algorithm.credit: turn``): rollout's turn records, the per-token advantages,
the recipe option, a real GRPO step on a tool env, and ``credit: episode`` leaving training as it was."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import rlhub
from rlhub.envs.calculator import CalculatorEnv
from rlhub.errors import ConfigError
from rlhub.generation.rollout import Completion, HFRolloutEngine
from rlhub.trainers import loop
from rlhub.trainers.forward import make_batch
from rlhub.trainers.turn_credit import assign_turn_advantages, token_advantages, turn_advantages

CALL = '<tool_call>{"name": "calculate", "arguments": {"expression": "3 + 4"}}</tool_call>'
MALFORMED = '<tool_call>{"name": "calculate", "arguments": 5}</tool_call>'
GOOD = "<think>sum</think>\n<answer>7</answer>"
BAD = "<answer>8</answer>"
# Each completion the engine samples takes the next entry: episodes call the tool 0-2 times (well or not),
# then answer right or wrong, so a group's episodes differ in length and in their turns' rewards.
SCRIPT = [CALL, GOOD, MALFORMED, CALL, BAD, GOOD, CALL, MALFORMED, GOOD, BAD, CALL, BAD]


def shaped_turn_reward(self, messages, replies, state):
    """+0.25 for a turn whose tool calls all worked, -0.5 for one with an error."""
    return -0.5 if any(r["content"].startswith("error") for r in replies) else 0.25


class ScriptedEngine(HFRolloutEngine):
    """Samples the scripted replies in turn, whatever the context (the trainer's policy is not asked)."""

    def generate(self, prompt_ids, n, sampling):
        eos = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        outs = []
        for i, _ in enumerate(prompt_ids):
            for _ in range(n):
                reply = SCRIPT[ScriptedEngine.sampled % len(SCRIPT)]
                ScriptedEngine.sampled += 1
                tokens = [*self.tokenizer.encode(reply, add_special_tokens=False)[: sampling.max_new_tokens - 1], eos]
                outs.append(Completion(i, tokens, [-0.5] * len(tokens), reply, True))
        return outs


ScriptedEngine.sampled = 0


# --- the estimator on a constructed step -----------------------------------------------------------
def test_every_token_of_a_turn_gets_that_turns_advantage_on_a_constructed_step():
    ep = SimpleNamespace
    # Group 1: A calls a tool (+0.5) then answers (1.0); B answers at once (0.0).
    # Group 2: C's call errs (-1.0) then it answers (1.0); D's call works (0.0) then it answers (1.0).
    episodes = [
        ep(token_ids=[11, 12, 90, 91, 13], turn_spans=[(0, 2), (4, 5)], turn_rewards=[0.5]),
        ep(token_ids=[21, 22, 23], turn_spans=[(0, 3)], turn_rewards=[]),
        ep(token_ids=[31, 90, 91, 32], turn_spans=[(0, 1), (3, 4)], turn_rewards=[-1.0]),
        ep(token_ids=[41, 90, 91, 42], turn_spans=[(0, 1), (3, 4)], turn_rewards=[0.0]),
    ]
    finals = torch.tensor([1.0, 0.0, 1.0, 1.0])
    # A: returns [1.5, 1.0]; baselines [B's 0.0, none reached turn 1 -> 0]. B: 0.0 - A's 1.5.
    # C: returns [0, 1] against D's [1, 1]; D against C's.
    expected = [[1.5, 1.5, 0, 0, 1.0], [-1.5, -1.5, -1.5], [-1.0, 0, 0, 0.0], [1.0, 0, 0, 0.0]]
    assert [a.tolist() for a in token_advantages(episodes, finals.tolist(), group_size=2)] == expected

    loss_masks = [[1, 1, 0, 0, 1], [1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 1]]
    batches = []
    for idx in ([0, 1], [2, 3]):
        batch = make_batch(
            [[1, 2], [3, 4]],
            [i // 2 for i in idx],
            [episodes[i].token_ids for i in idx],
            [[-0.5] * len(episodes[i].token_ids) for i in idx],
            pad_id=0,
            device="cpu",
            loss_masks=[loss_masks[i] for i in idx],
        )
        batches.append((idx, batch))
    first, metrics = assign_turn_advantages(episodes, finals, 2, batches)
    assert batches[0][1].advantages.tolist() == [[1.5, 1.5, 0, 0, 1.0], [-1.5, -1.5, -1.5, 0, 0]]
    assert batches[1][1].advantages.tolist() == [[-1.0, 0, 0, 0], [1.0, 0, 0, 0]]
    assert first.tolist() == [1.5, -1.5, -1.0, 1.0]  # the first turn's: each episode's total against the others'
    assert metrics["rewards/turn_reward/mean"] == pytest.approx((0.5 - 1.0 + 0.0) / 3)


def test_an_episode_cut_after_a_reply_gets_its_final_reward_on_that_turn():
    from rlhub.trainers.turn_credit import episode_turn_rewards

    assert episode_turn_rewards([0.25], 2, 1.0) == [0.25, 1.0]  # answered: the score is the answer's reward
    assert episode_turn_rewards([0.25, -0.5], 2, 1.0) == [0.25, 0.5]  # budget spent after the second reply
    assert episode_turn_rewards([], 1, 0.5) == [0.5]


def test_grpo_loss_with_constant_per_token_advantages_equals_the_per_sequence_loss():
    from rlhub.trainers.grpo import GRPO
    from rlhub.trainers.losses import BatchTotals
    from rlhub.trainers.recipe import AlgorithmSection

    gen = torch.Generator().manual_seed(0)
    logp, old = -torch.rand(3, 5, generator=gen), -torch.rand(3, 5, generator=gen)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 1, 1, 0]], dtype=torch.float32)
    per_sequence = torch.tensor([0.7, -1.2, 0.0])
    totals = BatchTotals(sequences=3, tokens=int(mask.sum()), max_new_tokens=5)
    algo = GRPO(AlgorithmSection(group_size=3))
    loss_1d, _ = algo.loss(logp, old, None, per_sequence, mask, totals)
    loss_2d, _ = algo.loss(logp, old, None, per_sequence[:, None].expand(3, 5).clone(), mask, totals)
    assert torch.equal(loss_1d, loss_2d)


# --- the recipe option -----------------------------------------------------------------------------
def test_credit_defaults_to_episode_and_refuses_what_it_cannot_do_in_one_line():
    from rlhub.trainers.recipe import load_recipe

    assert load_recipe(None).algorithm.credit == "episode"
    assert load_recipe(None, ["algorithm.credit=turn"]).algorithm.credit == "turn"
    cases = {
        "algorithm.credit=step": "algorithm.credit",
        "algorithm.credit=turn algorithm.name=ppo algorithm.group_size=1": "does not apply to ppo",
        "algorithm.credit=turn algorithm.scale_rewards=group": "remove algorithm.scale_rewards",
        "algorithm.credit=turn algorithm.loss_type=grpo": "set algorithm.loss_type to dr_grpo or dapo",
    }
    for overrides, message in cases.items():
        with pytest.raises(ConfigError, match=message) as caught:
            load_recipe(None, overrides.split())
        assert "\n" not in str(caught.value)


def test_credit_turn_on_a_single_turn_env_fails_before_loading_the_model(tmp_path):
    from rlhub.trainers.recipe import load_recipe

    overrides = ["algorithm.credit=turn", "env.id=arithmetic-v1", "model.name=no-such-model", "model.dtype=float32"]
    overrides += [f"training.output_dir={tmp_path / 'run'}", "logging.wandb=false"]
    with pytest.raises(ConfigError, match=r"credit=turn needs a multi-turn env.*set algorithm\.credit=episode"):
        loop.train(load_recipe(None, overrides), progress=False)


# --- training, end to end --------------------------------------------------------------------------
REAL_MAKE_BATCH, REAL_DRAW = loop.make_batch, loop.draw


def train_calculator(model_dir: str, tmp_path, monkeypatch, name: str, steps: int = 1, **extra):
    """Train the tiny model on calculator-v1 with scripted episodes; returns (metrics rows, batches, groups, run)."""
    from rlhub.trainers.recipe import load_recipe

    ScriptedEngine.sampled = 0
    monkeypatch.setattr(rlhub.generation.rollout, "HFRolloutEngine", ScriptedEngine)  # what make_engine builds
    monkeypatch.setattr(CalculatorEnv, "turn_reward", shaped_turn_reward)
    batches, groups = [], []
    monkeypatch.setattr(loop, "make_batch", lambda *a, **k: batches.append(REAL_MAKE_BATCH(*a, **k)) or batches[-1])
    monkeypatch.setattr(loop, "draw", lambda *a, **k: groups.append(REAL_DRAW(*a, **k)) or groups[-1])
    out = tmp_path / name
    values = {
        "model.name": model_dir,
        "model.dtype": "float32",
        "env.id": "calculator-v1",
        "env.config": {"max_turns": 3},
        "algorithm.group_size": 4,
        "training.max_steps": steps,
        "training.prompts_per_step": 2,
        "training.micro_batch_size": 4,
        "training.max_new_tokens": 96,
        "training.output_dir": str(out),
        "logging.wandb": False,
        **extra,
    }
    loop.train(load_recipe(None, values), progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return rows, batches, groups, out


def test_a_grpo_step_with_turn_credit_trains_each_turn_on_its_own_advantage(tiny_model_dir, tmp_path, monkeypatch):
    from rlhub.trainers.grpo import GRPO

    used = []
    real_loss = GRPO.loss
    monkeypatch.setattr(GRPO, "loss", lambda self, *a, **k: used.append(a[3]) or real_loss(self, *a, **k))
    rows, batches, groups, _ = train_calculator(
        tiny_model_dir, tmp_path, monkeypatch, "turn", **{"algorithm.credit": "turn"}
    )

    (step,) = groups
    episodes, finals = step.completions, step.rewards.tolist()
    # Rollout recorded each replied-to turn's shaped reward, and each turn's tokens.
    for ep in episodes:
        replied = [m for m in ep.messages if m["role"] == "tool"]
        assert ep.turn_rewards == [-0.5 if r["content"].startswith("error") else 0.25 for r in replied]
        assert len(ep.turn_spans) == ep.state.turns == len(replied) + 1
        model_positions = [i for begin, end in ep.turn_spans for i in range(begin, end)]
        assert model_positions == [i for i, m in enumerate(ep.loss_mask) if m]
    assert len({len(ep.turn_spans) for ep in episodes}) > 1  # the episodes' lengths differ

    # Each micro-batch's advantages: the estimator's A_t on turn t's tokens, 0 on the env's tokens.
    G, seen_turn_advantages = 4, set()
    expected = {}
    for start in range(0, len(episodes), G):
        group = episodes[start : start + G]
        per_turn = [[*ep.turn_rewards, finals[start + j]] for j, ep in enumerate(group)]
        for j, advantages in enumerate(turn_advantages(per_turn)):
            expected[start + j] = advantages
    for k, batch in enumerate(batches):
        for row in range(batch.advantages.shape[0]):
            i, ep = 4 * k + row, episodes[4 * k + row]
            got = batch.advantages[row]
            for t, (begin, end) in enumerate(ep.turn_spans):
                assert got[begin:end].tolist() == [pytest.approx(expected[i][t], abs=1e-6)] * (end - begin)
                seen_turn_advantages.add(round(float(expected[i][t]), 6))
            assert (got[torch.tensor(ep.loss_mask + [0] * (len(got) - len(ep.loss_mask))) == 0] == 0).all()
    assert len(seen_turn_advantages) > 2  # distinct per-turn values, not one per episode
    assert [tuple(a.shape) for a in used] == [tuple(b.advantages.shape) for b in batches]
    assert all(torch.equal(a, b.advantages) for a, b in zip(used, batches))  # the loss took them
    turn_rewards = [r for ep in episodes for r in ep.turn_rewards]
    assert rows[0]["rewards/turn_reward/mean"] == pytest.approx(np.mean(turn_rewards))


def test_credit_episode_trains_exactly_as_with_the_option_absent(tiny_model_dir, tmp_path, monkeypatch):
    calls = []
    rows_absent, batches_absent, _, out_absent = train_calculator(
        tiny_model_dir, tmp_path, monkeypatch, "absent", steps=2
    )
    rows_episode, batches_episode, groups, out_episode = train_calculator(
        tiny_model_dir, tmp_path, monkeypatch, "episode", steps=2, **{"algorithm.credit": "episode"}
    )
    monkeypatch.setattr(CalculatorEnv, "turn_reward", lambda *a: calls.append(a) or 0.0)
    assert not calls and all(not ep.turn_rewards for g in groups for ep in g.completions)  # never asked
    for absent, episode in zip(rows_absent, rows_episode, strict=True):
        keys = [k for k in absent if k.startswith(("losses/", "rewards", "reward", "advantages"))]
        assert keys and {k: absent[k] for k in keys} == {k: episode[k] for k in keys}
    for a, b in zip(batches_absent, batches_episode, strict=True):
        assert a.advantages.dim() == 1 and torch.equal(a.advantages, b.advantages)
    digest = "final-params-rank0.sha256"
    assert (out_absent / digest).read_text() == (out_episode / digest).read_text()


# --- the served protocol ---------------------------------------------------------------------------
def test_served_steps_return_every_turn_reward_so_far_and_old_clients_see_what_they_saw(monkeypatch):
    from rlhub.serve.client import EnvClient
    from rlhub.serve.protocol import example_to_json
    from rlhub.serve.server import BackgroundServer, create_app

    class Shaped(CalculatorEnv):
        turn_reward = shaped_turn_reward

    local = Shaped(max_turns=4)
    ex = local.examples("test", limit=1)[0]
    actions = [CALL, MALFORMED, f"<think>done</think>\n<answer>{ex.answer}</answer>"]
    with BackgroundServer(create_app(lambda: Shaped(max_turns=4), "calculator-v1")) as server:
        remote = rlhub.make(f"{server.url}/calculator-v1")
        local.reset(options={"example": ex})
        remote.reset(options={"example": ex})
        lists = []
        for action in actions:
            assert remote.step(action) == local.step(action)  # the 5-tuple as before, info included
            lists.append(list(remote.turn_rewards))
        final = 1.0 + local.config.format_weight
        assert lists == [[0.25], [0.25, -0.5], [0.25, -0.5, pytest.approx(final)]]
        remote.reset(options={"example": ex})
        assert remote.turn_rewards == []

        # On the wire: the step's old fields as before, and the new one beside them.
        session = remote._client.call("POST", "sessions", {"example": example_to_json(ex)}, idempotent=False)
        answer = remote._client.call("POST", f"sessions/{session['session_id']}/step", {"action": CALL})
        assert set(answer) == {"observation", "reward", "terminated", "truncated", "info", "turn_rewards"}
        assert answer["turn_rewards"] == [answer["reward"]] == [0.25]

        # A server that predates the field: the client builds the same list from each step's reward.
        real_call = EnvClient.call

        def old_server(self, method, route, body=None, **kwargs):
            answer = real_call(self, method, route, body, **kwargs)
            return {k: v for k, v in answer.items() if k != "turn_rewards"}

        monkeypatch.setattr(EnvClient, "call", old_server)
        remote.reset(options={"example": ex})
        for action in actions:
            remote.step(action)
        assert remote.turn_rewards == [0.25, -0.5, pytest.approx(final)]
        remote.close()
