"""bfcl: call the right functions with the right arguments (Berkeley Function Calling Leaderboard v4).

Each question comes with the functions it may use, as BFCL's JSON schemas (in which "dict" is a JSON
object, "float" a number and "tuple" an array). Categories (``categories=``, default all four):
``simple_python`` (one function, one call; 400 questions), ``multiple`` (several functions, one call;
200), ``parallel`` (one function, several calls; 200) and ``parallel_multiple`` (several functions,
several calls; 200). ``irrelevance`` (no function fits, the right answer is no call) is out of scope:
BFCL gives it no possible answers and grades it by the absence of calls, which this rubric does not do.

Data: BFCL's own files, ``BFCL_v4_<category>.json`` with the ground truth in
``possible_answer/BFCL_v4_<category>.json`` (one JSON object per line, matched by ``id``), read from the
folder ``path=``, else from ``bfcl/`` under an ``RLHUB_DATA`` folder, else from the copy rlhub ships in
``data/bfcl/`` (bfcl-eval 2026.3.23, Apache-2.0), else from the ``data/`` folder of the installed
``bfcl-eval`` package. There is no Hugging Face copy to fall back on, so ``dataset=``
must stay unset. BFCL is an evaluation set with one split: ``train`` and ``test`` both serve it.

Output format: one ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` block per call (Hermes /
Qwen style); text and ``<think>`` reasoning around the blocks are allowed. ``answer_format`` does not apply.

Rewards: ``correct`` (the calls match the ground truth by BFCL's AST-checker rules, see
:mod:`rlhub.rewards.tool_calls`; weight 1.0), ``format`` (at least one block and every block parses;
weight ``format_weight``).

Cross-checked against BFCL's own ``ast_checker`` (bfcl-eval 2026.3.23, ``tests/test_bfcl_reference.py``): 20,570 of
20,581 verdicts agree (every shipped question's gold, the audit's rewrites and near misses, and string and
nested-value probes). The differences are deliberate: (1) parallel calls pair off with the ground-truth entries
whenever a pairing exists, where BFCL pairs greedily in ground-truth order and can reject a right answer whose
calls come in another order (1 case); (2) an integer is accepted inside an array of floats, where BFCL type-checks
array items without its int-to-float rule (6); (3) values inside a dict are type-checked against its properties,
so ``20.0`` is refused for an integer, where BFCL compares dict values by ``==`` (2); (4) strings are standardised
(case, spaces, ``, . / - _ * ^``) at every depth, where BFCL compares a list inside a dict by ``==`` (2).

Version history:
    v0: first version.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

from rlhub.env import SPLITS, ConfigError, DataConfig, DataNotFound, DatasetEnv, Example, Message, RLHubError, Rubric
from rlhub.env.data import data_search_path, load_records
from rlhub.rewards.tool_calls import bfcl_gold_calls, format_tool_calls, tool_call_rubric

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple")

PREAMBLE = "You are a helpful assistant."

SYSTEM = """You can call the functions below, given as JSON schemas (in them "dict" means a JSON object, \
"float" a number and "tuple" an array):
<tools>
{tools}
</tools>

To call a function, write its name and arguments as a JSON object inside <tool_call></tool_call> tags:
<tool_call>
{{"name": <function-name>, "arguments": <arguments-json-object>}}
</tool_call>
Write one block per call; to make several calls, write several blocks. Use only the functions and parameters above."""


@dataclass
class BFCLConfig(DataConfig):
    categories: list[str] = field(default_factory=lambda: list(CATEGORIES))
    """BFCL categories to serve: any of simple_python, multiple, parallel, parallel_multiple."""
    system_prompt: str | None = None
    """The opening of the system message, before the functions; None uses a default; "" leaves it out."""

    def validate(self) -> None:
        super().validate()
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown or not self.categories or len(set(self.categories)) != len(self.categories):
            why = " (irrelevance has no possible answers to grade against)" if "irrelevance" in unknown else ""
            raise ConfigError(
                f"categories must list distinct names from {list(CATEGORIES)}, got {self.categories}{why}"
            )
        if self.dataset is not None:
            raise ConfigError("bfcl-v0 reads BFCL's JSON files, not an HF dataset: drop dataset= and pass path=")
        if self.answer_format != "tags":
            raise ConfigError("answer_format does not apply to bfcl-v0 (the answer is the tool calls); leave it unset")
        if self.few_shot:
            raise ConfigError("few_shot must be 0: every BFCL question comes with functions of its own")


def find_data(path: str | None) -> Path:
    """The BFCL data folder (``BFCL_v4_<category>.json``, ``possible_answer/``): path, RLHUB_DATA, shipped, package."""
    if path is not None:
        folder = Path(path).expanduser()
        if not (folder / "possible_answer").is_dir():
            raise RLHubError(
                f"{folder} is not a BFCL data folder: it needs BFCL_v4_<category>.json and possible_answer/"
            )
        return folder
    spec = importlib.util.find_spec("bfcl_eval")  # finds the package without importing it
    packaged = [Path(p) / "data" for p in (spec.submodule_search_locations or [])] if spec else []
    for folder in [root / "bfcl" for root in data_search_path()] + packaged:
        if (folder / "possible_answer").is_dir():
            return folder
    raise DataNotFound(
        "no BFCL data: pass path= to a folder holding BFCL_v4_<category>.json and possible_answer/, "
        "set RLHUB_DATA to a folder holding bfcl/, or pip install bfcl-eval"
    )


def read_category(folder: Path, category: str) -> list[dict]:
    """The questions of one category, each with its ``ground_truth`` (None where BFCL gives none) and ``category``."""

    def read(file: Path) -> list[dict]:
        if not file.is_file():
            raise RLHubError(f"{file} is missing; BFCL's {category} category needs it")
        return load_records(path=str(file), dataset=None, split="test", data_name="bfcl")

    answers = {
        r.get("id"): r.get("ground_truth") for r in read(folder / "possible_answer" / f"BFCL_v4_{category}.json")
    }
    questions = read(folder / f"BFCL_v4_{category}.json")
    return [{**q, "ground_truth": answers.get(q.get("id")), "category": category} for q in questions]


class BFCLEnv(DatasetEnv):
    Config = BFCLConfig
    data_name = "bfcl"

    def records(self, split: str) -> list[dict]:
        if not self._records:
            folder = find_data(self.config.path)
            records = [r for category in self.config.categories for r in read_category(folder, category)]
            self._records = dict.fromkeys(SPLITS, records)
        return self._records[split]

    def tool_prompt(self, question: str, functions: list[dict]) -> list[Message]:
        """The functions and how to call them (in the system message, or the user turn for
        ``prompt_style="user"``), then the question."""
        tools = SYSTEM.format(tools="\n".join(json.dumps(f, ensure_ascii=False) for f in functions))
        opening = PREAMBLE if self.config.system_prompt is None else self.config.system_prompt
        if self.config.prompt_style == "user":
            system, question = opening, f"{tools}\n\n{question}"
        else:
            system = f"{opening}\n\n{tools}" if opening else tools
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]

    def to_example(self, record: dict, split: str, index: int) -> Example | None:
        question, functions, truth = record.get("question"), record.get("function"), record.get("ground_truth")
        turn = question[0] if isinstance(question, list) and len(question) == 1 else None
        if not (isinstance(turn, list) and len(turn) == 1 and isinstance(turn[0], dict)):
            return None
        if turn[0].get("role") != "user" or not isinstance(turn[0].get("content"), str):
            return None
        if not (isinstance(functions, list) and functions and isinstance(truth, list) and truth):
            return None
        return Example(
            id=f"bfcl/{split}/{record.get('id', index)}",
            prompt=self.tool_prompt(turn[0]["content"], functions),
            answer=truth,
            info={"functions": functions, "category": record["category"]},
        )

    def gold_completion(self, example: Example) -> str:
        return format_tool_calls(bfcl_gold_calls(example.answer, example.info["functions"]))

    def build_rubric(self) -> Rubric:
        return tool_call_rubric(self.config.format_weight)
