"""math: competition mathematics with LaTeX answers (MATH, Hendrycks et al. 2021).

Data: records in the ``HuggingFaceH4/MATH-500`` layout (``problem``, ``answer``, optional
``solution``, ``subject``, ``level``) from a local JSONL (``path=``), a folder ``math/`` under
``RLHUB_DATA``, or the HF dataset when online. MATH-500 has only a test split, so both splits read it
unless ``path`` points at a folder with ``train.jsonl``.

Output format: reasoning in ``<think>...</think>``, the final answer as ``\\boxed{...}`` (or in
``<answer>`` tags with ``answer_format="tags"``).

Rewards: ``correct`` (math-verify equivalence: fractions, radicals, intervals, pi; weight 1.0; an
answer copied from the problem, such as ``\\binom{6}{2}`` for "Compute $\\binom{6}{2}$.", earns 0),
``format`` (exactly one boxed answer, weight ``format_weight``).

Version history:
    v0: first version. Since then, ``correct`` refuses answers copied from the problem (math-verify
        evaluated them: the problem restated scored 1.0 on 4 of the 8 fixture problems).
    v1: the answer check fixed (issue 25, ``rlhub.rewards.math``): a partial parse no longer decides a match
        (``7\\mathrm{i}``, a cut-off ``7 +`` and ``\\boxed{3} + 1`` scored as 7 or 3), ``0,500`` is not 500 and a
        mixed number ``1 1/2`` is 3/2, not 1; thousands spaced with spaces, thin spaces or ``\\,`` (``10 000``), an
        answer in markdown bold and a trailing ``.``/``,``/``;`` are accepted; ``\\mathrm{e}``/``\\mathrm{i}`` are
        the constants, and identical non-numeric answers (``12:00``) match. Found by ``rlhub validate --audit`` and
        the math-verify cross-check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rlhub.env import DataConfig, DatasetEnv, Example, Probe, Rubric
from rlhub.rewards.math import math_rubric

FORMULA = re.compile(r"\$([^$]*(?:[-+*/^!=<>]|\\[A-Za-z])[^$]*)\$")
"""A ``$...$`` span of a problem holding an operation: what a lazy answer would copy."""


@dataclass
class MathConfig(DataConfig):
    answer_format: str = "boxed"
    dataset: str | None = "HuggingFaceH4/MATH-500"


class MathEnv(DatasetEnv):
    Config = MathConfig
    data_name = "math"
    hf_splits = {"train": "test", "test": "test"}

    def to_example(self, record: dict, split: str, index: int) -> Example | None:
        problem, answer = record.get("problem"), record.get("answer")
        if not isinstance(problem, str) or answer in (None, ""):
            return None
        info = {k: record[k] for k in ("subject", "level") if k in record}
        info["question"] = problem  # for the reward: restating the question is not an answer
        return Example(
            id=f"math/{split}/{record.get('unique_id', index)}",
            prompt=self.make_prompt(problem),
            answer=str(answer),
            info=info,
        )

    def probes(self, example: Example) -> list[Probe]:
        """Each formula of the problem as the answer (``\\boxed{\\binom{6}{2}}`` for "Compute $\\binom{6}{2}$.")."""
        formulas = [f for f in FORMULA.findall(example.info["question"]) if f.strip() != example.answer.strip()]
        if not formulas:
            return []
        completions = [self.format_answer(f, reasoning="Copy the problem.") for f in formulas]
        return [Probe("problem restated", completions, about="a formula of the problem as the answer")]

    def build_rubric(self) -> Rubric:
        return math_rubric(self.config.answer_format, self.config.format_weight)
