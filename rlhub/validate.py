"""``rlhub validate``: prove an environment's reward is right before anyone spends GPU hours.

Checks, each reported as a row: examples load for both splits; the same seed gives the same examples
and another seed gives others; gold completions earn full marks on every positive-weight reward;
garbage earns nothing; the gymnasium ``reset``/``step`` API agrees with ``score``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rlhub.errors import RLHubError
from rlhub.registry import make
from rlhub.types import Example

GARBAGE = [
    "",
    " ",
    "I don't know.",
    "<answer></answer>",
    "<think></think>",
    "<think>hmm</think><answer></answer>",
    "\x00\x01\x02 binary \udcff",
    "Ω≈ç√∫˜µ≤≥÷ 数学 🤖",
    "a" * 100_000,
    "<answer>" * 50,
]


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Report:
    env_id: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append(Check(name, bool(passed), detail))

    def to_dict(self) -> dict:
        return {"env_id": self.env_id, "passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def _key(ex: Example) -> tuple:
    return (ex.id, repr(ex.prompt), repr(ex.answer), repr(sorted(ex.info.items())))


def validate_env(env_id: str, n: int = 16, **config) -> Report:
    """Run every check on ``n`` examples of ``env_id`` (with ``config`` overrides)."""
    report = Report(env_id)
    try:
        env = make(env_id, **config)
        train = env.examples("train", limit=n, seed=0)
        test = env.examples("test", limit=n, seed=0)
    except RLHubError as exc:
        report.add("examples load", False, str(exc))
        return report
    report.add("examples load", bool(train) and bool(test), f"{len(train)} train, {len(test)} test")
    if not train:
        return report

    again = env.examples("train", limit=n, seed=0)
    other = env.examples("train", limit=n, seed=1)
    same = [_key(e) for e in train] == [_key(e) for e in again]
    differs = len(train) < 2 or [_key(e) for e in train] != [_key(e) for e in other]
    report.add("deterministic", same and differs, "same seed -> same examples; seed 1 -> different order/examples")

    positive = [name for name, w in env.rubric.weights.items() if w > 0]
    failures = []
    for ex in train + test:
        score = env.score(env.gold_completion(ex), ex)
        low = {k: score.rewards[k] for k in positive if score.rewards[k] not in (None, 1.0)}
        if low or score.errors:
            failures.append(f"{ex.id}: {low or score.errors}")
    detail = f"{len(train) + len(test)} gold completions score 1.0 on {positive}"
    report.add("gold scores 1.0", not failures, "; ".join(failures[:3]) or detail)

    bad = []
    for ex in train[:4]:
        for text in GARBAGE:
            score = env.score(text, ex)
            if score.reward > 0 or any((v or 0) > 0 for k, v in score.rewards.items() if k in positive):
                bad.append(f"{text[:20]!r} -> {score.reward:g}")
    report.add("garbage scores 0", not bad, "; ".join(bad[:3]) or f"{len(GARBAGE)} garbage completions x 4 examples")

    ex = train[0]
    obs, _ = env.reset(seed=0, options={"example": ex})
    gold = env.gold_completion(ex)
    turns = [m["content"] for m in gold if m.get("role") == "assistant"] if isinstance(gold, list) else [gold]
    for turn in turns:  # a multi-turn env replays the gold transcript's assistant turns
        _, reward, terminated, truncated, _ = env.step(turn)
        if terminated or truncated:
            break
    expected = env.score(gold, ex).reward
    ok = env.observation_space.contains(obs) and terminated and abs(reward - expected) < 1e-9
    report.add("gymnasium api", ok, f"reset -> prompt, step(gold) -> reward {reward:g}, terminated={terminated}")
    return report
