"""scaffold_name: write a small Python function, trying it with a ``run_python`` tool first (a toy).

Task: write one function, named and typed in the prompt (sum of squares, word count, clamp). The
model may run programs with ``run_python(code)`` (in rlhub's sandbox: no network, no host files,
time and memory limits) as often as it likes within ``max_turns``, then answers. Each task is a
reference solution plus a generator of random arguments; the expected outputs come from running the
reference, so the data is unlimited and exact. ``difficulty`` sets how long the inputs get. Example
``i`` of a split comes from its own RNG, so (seed, index) reproduces it.
TODO: put your tasks in ``TASKS`` (or write ``generate`` anew); the ``tests`` column is a list of
assert lines, each run after the solution in its own program in rlhub's sandbox. Tools are typed
functions whose Google-style docstrings become the schemas the model sees.

Output format: tool calls as ``<tool_call>{"name": "run_python", "arguments": {"code": "..."}}
</tool_call>`` blocks; the final turn has reasoning in ``<think>...</think>``, then the function in
one ```python block.

Rewards (on the final turn): ``correct`` (every test passes; weight 1.0), ``pass_rate`` (the
fraction of tests passed; weight 0: logged, not optimized), ``format`` (one python block; weight
``format_weight``), ``tool_calls`` (how many tool calls the episode made; weight 0).

Version history:
    v0: first version.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from random import Random

from rlhub.env import ConfigError, Example, Message, MultiTurnConfig, MultiTurnEnv, ProceduralEnv, Rubric
from rlhub.rewards.code import CODE_INSTRUCTION, code_rubric, fenced_python, run_program
from rlhub.rewards.tool_calls import with_tool_call_count

NUM_TESTS = 5
"""Assert lines per task; the prompt shows the first as an example."""


def sum_of_squares(nums: list[int]) -> int:
    return sum(n * n for n in nums)


def count_words(s: str) -> int:
    return len(s.split())


def clamp(nums: list[int], low: int, high: int) -> list[int]:
    return [min(max(n, low), high) for n in nums]


def _numbers(rng: Random, size: int) -> list[int]:
    return [rng.randint(-9, 9) for _ in range(rng.randint(0, size))]


def _words(rng: Random, size: int) -> str:
    return " ".join("".join(rng.choices("abcxyz", k=rng.randint(1, 5))) for _ in range(rng.randint(0, size)))


@dataclass(frozen=True)
class Task:
    solution: Callable
    """The reference solution: its name is the function asked for, its source the gold answer."""
    returns: str
    """What the function returns, completing "Write a Python function `f(...)` that returns ..."."""
    arguments: Callable[[Random, int], tuple]
    """Random arguments for one test, given the RNG and the largest input size."""


TASKS = [
    Task(sum_of_squares, "the sum of the squares of the numbers in `nums`", lambda rng, n: (_numbers(rng, n),)),
    Task(count_words, "the number of space-separated words in `s`", lambda rng, n: (_words(rng, n),)),
    Task(
        clamp,
        "`nums` with each number below `low` replaced by `low` and each number above `high` by `high`",
        lambda rng, n: (_numbers(rng, n), -rng.randint(0, 5), rng.randint(0, 5)),
    ),
]


def run_python(code: str) -> str:
    """Run a short Python program in a sandbox and return what it prints.

    Args:
        code: A complete program; print the values you want to see, e.g. "print(sum([1, 2]))".
    """
    return run_program(code)


@dataclass
class ScaffoldNameConfig(MultiTurnConfig):
    difficulty: int = 1
    """1 (inputs of up to 3 items) to 3 (up to 9 items)."""

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.difficulty <= 3:
            raise ConfigError(f"difficulty must be in 1..3, got {self.difficulty}; try difficulty=1")


class ScaffoldNameEnv(MultiTurnEnv, ProceduralEnv):
    Config = ScaffoldNameConfig

    def tool_functions(self) -> list:
        return [run_python]

    @property
    def instruction(self) -> str:
        return CODE_INSTRUCTION

    def generate(self, rng: Random, split: str, index: int) -> Example:
        task = rng.choice(TASKS)
        source = inspect.getsource(task.solution)
        signature = source.split("\n", 1)[0].removeprefix("def ").removesuffix(":")
        calls = []
        for _ in range(NUM_TESTS):
            args = task.arguments(rng, 3 * self.config.difficulty)
            calls.append((f"{task.solution.__name__}({', '.join(map(repr, args))})", task.solution(*args)))
        question = f"Write a Python function `{signature}` that returns {task.returns}.\n\n"
        question += f"For example, `{calls[0][0]}` returns `{calls[0][1]!r}`."
        return Example(
            id=f"scaffold-name/{split}/{index}",
            prompt=self.make_prompt(question),
            answer=source,
            info={"tests": [f"assert {call} == {want!r}" for call, want in calls], "example_call": calls[0][0]},
        )

    def gold_transcript(self, example: Example) -> list[Message]:
        """Try the reference solution on the prompt's example with run_python, then answer with it."""
        arguments = {"code": f"{example.answer}\nprint(repr({example.info['example_call']}))"}
        call = json.dumps({"name": "run_python", "arguments": arguments})
        return [
            {"role": "assistant", "content": f"<tool_call>{call}</tool_call>"},
            {"role": "tool", "name": "run_python", "content": self.toolbox.call("run_python", arguments).content},
            {"role": "assistant", "content": fenced_python(example.answer)},
        ]

    def build_rubric(self) -> Rubric:
        return with_tool_call_count(code_rubric(self.config.format_weight, pass_rate_weight=0.0))
