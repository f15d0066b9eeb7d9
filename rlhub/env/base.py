"""The environment API: a gymnasium ``Env`` over text, plus the data/scoring methods trainers use.

An environment gives chat prompts (``reset``/``examples``) and scores completions (``step``/``score``)
with its rubric. Subclasses implement three things: the config dataclass, how examples are made
(``ProceduralEnv.generate`` or ``DatasetEnv.to_example``), and the rubric (``build_rubric``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from random import Random
from typing import Any, ClassVar

import gymnasium as gym

from rlhub.env.config import build_config
from rlhub.env.data import load_records
from rlhub.env.spaces import ModelText
from rlhub.errors import ConfigError
from rlhub.types import Example, Message, Score

log = logging.getLogger(__name__)

SPLITS = ("train", "test")

INSTRUCTIONS = {
    "tags": "Think step by step inside <think> </think> tags, then write only the final answer inside "
    "<answer> </answer> tags.",
    "boxed": "Think step by step inside <think> </think> tags, then give the final answer in LaTeX as \\boxed{...}.",
}


@dataclasses.dataclass(frozen=True)
class Probe:
    """One reward hack tried on one example: completions, and the most they may score.

    Attributes:
        name: The report row; probes of one name are pooled over examples.
        completions: The attempts (strings, or transcripts for multi-turn envs).
        max_correct: The most each correctness reward may give; ``None`` for no bound.
        max_total: The most the weighted total may be: ``"format"``, ``"gold"`` or a number.
        max_seconds: The most scoring these completions may take; ``None`` for no bound.
        about: What the completions do, in a few words (the row's detail when it passes).
    """

    name: str
    completions: Sequence[Any]
    max_correct: float | None = 0.0
    max_total: float | str = "format"
    max_seconds: float | None = None
    about: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.max_total, str) and self.max_total not in ("format", "gold"):
            raise ConfigError(
                f"probe {self.name!r}: max_total must be a number, 'format' or 'gold', not {self.max_total!r}"
            )


@dataclasses.dataclass
class EnvConfig:
    """Settings every environment has."""

    training_only: ClassVar[frozenset[str]] = frozenset()
    """Fields that only shape training (turn rewards), never the examples or an episode's score: ``rlhub eval
    --compare`` ignores them, so that an adapter trained with them compares with its base model."""

    system_prompt: str | None = None
    """System prompt; None uses the default for ``answer_format``; "" sends no system message."""
    answer_format: str = "tags"
    """Where the final answer goes: "tags" (<answer>...</answer>) or "boxed" (\\boxed{...})."""
    format_weight: float = 0.1
    """Weight of the env's format reward (0 logs it without optimizing it)."""
    prompt_style: str = "system"
    """Where the format instruction goes: "system" (R1 style) or "user" (appended to each question;
    small instruct models follow it better there)."""
    few_shot: int = 0
    """Solved examples shown as earlier chat turns before the question (0-8)."""

    def validate(self) -> None:
        if self.answer_format not in ("tags", "boxed"):
            raise ConfigError(f"answer_format must be 'tags' or 'boxed', got {self.answer_format!r}")
        if self.prompt_style not in ("system", "user"):
            raise ConfigError(f"prompt_style must be 'system' or 'user', got {self.prompt_style!r}")
        if not 0 <= self.few_shot <= 8:
            raise ConfigError(f"few_shot must be in 0..8, got {self.few_shot}")


class TextEnv(gym.Env):
    """Base class of every rlhub environment (single-turn: one completion, scored once)."""

    Config: ClassVar[type] = EnvConfig
    metadata: ClassVar[dict] = {"render_modes": ["ansi"]}
    multi_turn: ClassVar[bool] = False
    """True for envs whose episodes take several assistant turns (``MultiTurnEnv``): a completion is then a
    transcript of assistant and tool messages, not one string."""

    def __init__(self, render_mode: str | None = None, **config: Any):
        self.config = build_config(self.Config, config, owner=type(self).__name__)
        self.render_mode = render_mode
        self.observation_space = ModelText()
        self.action_space = ModelText()
        self.rubric = self.build_rubric()
        self.env_id: str | None = None  # set by rlhub.make
        self._example: Example | None = None
        self._last: tuple[str, Score] | None = None
        self._pool: list[Example] | None = None
        self._shots: list[Message] | None = None

    # --- what subclasses provide ---------------------------------------------------------------
    def build_rubric(self):
        raise NotImplementedError

    def load_examples(self, split: str, limit: int | None, seed: int) -> list[Example]:
        raise NotImplementedError

    def gold_completion(self, example: Example) -> str:
        """A completion in the expected format that carries the gold answer (used by ``rlhub validate``)."""
        return self.format_answer(str(example.answer), reasoning="Working it out.")

    def probes(self, example: Example) -> list[Probe]:
        """Reward hacks specific to this task, which ``rlhub validate`` tries beside its built-in probes.

        Override to name what a policy could exploit here (countdown: a number used twice); each
        :class:`Probe` holds completions and the most they may score. Default: none.
        """
        return []

    # --- prompts and answers -------------------------------------------------------------------
    @property
    def instruction(self) -> str:
        return INSTRUCTIONS[self.config.answer_format]

    @property
    def system_prompt(self) -> str:
        if self.config.system_prompt is not None:
            return self.config.system_prompt
        if self.config.prompt_style == "user":
            return ""
        return f"You are a helpful assistant. {self.instruction}"

    def user_turn(self, question: str) -> Message:
        if self.config.prompt_style == "user":
            question = f"{question} {self.instruction}"
        return {"role": "user", "content": question}

    def make_prompt(self, question: str) -> list[Message]:
        """System prompt, ``few_shot`` solved examples as earlier turns, then the question."""
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return messages + self.shot_messages() + [self.user_turn(question)]

    def shot_messages(self) -> list[Message]:
        """The few-shot turns: solved examples drawn from a stream of their own (never a train/test index)."""
        if self._shots is None:
            self._shots = []  # also stops make_prompt recursing while the demos themselves are built
            shots = []
            for ex in self.demo_examples(self.config.few_shot):
                gold = self.gold_completion(ex)  # a multi-turn env's is a transcript: its turns, tool replies too
                turns = gold if isinstance(gold, list) else [{"role": "assistant", "content": gold}]
                shots += [ex.prompt[-1], *turns]
            self._shots = shots
        return self._shots

    def demo_examples(self, k: int) -> list[Example]:
        """Examples for few-shot demonstrations; the default takes the first ``k`` train examples of seed -1."""
        return self.load_examples("train", k, seed=-1) if k else []

    def format_answer(self, answer: str, reasoning: str = "") -> str:
        if self.config.answer_format == "boxed":
            return f"<think>{reasoning}</think>\nThe answer is \\boxed{{{answer}}}."
        return f"<think>{reasoning}</think>\n<answer>{answer}</answer>"

    # --- data -----------------------------------------------------------------------------------
    def examples(self, split: str = "train", limit: int | None = None, seed: int = 0) -> list[Example]:
        """The examples of a split, reproducible from ``(seed, index)``."""
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        if limit is not None and limit < 0:
            raise ConfigError(f"limit must be >= 0, got {limit}")
        return self.load_examples(split, limit, seed)

    # --- scoring --------------------------------------------------------------------------------
    def score(self, completion: Any, example: Example) -> Score:
        """Score one completion against one example; never raises on model output."""
        return self.score_batch([completion], [example])[0]

    def score_batch(self, completions: Sequence[Any], examples: Sequence[Example]) -> list[Score]:
        return self.rubric.score_batch(list(completions), [ex.columns() for ex in examples])

    # --- gymnasium API --------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        example = options.get("example")
        if example is None:
            if self._pool is None:
                self._pool = self.examples(options.get("split", "train"), limit=options.get("limit", 1000))
            if not self._pool:
                raise ConfigError(f"{type(self).__name__} has no examples to reset to")
            example = self._pool[int(self.np_random.integers(len(self._pool)))]
        elif not isinstance(example, Example):
            raise ConfigError(f"options['example'] must be an rlhub Example, got {type(example).__name__}")
        self._example = example
        self._last = None
        return example.prompt[-1]["content"], {"prompt": example.prompt, "example": example}

    def step(self, action: str):
        if self._example is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        score = self.score(action, self._example)
        self._last = (action, score)
        info = {"rewards": score.rewards, "reward_errors": score.errors, "example_id": self._example.id}
        return "", score.reward, True, False, info

    def render(self):
        if self._example is None:
            return ""
        text = "\n".join(f"[{m['role']}] {m['content']}" for m in self._example.prompt)
        if self._last is not None:
            text += f"\n[assistant] {self._last[0]}\n[reward] {self._last[1].reward:g} {self._last[1].rewards}"
        return text


class ProceduralEnv(TextEnv):
    """An environment whose examples are generated: example ``i`` of a split comes from its own RNG."""

    default_size: ClassVar[dict[str, int]] = {"train": 10_000, "test": 500}

    def generate(self, rng: Random, split: str, index: int) -> Example:
        raise NotImplementedError

    def example_rng(self, split: str, index: int, seed: int) -> Random:
        # Distinct streams per (seed, split, index); never the global random state.
        return Random(f"{seed}/{split}/{index}")

    def load_examples(self, split: str, limit: int | None, seed: int) -> list[Example]:
        n = self.default_size[split] if limit is None else limit
        return [self.generate(self.example_rng(split, i, seed), split, i) for i in range(n)]

    def demo_examples(self, k: int) -> list[Example]:
        return [self.generate(self.example_rng("demo", i, 0), "demo", i) for i in range(k)]


class DatasetEnv(TextEnv):
    """An environment over records loaded from ``path`` / ``RLHUB_DATA`` / an HF ``dataset``."""

    data_name: ClassVar[str] = ""
    dataset_config: ClassVar[str | None] = None
    hf_splits: ClassVar[dict[str, str]] = {"train": "train", "test": "test"}

    def __init__(self, **config: Any):
        super().__init__(**config)
        self._records: dict[str, list[dict]] = {}

    def to_example(self, record: dict, split: str, index: int) -> Example | None:
        """Turn one record into an Example (None skips a malformed record)."""
        raise NotImplementedError

    def records(self, split: str) -> list[dict]:
        if split not in self._records:
            self._records[split] = load_records(
                path=self.config.path,
                dataset=self.config.dataset,
                split=split,
                data_name=self.data_name,
                dataset_config=self.dataset_config,
                dataset_split=self.hf_splits.get(split, split),
            )
        return self._records[split]

    def load_examples(self, split: str, limit: int | None, seed: int) -> list[Example]:
        records = self.records(split)
        order = list(range(len(records)))
        Random(seed).shuffle(order)
        out = []
        for i in order:
            if limit is not None and len(out) >= limit:
                break
            example = self.to_example(records[i], split, i)
            if example is not None:
                out.append(example)
        return out


@dataclasses.dataclass
class DataConfig(EnvConfig):
    """Settings of environments that read data."""

    path: str | None = None
    """A local .jsonl file or a folder holding <split>.jsonl."""
    dataset: str | None = None
    """A Hugging Face dataset id, used when no local data is found (needs network)."""
