"""calculator: GSM8K word problems with a calculator tool, over several turns.

Task: solve a grade-school word problem. The model may call ``calculate(expression)`` (exact
arithmetic: + - * / // % ** and parentheses, evaluated by a safe AST walker) as often as it likes
within ``max_turns``, then answers. With ``python_tool=True`` it may also call ``python(code)``,
which runs in rlhub's sandbox (no network, no host files, time and memory limits). Data as
gsm8k-v1 (``path=``, ``RLHUB_DATA/gsm8k/``, the shipped ``data/gsm8k/``, or ``openai/gsm8k`` online).

Levels: ``difficulty=0`` (the default) is the GSM8K word problems. ``difficulty`` 1-3 are generated
questions that a small model can answer only with the tool, the same question shape at every level:
1 is ``a * b`` (``a`` up to 9999, ``b`` 11-99), 2 adds or subtracts a third number (``a * b + c``), 3 is
``(a + c) * b - d``. Example ``i`` of a split comes from its own RNG, so ``(seed, index)`` reproduces it;
a curriculum samples among the generated levels (``levels``).

Output format: tool calls as ``<tool_call>{"name": "calculate", "arguments": {"expression": "..."}}
</tool_call>``; the final turn has reasoning in ``<think>...</think>`` and the number in
``<answer>...</answer>``.

Rewards (on the final turn): ``correct`` (math equivalence, weight 1.0; on the generated levels only a
plain number counts, so copying the question's expression earns nothing), ``format`` (think/answer
layout, weight ``format_weight``), ``used_calculator`` (1.0 if the transcript called a tool;
weight 0: logged, not optimized).

Turn rewards (``turn_reward``, used by ``algorithm.credit: turn``; both 0 by default, so the episode's
reward is unchanged): ``tool_error_reward`` for each turn whose tool calls include an error (a malformed
call, an unknown tool, bad arguments, an expression the calculator refuses), and ``result_reward`` once per
episode, for the first turn whose tool result equals the answer or, on GSM8K, one of the reference
solution's intermediate results (its ``<<expression=result>>`` annotations). On GSM8K only a turn with a single
call is paid: its answers and intermediates are often small numbers that parallel calls could guess
(``calculate("1")`` ... ``calculate("20")``), while a generated level's answer is rarely under 1,000 (0, 20 and
24 of 10,000 train examples at levels 1-3; none at or under 20).

Version history:
    v0: first version.
    v1: the answer check fixed (issue 25, ``rlhub.rewards.math``): a partial parse no longer decides a match
        (``7\\mathrm{i}``, a cut-off ``7 +`` and ``\\boxed{3} + 1`` scored as 7 or 3), ``0,500`` is not 500 and a
        mixed number ``1 1/2`` is 3/2, not 1; thousands spaced with spaces, thin spaces or ``\\,`` (``10 000``), an
        answer in markdown bold and a trailing ``.``/``,``/``;`` are accepted. Found by ``rlhub validate --audit``
        and the math-verify cross-check.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from random import Random
from typing import ClassVar

from rlhub.arithmetic import BINARY_OPERATORS, evaluate
from rlhub.env import (
    ConfigError,
    DataConfig,
    DatasetEnv,
    EpisodeState,
    Example,
    Message,
    MultiTurnConfig,
    MultiTurnEnv,
    Probe,
    Rubric,
)
from rlhub.envs.arithmetic import expression_echo_probes
from rlhub.envs.gsm8k import parse_solution
from rlhub.rewards.code import run_program
from rlhub.rewards.math import math_rubric

_ANNOTATION = re.compile(r"<<([^=<>]+)=([^<>]+)>>")


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1 or abs(exponent) > 64:
        raise ValueError("exponents must be whole numbers up to 64")
    return base**exponent


def _bounded(value: int | float) -> Fraction:
    if abs(value) > 1e15:
        raise ValueError("number too large")
    return Fraction(value)


_OPERATORS = {**BINARY_OPERATORS, ast.Pow: _power}


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly.

    Args:
        expression: Numbers, + - * / // % ** and parentheses, e.g. "(16 - 3 - 4) * 2".
    """
    if len(expression) > 200:
        raise ValueError("expression longer than 200 characters")
    value = evaluate(expression.replace("^", "**"), _OPERATORS, literal=_bounded)
    return str(value.numerator) if value.denominator == 1 else f"{float(value):.10g}"


def python(code: str) -> str:
    """Run a short Python program in rlhub's sandbox and return what it prints.

    Args:
        code: A complete program; print the values you need, e.g. "print(16 - 3 - 4)".
    """
    return run_program(code)


def used_calculator(completions, transcript, **kwargs):
    """1.0 if the episode called the calculator at least once."""
    return [
        float(
            any(m.get("role") == "tool" and m.get("name") in ("calculate", "python") for m in t if isinstance(m, dict))
        )
        if isinstance(t, list)
        else 0.0
        for t in transcript
    ]


def generate_question(rng: Random, level: int) -> str:
    """A generated question's expression at ``level`` 1-3 (see the module docstring)."""
    a, b, c = rng.randint(100, 9999), rng.randint(11, 99), rng.randint(100, 9999)
    if level == 1:
        return f"{a} * {b}"
    if level == 2:
        return f"{a} * {b} {rng.choice('+-')} {c}"
    return f"({a} {rng.choice('+-')} {c}) * {b} - {rng.randint(100, 9999)}"


def _number(text: str) -> Fraction | None:
    try:
        return Fraction(text.strip().replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


@dataclass
class CalculatorConfig(MultiTurnConfig, DataConfig):
    dataset: str | None = "openai/gsm8k"
    python_tool: bool = False
    """Also offer ``python(code)``, which runs the model's program in the bubblewrap sandbox."""
    difficulty: int = 0
    """0: GSM8K word problems; 1-3: generated questions that need the tool (``a * b`` up to ``(a + c) * b - d``)."""
    tool_error_reward: float = 0.0
    """Turn reward of a turn whose tool calls include an error (e.g. -0.1); used by ``algorithm.credit: turn``."""
    result_reward: float = 0.0
    """Turn reward, once per episode, when a turn's single tool call first returns the answer or an intermediate."""
    training_only: ClassVar[frozenset[str]] = frozenset({"tool_error_reward", "result_reward"})

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.difficulty <= 3:
            raise ConfigError(f"difficulty must be in 0..3 (0: GSM8K), got {self.difficulty}; try difficulty=1")


class CalculatorEnv(MultiTurnEnv, DatasetEnv):
    Config = CalculatorConfig
    data_name = "gsm8k"
    dataset_config = "main"
    levels = (1, 2, 3)
    """The generated levels of ``config.difficulty``, easiest first (a curriculum samples among them)."""
    generated_size = {"train": 10_000, "test": 500}

    def tool_functions(self) -> list:
        return [calculate, python] if self.config.python_tool else [calculate]

    # --- generated levels -----------------------------------------------------------------------
    def generate(self, split: str, index: int, seed: int) -> Example:
        level = self.config.difficulty
        expression = generate_question(Random(f"calculator/{level}/{seed}/{split}/{index}"), level)
        return Example(
            id=f"calculator/{split}/{index}",
            prompt=self.make_prompt(f"What is {expression}?"),  # rlhub.envs.arithmetic.QUESTION reads it back
            answer=calculate(expression),
            info={"expression": expression},
        )

    def load_examples(self, split: str, limit: int | None, seed: int) -> list[Example]:
        if not self.config.difficulty:
            return super().load_examples(split, limit, seed)
        n = self.generated_size[split] if limit is None else limit
        return [self.generate(split, i, seed) for i in range(n)]

    def demo_examples(self, k: int) -> list[Example]:
        return [self.generate("demo", i, 0) for i in range(k)] if self.config.difficulty else super().demo_examples(k)

    def probes(self, example: Example) -> list[Probe]:
        return expression_echo_probes(example, self.format_answer) if self.config.difficulty else []

    # --- turn rewards ---------------------------------------------------------------------------
    def intermediate_results(self, example: Example) -> set[Fraction]:
        """The values a tool result is paid for (``result_reward``): the answer and the reference's intermediates."""
        texts = [example.answer]
        if "reasoning" in example.info:
            texts += [result for _, result in _ANNOTATION.findall(example.info["reasoning"])]
        return {value for value in map(_number, texts) if value is not None}

    def turn_reward(self, messages: list[Message], replies: list[Message], state: EpisodeState) -> float:
        reward = 0.0
        if any(r["content"].startswith("error:") for r in replies):
            reward += self.config.tool_error_reward
        if self.config.result_reward and state.example is not None:
            targets = self.intermediate_results(state.example)
            episode = messages[len(state.example.prompt) : len(messages) - len(replies)]
            earlier = [m for m in episode if m.get("role") == "tool"]
            guessable = not self.config.difficulty  # GSM8K's small values: parallel calls could guess them
            hits = [r for r in replies if _number(r["content"]) in targets]
            paid_before = any(_number(m["content"]) in targets for m in earlier)
            if hits and not paid_before and (len(replies) == 1 or not guessable):
                reward += self.config.result_reward
        return reward

    def to_example(self, record: dict, split: str, index: int) -> Example | None:
        question, solution = record.get("question"), record.get("answer")
        parsed = parse_solution(solution) if isinstance(solution, str) else None
        if not isinstance(question, str) or parsed is None:
            return None
        reasoning, answer = parsed
        return Example(
            id=f"calculator/{split}/{index}",
            prompt=self.make_prompt(question),
            answer=answer,
            info={"reasoning": reasoning},
        )

    def gold_transcript(self, example: Example) -> list[Message]:
        """One calculator call per '<<expr=result>>' annotation of the reference solution (at most two), then the
        answer; on a generated level, one call with the question's expression."""
        if "expression" in example.info:
            expressions = [example.info["expression"]]
            reasoning = f"{expressions[0]} = {example.answer}"
        else:
            expressions = [expression for expression, _ in _ANNOTATION.findall(example.info["reasoning"])[:2]]
            reasoning = _ANNOTATION.sub("", example.info["reasoning"])  # "40-4=<<40-4=36>>36" -> "40-4=36"
        messages: list[Message] = []
        for expression in expressions:
            call = json.dumps({"name": "calculate", "arguments": {"expression": expression}})
            messages.append({"role": "assistant", "content": f"<tool_call>{call}</tool_call>"})
            result = self.toolbox.call("calculate", {"expression": expression})
            messages.append({"role": "tool", "name": "calculate", "content": result.content})
        messages.append({"role": "assistant", "content": self.format_answer(example.answer, reasoning=reasoning)})
        return messages

    def build_rubric(self) -> Rubric:
        rubric = math_rubric(
            self.config.answer_format, self.config.format_weight, numbers_only=bool(self.config.difficulty)
        )
        items = {r.name: (r.fn, r.weight) for r in rubric.items}
        return Rubric({**items, "used_calculator": (used_calculator, 0.0)})
