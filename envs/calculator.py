"""calculator: GSM8K word problems with a calculator tool, over several turns.

Task: solve a grade-school word problem. The model may call ``calculate(expression)`` (exact
arithmetic: + - * / // % ** and parentheses, evaluated by a safe AST walker) as often as it likes
within ``max_turns``, then answers. With ``python_tool=True`` it may also call ``python(code)``,
which runs in rlhub's sandbox (no network, no host files, time and memory limits). Data as
gsm8k-v1 (``path=``, ``RLHUB_DATA/gsm8k/``, the shipped ``data/gsm8k/``, or ``openai/gsm8k`` online).

Output format: tool calls as ``<tool_call>{"name": "calculate", "arguments": {"expression": "..."}}
</tool_call>``; the final turn has reasoning in ``<think>...</think>`` and the number in
``<answer>...</answer>``.

Rewards (on the final turn): ``correct`` (math equivalence, weight 1.0), ``format`` (think/answer
layout, weight ``format_weight``), ``used_calculator`` (1.0 if the transcript called a tool;
weight 0: logged, not optimized).

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
import re
from dataclasses import dataclass
from fractions import Fraction

from rlhub.arithmetic import BINARY_OPERATORS, evaluate
from rlhub.env import DataConfig, DatasetEnv, Example, Message, MultiTurnConfig, MultiTurnEnv, Rubric
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


@dataclass
class CalculatorConfig(MultiTurnConfig, DataConfig):
    dataset: str | None = "openai/gsm8k"
    python_tool: bool = False
    """Also offer ``python(code)``, which runs the model's program in the bubblewrap sandbox."""


class CalculatorEnv(MultiTurnEnv, DatasetEnv):
    Config = CalculatorConfig
    data_name = "gsm8k"
    dataset_config = "main"

    def tool_functions(self) -> list:
        return [calculate, python] if self.config.python_tool else [calculate]

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
        """One calculator call per '<<expr=result>>' annotation of the reference solution, then the answer."""
        import json

        messages: list[Message] = []
        for expression, _ in _ANNOTATION.findall(example.info["reasoning"])[:2]:
            call = json.dumps({"name": "calculate", "arguments": {"expression": expression}})
            messages.append({"role": "assistant", "content": f"<tool_call>{call}</tool_call>"})
            result = self.toolbox.call("calculate", {"expression": expression})
            messages.append({"role": "tool", "name": "calculate", "content": result.content})
        reasoning = _ANNOTATION.sub("", example.info["reasoning"])  # "40-4=<<40-4=36>>36" -> "40-4=36"
        messages.append({"role": "assistant", "content": self.format_answer(example.answer, reasoning=reasoning)})
        return messages

    def build_rubric(self) -> Rubric:
        rubric = math_rubric(self.config.answer_format, self.config.format_weight)
        items = {r.name: (r.fn, r.weight) for r in rubric.items}
        return Rubric({**items, "used_calculator": (used_calculator, 0.0)})
