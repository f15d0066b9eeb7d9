"""scaffold_name: total a shop's stock by calling a ``stock`` tool, over several turns (a scaffold toy).

Task: "How many apples and pears does the shop have in stock altogether?". Each example has its own
stock table, which only the ``stock(item)`` tool can read, so the model must call it; ``difficulty``
is the number of items to total. The model may call tools as often as it likes within
``max_turns``, then answers. Example ``i`` of a split comes from its own RNG, so (seed, index)
reproduces it.
TODO: put your task in ``generate`` and your tools in ``toolbox_for`` (a tool is a typed function
whose Google-style docstring becomes the schema the model sees; what it raises goes back to the
model as an error message). Tools that need no per-example data can be returned by
``tool_functions`` alone. Keep ``gold_transcript`` reaching the gold answer.

Output format: tool calls as ``<tool_call>{"name": "stock", "arguments": {"item": "apples"}}
</tool_call>`` blocks; the final turn has reasoning in ``<think>...</think>`` and the number in
``<answer>...</answer>`` (or ``\\boxed{}`` with ``answer_format="boxed"``).

Rewards (on the final turn): ``correct`` (the answer equals the total; weight 1.0), ``format`` (the
exact think/answer layout; weight ``format_weight``), ``tool_calls`` (how many tool calls the
episode made; weight 0: logged, not optimized).

Version history:
    v0: first version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from random import Random

from rlhub.env import ConfigError, Example, Message, MultiTurnConfig, MultiTurnEnv, ProceduralEnv, Rubric, ToolBox
from rlhub.rewards.math import math_rubric
from rlhub.rewards.tool_calls import with_tool_call_count

ITEMS = ["apples", "pears", "plums", "lemons", "figs", "melons", "limes", "dates"]


def stock_tool(table: dict[str, int]):
    """The ``stock`` tool over one example's stock table."""

    def stock(item: str) -> int:
        """How many of an item the shop has in stock.

        Args:
            item: The item, e.g. "apples".
        """
        if item not in table:
            raise ValueError(f"the shop does not sell {item!r}; it sells {', '.join(table)}")
        return table[item]

    return stock


@dataclass
class ScaffoldNameConfig(MultiTurnConfig):
    difficulty: int = 1
    """Items to total: 1 to 3."""

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.difficulty <= 3:
            raise ConfigError(f"difficulty must be in 1..3, got {self.difficulty}; try difficulty=1")


class ScaffoldNameEnv(MultiTurnEnv, ProceduralEnv):
    Config = ScaffoldNameConfig

    def tool_functions(self) -> list:
        return [stock_tool({})]  # the schemas the prompt shows; episodes get their own table below

    def toolbox_for(self, example: Example | None) -> ToolBox:
        return ToolBox([stock_tool(example.info["stock"] if example else {})])

    def generate(self, rng: Random, split: str, index: int) -> Example:
        table = {item: rng.randint(0, 40) for item in ITEMS}
        wanted = rng.sample(ITEMS, self.config.difficulty)
        names = wanted[0] if len(wanted) == 1 else ", ".join(wanted[:-1]) + f" and {wanted[-1]}, altogether,"
        return Example(
            id=f"scaffold-name/{split}/{index}",
            prompt=self.make_prompt(f"How many {names} does the shop have in stock?"),
            answer=str(sum(table[item] for item in wanted)),
            info={"stock": table, "items": wanted},
        )

    def gold_transcript(self, example: Example) -> list[Message]:
        """Look up every item in one turn (parallel calls), then add them up."""
        toolbox, items = self.toolbox_for(example), example.info["items"]
        calls = [json.dumps({"name": "stock", "arguments": {"item": item}}) for item in items]
        messages: list[Message] = [
            {"role": "assistant", "content": "".join(f"<tool_call>{c}</tool_call>" for c in calls)}
        ]
        counts = [toolbox.call("stock", {"item": item}).content for item in items]
        messages += [{"role": "tool", "name": "stock", "content": count} for count in counts]
        reasoning = " + ".join(counts) + f" = {example.answer}."
        messages.append({"role": "assistant", "content": self.format_answer(example.answer, reasoning=reasoning)})
        return messages

    def build_rubric(self) -> Rubric:
        # numbers_only: the answer is a count, so only a plain number is right. TODO: drop it if your answers are
        # symbolic (fractions, LaTeX).
        rubric = math_rubric(self.config.answer_format, self.config.format_weight, numbers_only=True)
        return with_tool_call_count(rubric)
