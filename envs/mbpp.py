"""mbpp: short Python programming problems with assert tests (MBPP, Austin et al. 2021).

Data: a local JSONL (``path=``) of MBPP records (``task_id``, ``text``, ``code``, ``test_list``,
``test_setup_code``), a folder ``mbpp/`` under ``RLHUB_DATA``, or the HF dataset
``google-research-datasets/mbpp`` (config ``full``: 374 train, 500 test problems) when online.

The prompt gives the problem statement and the first ``show_tests`` of its tests, which name the
function and show how it is called; the reward runs all of them. Showing every test, as the MBPP
paper does, invites answers that hard-code them.

Output format: reasoning in ``<think>...</think>``, then the solution in one ```python block.

Reward trust: each test is an assert on calls of the solution (``assert f(x) == y``, ``math.isclose``,
``set(...)``); it becomes those calls, whose results come back through a strict serializer, and a check
made outside the sandbox (:mod:`rlhub.sandbox.checks`). A test that does not convert runs as an assert
next to the solution, under the sandbox's audit hook; every test of the shipped sample data converts.
``rlhub validate`` tries 48 forged solutions on 4 problems (frame walking, gc scans, always-equal
objects, lying subclasses, patched test helpers) besides the early-exit, fake-output and
patched-builtins probes: all earn 0.

Rewards: ``correct`` (every test passes, after ``test_setup_code``; weight 1.0), ``pass_rate`` (the
fraction of tests passed; weight ``pass_rate_weight``), ``format`` (one python block; weight
``format_weight``).

Version history:
    v0: first version. Since then, tests are checked outside the sandbox on strictly serialized results
        (an object whose ``==`` lies passed); a result of a type other than the exact built-ins fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhub.env import ConfigError, DataConfig, DatasetEnv, Example, Rubric
from rlhub.rewards.code import CODE_INSTRUCTION, code_rubric, fenced_python


@dataclass
class MBPPConfig(DataConfig):
    dataset: str | None = "google-research-datasets/mbpp"
    show_tests: int = 1
    """How many of each problem's tests the prompt shows (1 to show the function's name and call)."""
    pass_rate_weight: float = 0.0
    """Weight of ``pass_rate``, the fraction of tests passed (0 logs it without optimizing it)."""

    def validate(self) -> None:
        super().validate()
        if self.show_tests < 0:
            raise ConfigError(f"show_tests must be >= 0, got {self.show_tests}; 1 shows the function's name")
        if self.pass_rate_weight < 0:
            raise ConfigError(f"pass_rate_weight must be >= 0, got {self.pass_rate_weight}")


class MBPPEnv(DatasetEnv):
    Config = MBPPConfig
    data_name = "mbpp"
    dataset_config = "full"

    @property
    def instruction(self) -> str:
        return CODE_INSTRUCTION

    def to_example(self, record: dict, split: str, index: int) -> Example | None:
        text, code, tests = record.get("text"), record.get("code"), record.get("test_list")
        if not (isinstance(text, str) and isinstance(code, str) and isinstance(tests, list) and tests):
            return None
        if not all(isinstance(t, str) and t.strip() for t in tests):
            return None
        setup = record.get("test_setup_code") or ""
        question = text.strip()
        shown = tests[: self.config.show_tests]
        if shown:
            question += "\nIt is tested with asserts such as:\n```python\n" + "\n".join(shown) + "\n```"
        return Example(
            id=f"mbpp/{split}/{index}",
            prompt=self.make_prompt(question),
            answer=code,
            info={"task_id": record.get("task_id"), "tests": tests, "setup_code": setup},
        )

    def gold_completion(self, example: Example) -> str:
        return fenced_python(example.answer)

    def build_rubric(self) -> Rubric:
        return code_rubric(self.config.format_weight, self.config.pass_rate_weight)
