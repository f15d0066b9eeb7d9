"""retrieval: answer a two-hop question by searching a document collection over several turns.

Task: each example comes with its own small collection of generated facts about made-up people and
countries ("Ilvara Tomek was born in Draventia.", "The capital of Draventia is Ostrel."), plus
distractors about other entities. The question needs two lookups ("What is the capital of the
country where Ilvara Tomek was born?"): the answer is in no single document, and the names exist
nowhere else, so the model must search.

Tool: ``search(query)`` returns the top documents by BM25 over the example's collection.

Output format: tool calls in ``<tool_call>`` blocks; the final turn has ``<think>...</think>`` and
the answer in ``<answer>...</answer>``.

Rewards: ``correct`` (the answer names the right capital, case- and space-insensitive; weight 1.0),
``format`` (think/answer layout, weight ``format_weight``), ``searches`` (number of search calls,
weight 0: logged).

Version history:
    v0: first version.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from random import Random

from rlhub.env import ConfigError, Example, Message, MultiTurnConfig, MultiTurnEnv, ProceduralEnv, Rubric, ToolBox
from rlhub.rewards.format import think_answer_format
from rlhub.rewards.parsing import completion_text, extract_answer

SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "ven",
    "tor",
    "sil",
    "qua",
    "dre",
    "ost",
    "mar",
    "bel",
    "fen",
    "iri",
    "zan",
    "gol",
    "pe",
    "ru",
    "thal",
    "nor",
    "vi",
    "sa",
]
WORD = re.compile(r"[a-z0-9]+")


def _name(rng: Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def _tokens(text: str) -> list[str]:
    return WORD.findall(text.lower())


def bm25(query: str, documents: list[str], k: int = 3, k1: float = 1.5, b: float = 0.75) -> list[str]:
    """The ``k`` documents with the highest BM25 score for ``query`` (ties keep collection order).

    >>> bm25("capital of Draventia", ["Draventia is far.", "The capital of Draventia is Ostrel."], k=1)
    ['The capital of Draventia is Ostrel.']
    """
    docs = [_tokens(d) for d in documents]
    avg = sum(map(len, docs)) / max(len(docs), 1)
    df = Counter(term for d in docs for term in set(d))
    n = len(docs)

    def score(doc: list[str]) -> float:
        tf = Counter(doc)
        total = 0.0
        for term in set(_tokens(query)):
            if term in tf:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                total += idf * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * len(doc) / avg))
        return total

    ranked = sorted(range(n), key=lambda i: -score(docs[i]))
    return [documents[i] for i in ranked[:k] if score(docs[i]) > 0]


def _normal(text: str) -> str:
    return " ".join(_tokens(text))


def correct_capital(completions, answer, **kwargs):
    """1.0 if the final <answer> names the gold capital (nothing else)."""
    out = []
    for c, gold in zip(completions, answer):
        given = extract_answer(completion_text(c), "tags")
        out.append(float(given is not None and gold is not None and _normal(given) == _normal(str(gold))))
    return out


def searches(completions, transcript, **kwargs):
    return [float(sum(1 for m in t if m.get("role") == "tool" and m.get("name") == "search")) for t in transcript]


@dataclass
class RetrievalConfig(MultiTurnConfig):
    max_turns: int = 4
    distractors: int = 6
    """Unrelated people/towns/countries added to each collection."""
    top_k: int = 3
    """Documents a search returns."""

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.distractors <= 50 or not 1 <= self.top_k <= 10:
            raise ConfigError("distractors must be in 0..50 and top_k in 1..10")


class RetrievalEnv(MultiTurnEnv, ProceduralEnv):
    Config = RetrievalConfig

    def tool_functions(self) -> list:
        return [self._search_tool([])]

    def _search_tool(self, documents: list[str]):
        top_k = self.config.top_k

        def search(query: str) -> str:
            """Search the document collection.

            Args:
                query: Words to look for, e.g. a name.
            """
            hits = bm25(query, documents, k=top_k)
            return "\n".join(hits) if hits else "no results"

        return search

    def toolbox_for(self, example: Example | None) -> ToolBox:
        return ToolBox([self._search_tool(example.info["documents"] if example else [])])

    def generate(self, rng: Random, split: str, index: int) -> Example:
        facts, people = [], []
        for _ in range(self.config.distractors + 1):
            person, country, capital = f"{_name(rng, 2)} {_name(rng, 2)}", _name(rng, 3), _name(rng, 2)
            facts += [f"{person} was born in {country}.", f"The capital of {country} is {capital}."]
            people.append((person, country, capital))
        rng.shuffle(facts)
        person, country, capital = people[0]
        question = f"What is the capital of the country where {person} was born? Use the search tool."
        return Example(
            id=f"retrieval/{split}/{index}",
            prompt=self.make_prompt(question),
            answer=capital,
            info={"documents": facts, "person": person, "country": country},
        )

    def gold_transcript(self, example: Example) -> list[Message]:
        toolbox, messages = self.toolbox_for(example), []
        for query in (example.info["person"], f"capital of {example.info['country']}"):
            call = json.dumps({"name": "search", "arguments": {"query": query}})
            messages.append({"role": "assistant", "content": f"<tool_call>{call}</tool_call>"})
            messages.append(
                {"role": "tool", "name": "search", "content": toolbox.call("search", {"query": query}).content}
            )
        reasoning = f"{example.info['person']} was born in {example.info['country']}."
        messages.append({"role": "assistant", "content": self.format_answer(example.answer, reasoning=reasoning)})
        return messages

    def build_rubric(self) -> Rubric:
        return Rubric(
            {
                "correct": (correct_capital, 1.0),
                "format": (think_answer_format, self.config.format_weight),
                "searches": (searches, 0.0),
            }
        )
