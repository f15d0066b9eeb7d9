"""Measuring one model on one env: baseline, difficulty and cost (:func:`measure_env`), and trust (:func:`trust`).

Each function returns a record of :mod:`tools.leaderboard.records`; nothing here writes a file
(:mod:`tools.leaderboard.pages` stores the records).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator

from rlhub.authoring.measurements import EMBEDDED, difficulty_levels
from rlhub.errors import DataNotFound, RLHubError
from tools.leaderboard.records import (
    Cost,
    Difficulty,
    Greedy,
    Lengths,
    Measured,
    NotMeasured,
    PassRate,
    Probe,
    Sampled,
    Trust,
)
from tools.leaderboard.stats import quantiles, standard_error


@dataclasses.dataclass
class Settings:
    """How much is measured; the defaults fit a loaded 2-core CPU in under an hour for every env."""

    n: int = 32
    """Test examples scored greedily (temperature 0, one sample each)."""
    sampled_n: int = 8
    """Test examples sampled at temperature 1 (the first ``sampled_n`` of the greedy sample)."""
    k: int = 4
    """Samples per example at temperature 1 (pass@1 and pass@k)."""
    level_n: int = 8
    """Test examples per difficulty level."""
    family_n: int = 4
    """Test examples per reasoning-gym task."""
    family_tasks: int = 8
    """reasoning-gym tasks measured for the family's summary row (spread evenly over its sorted task names)."""
    max_new_tokens: int = 128
    """Tokens per completion (per turn in multi-turn envs)."""
    seed: int = 0
    """Seed of the test sample (``env.examples("test", limit=n, seed=seed)``)."""
    batch_size: int = 32
    """Prompts generated at once."""


def models_to_measure(others: list[str], *, base_url: str | None = None, embedded: bool = True) -> list[str]:
    """The embedded model first (not for an endpoint, nor when left out), then the others, each once."""
    first = [] if base_url or not embedded else [EMBEDDED]
    return first + [model for model in dict.fromkeys(others) if model not in first]


@contextlib.contextmanager
def counting_sandbox_programs() -> Iterator[list[int]]:
    """Count the programs every :class:`rlhub.sandbox.SandboxPool` runs meanwhile (the yielded list's one item)."""
    from rlhub.sandbox.pool import SandboxPool

    count = [0]
    execute = SandboxPool._execute

    def counted(self, *args, **kwargs):
        count[0] += 1
        return execute(self, *args, **kwargs)

    SandboxPool._execute = counted
    try:
        yield count
    finally:
        SandboxPool._execute = execute


def group_of(example) -> str | None:
    """An example's task family, from what its env records: family, category, numbers or constraint count."""
    info = example.info
    for key in ("family", "category", "task"):
        if isinstance(info.get(key), str):
            return info[key]
    if isinstance(info.get("numbers"), list):
        return f"{len(info['numbers'])} numbers"
    if isinstance(info.get("constraints"), list):
        count = len(info["constraints"])
        return f"{count} constraint{'s' * (count != 1)}"
    return None


def _passed(records: list[dict]) -> list[float]:
    return [1.0 if r["passed"] else 0.0 for r in records]


def _pass_table(records: list[dict], labels: dict[str, str | None]) -> list[PassRate]:
    """pass@1 of greedy records by each example's label, labels in sorted order."""
    by: dict[str, list[float]] = {}
    for record in records:
        label = labels.get(record["id"])
        if label is not None:
            by.setdefault(label, []).append(1.0 if record["passed"] else 0.0)
    return [PassRate(label, len(v), sum(v) / len(v), standard_error(v)) for label, v in sorted(by.items())]


def _token_lengths(env, examples, tokenizer) -> Lengths:
    from rlhub.generation.rollout import encode_prompt

    prompts, golds = [], []
    for ex in examples:
        prompts.append(len(encode_prompt(tokenizer, env, ex)))
        gold = env.gold_completion(ex)
        text = gold if isinstance(gold, str) else "\n".join(str(m.get("content", "")) for m in gold)
        golds.append(len(tokenizer(text)["input_ids"]))
    return Lengths(len(examples), quantiles(prompts), quantiles(golds))


def _greedy(result) -> Greedy:
    return Greedy(
        n=result.examples,
        pass_at_1=result.pass_at_1,
        pass_at_1_se=standard_error(_passed(result.records)),
        mean_reward=result.mean_reward,
        mean_reward_se=standard_error([r["reward"] for r in result.records]),
        mean_length=result.mean_length,
        rewards=result.rewards,
    )


def _sampled(result) -> Sampled:
    per_example: dict[str, list[float]] = {}
    for r in result.records:
        per_example.setdefault(r["id"], []).append(1.0 if r["passed"] else 0.0)
    return Sampled(
        n=result.examples,
        k=result.samples_per_example,
        temperature=1.0,
        pass_at=dict(result.pass_at_k),
        pass_at_1_se=standard_error([sum(v) / len(v) for v in per_example.values()]),
        mean_reward=result.mean_reward,
    )


def _reward_cost(env, env_id: str, outputs: list, rows: list) -> Cost:
    """Reward time per completion, and sandbox programs per completion for code envs."""
    from rlhub.env.registry import get_spec
    from rlhub.rewards import code as code_rewards

    with code_rewards._verdict_cache_lock:  # the eval just scored these; cached verdicts would hide the cost
        code_rewards._verdict_cache.clear()
    with counting_sandbox_programs() as programs:
        scored = time.perf_counter()
        env.score_batch(outputs, rows)
        reward_seconds = time.perf_counter() - scored
    sandbox = programs[0] / len(outputs) if get_spec(env_id).domain == "code" else None
    return Cost(1000 * reward_seconds / len(outputs), sandbox)


def measure_env(
    env_id: str, model: str, settings: Settings, *, engine=None, client=None, tokenizer=None
) -> Measured | NotMeasured:
    """Baseline, difficulty and cost of ``model`` on one env.

    Baseline: greedy pass@1 and mean reward on a fixed seeded sample of the test split, with standard errors;
    pass@1 and pass@k of ``k`` samples at temperature 1 on a smaller sample. Difficulty: pass@1 by level (envs
    with a ``difficulty`` field, each level on a sample of its own) and by task family; prompt and gold
    lengths in tokens for data envs. Cost: reward time per completion, sandbox programs per completion.

    Args:
        env_id: A registered env.
        model: The model's name (the ``--model`` value).
        settings: Sample sizes and sampling settings.
        engine: A local rollout engine (``rlhub.evaluate.load_engine``); or
        client: An OpenAI-compatible endpoint's client.
        tokenizer: Counts prompt and gold tokens of data envs (the engine's by default).

    Returns:
        The numbers, or why the env was not measured (its data is not on this machine).
    """
    import rlhub
    from rlhub.env import ProceduralEnv
    from rlhub.evaluate import evaluate_env

    env = rlhub.make(env_id)
    try:
        examples = env.examples("test", limit=settings.n, seed=settings.seed)
    except DataNotFound as exc:
        return NotMeasured(str(exc).splitlines()[0])
    common = dict(
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
        seed=settings.seed,
        progress=False,
        engine=engine,
        client=client,
    )
    start = time.perf_counter()
    greedy = evaluate_env(env_id, model, n=settings.n, k=1, **common)
    sampled = None
    if settings.sampled_n and settings.k > 1:
        sampled = evaluate_env(env_id, model, n=settings.sampled_n, k=settings.k, temperature=1.0, **common)

    by_id = {ex.id: ex for ex in examples}
    rows = [by_id[r["id"]] for r in greedy.records]
    outputs = [r.get("transcript", r["completion"]) for r in greedy.records]
    cost = _reward_cost(env, env_id, outputs, rows)

    families = _pass_table(greedy.records, {ex.id: group_of(ex) for ex in examples})
    levels = difficulty_levels(env) if isinstance(env, ProceduralEnv) else None
    by_level = None
    if levels is not None and settings.level_n:
        by_level = []
        for level in levels:
            result = evaluate_env(env_id, model, n=settings.level_n, env_config={"difficulty": level}, **common)
            passed = _passed(result.records)
            by_level.append(PassRate(f"level {level}", len(passed), result.pass_at_1, standard_error(passed)))
    tokenizer = tokenizer if tokenizer is not None else getattr(engine, "tokenizer", None)
    lengths = None
    if not isinstance(env, ProceduralEnv) and tokenizer is not None:
        lengths = _token_lengths(env, env.examples("test", seed=settings.seed), tokenizer)
    return Measured(
        greedy=_greedy(greedy),
        sampled=None if sampled is None else _sampled(sampled),
        difficulty=Difficulty(by_level, families if len(families) > 1 else None, lengths),
        cost=cost,
        seconds=round(time.perf_counter() - start, 1),
    )


def trust(env_id: str, settings: Settings) -> Trust | NotMeasured:
    """Each ``rlhub validate`` probe's rule, highest scores and verdict, and gold completions scoring 1.0."""
    import rlhub
    from rlhub.authoring.validate import validate_env

    report = validate_env(env_id)
    if report.no_data:
        return NotMeasured(report.no_data.splitlines()[0])
    env = rlhub.make(env_id)
    examples = env.examples("test", limit=settings.n, seed=settings.seed)
    first = env.rubric.names[0]
    scores = env.score_batch([env.gold_completion(ex) for ex in examples], examples)
    return Trust(
        validate_passed=report.passed,
        checks_failed=[c.name for c in report.checks if not c.passed],
        probes=[
            Probe(c.name, c.rule, c.max_correct, c.max_total, c.passed) for c in report.checks if c.kind == "probe"
        ],
        gold_n=len(examples),
        gold_full_marks=sum(1 for s in scores if (s.rewards.get(first) or 0.0) >= 1.0),
        main_reward=first,
    )


def family_tasks(namespace: str = "rg", count: int = 8) -> list[str]:
    """``count`` task names of an id family, spread evenly over its sorted names (a fixed, reproducible choice)."""
    from rlhub.env.registry import family

    names = sorted(spec.id for spec in family(namespace).family_specs())
    if len(names) <= count:
        return names
    step = len(names) / count
    return [names[int(i * step)] for i in range(count)]


def measure_family(
    namespace: str, model: str, settings: Settings, *, engine=None, client=None
) -> Measured | NotMeasured:
    """One summary of an id family: greedy pass@1 over ``family_n`` examples of each of :func:`family_tasks`."""
    from rlhub.evaluate import evaluate_env

    try:
        ids = family_tasks(namespace, settings.family_tasks)
    except RLHubError as exc:
        return NotMeasured(str(exc).splitlines()[0])
    start = time.perf_counter()
    by_task, passed, rewards = [], [], []
    for env_id in ids:
        result = evaluate_env(
            env_id,
            model,
            n=settings.family_n,
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            seed=settings.seed,
            progress=False,
            engine=engine,
            client=client,
        )
        task_passed = _passed(result.records)
        by_task.append(PassRate(env_id, len(task_passed), result.pass_at_1, standard_error(task_passed)))
        passed += task_passed
        rewards += [r["reward"] for r in result.records]
    greedy = Greedy(
        n=len(passed),
        pass_at_1=sum(passed) / len(passed),
        pass_at_1_se=standard_error(passed),
        mean_reward=sum(rewards) / len(rewards),
        mean_reward_se=standard_error(rewards),
        tasks=len(ids),
    )
    difficulty = Difficulty(by_family=by_task)
    return Measured(greedy, None, difficulty, cost=None, seconds=round(time.perf_counter() - start, 1))
