"""math: competition mathematics with LaTeX answers (MATH, Hendrycks et al. 2021).

Data: records in the ``HuggingFaceH4/MATH-500`` layout (``problem``, ``answer``, optional
``solution``, ``subject``, ``level``) from a local JSONL (``path=``), a folder ``math/`` under
``RLHUB_DATA``, or the HF dataset when online. MATH-500 has only a test split, so both splits read it
unless ``path`` points at a folder with ``train.jsonl``.

Output format: reasoning in ``<think>...</think>``, the final answer as ``\\boxed{...}`` (or in
``<answer>`` tags with ``answer_format="tags"``).

Rewards: ``correct`` (math-verify equivalence: fractions, radicals, intervals, pi; weight 1.0),
``format`` (exactly one boxed answer, weight ``format_weight``).

Version history:
    v0: first version.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhub.env import DataConfig, DatasetEnv
from rlhub.envs._shared import math_rubric
from rlhub.rewards import Rubric
from rlhub.types import Example


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
        return Example(
            id=f"math/{split}/{record.get('unique_id', index)}",
            prompt=self.make_prompt(problem),
            answer=str(answer),
            info=info,
        )

    def build_rubric(self) -> Rubric:
        return math_rubric(self.config.answer_format, self.config.format_weight)
