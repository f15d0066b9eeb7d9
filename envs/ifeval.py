"""ifeval: instruction following with verifiable constraints (the language-free IFEval families).

Task: a short writing request on one of fifteen topics ("Write a short blog post about the ocean."),
followed by 1-3 constraints drawn from twenty kinds: length in words, sentences or paragraphs;
required, forbidden and repeated keywords; letter frequency; all lower or upper case; no commas; the
whole answer as JSON; an exact number of bullet points or of ``SECTION n`` sections; a ``<<title>>``;
quotation marks around the answer; a given first or last phrase; a ``P.S.``; ``[placeholders]``;
``*highlights*``. Kinds that cannot hold together (JSON and bullets, lower case and a required phrase,
...) are never drawn together. A gold response is built with each example, and the numbers in the
constraints (word counts, letter counts) are read off it, so every example is satisfiable and its gold
follows every constraint; (seed, index) reproduces both.

Output format: the response itself, no tags (reasoning in ``<think>...</think>`` before it is ignored). An
empty response follows no constraint, and neither does a completion cut inside its reasoning (it has none).

Rewards: ``all_followed`` (every constraint followed; weight 1.0) and ``fraction_followed`` (the
fraction followed; weight ``fraction_weight``, 0 logs it). With ``content_check`` (the default) both are
0 unless the response mentions the topic, has at least 12 words and copies no 8-word run of the
request, so output that satisfies the constraints while ignoring the task (an empty JSON object, a bag
of the required keywords, the request echoed) earns nothing.

Decisions: where the checkers differ on purpose from the IFEval authors' own (lm-eval's ``ifeval`` task;
``tests/test_ifeval_reference.py`` holds the two to these differences and no others):

* ``don't`` is one word; a line of spaces is a blank line between paragraphs.

* No sentence ends at ``e.g.``, ``i.e.``, ``P.S.``, or ``etc.`` before a lower-case word, or at a list number
  (``1.`` starting a line), where punkt ends one at each; after other abbreviations, initials and ellipses a
  capitalized common word (``The``, ``It``, ``Then``) starts a sentence, where punkt consults corpus statistics.

* Keywords and keyword counts are whole words (lm-eval matches substrings: ``rivers`` holds ``river``).

* Lower and upper case need every letter Latin and of that case, and identify no language: lm-eval's langdetect
  also rejects English it misreads (``HELLO`` as Vietnamese) and accepts a stray Greek or Chinese letter.

* A full-width comma is a comma; JSON is an object or array (lm-eval takes any value, ``"text"`` or ``42``).

* Bullets are markdown ones (``* text``, ``- text``; lm-eval also counts ``*text`` and ``---``); highlights have
  no space inside the stars; a title, a quotation and a placeholder hold a word (not ``<<!!>>``, ``""``, ``[ ]``).

* Exactly n sections, numbered 1..n, each marker starting a line and followed by text (lm-eval: n or more
  markers, anywhere); a postscript starts a line after the answer and says something (lm-eval: ``p.s.``
  anywhere); the end phrase is exact, same case and nothing after it, not even a quote (lm-eval ignores both).

* The start phrase has no lm-eval counterpart.

* Unfinished answers: rewards see the text only. A completion cut inside its reasoning has no response and
  fails; one cut inside the response is scored as it stands (the rollout's ``Completion.finished`` knows it was
  cut, but rewards are not given it).

Version history:
    v0: first version.
    v1: verdicts fixed (issue 25): sentences no longer end at decimals, abbreviations, initials, URLs, e-mail
        addresses or mid-sentence ellipses (and the sentence counts asked for change with them);
        ``## SECTION 1`` and ``**SECTION 1**`` are sections, ``**P.S.**`` is a postscript, and one-line fenced
        JSON is JSON; an empty response, or a completion cut inside its reasoning, follows no constraint (it
        followed "no commas", forbidden words, "at most N"); lower and upper case need Latin letters (text in
        another script followed both), and the lowercase instruction now says "English".
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from random import Random

from rlhub.env import ConfigError, EnvConfig, Example, Probe, ProceduralEnv, Rubric
from rlhub.rewards.ifeval import CHECKERS, all_followed, follows, fraction_followed, paragraphs, sentences, words

TOPICS = [  # (subject as written in the request, the stem the content check looks for)
    ("the bicycle", "bicycle"),
    ("coffee", "coffee"),
    ("the ocean", "ocean"),
    ("public libraries", "librar"),
    ("chess", "chess"),
    ("the moon", "moon"),
    ("rainy days", "rain"),
    ("city gardens", "garden"),
    ("old maps", "map"),
    ("train travel", "train"),
    ("honeybees", "honeybee"),
    ("the piano", "piano"),
    ("volcanoes", "volcano"),
    ("board games", "game"),
    ("winter sports", "winter"),
]
TASKS = [
    "Write a short blog post about {s}.",
    "Write a letter to a friend about {s}.",
    "Write a short essay on {s}.",
    "Describe {s} for a school newsletter.",
    "Write a few notes about {s} for a radio show.",
]
SENTENCES = [
    "{S} is more interesting than it first seems.",
    "Many people think about {s} every day.",
    "The story of {s} started long ago.",
    "{S} has changed the way we live.",
    "There is always something new to learn about {s}.",
    "Experts still argue about {s}.",
    "A good place to begin is the basic idea behind {s}.",
    "{S} can teach us to be patient.",
    "Most families have a story that involves {s}.",
    "In the end {s} is worth a closer look.",
    "Small details about {s} often matter most.",
    "Some of the best ideas about {s} came from curious children.",
]
KEYWORDS = ["river", "lantern", "harvest", "copper", "meadow", "compass", "thunder", "velvet", "ladder", "pepper"]
FORBIDDEN = ["very", "really", "amazing", "thing", "stuff", "basically", "literally", "awesome", "nice", "good"]
STARTS = ["My answer is this.", "Here is what I think.", "Let me begin.", "Great question."]
ENDS = ["That is all for now.", "Thank you for reading.", "Any other questions?", "See you soon."]

CONFLICTS = {
    "json_format": {
        "paragraph_count",
        "sentence_count",
        "bullets",
        "sections",
        "title",
        "quotation",
        "start_phrase",
        "end_phrase",
        "postscript",
        "lowercase",
        "uppercase",
        "no_commas",
        "highlights",
    },
    "lowercase": {"uppercase", "sections", "postscript", "start_phrase", "end_phrase", "keyword_frequency"},
    "uppercase": {"sections", "postscript", "start_phrase", "end_phrase", "keyword_frequency"},
    "paragraph_count": {"bullets", "sections", "title", "postscript"},
    "bullets": {"sections", "highlights", "quotation"},
    "quotation": {"title", "start_phrase", "end_phrase", "postscript", "sections"},
    "title": {"start_phrase"},
    "end_phrase": {"postscript"},
}
"""Kinds never drawn together (either way round): they contradict or make each other ambiguous."""


def _clash(a: str, b: str) -> bool:
    return b in CONFLICTS.get(a, ()) or a in CONFLICTS.get(b, ())


def describe(c: dict) -> str:
    """The instruction for one constraint, as the request states it."""
    kind = c["kind"]
    return {
        "word_count": lambda: f"Answer with {c.get('relation')} {c.get('n')} words.",
        "sentence_count": lambda: f"Your response should contain {c.get('relation')} {c.get('n')} sentences.",
        "paragraph_count": lambda: f"Write exactly {c.get('n')} paragraphs, separated by blank lines.",
        "include_keywords": lambda: f"Include the keywords {' and '.join(map(repr, c.get('keywords', [])))}.",
        "forbidden_words": lambda: f"Do not use the words {' or '.join(map(repr, c.get('forbidden', [])))}.",
        "keyword_frequency": lambda: f"Use the word {c.get('keyword')!r} {c.get('relation')} {c.get('n')} times.",
        "letter_frequency": lambda: (
            f"The letter {c.get('letter')!r} should appear {c.get('relation')} {c.get('n')} times."
        ),
        "lowercase": lambda: "Write your entire response in English lowercase letters; no capital letters are allowed.",
        "uppercase": lambda: "Write your entire response in English capital letters only.",
        "no_commas": lambda: "Do not use any commas in your response.",
        "json_format": lambda: "Wrap your entire output in JSON format.",
        "bullets": lambda: (
            f"Your answer must contain exactly {c.get('n')} bullet points, using markdown bullets "
            "such as '* This is a point.'"
        ),
        "sections": lambda: (
            f"Your response must have {c.get('n')} sections. Mark the beginning of each section "
            "with SECTION X, such as: SECTION 1."
        ),
        "title": lambda: (
            "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>."
        ),
        "quotation": lambda: "Wrap your entire response with double quotation marks.",
        "start_phrase": lambda: f"Start your response with the exact phrase {c.get('phrase')!r}.",
        "end_phrase": lambda: f"Finish your response with the exact phrase {c.get('phrase')!r}.",
        "postscript": lambda: "At the end of your response, add a postscript starting with P.S.",
        "placeholders": lambda: f"Include at least {c.get('n')} placeholders in square brackets, such as [address].",
        "highlights": lambda: (
            f"Highlight at least {c.get('n')} parts of your answer with markdown, such as *highlighted part*."
        ),
    }[kind]()


def build(rng: Random, subject: str, kinds: list[str]) -> tuple[str, list[dict]]:
    """A gold response on ``subject`` and the constraints of ``kinds``, their numbers read off the response."""
    fill = {"s": subject, "S": subject[0].upper() + subject[1:]}
    pool = [t.format(**fill) for t in rng.sample(SENTENCES, len(SENTENCES))]
    shape = [rng.randint(2, 3) for _ in range(rng.randint(2 if "sections" in kinds else 1, 3))]
    paras = [[pool.pop() for _ in range(k)] for k in shape]
    given: dict[str, dict] = {}
    # 1. content the constraints ask for
    if "include_keywords" in kinds:
        keywords = rng.sample(KEYWORDS, rng.randint(1, 2))
        paras[-1].append(f"It also brings to mind {' and '.join(keywords)}.")
        given["include_keywords"] = {"keywords": keywords}
    if "placeholders" in kinds:
        n = rng.randint(1, 3)
        paras[-1].append("Reach me at " + " or ".join(["[address]", "[phone]", "[email]"][:n]) + ".")
        given["placeholders"] = {"n": n}
    if "highlights" in kinds:
        n = rng.randint(1, 3)
        paras[0][0] = " ".join(f"*{w}*" if i < n else w for i, w in enumerate(paras[0][0].split()))
        given["highlights"] = {"n": n}
    # 2. layout
    if "bullets" in kinds:
        items = [s for p in paras for s in p]
        text = "\n".join(f"* {s}" for s in items)
        given["bullets"] = {"n": len(items)}
    elif "sections" in kinds:
        text = "\n\n".join(f"SECTION {i}\n" + " ".join(p) for i, p in enumerate(paras, 1))
        given["sections"] = {"n": len(paras)}
    else:
        text = "\n\n".join(" ".join(p) for p in paras)
    if "title" in kinds:
        text = f"<<All about {subject}>>\n\n{text}"
    if "start_phrase" in kinds:
        given["start_phrase"] = {"phrase": rng.choice(STARTS)}
        gap = "\n" if "bullets" in kinds or "sections" in kinds else " "  # markers must start a line
        text = f"{given['start_phrase']['phrase']}{gap}{text}"
    if "end_phrase" in kinds:
        given["end_phrase"] = {"phrase": rng.choice(ENDS)}
        text = f"{text} {given['end_phrase']['phrase']}"
    if "postscript" in kinds:
        text += "\n\nP.S. I hope you enjoyed this."
    if "quotation" in kinds:
        text = f'"{text}"'
    if "lowercase" in kinds:
        text = text.lower()
    if "uppercase" in kinds:
        text = text.upper()
    if "json_format" in kinds:
        text = json.dumps({"response": text})
    # 3. numbers read off the finished response
    relation = rng.choice(["at least", "at most"])
    count_words, count_sentences = len(words(text)), len(sentences(text))
    given["word_count"] = {
        "relation": relation,
        "n": 5 * max(1, count_words * 4 // 25) if relation == "at least" else 5 * math.ceil(count_words * 1.25 / 5),
    }
    given["sentence_count"] = {
        "relation": relation,
        "n": max(1, count_sentences + (-1 if relation == "at least" else 1)),
    }
    given["paragraph_count"] = {"n": len(paragraphs(text))}
    absent = [w for w in FORBIDDEN if follows(text, {"kind": "forbidden_words", "forbidden": [w]})]
    given["forbidden_words"] = {"forbidden": rng.sample(absent, 2)}
    noun = subject.split()[-1]  # in every sentence, so at least twice
    uses = len(re.findall(rf"\b{noun}\b", text, re.IGNORECASE))
    given["keyword_frequency"] = {"keyword": noun, "relation": "at least", "n": min(3, uses)}
    letter = rng.choice("bcdfghklmnprstwy")
    count = text.lower().count(letter)
    given["letter_frequency"] = (
        {"letter": letter, "relation": "at least", "n": max(1, count * 3 // 4)}
        if count >= 2 and rng.random() < 0.5
        else {"letter": letter, "relation": "less than", "n": count + rng.randint(1, 3)}
    )
    return text, [{"kind": k, **given.get(k, {})} for k in kinds]


@dataclass
class IFEvalConfig(EnvConfig):
    min_constraints: int = 1
    """Fewest constraints per request."""
    max_constraints: int = 3
    """Most constraints per request."""
    content_check: bool = True
    """Whether a response must also do the task (mention the topic, 12+ words, not echo the request)."""
    fraction_weight: float = 0.0
    """Weight of ``fraction_followed`` (0 logs it without optimizing it)."""

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.min_constraints <= self.max_constraints <= 3:
            raise ConfigError(
                f"need 1 <= min_constraints <= max_constraints <= 3, got {self.min_constraints}, {self.max_constraints}"
            )
        if self.fraction_weight < 0:
            raise ConfigError(f"fraction_weight must be >= 0, got {self.fraction_weight}")


class IFEvalEnv(ProceduralEnv):
    Config = IFEvalConfig

    @property
    def instruction(self) -> str:
        return "Answer the request directly, and follow every instruction in it exactly."

    def generate(self, rng: Random, split: str, index: int) -> Example:
        c = self.config
        subject, stem = rng.choice(TOPICS)
        wanted = rng.randint(c.min_constraints, c.max_constraints)
        kinds: list[str] = []
        for kind in rng.sample(sorted(CHECKERS), len(CHECKERS)):
            if len(kinds) < wanted and not any(_clash(kind, k) for k in kinds):
                kinds.append(kind)
        gold, constraints = build(rng, subject, kinds)
        request = " ".join([rng.choice(TASKS).format(s=subject), *map(describe, constraints)])
        return Example(
            id=f"ifeval/{split}/{index}",
            prompt=self.make_prompt(request),
            answer=gold,
            info={"constraints": constraints, "topic": stem if c.content_check else None, "request": request},
        )

    def gold_completion(self, example: Example) -> str:
        return example.answer

    def probes(self, example: Example) -> list[Probe]:
        """Constraint-following output that ignores the task: empty JSON, the keywords alone, another topic."""
        if not example.info["topic"]:
            return []
        required = [w for rule in example.info["constraints"] for w in rule.get("keywords", [])]
        stem = example.info["topic"]
        other = next(s for s, t in TOPICS if t != stem and s.split()[-1].lower() not in example.answer.lower())
        mine = next(s for s, t in TOPICS if t == stem)
        off_topic = re.sub(re.escape(mine), other, example.answer, flags=re.IGNORECASE)
        completions = ["{}", '{"response": ""}', "[]", " ".join([stem, *required]), off_topic]
        layout = re.sub(
            r"\w+(?:'\w+)*", lambda m: m.group() if m.group() in ("SECTION", "P", "S") else "", example.answer
        )
        return [
            Probe("constraints without the task", completions, about="empty JSON, bare keywords, another topic"),
            Probe("empty answer", [layout], about="the gold's layout (markers, brackets, quotes) without its words"),
        ]

    def build_rubric(self) -> Rubric:
        return Rubric(
            {"all_followed": (all_followed, 1.0), "fraction_followed": (fraction_followed, self.config.fraction_weight)}
        )
