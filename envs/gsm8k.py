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
    v1: the answer check fixed (issue 25, ``rlhub.rewards.math``): a partial parse no longer decides a match
        (``7\\mathrm{i}``, a cut-off ``7 +`` and ``\\boxed{3} + 1`` scored as 7 or 3), ``0,500`` is not 500 and a
        mixed number ``1 1/2`` is 3/2, not 1; thousands spaced with spaces, thin spaces or ``\\,`` (``10 000``), an
        answer in markdown bold and a trailing ``.``/``,``/``;`` are accepted. Found by ``rlhub validate --audit``
        and the math-verify cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhub.env import DataConfig, DatasetEnv, Example, Rubric
from rlhub.rewards.math import math_rubric
from rlhub.rewards.parsing import split_gsm8k


def parse_solution(solution: str) -> tuple[str, str] | None:
    """The reasoning and the final answer (after ``####``, without thousands separators) of a GSM8K
    reference solution; ``None`` when it has no answer."""
    parsed = split_gsm8k(solution)
    if parsed is None or not parsed[1].replace(",", ""):
        return None
    return parsed[0], parsed[1].replace(",", "")


@dataclass
class GSM8KConfig(DataConfig):
    dataset: str | None = "openai/gsm8k"


class GSM8KEnv(DatasetEnv):
    Config = GSM8KConfig
    data_name = "gsm8k"
    dataset_config = "main"

    def to_example(self, record: dict, split: str, index: int) -> Example | None:
        question, solution = record.get("question"), record.get("answer")
        parsed = parse_solution(solution) if isinstance(solution, str) else None
        if not isinstance(question, str) or parsed is None:
            return None
        reasoning, answer = parsed
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
