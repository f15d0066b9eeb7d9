"""rlhub envs in TRL's GRPOTrainer: the reward wrappers called as TRL calls them, the dataset, and one real step."""

from __future__ import annotations

import json
import pickle
from random import Random

import pytest

import rlhub
from rlhub.env import ProceduralEnv
from rlhub.errors import ConfigError
from rlhub.integrations.trl import JSON_COLUMNS, reward_funcs, reward_weights, to_dataset
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


def vowel_share(completions, **kwargs):
    """A plain TRL reward with spread on random text, so a tiny random model gets advantages to learn from."""
    texts = [c[-1]["content"] for c in completions]
    return [sum(ch in "aeiou" for ch in t) / max(len(t), 1) for t in texts]


def test_wrappers_carry_the_rubric_names_and_weights():
    from trl.trainer.utils import get_callable_name

    env = rlhub.make("arithmetic-v0", format_weight=0.25)
    fns = reward_funcs(env)
    assert [get_callable_name(f) for f in fns] == ["correct", "format"]
    assert reward_weights(env) == [f.weight for f in fns] == [1.0, 0.25]
    assert reward_weights("arithmetic-v0", format_weight=0.0) == [1.0, 0.0]
    assert [f.__name__ for f in reward_funcs(ToyEnv())] == ["echo", "boom", "odd_values"]
    assert reward_weights(ToyEnv()) == [1.0, 0.5, 0.0]


@pytest.mark.parametrize("env_id", ["arithmetic-v0", "countdown-v0"])
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
    env = rlhub.make("arithmetic-v0")
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
    env = rlhub.make("arithmetic-v0")
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

    ds = to_dataset("arithmetic-v0", split="test", limit=5, seed=3)
    env = rlhub.make("arithmetic-v0")
    assert is_conversational(ds[0])
    assert ds["prompt"] == [ex.prompt for ex in env.examples("test", limit=5, seed=3)]
    assert ds["answer"] == to_dataset("arithmetic-v0", split="test", limit=5, seed=3)["answer"]
    assert ds["answer"] != to_dataset("arithmetic-v0", split="test", limit=5, seed=4)["answer"]
    assert json.loads(json.dumps(ds[0]["prompt"]))[-1]["role"] == "user"


def test_bad_inputs_fail_with_a_fix():
    with pytest.raises(ConfigError, match="reserve"):
        to_dataset(ReservedNameEnv(), limit=1)
    with pytest.raises(ConfigError, match="go with an env id"):
        reward_funcs(rlhub.make("arithmetic-v0"), difficulty=3)
    with pytest.raises(ConfigError, match="split"):
        to_dataset("arithmetic-v0", split="validation")


@pytest.mark.slow
def test_grpo_trainer_takes_a_step_with_rlhub_rewards(tmp_path):
    import torch
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rlhub.models import save_tiny_model

    model_dir = save_tiny_model(tmp_path / "model", seed=0)
    env = rlhub.make("arithmetic-v0", difficulty=1)
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
        model=str(model_dir),
        reward_funcs=[*reward_funcs(env), vowel_share],
        args=args,
        train_dataset=to_dataset(env, limit=8),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )
    assert torch.equal(trainer.reward_weights, torch.tensor([1.0, 0.1, 1.0]))
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()

    assert trainer.state.global_step == 1
    logged = trainer.state.log_history[0]
    for name in ("correct", "format"):
        assert 0.0 <= logged[f"rewards/{name}/mean"] <= 1.0
        # correct() takes `answer` as a required argument: no errors means TRL passed the column through.
        assert logged[f"rewards/{name}/errors"] == 0.0
    assert logged["rewards/vowel_share/std"] > 0  # rlhub's rewards mix with plain TRL ones
    assert any(not torch.equal(p, before[name]) for name, p in trainer.model.named_parameters())
