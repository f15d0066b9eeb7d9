"""scaffold_name: call the right functions with the right arguments, in one turn (a scaffold toy).

Task: a request ("What's the weather in Lisbon, in fahrenheit?") and the functions that may serve
it, as JSON schemas; the model answers with the calls, which are graded, not run. ``difficulty``
is the number of calls a request needs (parallel calls from 2). Example ``i`` of a split comes from
its own RNG, so (seed, index) reproduces it.
TODO: put your functions in ``FUNCTIONS`` and your requests in ``generate``. A ground truth lists
one ``{function: {parameter: [acceptable values]}}`` per expected call (``""`` among the values
marks a parameter that may be left out), as in BFCL; see ``rlhub.rewards.tool_calls``.

Output format: one ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` block per call;
reasoning in ``<think>...</think>`` before them is allowed. ``answer_format`` does not apply.

Rewards: ``correct`` (the calls match the ground truth, in any order, by BFCL's AST-checker rules;
weight 1.0), ``format`` (at least one block and every block parses; weight ``format_weight``).

Version history:
    v0: first version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from random import Random

from rlhub.env import ConfigError, EnvConfig, Example, ProceduralEnv, Rubric
from rlhub.rewards.tool_calls import bfcl_gold_calls, format_tool_calls, tool_call_rubric

FUNCTIONS = [
    {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "dict",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. 'Lisbon'."},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit."},
            },
            "required": ["city"],
        },
    },
    {
        "name": "convert_currency",
        "description": "Convert an amount of money from one currency to another.",
        "parameters": {
            "type": "dict",
            "properties": {
                "amount": {"type": "float", "description": "The amount to convert."},
                "source": {"type": "string", "description": "ISO code of the currency held, e.g. 'EUR'."},
                "target": {"type": "string", "description": "ISO code of the currency wanted, e.g. 'JPY'."},
            },
            "required": ["amount", "source", "target"],
        },
    },
]
"""The functions the model may call, as JSON schemas (BFCL's types: "dict" is an object, "float" a number)."""

CITIES = ["Lisbon", "Nairobi", "Osaka", "Quito", "Tromso", "Adelaide"]
CURRENCIES = ["EUR", "USD", "JPY", "GBP", "BRL", "INR"]

INSTRUCTION = """You can call these functions, given as JSON schemas:
{functions}
To call a function, write <tool_call>{{"name": <function name>, "arguments": <arguments as a JSON object>}}</tool_call>.
Write one block per call; for several calls, write several blocks."""


@dataclass
class ScaffoldNameConfig(EnvConfig):
    difficulty: int = 1
    """Calls per request: 1 (a single call) to 3 (three parallel calls)."""

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.difficulty <= 3:
            raise ConfigError(f"difficulty must be in 1..3, got {self.difficulty}; try difficulty=1")


class ScaffoldNameEnv(ProceduralEnv):
    Config = ScaffoldNameConfig

    @property
    def instruction(self) -> str:
        return INSTRUCTION.format(functions="\n".join(json.dumps(f) for f in FUNCTIONS))

    def request(self, rng: Random) -> tuple[str, dict]:
        """One request in words, and its ground-truth call."""
        if rng.random() < 0.5:
            city = rng.choice(CITIES)
            if rng.random() < 0.5:
                return f"the weather in {city}", {"get_weather": {"city": [city], "unit": ["celsius", ""]}}
            unit = rng.choice(["celsius", "fahrenheit"])
            return f"the weather in {city}, in {unit}", {"get_weather": {"city": [city], "unit": [unit]}}
        amount, (source, target) = rng.randint(1, 500), rng.sample(CURRENCIES, 2)
        truth = {"convert_currency": {"amount": [amount], "source": [source], "target": [target]}}
        return f"how much {amount} {source} is in {target}", truth

    def generate(self, rng: Random, split: str, index: int) -> Example:
        requests = [self.request(rng) for _ in range(self.config.difficulty)]
        question = "Tell me " + " and ".join(text for text, _ in requests) + "."
        return Example(
            id=f"scaffold-name/{split}/{index}",
            prompt=self.make_prompt(question),
            answer=[truth for _, truth in requests],
            info={"functions": FUNCTIONS},
        )

    def gold_completion(self, example: Example) -> str:
        return format_tool_calls(bfcl_gold_calls(example.answer, example.info["functions"]))

    def build_rubric(self) -> Rubric:
        return tool_call_rubric(self.config.format_weight)
