"""scaffold_name: ``a * b + c`` with ``multiply`` and ``add`` tools, over several turns (a toy).

Task: evaluate ``a * b + c``; ``difficulty`` sets how large the numbers get. The model may call the
tools as often as it likes within ``max_turns``, then answers. Example ``i`` of a split comes from
its own RNG, so (seed, index) reproduces it.
TODO: put your problems in ``generate`` and your tools in ``tool_functions``: a tool is a typed
function whose Google-style docstring becomes the schema the model sees; what it raises goes back
to the model as an error message. Keep ``gold_transcript`` reaching the gold answer.

Output format: tool calls as ``<tool_call>{"name": "multiply", "arguments": {"a": 3, "b": 4}}
</tool_call>`` blocks; the final turn has reasoning in ``<think>...</think>`` and the number in
``<answer>...</answer>`` (or ``\\boxed{}`` with ``answer_format="boxed"``).

Rewards (on the final turn): ``correct`` (the answer is mathematically equal to the gold answer;
weight 1.0), ``format`` (the exact think/answer layout; weight ``format_weight``), ``tool_calls``
(how many tool calls the episode made; weight 0: logged, not optimized).

Version history:
    v0: first version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from random import Random

from rlhub.env import ConfigError, Example, Message, MultiTurnConfig, MultiTurnEnv, ProceduralEnv, Rubric
from rlhub.rewards.math import math_rubric
from rlhub.rewards.tool_calls import with_tool_call_count


def multiply(a: int, b: int) -> int:
    """Multiply two integers.

    Args:
        a: The first factor.
        b: The second factor.
    """
    return a * b


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first term.
        b: The second term.
    """
    return a + b


@dataclass
class ScaffoldNameConfig(MultiTurnConfig):
    difficulty: int = 1
    """1 (numbers up to 10) to 3 (numbers up to 1000)."""

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.difficulty <= 3:
            raise ConfigError(f"difficulty must be in 1..3, got {self.difficulty}; try difficulty=1")


class ScaffoldNameEnv(MultiTurnEnv, ProceduralEnv):
    Config = ScaffoldNameConfig

    def tool_functions(self) -> list:
        return [multiply, add]

    def generate(self, rng: Random, split: str, index: int) -> Example:
        high = 10**self.config.difficulty
        a, b, c = rng.randint(2, high), rng.randint(2, high), rng.randint(1, high)
        return Example(
            id=f"scaffold-name/{split}/{index}",
            prompt=self.make_prompt(f"What is {a} * {b} + {c}? Use the tools."),
            answer=str(a * b + c),
            info={"a": a, "b": b, "c": c},
        )

    def gold_transcript(self, example: Example) -> list[Message]:
        """Call multiply, add c to the product, then answer."""
        a, b, c = example.info["a"], example.info["b"], example.info["c"]
        messages: list[Message] = []
        for name, arguments in (("multiply", {"a": a, "b": b}), ("add", {"a": a * b, "b": c})):
            call = json.dumps({"name": name, "arguments": arguments})
            messages += [
                {"role": "assistant", "content": f"<tool_call>{call}</tool_call>"},
                {"role": "tool", "name": name, "content": self.toolbox.call(name, arguments).content},
            ]
        reasoning = f"{a} * {b} = {a * b}, and {a * b} + {c} = {example.answer}."
        messages.append({"role": "assistant", "content": self.format_answer(example.answer, reasoning=reasoning)})
        return messages

    def build_rubric(self) -> Rubric:
        # numbers_only: the question is an expression, and a grader that evaluates answers would give the
        # question itself full marks. TODO: drop it if your answers are symbolic (fractions, LaTeX).
        rubric = math_rubric(self.config.answer_format, self.config.format_weight, numbers_only=True)
        return with_tool_call_count(rubric)
