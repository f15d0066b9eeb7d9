"""scaffold_name: compute ``a * b + c`` for random integers (a scaffold toy).

Task: evaluate ``a * b + c``; ``difficulty`` sets how large the numbers get. Example ``i`` of a split
comes from its own RNG, so (seed, index) reproduces it.
TODO: put your problems in ``generate`` (keep ``answer`` exact, and ``gold_completion`` able to reach
it). To read a dataset instead, subclass ``rlhub.env.DatasetEnv`` and write ``to_example(record,
split, index)``, as ``rlhub/envs/gsm8k.py`` does.

Output format: reasoning in ``<think>...</think>``, the number in ``<answer>...</answer>`` (or
``\\boxed{}`` with ``answer_format="boxed"``).

Rewards: ``correct`` (the answer is a plain number equal to the gold answer; weight 1.0), ``format``
(the exact think/answer layout; weight ``format_weight``).

Version history:
    v0: first version.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from rlhub.env import ConfigError, EnvConfig, Example, Probe, ProceduralEnv, Rubric
from rlhub.rewards.format import boxed_format, think_answer_format
from rlhub.rewards.math import math_accuracy


@dataclass
class ScaffoldNameConfig(EnvConfig):
    difficulty: int = 1
    """1 (numbers up to 10) to 3 (numbers up to 1000)."""

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.difficulty <= 3:
            raise ConfigError(f"difficulty must be in 1..3, got {self.difficulty}; try difficulty=1")


class ScaffoldNameEnv(ProceduralEnv):
    Config = ScaffoldNameConfig

    def generate(self, rng: Random, split: str, index: int) -> Example:
        high = 10**self.config.difficulty
        a, b, c = rng.randint(2, high), rng.randint(2, high), rng.randint(1, high)
        return Example(
            id=f"scaffold-name/{split}/{index}",
            prompt=self.make_prompt(f"What is {a} * {b} + {c}?"),
            answer=str(a * b + c),
            info={"steps": f"{a} * {b} = {a * b}, and {a * b} + {c} = {a * b + c}.", "expression": f"{a} * {b} + {c}"},
        )

    def gold_completion(self, example: Example) -> str:
        return self.format_answer(example.answer, reasoning=example.info["steps"])

    def probes(self, example: Example) -> list[Probe]:
        """Hacks this task invites, tried by ``rlhub validate`` (TODO: name your task's own)."""
        echo = self.format_answer(example.info["expression"], reasoning="Copy the question.")
        return [Probe("expression echo", [echo], about="the question's expression, unevaluated, as the answer")]

    def build_rubric(self) -> Rubric:
        answer_format = self.config.answer_format

        def correct(completions, answer, **kwargs):
            # numbers_only: the question is an expression, and a grader that evaluates answers would give the
            # question itself full marks. TODO: drop it if your answers are symbolic (fractions, LaTeX).
            return math_accuracy(completions, answer=answer, answer_format=answer_format, numbers_only=True)

        layout = boxed_format if answer_format == "boxed" else think_answer_format
        return Rubric({"correct": (correct, 1.0), "format": (layout, self.config.format_weight)})
