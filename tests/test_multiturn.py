"""Multi-turn tool use: the toolbox, the calculator env, episodes, and the loss mask in training."""

from __future__ import annotations

import json
import re

import pytest

import rlhub
from rlhub.env.tools import ToolBox, ToolStats
from rlhub.envs.calculator import calculate
from rlhub.generation import Sampling
from rlhub.generation.rollout import Completion, HFRolloutEngine, run_episodes

CALL = '<tool_call>{"name": "calculate", "arguments": {"expression": "3 + 4"}}</tool_call>'


def test_toolbox_turns_every_failure_into_a_message():
    def boom(x: int) -> int:
        """Fails.

        Args:
            x: Anything.
        """
        raise RuntimeError("kaput")

    box, stats = ToolBox([calculate, boom]), ToolStats()
    assert box.call("calculate", {"expression": "2 ** 10"}, stats).content == "1024"
    assert box.call("nope", {}, stats).content.startswith("error: unknown tool 'nope'")
    assert "bad arguments" in box.call("calculate", {"expr": "1"}, stats).content
    assert "RuntimeError: kaput" in box.call("boom", {"x": 1}, stats).content
    assert (stats.calls, stats.errors, stats.per_tool["calculate"]) == (4, 3, 2)
    assert box.schemas[0]["function"]["parameters"]["required"] == ["expression"]


@pytest.mark.parametrize("expression", ["__import__('os')", "2 ** 999", "x + 1", "9" * 300])
def test_calculator_rejects_anything_but_arithmetic(expression):
    with pytest.raises((ValueError, SyntaxError)):
        calculate(expression)


def test_calculator_episode_through_gymnasium_api():
    env = rlhub.make("calculator-v1", max_turns=3)
    ex = env.examples("test", limit=1)[0]
    env.reset(options={"example": ex})
    obs, reward, terminated, truncated, info = env.step(CALL)
    assert obs == "7" and not terminated and info["tool_calls"] == 1
    obs, reward, terminated, truncated, info = env.step('<tool_call>{"name": "calculate", "arguments": 5}</tool_call>')
    assert "malformed" in obs and info["tool_errors"] == 1 and not terminated
    _, reward, terminated, truncated, info = env.step(f"<think>done</think>\n<answer>{ex.answer}</answer>")
    assert terminated and not truncated and reward == pytest.approx(1.0 + env.config.format_weight)
    assert info["rewards"]["correct"] == 1.0 and info["rewards"]["used_calculator"] == 1.0


@pytest.mark.parametrize("env_id", ["calculator-v1", "retrieval-v0"])
def test_few_shot_on_a_tool_env_shows_the_demo_episode_as_turns(env_id):
    """A multi-turn env's gold completion is a transcript: its demo is those turns (tool calls and the tools'
    replies), each with text content, never a message list stuffed into one assistant message."""
    env = rlhub.make(env_id, few_shot=1)
    prompt = env.examples("test", 1)[0].prompt
    assert all(isinstance(m["content"], str) for m in prompt)
    roles = [m["role"] for m in prompt]
    assert roles[0] == "system" and roles[1] == "user" and roles[-1] == "user"
    demo = prompt[2:-1]
    assert demo == env.gold_completion(env.demo_examples(1)[0])
    assert "tool" in roles and any("<tool_call>" in m["content"] for m in demo if m["role"] == "assistant")


def test_turn_limit_truncates():
    env = rlhub.make("calculator-v1", max_turns=1)
    env.reset(options={"example": env.examples("test", limit=1)[0]})
    _, reward, terminated, truncated, _ = env.step(CALL)
    assert truncated and not terminated and reward == 0.0


def test_turn_reward_is_the_reward_of_each_intermediate_step():
    from rlhub.envs.calculator import CalculatorEnv

    class Shaped(CalculatorEnv):
        """Pays for successful calls and charges for errors, turn by turn."""

        def turn_reward(self, messages, replies, state):
            assert messages[-len(replies) :] == replies  # the transcript so far ends with the env's replies
            seen.append((messages[-len(replies) - 1]["content"], [r["content"] for r in replies]))
            return state.tools.calls - state.tools.errors - 10.0 * state.format_errors

    seen = []
    plain, shaped = rlhub.make("calculator-v1", max_turns=4), Shaped(max_turns=4)
    ex = plain.examples("test", limit=1)[0]
    malformed = '<tool_call>{"name": "calculate", "arguments": 5}</tool_call>'
    answer = f"<think>done</think>\n<answer>{ex.answer}</answer>"
    for env in (plain, shaped):
        env.reset(options={"example": ex})
    assert [plain.step(action)[1] for action in (CALL, malformed)] == [0.0, 0.0]  # the default: no shaping
    # A good call: 1 call, 0 errors; then a malformed one: 1 call, 1 error, 1 format error.
    assert [shaped.step(action)[1] for action in (CALL, malformed)] == [1.0, -10.0]
    assert seen[0] == (CALL, ["7"]) and seen[1][0] == malformed and "malformed" in seen[1][1][0]
    _, reward, terminated, _, _ = shaped.step(answer)
    # The last turn's reward is the rubric's score of the episode, not a turn reward.
    assert terminated and len(seen) == 2 and reward == pytest.approx(1.0 + shaped.config.format_weight)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_calculator_generated_levels_are_reproducible_and_need_the_answer_as_a_number(difficulty):
    env = rlhub.make("calculator-v1", difficulty=difficulty, few_shot=1)
    first, again = env.examples("test", 4), env.examples("test", 4)
    assert first == again and len({ex.answer for ex in first}) == 4
    assert env.examples("test", 2, seed=1) != first[:2]
    other = rlhub.make("calculator-v1", difficulty=1 + difficulty % 3).examples("test", 1)[0]
    assert other.info["expression"] != first[0].info["expression"]  # each level is a stream of its own
    ex = first[0]
    assert (
        ex.answer == calculate(ex.info["expression"])
        and f"What is {ex.info['expression']}?" in ex.prompt[-1]["content"]
    )
    assert env.score(env.gold_transcript(ex), ex).rewards["correct"] == 1.0
    # Copying the question's expression as the answer earns nothing (only a plain number counts).
    (probe,) = env.probes(ex)
    echoes = [env.score([{"role": "assistant", "content": c}], ex).rewards["correct"] for c in probe.completions]
    assert echoes == [0.0] * len(probe.completions)
    # The demo is a solved generated question, never a test example.
    demo = env.demo_examples(1)[0]
    assert demo.info["expression"] not in {e.info["expression"] for e in first}


def test_calculator_default_is_gsm8k_with_no_turn_rewards():
    env = rlhub.make("calculator-v1")
    ex = env.examples("test", 1)[0]
    assert "reasoning" in ex.info and env.probes(ex) == [] and env.config.difficulty == 0
    env.reset(options={"example": ex})
    assert env.step('<tool_call>{"name": "calculate", "arguments": 5}</tool_call>')[1] == 0.0
    with pytest.raises(rlhub.ConfigError, match=r"difficulty must be in 0\.\.3"):
        rlhub.make("calculator-v1", difficulty=4)


def test_calculator_turn_rewards_charge_errors_and_pay_a_right_result_once():
    env = rlhub.make("calculator-v1", difficulty=1, max_turns=6, tool_error_reward=-0.2, result_reward=0.5)
    ex = env.examples("test", 1)[0]
    right = json.dumps({"name": "calculate", "arguments": {"expression": ex.info["expression"]}})
    wrong = json.dumps({"name": "calculate", "arguments": {"expression": "2 + 2"}})
    refused = json.dumps({"name": "calculate", "arguments": {"expression": "__import__('os')"}})
    env.reset(options={"example": ex})
    rewards = [
        env.step(f"<tool_call>{call}</tool_call>")[1] for call in (wrong, refused, '{"name": "calculate"', right, right)
    ]
    # 2 + 2: nothing; a refused expression and an unparsable call: charged; the answer: paid, the first time only.
    assert rewards[0] == 0.0 and rewards[1] == rewards[2] == pytest.approx(-0.2) and rewards[3:] == [0.5, 0.0]
    env.reset(options={"example": ex})
    both = f"<tool_call>{right}</tool_call><tool_call>{refused}</tool_call>"
    assert env.step(both)[1] == pytest.approx(0.3)  # one turn: an error and the right result
    # On GSM8K, a reference intermediate result is paid too (the solution's <<expression=result>> annotations).
    gsm = rlhub.make("calculator-v1", result_reward=1.0)
    ex = next(e for e in gsm.examples("test", 20) if "<<" in e.info["reasoning"])
    expression, result = re.findall(r"<<([^=<>]+)=([^<>]+)>>", ex.info["reasoning"])[0]
    gsm.reset(options={"example": ex})
    call = json.dumps({"name": "calculate", "arguments": {"expression": expression}})
    assert gsm.toolbox.call("calculate", {"expression": expression}).content == result.strip()
    assert gsm.step(f"<tool_call>{call}</tool_call>")[1] == 1.0
    # GSM8K's values are often small: parallel guesses that include one earn nothing, nor does a later call.
    guesses = "".join(
        f"<tool_call>{json.dumps({'name': 'calculate', 'arguments': {'expression': str(k)}})}</tool_call>"
        for k in [*range(1, 21), result.strip()]
    )
    gsm.reset(options={"example": ex})
    assert gsm.step(guesses)[1] == 0.0 and gsm.step(f"<tool_call>{call}</tool_call>")[1] == 0.0


def calculator_prompts(n: int):
    """The embedded tokenizer, calculator-v1, its first ``n`` test examples and their prompts' token ids."""
    from rlhub.models import load_embedded_tokenizer

    tokenizer = load_embedded_tokenizer()
    env = rlhub.make("calculator-v1")
    examples = env.examples("test", limit=n)
    prompt_ids = [
        tokenizer.apply_chat_template(ex.prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
        for ex in examples
    ]
    return tokenizer, env, examples, prompt_ids


class ScriptedEngine(HFRolloutEngine):
    """Calls a tool on the first turn, then answers (well-formatted on even samples only)."""

    call = CALL

    def generate(self, prompt_ids, n, sampling):
        eos = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        outs = []
        for i, ids in enumerate(prompt_ids):
            seen_tool = "<|im_start|>tool" in self.tokenizer.decode(ids)
            for g in range(n):
                final = "<think>sum</think>\n<answer>7</answer>" if (i + g) % 2 == 0 else "<answer>7</answer>"
                reply = self.call if not seen_tool else final
                tokens = [*self.tokenizer.encode(reply, add_special_tokens=False)[: sampling.max_new_tokens - 1], eos]
                outs.append(Completion(i, tokens, [-0.5] * len(tokens), reply, True))
        return outs


def test_first_turn_prefills_each_prompt_once_and_later_turns_continue_each_episode():
    class Recording(ScriptedEngine):
        def generate(self, prompt_ids, n, sampling):
            calls.append((len(prompt_ids), n, prompt_ids))
            return super().generate(prompt_ids, n, sampling)

    calls = []
    tokenizer, env, examples, prompt_ids = calculator_prompts(3)
    engine = Recording(model=None, tokenizer=tokenizer, stop_ids=[tokenizer.eos_token_id])
    episodes = run_episodes(engine, env, examples, prompt_ids, 4, Sampling(max_new_tokens=200))
    assert [(count, n) for count, n, _ in calls] == [(3, 4), (12, 1)]
    assert calls[0][2] == prompt_ids  # the prompts themselves, once each
    # The second turn continues each of the 12 episodes from its own context: prompt, call, the tool's reply.
    for episode, context in zip(episodes, calls[1][2]):
        prompt = prompt_ids[episode.prompt_index]
        assert context[: len(prompt)] == prompt
        assert context[len(prompt) :] == episode.token_ids[: len(context) - len(prompt)]
    assert [ep.prompt_index for ep in episodes] == [0] * 4 + [1] * 4 + [2] * 4


def test_an_engine_that_ignores_n_is_refused_in_one_line():
    from rlhub.errors import RLHubError

    class OnePerPrompt(ScriptedEngine):
        def generate(self, prompt_ids, n, sampling):
            return super().generate(prompt_ids, 1, sampling)

    tokenizer, env, examples, prompt_ids = calculator_prompts(2)
    engine = OnePerPrompt(model=None, tokenizer=tokenizer, stop_ids=[tokenizer.eos_token_id])
    with pytest.raises(RLHubError, match="returned 2 completions where 8 were asked for"):
        run_episodes(engine, env, examples, prompt_ids, 4, Sampling(max_new_tokens=200))


def test_episode_tokens_mask_out_what_the_environment_wrote():
    tokenizer, env, examples, prompt_ids = calculator_prompts(2)
    engine = ScriptedEngine(model=None, tokenizer=tokenizer, stop_ids=[tokenizer.eos_token_id])
    episodes = run_episodes(engine, env, examples, prompt_ids, 2, Sampling(max_new_tokens=200))
    assert len(episodes) == 4
    for ep in episodes:
        model_text = tokenizer.decode([t for t, m in zip(ep.token_ids, ep.loss_mask) if m])
        env_text = tokenizer.decode([t for t, m in zip(ep.token_ids, ep.loss_mask) if not m])
        assert CALL in model_text and "<answer>" in model_text
        assert env_text.startswith("\n<|im_start|>tool\n7<|im_end|>") and "<tool_call>" not in env_text
        assert [m["role"] for m in ep.messages] == ["assistant", "tool", "assistant"]
        assert ep.state.turns == 2 and ep.state.tools.calls == 1
        assert len(ep.token_ids) == len(ep.logprobs) == len(ep.loss_mask)
        assert all(lp == 0.0 for lp, m in zip(ep.logprobs, ep.loss_mask) if not m)


SEARCH = '<tool_call>{"name": "search", "arguments": {"query": "capital"}}</tool_call>'


@pytest.mark.parametrize(
    "env_id, call, algorithm",
    [("calculator-v1", CALL, "grpo"), ("retrieval-v0", SEARCH, "grpo"), ("calculator-v1", CALL, "ppo")],
)
def test_two_steps_on_tool_envs_keep_tool_tokens_out_of_the_loss(
    env_id, call, algorithm, tiny_model_dir, tmp_path, monkeypatch
):
    from rlhub.trainers import loop
    from rlhub.trainers.recipe import load_recipe

    monkeypatch.setattr(ScriptedEngine, "call", call)
    monkeypatch.setattr(rlhub.generation.rollout, "HFRolloutEngine", ScriptedEngine)  # what make_engine builds for hf
    seen = []
    real_make_batch = loop.make_batch

    def spy(*args, **kwargs):
        batch = real_make_batch(*args, **kwargs)
        seen.append(batch)
        return batch

    monkeypatch.setattr(loop, "make_batch", spy)
    out = tmp_path / "run"
    values = {
        "model.name": tiny_model_dir,
        "env.id": env_id,
        "env.config": {"max_turns": 3},
        "algorithm.name": algorithm,
        "algorithm.group_size": 2,
        "training.max_steps": 2,
        "training.prompts_per_step": 2,
        "training.micro_batch_size": 4,
        "training.max_new_tokens": 64,
        "training.output_dir": str(out),
        "logging.wandb": False,
    }
    loop.train(load_recipe(None, values), progress=False)

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["tools/calls_per_episode"] == 1.0 and rows[0]["tools/turns_per_episode"] == 2.0
    assert rows[0]["tools/env_tokens"] > 0 and rows[0]["rewards/format/std"] > 0
    tool_marker = model_tokenizer_ids(tiny_model_dir, "<|im_start|>tool")
    for batch in seen:
        comp, attend, loss = batch.completion, batch.completion_mask, batch.loss_mask
        assert (loss <= attend).all() and (loss < attend).any()  # env tokens: attended, not trained on
        for row in range(comp.shape[0]):
            ids = comp[row].tolist()
            start = next(i for i in range(len(ids)) if ids[i : i + len(tool_marker)] == tool_marker)
            assert loss[row, start : start + len(tool_marker)].sum() == 0
        if algorithm == "ppo":  # GAE gives tool tokens no advantage and no return; model tokens get both
            for key in ("advantages", "returns"):
                value = getattr(batch, key)
                assert (value[loss == 0] == 0).all() and (value[loss > 0] != 0).any()


def model_tokenizer_ids(model_dir, text):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir).encode(text, add_special_tokens=False)


def test_grpo_two_steps_on_bfcl(tiny_model_dir, tmp_path):
    from rlhub.trainers import loop
    from rlhub.trainers.recipe import load_recipe

    out = tmp_path / "run"
    values = {
        "model.name": tiny_model_dir,
        "env.id": "bfcl-v0",
        "algorithm.group_size": 2,
        "training.max_steps": 2,
        "training.prompts_per_step": 2,
        "training.micro_batch_size": 4,
        "training.max_new_tokens": 8,
        "training.output_dir": str(out),
        "logging.wandb": False,
    }
    loop.train(load_recipe(None, values), progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["rewards/errors"] == 0.0
    assert rows[0]["rewards/correct/mean"] == 0.0  # a random 8-token model never calls a function right


def test_python_tool_runs_in_the_sandbox_and_cannot_read_the_host():
    env = rlhub.make("calculator-v1", python_tool=True)
    assert set(env.toolbox.tools) == {"calculate", "python"}
    stats = ToolStats()
    assert env.toolbox.call("python", {"code": "print(sum(range(10)))"}, stats).content == "45"
    leaked = env.toolbox.call("python", {"code": "print(open('/etc/shadow').read())"}, stats).content
    assert leaked.startswith("error:") and "root:" not in leaked
    loop = env.toolbox.call("python", {"code": "while True: pass"}, stats).content
    assert loop.startswith("timeout")


def test_tools_can_go_through_the_chat_template():
    from pathlib import Path

    import trl

    from rlhub.generation.rollout import encode_prompt
    from rlhub.models import load_embedded_tokenizer

    tokenizer = load_embedded_tokenizer()
    # A template that renders tools= (Qwen2.5's, shipped with TRL); SmolLM2's own ignores them.
    tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    in_system = rlhub.make("calculator-v1")
    in_template = rlhub.make("calculator-v1", tool_prompt="template")
    ex = in_template.examples("test", limit=1)[0]
    rendered = tokenizer.decode(encode_prompt(tokenizer, in_template, ex))
    assert '"name": "calculate"' in rendered and in_template.template_tools
    assert '"name": "calculate"' not in in_template.system_prompt and '"calculate"' in in_system.system_prompt
    assert in_system.template_tools is None


class ScriptBias:
    """A sequence bias on the engine's sampling (TRL's ``sequence_bias`` plays this part in its tool test).

    A forward hook adds +100 to the logit of the next token of a scripted reply: on the first turn, the
    samples of prompt p follow ``calls[p % len(calls)]`` (the engine prefills each prompt once and copies its
    cache to its samples); on a turn whose context holds a tool reply, ``answer``. The engine
    still samples every token itself (temperature 1), so episodes, stops and tool turns are its own.
    The replies have equal token lengths, so the rows move in lockstep and the step count indexes all.
    """

    def __init__(self, tokenizer, calls: list[str], answer: str):
        self.calls = [tokenizer.encode(c, add_special_tokens=False) for c in calls]
        self.answer = tokenizer.encode(answer, add_special_tokens=False)
        assert len({len(c) for c in self.calls}) == 1, "the calls must have the same token length"
        self.tool_marker = tokenizer.decode(tokenizer.encode("<|im_start|>tool", add_special_tokens=False))
        self.tokenizer = tokenizer
        self.plans: list[list[int]] = []
        self.step = 0

    def __call__(self, module, args, kwargs, output):
        ids = kwargs["input_ids"]
        if ids.shape[1] > 1:  # a prefill: one plan per row
            texts = [self.tokenizer.decode(row) for row in ids.tolist()]
            self.plans = [
                self.answer if self.tool_marker in t else self.calls[r % len(self.calls)] for r, t in enumerate(texts)
            ]
            self.step = 0
        else:
            self.step += 1
            rows = output.logits.shape[0]
            if self.step == 1 and self.plans and rows > len(self.plans):  # n samples per prefilled prompt
                n = rows // len(self.plans)
                self.plans = [self.plans[r // n] for r in range(rows)]
        for row, plan in enumerate(self.plans[: output.logits.shape[0]]):
            if self.step < len(plan):
                output.logits[row, -1, plan[self.step]] += 100.0
        return output


def test_tool_episodes_sampled_by_the_hf_engine_train_with_tool_tokens_masked(tiny_model_dir, tmp_path, monkeypatch):
    from rlhub.generation.rollout import HFRolloutEngine
    from rlhub.models import load_embedded_tokenizer
    from rlhub.trainers.loop import train
    from rlhub.trainers.recipe import load_recipe

    good = '<tool_call>{"name": "calculate", "arguments": {"expression": "6 * 7"}}</tool_call><|im_end|>'
    bad = '<tool_call>{"name": "calculate", "arguments": {"formula": "6 * 7"}}</tool_call><|im_end|>'  # bad argument
    answer = "<think>6 * 7 = 42</think>\n<answer>42</answer><|im_end|>"
    bias = ScriptBias(load_embedded_tokenizer(), [good, bad], answer)
    real_generate = HFRolloutEngine.generate

    def biased_generate(self, *args, **kwargs):
        handle = self.model.register_forward_hook(bias, with_kwargs=True)
        try:
            return real_generate(self, *args, **kwargs)
        finally:
            handle.remove()

    monkeypatch.setattr(HFRolloutEngine, "generate", biased_generate)
    out = tmp_path / "run"
    values = {
        "model.name": tiny_model_dir,
        "env.id": "calculator-v1",
        "env.config": {"max_turns": 3},
        "algorithm.group_size": 2,
        "training.max_steps": 1,
        "training.prompts_per_step": 2,
        "training.micro_batch_size": 4,
        "training.max_new_tokens": 64,
        "training.num_threads": 1,
        "training.output_dir": str(out),
        "logging.wandb": False,
        "logging.completions_every": 1,
    }
    train(load_recipe(None, values), progress=False)

    (row,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # Four episodes: a call, the tool's reply, an answer. Two calls pass a bad argument: half the calls fail.
    assert row["tools/turns_per_episode"] == 2.0 and row["tools/calls_per_episode"] == 1.0
    assert row["tools/calls/calculate"] == 4.0 and row["tools/error_rate"] == 0.5
    # Only the sampled tokens are the model's: both turns of each episode, the tool's reply is not.
    model_tokens = len(bias.calls[0]) + len(bias.answer)
    assert row["tools/model_tokens"] == 4 * model_tokens and row["tools/env_tokens"] > 0
    assert row["completions/mean_length"] == model_tokens
    assert row["rewards/used_calculator/mean"] == 1.0 and row["rewards/format/mean"] == 1.0
    table = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    replies = sorted(t["completion"].split("[tool] ")[1].split("\n[assistant]")[0] for t in table)
    assert replies[:2] == ["42", "42"] and all("bad arguments" in r for r in replies[2:])


def test_calculator_generated_level_passes_validate():
    from rlhub.authoring.validate import validate_env

    report = validate_env("calculator-v1", n=4, difficulty=3)
    failed = [c.name for c in report.checks if not c.passed]
    assert not failed and "expression echo" in [c.name for c in report.checks]
