"""Sampling settings travel as one named object (rlhub.generation.Sampling); generation settings fail in one line."""

from __future__ import annotations

import pytest

import rlhub
from rlhub.errors import ConfigError
from rlhub.generation import GenerationConfig, Sampling
from rlhub.generation.rollout import Completion, rollout
from rlhub.trainers.recipe import load_recipe

CALL = '<tool_call>{"name": "calculate", "arguments": {"expression": "3 + 4"}}</tool_call>'


class RecordingEngine:
    """Calls the calculator on the first turn, answers on the next; records the settings of every request."""

    pad_id = 0

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.requests: list[tuple[int, Sampling]] = []

    def generate(self, prompt_ids, n, sampling):
        self.requests.append((n, sampling))
        eos = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        out = []
        for i, ids in enumerate(prompt_ids):
            reply = CALL if "<|im_start|>tool" not in self.tokenizer.decode(ids) else "<answer>7</answer>"
            tokens = [*self.tokenizer.encode(reply, add_special_tokens=False), eos]
            out += [Completion(i, tokens, [-0.5] * len(tokens), reply, True) for _ in range(n)]
        return out


def test_each_turn_of_an_episode_samples_with_the_rollouts_settings_and_the_budget_left():
    from rlhub.models import load_embedded_tokenizer

    tokenizer = load_embedded_tokenizer()
    env = rlhub.make("calculator-v1")
    examples = env.examples("test", limit=2)
    prompt_ids = [
        tokenizer.apply_chat_template(ex.prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
        for ex in examples
    ]
    engine = RecordingEngine(tokenizer)
    sampling = Sampling(max_new_tokens=200, temperature=0.7, top_p=0.9)
    episodes = rollout(engine, env, examples, prompt_ids, 2, sampling)

    first_turn = len(tokenizer.encode(CALL, add_special_tokens=False)) + 1
    assert [ep.state.turns for ep in episodes] == [2] * 4
    # The first turn samples each prompt's 2 episodes from one prefill; later turns continue each episode alone.
    assert [n for n, _ in engine.requests] == [2, 1]
    assert engine.requests[0][1] == sampling  # the first turn has the whole budget
    # The next turn keeps temperature and top_p and has what the first turn left of the episode's budget.
    assert engine.requests[1][1] == Sampling(max_new_tokens=200 - first_turn, temperature=0.7, top_p=0.9)


def test_single_turn_rollouts_hand_the_engine_the_settings_unchanged():
    from rlhub.models import load_embedded_tokenizer

    env = rlhub.make("arithmetic-v1")
    examples = env.examples("test", limit=2)
    engine = RecordingEngine(load_embedded_tokenizer())
    sampling = Sampling(max_new_tokens=16, temperature=0.0)
    completions = rollout(engine, env, examples, [[1, 2], [3]], 3, sampling)
    assert engine.requests == [(3, sampling)] and len(completions) == 6
    with pytest.raises(AttributeError):
        sampling.temperature = 1.0  # frozen: a rollout cannot change the caller's settings


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"max_model_len": "long"}, r"^generation\.max_model_len: Input should be a valid integer.*\(got 'long'\)$"),
        ({"timeout": [1]}, r"^generation\.timeout: Input should be a valid number \(got \[1\]\)$"),
        ({"sync": "merged", "synk": "x"}, r"^unknown generation setting 'synk'; known: adapter_dir, api_key_env, "),
    ],
)
def test_a_wrong_generation_setting_is_one_line_naming_it(settings, message):
    with pytest.raises(ConfigError, match=message) as caught:
        GenerationConfig.parse(settings)
    assert "\n" not in str(caught.value)


def test_generation_settings_are_checked_alike_in_a_recipe_and_on_their_own():
    with pytest.raises(ConfigError, match=r"^unknown recipe key 'generation.synk'"):
        load_recipe(None, ["generation.synk=adapter"])
    with pytest.raises(ConfigError, match=r"^recipe key 'generation.timeout': Input should be a valid number"):
        load_recipe(None, ["generation.timeout=soon"])
    recipe = load_recipe(None, ["generation.timeout=5"])
    assert GenerationConfig.parse(recipe.generation) is recipe.generation
    assert GenerationConfig.parse(recipe.generation.model_dump()) == recipe.generation
