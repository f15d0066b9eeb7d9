"""arithmetic: procedural multi-step integer arithmetic.

Task: evaluate an integer expression such as ``(12 + 7) * 3 - 4``. Difficulty 1 is a sum of two
small numbers; each level adds a term, larger numbers, multiplication (level 2+) and parentheses
(level 4+). Every example comes from its own RNG, so (seed, index) reproduces it.

Output format: reasoning in ``<think>...</think>``, the integer in ``<answer>...</answer>`` (or
``\\boxed{}`` with ``answer_format="boxed"``).

Rewards: ``correct`` (1.0 if the answer is a plain number equal to the value, weight 1.0: the
expression itself, unevaluated, earns nothing), ``format`` (1.0 for the exact think/answer layout,
weight ``format_weight``).

Version history:
    v0: first version. Since then, ``correct`` accepts only plain numbers (math-verify evaluated an
        answer that copied the question's expression and gave it full marks).
    v1: the answer check fixed (issue 25, ``rlhub.rewards.math``): a partial parse no longer decides a match
        (``7\\mathrm{i}``, a cut-off ``7 +`` and ``\\boxed{3} + 1`` scored as 7 or 3), ``0,500`` is not 500 and a
        mixed number ``1 1/2`` is 3/2, not 1; thousands spaced with spaces, thin spaces or ``\\,`` (``10 000``), an
        answer in markdown bold and a trailing ``.``/``,``/``;`` are accepted. Found by ``rlhub validate --audit``
        and the math-verify cross-check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from random import Random

from rlhub.env import ConfigError, EnvConfig, Example, Probe, ProceduralEnv, Rubric
from rlhub.rewards.math import math_rubric

QUESTION = re.compile(r"What is (?P<expression>.+?)\?")


@dataclass
class ArithmeticConfig(EnvConfig):
    difficulty: int = 2
    """1 (a + b, numbers up to 20) to 5 (six terms, numbers up to 100, * and parentheses)."""

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.difficulty <= 5:
            raise ConfigError(f"difficulty must be in 1..5, got {self.difficulty}; try difficulty=2")


class ArithmeticEnv(ProceduralEnv):
    Config = ArithmeticConfig
    levels = (1, 2, 3, 4, 5)
    """The values of ``config.difficulty``, easiest first (a curriculum samples among them)."""

    def generate(self, rng: Random, split: str, index: int) -> Example:
        level = self.config.difficulty
        high = (20, 50, 100, 100, 100)[level - 1]
        ops = "+-" if level == 1 else "+-*"
        # Build left to right, keeping a running value; parentheses wrap the running expression.
        value = rng.randint(1, high)
        text, steps = str(value), []
        for _ in range(level):
            op = rng.choice(ops)
            n = rng.randint(1, high if op != "*" else 12)
            if (level >= 4 and rng.random() < 0.4 and " " in text) or (op == "*" and " " in text):
                text = f"({text})"
            text = f"{text} {op} {n}"
            new = value + n if op == "+" else value - n if op == "-" else value * n
            steps.append(f"{value} {op} {n} = {new}")
            value = new
        return Example(
            id=f"arithmetic/{split}/{index}",
            prompt=self.make_prompt(f"What is {text}?"),  # QUESTION reads it back
            answer=str(value),
            info={"steps": ", ".join(steps)},
        )

    def gold_completion(self, example: Example) -> str:
        return self.format_answer(example.answer, reasoning=example.info["steps"])

    def probes(self, example: Example) -> list[Probe]:
        return expression_echo_probes(example, self.format_answer)

    def build_rubric(self) -> Rubric:
        return math_rubric(self.config.answer_format, self.config.format_weight, numbers_only=True)


def expression_echo_probes(example: Example, format_answer) -> list[Probe]:
    """The question's own expression as the answer: a grader that evaluates answers would take it for the value.

    For envs that ask "What is <expression>?" in the last prompt turn; ``format_answer(answer, reasoning=...)``
    writes a completion in the env's answer format.
    """
    asked = QUESTION.search(example.prompt[-1]["content"])
    if asked is None:
        return []
    expression = asked["expression"]
    echoes = [expression, expression.replace(" ", ""), f"({expression})", f"1 * ({expression})"]
    completions = [format_answer(e, reasoning="Copy the question.") for e in echoes]
    return [Probe("expression echo", completions, about="the question's expression, unevaluated, as the answer")]
