"""gsm8k: grade-school math word problems (GSM8K, Cobbe et al. 2021).

Data: a local JSONL (``path=``, lines of ``{"question", "answer"}``), a folder ``gsm8k/`` under
``RLHUB_DATA``, the copy rlhub ships in ``data/gsm8k/`` (MIT, 7,473 train and 1,319 test problems), or
the HF dataset ``openai/gsm8k`` (config ``main``) when online. The gold answer is
the text after ``####`` in the reference solution, thousands separators removed.

Output format: reasoning in ``<think>...</think>``, the number in ``<answer>...</answer>`` (or
``\\boxed{}`` with ``answer_format="boxed"``).

Rewards: ``correct`` (math equivalence of the answer, weight 1.0), ``format`` (layout, weight
``format_weight``).

Version history:
    v0: first version.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhub.env import DataConfig, DatasetEnv
from rlhub.envs._shared import math_rubric
from rlhub.rewards import Rubric
from rlhub.types import Example


def gold_answer(solution: str) -> str | None:
    """The final answer after ``####`` in a GSM8K reference solution, without thousands separators."""
    if "####" not in solution:
        return None
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


@dataclass
class GSM8KConfig(DataConfig):
    dataset: str | None = "openai/gsm8k"


class GSM8KEnv(DatasetEnv):
    Config = GSM8KConfig
    data_name = "gsm8k"
    dataset_config = "main"

    def to_example(self, record: dict, split: str, index: int) -> Example | None:
        question, solution = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not isinstance(solution, str):
            return None
        answer = gold_answer(solution)
        if not answer:
            return None
        reasoning = solution.rsplit("####", 1)[0].strip()
        return Example(
            id=f"gsm8k/{split}/{index}",
            prompt=self.make_prompt(question),
            answer=answer,
            info={"reasoning": reasoning},
        )

    def gold_completion(self, example: Example) -> str:
        return self.format_answer(example.answer, reasoning=example.info.get("reasoning", ""))

    def build_rubric(self) -> Rubric:
        return math_rubric(self.config.answer_format, self.config.format_weight)
