"""countdown: the Countdown numbers game used by TinyZero for R1-Zero style training.

Task: combine the given numbers with ``+ - * /`` and parentheses, each number exactly once, to reach
the target. Examples are built backwards from a random expression over the numbers, so every one is
solvable; (seed, index) reproduces it.

Output format: reasoning in ``<think>...</think>``, the expression in ``<answer>...</answer>``
(``<answer> (25 - 5) * 4 </answer>``).

Rewards: ``correct`` (1.0 if the expression uses each number once and equals the target, checked by
a safe AST evaluator, never ``eval``; weight 1.0), ``format`` (exact think/answer layout, weight
``format_weight``).

Version history:
    v0: first version.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from random import Random

from rlhub.env import ConfigError, EnvConfig, Example, Probe, ProceduralEnv, Rubric
from rlhub.rewards.countdown import countdown_reward
from rlhub.rewards.format import think_answer_format

QUESTION = (
    "Using the numbers {numbers}, write an expression that equals {target}. You may use + - * / and "
    "parentheses, and must use every number exactly once. Put the expression alone in the <answer> tags."
)


@dataclass
class CountdownConfig(EnvConfig):
    min_numbers: int = 3
    """Fewest numbers per puzzle."""
    max_numbers: int = 4
    """Most numbers per puzzle."""
    max_number: int = 99
    """Numbers are drawn from 1..max_number."""
    max_target: int = 1000
    """Puzzles whose target exceeds this are redrawn."""

    def validate(self) -> None:
        super().validate()
        if self.answer_format != "tags":
            raise ConfigError("countdown answers are expressions: set answer_format='tags'")
        if not 2 <= self.min_numbers <= self.max_numbers <= 6:
            raise ConfigError(f"need 2 <= min_numbers <= max_numbers <= 6, got {self.min_numbers}, {self.max_numbers}")
        if self.max_number < 2 or self.max_target < 1:
            raise ConfigError("max_number must be >= 2 and max_target >= 1")


def _combine(rng: Random, terms: list[tuple[str, Fraction]]) -> tuple[str, Fraction]:
    """Randomly fold terms pairwise with + - * / into one expression, keeping values positive integers."""
    terms = list(terms)
    while len(terms) > 1:
        i, j = rng.sample(range(len(terms)), 2)
        (a, va), (b, vb) = terms[i], terms[j]
        options = [(f"{a} + {b}", va + vb), (f"{a} * {b}", va * vb)]
        if va > vb:
            options.append((f"{a} - {b}", va - vb))
        if vb != 0 and va % vb == 0 and vb != 1:
            options.append((f"{a} / {b}", va / vb))
        text, value = rng.choice(options)
        terms = [t for k, t in enumerate(terms) if k not in (i, j)] + [(f"({text})", value)]
    text, value = terms[0]
    return (text[1:-1] if text.startswith("(") and text.endswith(")") else text), value


class CountdownEnv(ProceduralEnv):
    Config = CountdownConfig

    def generate(self, rng: Random, split: str, index: int) -> Example:
        c = self.config
        for _ in range(1000):
            numbers = [rng.randint(1, c.max_number) for _ in range(rng.randint(c.min_numbers, c.max_numbers))]
            solution, value = _combine(rng, [(str(n), Fraction(n)) for n in numbers])
            if value.denominator == 1 and 1 <= value <= c.max_target:
                break
        target = int(value)
        question = QUESTION.format(numbers=numbers, target=target)
        return Example(
            id=f"countdown/{split}/{index}",
            prompt=self.make_prompt(question),
            answer=target,
            info={"numbers": numbers, "target": target, "solution": solution},
        )

    def gold_completion(self, example: Example) -> str:
        return self.format_answer(example.info["solution"], reasoning="Try combinations.")

    def probes(self, example: Example) -> list[Probe]:
        """Expressions that reach the target but break the rules: a number used twice, extra or no numbers."""
        solution, target, n = example.info["solution"], example.info["target"], example.info["numbers"][0]
        twice = [f"({solution}) * {n} / {n}", f"({solution}) + {n} - {n}"]
        cheats = [*twice, f"{solution} + 0", f"{target}", f"{target} = {target}"]
        completions = [self.format_answer(c, reasoning="Bend the rules.") for c in cheats]
        return [Probe("numbers misused", completions, about="a number used twice, another number, or none")]

    def build_rubric(self) -> Rubric:
        return Rubric({"correct": (countdown_reward, 1.0), "format": (think_answer_format, self.config.format_weight)})
