"""rlhub envs in TRL's GRPOTrainer: the reward wrappers called as TRL calls them, the dataset, and one real step."""

from __future__ import annotations

import json
import pickle
from random import Random

import pytest

import rlhub
from rlhub.env import ProceduralEnv
from rlhub.errors import ConfigError
from rlhub.integrations.trl import (
    EXAMPLE_ID,
    JSON_COLUMNS,
    RLHubEnvironment,
    environment_factory,
    reward_funcs,
    reward_weights,
    to_dataset,
)
from rlhub.rewards import Rubric
from rlhub.types import Example

pytest.importorskip("trl", reason="needs the trl extra: pip install rlhub[trl]")
pytest.importorskip("datasets", reason="needs the trl extra: pip install rlhub[trl]")


class ToyEnv(ProceduralEnv):
    """Columns Arrow cannot store as they are (dicts with varying keys, int and str answers), and odd rewards."""

    def generate(self, rng: Random, split: str, index: int) -> Example:
        meta = {"kind": "odd", "n": index} if index % 2 else {"tags": ["x", "y"]}
        return Example(
            id=f"toy/{split}/{index}",
            prompt=self.make_prompt(f"Say {index}."),
            answer=str(index) if index % 2 else index,
            info={"meta": meta, "numbers": [index, index + 1]},
        )

    def build_rubric(self) -> Rubric:
        self.seen: list[dict] = []

        def echo(completions, **columns):
            self.seen.append(columns)
            return [1.0] * len(completions)

        def boom(completions, **columns):
            raise RuntimeError("reward bug")

        def odd_values(completions, **columns):
            return [None, float("nan"), "not a number", 0.5][: len(completions)]

        return Rubric({"echo": (echo, 1.0), "boom": (boom, 0.5), "odd_values": (odd_values, 0.0)})


class ReservedNameEnv(ToyEnv):
    def generate(self, rng: Random, split: str, index: int) -> Example:
        return Example(id=f"bad/{split}/{index}", prompt=self.make_prompt("Hi."), answer="1", info={"completions": 1})


class MetricLog(list):
    """Stands in for TRL's ``log_metric`` hook and records its calls."""

    def __call__(self, name: str, value: float) -> None:
        self.append((name, value))


def trl_call(fn, rows, completions, num_generations=1, log_metric=None):
    """Call ``fn`` as trl 1.16's ``GRPOTrainer._calculate_rewards`` does, on dataset rows as its sampler yields them."""
    from transformers import TrainerState

    inputs = [row for row in rows for _ in range(num_generations)]
    keys = [key for key in inputs[0] if key not in ["prompt", "completion", "completion_ids"]]
    reward_kwargs = {key: [example[key] for example in inputs] for key in keys}
    reward_kwargs["trainer_state"] = TrainerState()
    reward_kwargs["log_extra"] = lambda column, values: None
    reward_kwargs["log_metric"] = log_metric if log_metric is not None else MetricLog()
    prompts = [x["prompt"] for x in inputs]
    completion_ids = [[1, 2, 3]] * len(completions)
    return fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **reward_kwargs)


def chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_wrappers_carry_the_rubric_names_and_weights():
    from trl.trainer.utils import get_callable_name

    env = rlhub.make("arithmetic-v1", format_weight=0.25)
    fns = reward_funcs(env)
    assert [get_callable_name(f) for f in fns] == ["correct", "format"]
    assert reward_weights(env) == [f.weight for f in fns] == [1.0, 0.25]
    assert reward_weights("arithmetic-v1", format_weight=0.0) == [1.0, 0.0]
    assert [f.__name__ for f in reward_funcs(ToyEnv())] == ["echo", "boom", "odd_values"]
    assert reward_weights(ToyEnv()) == [1.0, 0.5, 0.0]


@pytest.mark.parametrize("env_id", ["arithmetic-v1", "countdown-v0"])
def test_trl_call_on_chat_completions_matches_env_scores(env_id):
    env = rlhub.make(env_id)
    examples = env.examples("train", limit=3)
    rows = list(to_dataset(env, limit=3))
    # Per prompt, two completions (TRL repeats each row num_generations times): the gold one and garbage.
    texts = [t for ex in examples for t in (env.gold_completion(ex), "<answer>no</answer>")]
    expected = env.score_batch(texts, [ex for ex in examples for _ in range(2)])
    for fn in reward_funcs(env):
        got = trl_call(fn, rows, [chat(t) for t in texts], num_generations=2)
        assert got == [s.rewards[fn.__name__] for s in expected]
    assert trl_call(reward_funcs(env)[0], rows, [chat(t) for t in texts], num_generations=2)[::2] == [1.0] * 3


def test_string_completions_score_like_chat_ones():
    env = rlhub.make("arithmetic-v1")
    ex = env.examples("train", limit=1)[0]
    rows = list(to_dataset(env, limit=1))
    for fn in reward_funcs(env):
        assert trl_call(fn, rows, [env.gold_completion(ex)]) == trl_call(fn, rows, [chat(env.gold_completion(ex))])


def test_columns_reach_rubric_functions_as_the_example_held_them():
    env = ToyEnv()
    ds = to_dataset(env, limit=4)
    assert set(ds.column_names) == {"prompt", "answer", "meta", "numbers", JSON_COLUMNS}
    assert ds[0][JSON_COLUMNS] == ["answer", "meta"] and isinstance(ds[0]["meta"], str)  # Arrow would alter them
    assert ds[1]["numbers"] == [1, 2]  # lists of ints stay native

    echo = reward_funcs(env)[0]
    assert trl_call(echo, list(ds), [chat("hi")] * 8, num_generations=2) == [1.0] * 8
    columns = env.seen[-1]
    expected = [ex.columns() for ex in env.examples("train", limit=4) for _ in range(2)]
    for key in ("answer", "meta", "numbers"):
        assert columns[key] == [row[key] for row in expected]
        assert [type(v) for v in columns[key]] == [type(row[key]) for row in expected]
    assert JSON_COLUMNS not in columns and len(columns["prompts"]) == len(columns["completion_ids"]) == 8
    assert "trainer_state" not in columns and "log_metric" not in columns


def test_a_raising_or_malformed_reward_scores_zero_and_is_counted():
    env = ToyEnv()
    rows = list(to_dataset(env, limit=2))
    echo, boom, odd_values = reward_funcs(env)
    metrics = MetricLog()
    assert trl_call(boom, rows, [chat("a"), chat("b")], log_metric=metrics) == [0.0, 0.0]
    assert metrics == [("rewards/boom/errors", 1.0)]

    # None means "not applicable" and passes through; NaN and non-numbers score 0 and count as errors.
    metrics.clear()
    assert trl_call(odd_values, rows * 2, [chat("x")] * 4, log_metric=metrics) == [None, 0.0, 0.0, 0.5]
    assert metrics == [("rewards/odd_values/errors", 0.5)]

    # Broken trainer input (a JSON column that is not JSON) is not model output either: still no exception.
    broken = [{**row, "meta": "{not json"} for row in rows]
    metrics.clear()
    assert trl_call(echo, broken, [chat("a"), chat("b")], log_metric=metrics) == [0.0, 0.0]
    assert metrics == [("rewards/echo/errors", 1.0)]


def test_reasoning_that_trl_parsed_out_of_content_is_graded_again():
    env = rlhub.make("arithmetic-v1")
    ex = env.examples("train", limit=1)[0]
    rows = list(to_dataset(env, limit=1))
    parsed = [{"role": "assistant", "reasoning_content": "Add.", "content": f"<answer>{ex.answer}</answer>"}]
    correct, fmt = reward_funcs(env)
    assert trl_call(correct, rows, [parsed]) == [1.0]
    assert trl_call(fmt, rows, [parsed]) == [1.0]
    assert trl_call(fmt, rows, [chat(f"<answer>{ex.answer}</answer>")]) == [0.0]


def test_wrappers_pickle_for_trl_async_workers():
    fns = reward_funcs("countdown-v0", max_numbers=3)
    restored = pickle.loads(pickle.dumps(fns))
    assert [f.__name__ for f in restored] == ["correct", "format"] and [f.weight for f in restored] == [1.0, 0.1]
    env = rlhub.make("countdown-v0", max_numbers=3)
    ex = env.examples("train", limit=1)[0]
    rows = list(to_dataset(env, limit=1))
    assert [trl_call(f, rows, [chat(env.gold_completion(ex))]) for f in restored] == [[1.0], [1.0]]
    assert repr(restored[0]) == "EnvReward('countdown-v0', 'correct', weight=1)"


def test_dataset_is_conversational_and_reproducible():
    from trl.data_utils import is_conversational

    ds = to_dataset("arithmetic-v1", split="test", limit=5, seed=3)
    env = rlhub.make("arithmetic-v1")
    assert is_conversational(ds[0])
    assert ds["prompt"] == [ex.prompt for ex in env.examples("test", limit=5, seed=3)]
    assert ds["answer"] == to_dataset("arithmetic-v1", split="test", limit=5, seed=3)["answer"]
    assert ds["answer"] != to_dataset("arithmetic-v1", split="test", limit=5, seed=4)["answer"]
    assert json.loads(json.dumps(ds[0]["prompt"]))[-1]["role"] == "user"


def test_bad_inputs_fail_with_a_fix():
    with pytest.raises(ConfigError, match="reserve"):
        to_dataset(ReservedNameEnv(), limit=1)
    with pytest.raises(ConfigError, match="go with an env id"):
        reward_funcs(rlhub.make("arithmetic-v1"), difficulty=3)
    with pytest.raises(ConfigError, match="split"):
        to_dataset("arithmetic-v1", split="validation")


@pytest.mark.slow
@pytest.mark.usefixtures("spread_reward")
def test_grpo_trainer_takes_a_step_with_rlhub_rewards(tiny_model_dir, tmp_path):
    import torch
    from spread_reward import vowel_share  # a plain TRL reward with spread on random text (tests/conftest.py)
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    env = rlhub.make("arithmetic-v1", difficulty=1)
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=1,
        logging_steps=1,
        learning_rate=1e-3,
        reward_weights=[*reward_weights(env), 1.0],
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=tiny_model_dir,
        reward_funcs=[*reward_funcs(env), vowel_share],
        args=args,
        train_dataset=to_dataset(env, limit=8),
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
    )
    assert torch.equal(trainer.reward_weights, torch.tensor([1.0, 0.1, 1.0]))
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()

    assert trainer.state.global_step == 1
    logged = trainer.state.log_history[0]
    for name in ("correct", "format"):
        assert logged[f"rewards/{name}/mean"] == 0.0  # 8 random tokens: no <answer> block, no think/answer layout
        # correct() takes `answer` as a required argument: no errors means TRL passed the column through.
        assert logged[f"rewards/{name}/errors"] == 0.0
    assert logged["rewards/vowel_share/std"] > 0  # rlhub's rewards mix with plain TRL ones
    assert any(not torch.equal(p, before[name]) for name, p in trainer.model.named_parameters())


# ---------------------------------------------------------------------------------------------------
# Multi-turn envs through GRPOTrainer's environment_factory.
# ---------------------------------------------------------------------------------------------------


def trl_tools(environment):
    """The tools TRL takes from an environment instance, as trl 1.16's ``GRPOTrainer.__init__`` lists them."""
    import inspect

    return {
        name: getattr(environment, name)
        for name, _ in inspect.getmembers(type(environment), predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    }


def tool_turns(transcript):
    """An rlhub transcript as TRL's completion holds it: tool calls parsed into ``tool_calls``, TRL's tool messages."""
    from rlhub.rewards.tool_calls import parse_tool_calls_verbose

    out = []
    for message in transcript:
        if message["role"] == "assistant":
            calls, _ = parse_tool_calls_verbose(message["content"])
            if calls:
                tool_calls = [
                    {"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
                ]
                message = {"role": "assistant", "content": "", "tool_calls": tool_calls}
        out.append(message)
    return out


def test_environment_tools_have_the_env_schemas_and_answer_from_the_episode_example():
    from transformers.utils import get_json_schema

    env = rlhub.make("retrieval-v0")
    Retrieval = environment_factory(env)
    assert issubclass(Retrieval, RLHubEnvironment) and Retrieval.env is env
    first, second = Retrieval(), Retrieval()
    tools = trl_tools(first)
    assert list(tools) == ["search"]
    assert [get_json_schema(fn) for fn in tools.values()] == env.toolbox.schemas

    rows = list(to_dataset(env, limit=2))
    examples = env.examples("train", limit=2)
    assert [row[EXAMPLE_ID] for row in rows] == [ex.id for ex in examples]
    assert first.reset(**rows[0]) is None and second.reset(**rows[1]) is None  # the prompt is already in the row
    assert (first.example, second.example) == tuple(examples)  # rebuilt from the row, JSON columns decoded
    # Each instance searches its own example's documents, as the env's own episodes do.
    for environment, ex in ((first, examples[0]), (second, examples[1])):
        person = ex.info["person"]
        assert (
            trl_tools(environment)["search"](query=person)
            == env.toolbox_for(ex).call("search", {"query": person}).content
        )
        assert f"{person} was born in {ex.info['country']}." in environment.search(query=person)
    assert first.state.tools.calls == 2 and first.tool_messages[0]["name"] == "search"
    # reset starts a fresh episode on the same instance (TRL reuses instances across batches).
    first.reset(**rows[1])
    assert first.example == examples[1] and first.state.tools.calls == 0 and first.tool_messages == []


def test_environment_tool_errors_come_back_as_messages_and_are_counted():
    Calculator = environment_factory("calculator-v1", max_turns=3)
    environment = Calculator()
    with pytest.raises(RuntimeError, match="reset"):
        environment.calculate(expression="1 + 1")
    environment.reset(prompt=[{"role": "user", "content": "?"}], answer="2", example_id="calculator/test/0")
    assert environment.calculate(expression="(16 - 3 - 4) * 2") == "18"
    assert environment.calculate("2 ** 10") == "1024"  # positional arguments bind to the tool's parameters
    assert "bad arguments" in environment.calculate(expr="1")
    assert "bad arguments" in environment.calculate()
    assert environment.calculate(expression="x + 1").startswith("error: calculate failed: ValueError")
    stats = environment.state.tools
    assert (stats.calls, stats.errors, stats.per_tool) == (5, 3, {"calculate": 5})
    assert [m["content"][:6] for m in environment.tool_messages] == ["18", "1024", *["error:"] * 3]
    assert "example='calculator/test/0'" in repr(environment)

    with pytest.raises(ConfigError, match="single-turn"):
        environment_factory("arithmetic-v1")
    with pytest.raises(ConfigError, match="go with an env id"):
        environment_factory(rlhub.make("retrieval-v0"), max_turns=2)


def test_multi_turn_rewards_score_the_transcript_like_the_env():
    env = rlhub.make("retrieval-v0")
    examples = env.examples("train", limit=2)
    rows = list(to_dataset(env, limit=2))
    # TRL's completion with tools: assistant turns with parsed tool_calls, then the tool messages TRL appended.
    gold = [tool_turns(env.gold_transcript(ex)) for ex in examples]
    wrong = [chat("<think>guess</think>\n<answer>Nowhere</answer>")] * 2
    completions = [gold[0], wrong[0], gold[1], wrong[1]]
    expected = env.score_batch(
        [env.gold_transcript(examples[0]), wrong[0], env.gold_transcript(examples[1]), wrong[1]],
        [ex for ex in examples for _ in range(2)],
    )
    metrics = MetricLog()
    for fn in reward_funcs(env):
        got = trl_call(fn, rows, completions, num_generations=2, log_metric=metrics)
        assert got == [s.rewards[fn.__name__] for s in expected]
    assert [s.rewards["searches"] for s in expected] == [2.0, 0.0, 2.0, 0.0]
    assert all(value == 0.0 for _, value in metrics)  # no reward raised (searches needs the transcript column)

    # With environments= (as TRL passes them), tool use the completion does not show is taken from the environment.
    Retrieval = environment_factory(env)
    environments = [Retrieval() for _ in range(2)]
    for environment, row, ex in zip(environments, rows, examples):
        environment.reset(**row)
        environment.search(query=ex.info["person"])
    searches = reward_funcs(env)[2]
    plain = [chat(env.format_answer(ex.answer, reasoning="found")) for ex in examples]
    assert trl_call(searches, rows, plain) == [0.0, 0.0]
    assert searches(completions=plain, environments=environments, **{k: [r[k] for r in rows] for k in rows[0]}) == [
        1.0,
        1.0,
    ]
    correct = reward_funcs(env)[0]
    assert correct(completions=plain, environments=environments, answer=[ex.answer for ex in examples]) == [1.0, 1.0]


def test_to_dataset_marks_multi_turn_examples_only():
    assert EXAMPLE_ID in to_dataset("retrieval-v0", limit=1).column_names
    assert EXAMPLE_ID not in to_dataset("arithmetic-v1", limit=1).column_names


@pytest.mark.slow
def test_grpo_trainer_runs_calculator_tools_through_environment_factory(tiny_model_dir, tmp_path, monkeypatch):
    """One GRPO step on calculator-v1 with TRL's tool loop; a sequence bias makes the random model call the tool."""
    from pathlib import Path

    import trl
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    env = rlhub.make("calculator-v1")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def trainer(generation_kwargs=None):
        args = GRPOConfig(
            output_dir=str(tmp_path / "out"),
            per_device_train_batch_size=4,
            num_generations=4,
            max_completion_length=64,
            max_tool_calling_iterations=1,  # one tool round keeps the test fast; train with env.config.max_turns - 1
            max_steps=1,
            logging_steps=1,
            reward_weights=reward_weights(env),
            generation_kwargs=generation_kwargs,
            report_to="none",
            save_strategy="no",
            use_cpu=True,
            bf16=False,
            seed=0,
        )
        return GRPOTrainer(
            model=tiny_model_dir,
            reward_funcs=reward_funcs(env),
            args=args,
            train_dataset=to_dataset(env, "test", limit=4),
            processing_class=tokenizer,
            environment_factory=environment_factory(env),
        )

    # SmolLM2's own chat template has no tool support, and TRL refuses it for tools.
    with pytest.raises(ValueError, match="does not support tool calling"):
        trainer()

    # Qwen2.5's template is ChatML too (SmolLM2's tokenizer has its special tokens), and TRL can parse its tool calls.
    tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    call = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "6 * 7"}}\n</tool_call><|im_end|>'
    head = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    ids = head + tokenizer(call, add_special_tokens=False)["input_ids"]
    bias = [[ids[: i + 1], 100.0] for i in range(len(head), len(ids))]  # each token of the call, after its prefix
    grpo = trainer({"sequence_bias": bias})
    grpo.train()

    assert grpo.state.global_step == 1
    logged = grpo.state.log_history[0]
    for name in ("correct", "format", "used_calculator"):
        assert logged[f"rewards/{name}/errors"] == 0.0
    # After the tool's reply the bias writes the call again, never an answer: nothing correct, no think/answer layout.
    assert logged["rewards/correct/mean"] == 0.0 and logged["rewards/format/mean"] == 0.0
    assert logged["tools/call_frequency"] > 0 and logged["tools/failure_frequency"] == 0.0
    assert logged["rewards/used_calculator/mean"] == 1.0  # scored from the transcript TRL built
    ids_in_data = set(to_dataset(env, "test", limit=4)[EXAMPLE_ID])
    assert {e.example.id for e in grpo.environments} <= ids_in_data
    assert all(e.state.tools.calls > 0 and e.tool_messages[0]["content"] == "42" for e in grpo.environments)
