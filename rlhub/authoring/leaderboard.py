"""Measured env cards and the leaderboard: what a model scores on each env, how hard, how trustworthy, how costly.

``python -m rlhub.authoring.leaderboard measure`` evaluates the embedded model (and any ``--model``, or an endpoint
with ``--base-url``) on every registered env and stores the numbers, dated with the commit, in
``docs/measurements.json``:

* Baseline: greedy pass@1 and mean reward on a fixed seeded sample of the test split, with the sample
  size and standard errors; pass@1 and pass@k of ``k`` samples at temperature 1 on a smaller sample.
* Difficulty: pass@1 by difficulty level (envs with a ``difficulty`` field, each level measured on a
  sample of its own) and by task family (the examples' ``family``/``category``, the number of numbers or
  of constraints), as a table and a PNG bar chart; for data envs, prompt and gold lengths in tokens.
* Trust: each ``rlhub validate`` probe's rule and highest scores, and how many gold completions of the
  measured sample score 1.0.
* Cost: reward time per completion, and sandbox programs per completion for code envs.

reasoning-gym's tasks (``rg/<task>-v0``) are measured as one family: a fixed spread of its tasks, a few
examples each. ``python -m rlhub.authoring.leaderboard write`` renders ``docs/leaderboard.md`` and
``docs/leaderboard.json`` from the stored numbers, and :func:`card_sections` renders them into env cards;
tests keep both current against the stored JSON, which CI never re-measures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlhub.errors import DataNotFound, RLHubError

EMBEDDED = "smollm2-135m-instruct"
"""The model every env is measured with."""

WRITE_COMMAND = "python -m rlhub.authoring.leaderboard write"
RECORD_COMMAND = "python -m rlhub.authoring.leaderboard record-run"
GENERATED = f"<!-- Generated from docs/measurements.json by `{WRITE_COMMAND}`; do not edit by hand. -->"


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


def repo_root() -> Path:
    """The checkout holding ``registry.yaml`` and ``docs/`` (found upward from this file)."""
    here = Path(__file__).resolve()
    for folder in here.parents:
        if (folder / "registry.yaml").is_file() and (folder / "docs").is_dir():
            return folder
    raise RLHubError("no checkout with registry.yaml and docs/ above rlhub; run from a source checkout of rlhub")


def measurements_path() -> Path:
    return repo_root() / "docs" / "measurements.json"


def load_measurements(path: str | Path | None = None) -> dict[str, Any]:
    """The stored measurements, or an empty record when none are stored (cards then say "not measured")."""
    path = Path(path) if path else measurements_path()
    if not path.is_file():
        return {"models": {}, "envs": {}}
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------
# Statistics.
# ---------------------------------------------------------------------------------------------------


def standard_error(values: list[float]) -> float:
    """Standard error of the mean (sample standard deviation / sqrt(n)); 0 for fewer than two values.

    >>> round(standard_error([1.0, 0.0, 1.0, 0.0]), 4), standard_error([1.0])
    (0.2887, 0.0)
    """
    if len(values) < 2:
        return 0.0
    return statistics.stdev(values) / math.sqrt(len(values))


def quantiles(values: list[int]) -> dict[str, float]:
    """min, quartiles, 90th percentile, max and mean of lengths.

    >>> quantiles([1, 2, 3, 4, 5])["median"], quantiles([1, 2, 3, 4, 5])["max"]
    (3.0, 5)
    """
    ordered = sorted(values)

    def at(q: float) -> float:
        pos = q * (len(ordered) - 1)
        low = math.floor(pos)
        high = min(low + 1, len(ordered) - 1)
        return round(ordered[low] + (ordered[high] - ordered[low]) * (pos - low), 1)

    return {
        "min": ordered[0],
        "p25": at(0.25),
        "median": at(0.5),
        "p75": at(0.75),
        "p90": at(0.9),
        "max": ordered[-1],
        "mean": round(sum(ordered) / len(ordered), 1),
    }


# ---------------------------------------------------------------------------------------------------
# Measuring.
# ---------------------------------------------------------------------------------------------------


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


def _pass_table(records: list[dict], labels: dict[str, str | None]) -> list[dict[str, Any]]:
    """pass@1 of greedy records by each example's label, labels in sorted order."""
    by: dict[str, list[float]] = {}
    for record in records:
        label = labels.get(record["id"])
        if label is not None:
            by.setdefault(label, []).append(1.0 if record["passed"] else 0.0)
    return [
        {"group": label, "n": len(v), "pass@1": sum(v) / len(v), "se": standard_error(v)}
        for label, v in sorted(by.items())
    ]


def _difficulty_levels(env) -> range | None:
    """The levels of an env's ``difficulty`` field (1.. the first value its config refuses), or None."""
    from rlhub.errors import ConfigError

    if not any(f.name == "difficulty" for f in dataclasses.fields(env.config)):
        return None
    top = 1
    for level in range(1, 11):
        try:
            dataclasses.replace(env.config, difficulty=level).validate()
        except ConfigError:
            break
        top = level
    return range(1, top + 1)


def _token_lengths(env, examples, tokenizer) -> dict[str, dict[str, float]]:
    from rlhub.generation.rollout import encode_prompt

    prompts, golds = [], []
    for ex in examples:
        prompts.append(len(encode_prompt(tokenizer, env, ex)))
        gold = env.gold_completion(ex)
        text = gold if isinstance(gold, str) else "\n".join(str(m.get("content", "")) for m in gold)
        golds.append(len(tokenizer(text)["input_ids"]))
    return {"examples": len(examples), "prompt_tokens": quantiles(prompts), "gold_tokens": quantiles(golds)}


def _baseline(result, sampled) -> dict[str, Any]:
    passed = [1.0 if r["passed"] else 0.0 for r in result.records]
    rewards = [r["reward"] for r in result.records]
    out = {
        "greedy": {
            "n": result.examples,
            "pass@1": result.pass_at_1,
            "pass@1_se": standard_error(passed),
            "mean_reward": result.mean_reward,
            "mean_reward_se": standard_error(rewards),
            "mean_length": result.mean_length,
            "rewards": result.rewards,
        }
    }
    if sampled is not None:
        per_example: dict[str, list[float]] = {}
        for r in sampled.records:
            per_example.setdefault(r["id"], []).append(1.0 if r["passed"] else 0.0)
        out["sampled"] = {
            "n": sampled.examples,
            "k": sampled.samples_per_example,
            "temperature": 1.0,
            **sampled.pass_at_k,
            "pass@1_se": standard_error([sum(v) / len(v) for v in per_example.values()]),
            "mean_reward": sampled.mean_reward,
        }
    return out


def measure_env(env_id: str, model: str, settings: Settings, *, engine=None, client=None, tokenizer=None) -> dict:
    """Baseline, difficulty and cost of ``model`` on one env (see the module docstring).

    Args:
        env_id: A registered env.
        model: The model's name (the ``--model`` value).
        settings: Sample sizes and sampling settings.
        engine: A local rollout engine (``rlhub.evaluate.load_engine``); or
        client: An OpenAI-compatible endpoint's client.
        tokenizer: Counts prompt and gold tokens of data envs (the engine's by default).

    Returns:
        ``{"status": "measured", "baseline": ..., "difficulty": ..., "cost": ...}``, or
        ``{"status": "not measured", "reason": ...}`` when the env's data is not on this machine.
    """
    import rlhub
    from rlhub.env import ProceduralEnv
    from rlhub.env.registry import get_spec
    from rlhub.evaluate import evaluate_env

    env = rlhub.make(env_id)
    try:
        examples = env.examples("test", limit=settings.n, seed=settings.seed)
    except DataNotFound as exc:
        return {"status": "not measured", "reason": str(exc).splitlines()[0]}
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
    from rlhub.rewards import code as code_rewards

    with code_rewards._verdict_cache_lock:  # the eval just scored these; cached verdicts would hide the cost
        code_rewards._verdict_cache.clear()
    with counting_sandbox_programs() as programs:
        scored = time.perf_counter()
        env.score_batch(outputs, rows)
        reward_seconds = time.perf_counter() - scored
    cost: dict[str, Any] = {"reward_ms_per_completion": 1000 * reward_seconds / len(outputs)}
    if get_spec(env_id).domain == "code":
        cost["sandbox_programs_per_completion"] = programs[0] / len(outputs)

    difficulty: dict[str, Any] = {}
    labels = {ex.id: group_of(ex) for ex in examples}
    families = _pass_table(greedy.records, labels)
    if len(families) > 1:
        difficulty["by_family"] = families
    levels = _difficulty_levels(env) if isinstance(env, ProceduralEnv) else None
    if levels is not None and settings.level_n:
        difficulty["by_level"] = []
        for level in levels:
            result = evaluate_env(env_id, model, n=settings.level_n, env_config={"difficulty": level}, **common)
            passed = [1.0 if r["passed"] else 0.0 for r in result.records]
            difficulty["by_level"].append(
                {"group": f"level {level}", "n": len(passed), "pass@1": result.pass_at_1, "se": standard_error(passed)}
            )
    tokenizer = tokenizer if tokenizer is not None else getattr(engine, "tokenizer", None)
    if not isinstance(env, ProceduralEnv) and tokenizer is not None:
        difficulty["lengths"] = _token_lengths(env, env.examples("test", seed=settings.seed), tokenizer)
    return {
        "status": "measured",
        "baseline": _baseline(greedy, sampled),
        "difficulty": difficulty,
        "cost": cost,
        "seconds": round(time.perf_counter() - start, 1),
    }


def trust(env_id: str, settings: Settings) -> dict[str, Any]:
    """Each ``rlhub validate`` probe's rule, highest scores and verdict, and gold completions scoring 1.0."""
    import rlhub
    from rlhub.authoring.validate import validate_env

    report = validate_env(env_id)
    if report.no_data:
        return {"status": "not measured", "reason": report.no_data.splitlines()[0]}
    env = rlhub.make(env_id)
    examples = env.examples("test", limit=settings.n, seed=settings.seed)
    first = env.rubric.names[0]
    scores = env.score_batch([env.gold_completion(ex) for ex in examples], examples)
    gold_full = sum(1 for s in scores if (s.rewards.get(first) or 0.0) >= 1.0)
    return {
        "status": "measured",
        "validate_passed": report.passed,
        "checks_failed": [c.name for c in report.checks if not c.passed],
        "probes": [
            {"name": c.name, "rule": c.rule, "max_correct": c.max_correct, "max_total": c.max_total, "passed": c.passed}
            for c in report.checks
            if c.kind == "probe"
        ],
        "gold": {"n": len(examples), "full_marks": gold_full, "reward": first},
    }


def family_tasks(namespace: str = "rg", count: int = 8) -> list[str]:
    """``count`` task names of an id family, spread evenly over its sorted names (a fixed, reproducible choice)."""
    from rlhub.env.registry import family

    names = sorted(spec.id for spec in family(namespace).family_specs())
    if len(names) <= count:
        return names
    step = len(names) / count
    return [names[int(i * step)] for i in range(count)]


def measure_family(namespace: str, model: str, settings: Settings, *, engine=None, client=None) -> dict[str, Any]:
    """One summary of an id family: greedy pass@1 over ``family_n`` examples of each of :func:`family_tasks`."""
    from rlhub.evaluate import evaluate_env

    try:
        ids = family_tasks(namespace, settings.family_tasks)
    except RLHubError as exc:
        return {"status": "not measured", "reason": str(exc).splitlines()[0]}
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
        task_passed = [1.0 if r["passed"] else 0.0 for r in result.records]
        by_task.append({"group": env_id, "n": len(task_passed), "pass@1": result.pass_at_1, "se": 0.0})
        by_task[-1]["se"] = standard_error(task_passed)
        passed += task_passed
        rewards += [r["reward"] for r in result.records]
    return {
        "status": "measured",
        "baseline": {
            "greedy": {
                "n": len(passed),
                "tasks": len(ids),
                "pass@1": sum(passed) / len(passed),
                "pass@1_se": standard_error(passed),
                "mean_reward": sum(rewards) / len(rewards),
                "mean_reward_se": standard_error(rewards),
            }
        },
        "difficulty": {"by_family": by_task},
        "seconds": round(time.perf_counter() - start, 1),
    }


def commit_of(root: Path) -> str:
    """The checkout's commit (``+dirty`` when tracked files differ from it), or "unknown" outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=root, capture_output=True, text=True)
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def difficulty_chart(env_id: str, model: str, difficulty: dict[str, Any], folder: Path) -> str | None:
    """A PNG bar chart of pass@1 by level and by family (with standard errors); its file name, or None."""
    tables = [
        (name, difficulty[key]) for key, name in (("by_level", "level"), ("by_family", "family")) if difficulty.get(key)
    ]
    if not tables:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 3.2), squeeze=False)
    for ax, (name, rows) in zip(axes[0], tables):
        labels = [str(r["group"]).removeprefix("rg/").removesuffix("-v0") for r in rows]
        ax.bar(labels, [r["pass@1"] for r in rows], yerr=[r["se"] for r in rows], color="#4c72b0", capsize=3)
        ax.set_ylim(0, 1)
        ax.set_ylabel("greedy pass@1")
        ax.set_title(f"by {name} (n per bar: {', '.join(str(r['n']) for r in rows)})", fontsize=8)
        ax.tick_params(axis="x", labelrotation=30 if len(labels) > 4 else 0, labelsize=7)
    fig.suptitle(f"{env_id}: {model}", fontsize=9)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{env_id.replace('/', '_').replace('<task>', 'family')}-difficulty.png"
    fig.savefig(folder / name, dpi=80)
    plt.close(fig)
    return name


def measure(
    models: list[str],
    settings: Settings,
    *,
    only: list[str] | None = None,
    base_url: str | None = None,
    out: str | Path | None = None,
    with_trust: bool = True,
    log=print,
) -> dict[str, Any]:
    """Measure ``models`` on every registered env (or ``only`` these ids) and store the numbers in ``out``.

    Envs already stored in ``out`` and not re-measured keep their numbers; the file is rewritten after
    every env, so a long run that stops keeps what it measured.
    """
    import rlhub
    from rlhub.evaluate import load_engine, model_fingerprint

    out = Path(out) if out else measurements_path()
    data = load_measurements(out)
    specs = [s for s in rlhub.list_envs() if s.source == "rlhub"]
    ids = [s.id for s in specs] + ["rg/<task>-v0"]
    if only:
        unknown = sorted(set(only) - set(ids))
        if unknown:
            raise RLHubError(f"unknown env ids {unknown}; measure registered ids or rg/<task>-v0")
        ids = [i for i in ids if i in only]
    stamp = ("commit", "date", "settings")  # each result keeps those it was measured with
    for entry in data["models"].values():
        for result in entry["envs"].values():
            result.update({key: data[key] for key in stamp if key in data and key not in result})
    data.update(
        commit=commit_of(repo_root()),
        date=datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        rlhub_version=rlhub.__version__,
        settings=dataclasses.asdict(settings),
    )
    charts = out.parent / "measurements"

    def save() -> None:
        out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    for env_id in ids if with_trust else []:
        if env_id.startswith("rg/"):
            continue
        started = time.perf_counter()
        data["envs"][env_id] = trust(env_id, settings)
        log(f"trust {env_id}: {time.perf_counter() - started:.0f} s")
        save()
    for model in models:
        client, engine = None, None
        if base_url:
            from rlhub.generation.openai import ChatClient

            client = ChatClient(base_url, model)
        else:
            engine = load_engine(model, seed=settings.seed)
        entry = data["models"].setdefault(model, {"envs": {}})
        entry["fingerprint"] = model_fingerprint(model, base_url)
        for env_id in ids:
            if env_id.startswith("rg/"):
                result = measure_family("rg", model, settings, engine=engine, client=client)
            else:
                result = measure_env(env_id, model, settings, engine=engine, client=client)
            if model == EMBEDDED and result.get("difficulty"):
                result["chart"] = difficulty_chart(env_id, model, result["difficulty"], charts)
            entry["envs"][env_id] = {**result, **{key: data[key] for key in stamp}}
            if result["status"] == "measured":
                greedy = result["baseline"]["greedy"]
                log(f"{model} {env_id}: pass@1 {greedy['pass@1']:.3f} (n={greedy['n']}) in {result['seconds']} s")
            else:
                log(f"{model} {env_id}: not measured ({result['reason']})")
            save()
    return data


# ---------------------------------------------------------------------------------------------------
# Rendering: card sections, docs/leaderboard.md and docs/leaderboard.json.
# ---------------------------------------------------------------------------------------------------


def _pct(value: float | None, se: float | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" + (f" ± {100 * se:.1f}" if se is not None else "")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _dated(data: dict[str, Any]) -> str:
    version = data.get("rlhub_version", "?")
    return f"measured {data.get('date', '?')} at commit `{data.get('commit', '?')}` (rlhub {version})"


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|").replace("<", "&lt;")


def card_sections(env_id: str, level: int = 2, data: dict[str, Any] | None = None) -> list[str]:
    """An env card's Baseline, Difficulty, Trust and Cost sections, from the stored measurements.

    Args:
        env_id: The env.
        level: The heading level of the sections.
        data: The measurements (default: ``docs/measurements.json``).

    Returns:
        Markdown blocks; one "not measured" line per section when nothing is stored for the env.
    """
    data = load_measurements() if data is None else data
    h = "#" * level
    command = "`python -m rlhub.authoring.leaderboard measure --only " + env_id + "`"
    result = data.get("models", {}).get(EMBEDDED, {}).get("envs", {}).get(env_id)
    checks = data.get("envs", {}).get(env_id)
    if result is not None:  # the date, commit and settings of this env's own measurement
        data = {**data, **{key: result[key] for key in ("commit", "date", "settings") if key in result}}
    out = [f"{h} Baseline"]
    if result is None and env_id.startswith("rg/"):  # measured as one family: this task's row, if it was drawn
        family = data.get("models", {}).get(EMBEDDED, {}).get("envs", {}).get("rg/<task>-v0") or {}
        rows = [r for r in (family.get("difficulty") or {}).get("by_family", []) if r["group"] == env_id]
        said = (
            f"greedy pass@1 of `{EMBEDDED}` {_pct(rows[0]['pass@1'], rows[0]['se'])} on {rows[0]['n']} test examples"
            if rows
            else "this task was not among those drawn"
        )
        out.append(f"_reasoning-gym tasks are measured as one family (see docs/leaderboard.md): {said}._")
    elif result is None:
        out.append(f"_Not measured yet; {command} measures it._")
    elif result["status"] != "measured":
        out.append(f"_Not measured: {_esc(result['reason'])}_")
    else:
        settings = data.get("settings", {})
        greedy = result["baseline"]["greedy"]
        out.append(
            f"`{EMBEDDED}` on a fixed sample of the test split (seed {settings.get('seed', 0)}, at most "
            f"{settings.get('max_new_tokens', '?')} new tokens per turn), {_dated(data)}; ± is one standard error."
        )
        rows = [
            [
                "greedy",
                str(greedy["n"]),
                "1",
                _pct(greedy["pass@1"], greedy["pass@1_se"]),
                "",
                f"{greedy['mean_reward']:.3f} ± {greedy['mean_reward_se']:.3f}",
            ]
        ]
        sampled = result["baseline"].get("sampled")
        if sampled:
            k = sampled["k"]
            rows.append(
                [
                    f"temperature {sampled['temperature']:g}",
                    str(sampled["n"]),
                    str(k),
                    _pct(sampled["pass@1"], sampled["pass@1_se"]),
                    _pct(sampled.get(f"pass@{k}")),
                    f"{sampled['mean_reward']:.3f}",
                ]
            )
        out.append(_table(["sampling", "examples", "samples each", "pass@1", "pass@k", "mean reward"], rows))
        if not sampled:
            out.append("_No temperature-1 samples in this measurement (`sampled_n` 0)._")
    out.append(f"{h} Difficulty")
    difficulty = (result or {}).get("difficulty") or {}
    measured = result is not None and result["status"] == "measured"
    levels_skipped = False
    if measured and "by_level" not in difficulty and not env_id.startswith("rg/"):
        import rlhub

        levels_skipped = _difficulty_levels(rlhub.make(env_id)) is not None
    if levels_skipped:
        out.append("_Per-level samples were not part of this measurement (`level_n` 0)._")
    elif not difficulty:
        out.append("_No levels or families._" if measured else "_Not measured._")
    for key, title in (("by_level", "difficulty level"), ("by_family", "task family")):
        if difficulty.get(key):
            out.append(f"Greedy pass@1 by {title}:")
            rows = [[f"`{r['group']}`", str(r["n"]), _pct(r["pass@1"], r["se"])] for r in difficulty[key]]
            out.append(_table([title, "examples", "pass@1"], rows))
    if result and result.get("chart"):
        out.append(f"![pass@1 of {env_id} by difficulty](measurements/{result['chart']})")
    if difficulty.get("lengths"):
        lengths = difficulty["lengths"]
        keys = ["min", "p25", "median", "p75", "p90", "max", "mean"]
        out.append(f"Lengths in tokens (`{EMBEDDED}`'s tokenizer) over the {lengths['examples']} test examples:")
        rows = [[name, *(_num(lengths[f"{name}_tokens"][q]) for q in keys)] for name in ("prompt", "gold")]
        out.append(_table(["", *keys], rows))
    out.append(f"{h} Trust")
    if checks is None:
        out.append(f"_Not measured yet; {command} measures it._")
    elif checks["status"] != "measured":
        out.append(f"_Not measured: {_esc(checks['reason'])}_")
    else:
        gold = checks["gold"]
        verdict = "passes" if checks["validate_passed"] else f"fails ({', '.join(checks['checks_failed'])})"
        out.append(
            f"`rlhub validate` {verdict}; {gold['full_marks']} of {gold['n']} gold completions (the first "
            f"{gold['n']} test examples of seed 0) score 1.0 on `{gold['reward']}`. Each probe (a reward hack) "
            "with its rule and the highest scores its completions earned:"
        )
        rows = [
            [
                p["name"],
                f"`{p['rule']}`",
                _num(p["max_correct"]),
                _num(p["max_total"]),
                "yes" if p["passed"] else "**no**",
            ]
            for p in checks["probes"]
        ]
        out.append(_table(["probe", "rule", "highest correct", "highest total", "held"], rows))
    out.append(f"{h} Cost")
    cost = (result or {}).get("cost")
    if not cost:
        out.append("_Not measured._")
    else:
        line = f"Reward: {cost['reward_ms_per_completion']:.3g} ms per completion"
        if "sandbox_programs_per_completion" in cost:
            line += f", {cost['sandbox_programs_per_completion']:.2f} sandbox programs per completion"
        out.append(line + f" (the greedy sample's completions, on the measuring machine; {_dated(data)}).")
    out += training_section(env_id, h, data)
    return out


def training_section(env_id: str, h: str, data: dict[str, Any]) -> list[str]:
    """The card's "Training run" section: a recorded recipe run's reward, first steps against last."""
    run = data.get("training", {}).get(env_id)
    out = [f"{h} Training run"]
    if run is None:
        out.append(f"_None recorded; `{RECORD_COMMAND} RUN_DIR --recipe RECIPE` records a finished run._")
        return out
    w = run["window"]
    out.append(
        f"`rlhub train {run['recipe']}` ({run['algorithm']} + LoRA on `{run['model']}`, {run['steps']} steps of "
        f"{run['prompts_per_step']} prompts x {run['group_size']} samples, {run['wall_s'] / 60:.0f} min on the "
        f"recording machine), {_dated(run)}. Mean training reward over the first {w} steps "
        f"**{run['first']['reward']:.3f}**, over the last {w} **{run['last']['reward']:.3f}**; share of samples "
        f"with full `{run['main_reward']}` {run['first']['accuracy']:.3f} -> {run['last']['accuracy']:.3f}."
    )
    rows = [
        [f"{i * w + 1}-{min((i + 1) * w, run['steps'])}", f"{statistics.fmean(r):.3f}", f"{statistics.fmean(a):.3f}"]
        for i, (r, a) in enumerate(zip(_windows(run["reward"], w), _windows(run["accuracy"], w)))
    ]
    out.append(_table(["steps", "mean reward", f"full `{run['main_reward']}`"], rows))
    watch = run.get("hack_watch")
    if watch is not None:  # the run's summary.json: the hack watch's signals that tripped (trainers/monitor.py)
        said = ", ".join(f"`{name}`" for name in watch) if watch else "none"
        out.append(f"Hack watch signals that tripped during the run: {said}.")
    return out


def _windows(values: list[float], size: int) -> list[list[float]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def record_run(run_dir: str | Path, recipe: str, *, window: int = 5, out: str | Path | None = None) -> dict[str, Any]:
    """Store a finished training run's per-step reward in the measurements, under its env id.

    Args:
        run_dir: The run's folder (``metrics.jsonl`` and ``recipe.json``).
        recipe: The recipe path to name in the card (as a user would type it).
        window: Steps averaged at each end ("first 5 vs last 5").
        out: The JSON file (default: ``docs/measurements.json``).

    Returns:
        The stored record.
    """
    import rlhub

    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "recipe.json").read_text(encoding="utf-8"))
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    except FileNotFoundError as exc:
        raise RLHubError(f"{run_dir} is not a run folder ({exc.filename} is missing); give the output_dir of a run")
    summary = run_dir / "summary.json"
    watched = summary.is_file() and config.get("monitor", {}).get("enabled", False)
    tripped = json.loads(summary.read_text(encoding="utf-8")).get("hack_watch", "") if watched else None
    rows = [r for r in rows if "reward" in r and "step" in r]
    steps = config["training"]["max_steps"]
    if [r["step"] for r in rows] != list(range(1, steps + 1)):
        raise RLHubError(f"{run_dir} has steps {len(rows)} of {steps}: record a finished run (rlhub train --resume)")
    if steps < 2 * window:
        raise RLHubError(f"{run_dir} ran {steps} steps; first and last {window} need at least {2 * window}")
    main_reward = next(iter(config["rewards"]), "correct")
    reward = [r["reward"] for r in rows]
    accuracy = [r.get("accuracy", r.get(f"rewards/{main_reward}/mean", 0.0)) for r in rows]
    record = {
        "recipe": recipe,
        "model": config["model"]["name"],
        "algorithm": config["algorithm"]["name"].upper(),
        "steps": steps,
        "prompts_per_step": config["training"]["prompts_per_step"],
        "group_size": config["algorithm"]["group_size"],
        "main_reward": main_reward,
        "window": window,
        "reward": reward,
        "accuracy": accuracy,
        "first": {"reward": statistics.fmean(reward[:window]), "accuracy": statistics.fmean(accuracy[:window])},
        "last": {"reward": statistics.fmean(reward[-window:]), "accuracy": statistics.fmean(accuracy[-window:])},
        "wall_s": sum(r.get("charts/step_time", 0.0) for r in rows),
        "hack_watch": None if tripped is None else [name for name in tripped.split(", ") if name],
        "commit": commit_of(repo_root()),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "rlhub_version": rlhub.__version__,
    }
    path = Path(out) if out else measurements_path()
    data = load_measurements(path)
    data.setdefault("training", {})[config["env"]["id"]] = record
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return record


def models_to_measure(others: list[str], *, base_url: str | None = None, embedded: bool = True) -> list[str]:
    """The embedded model first (not for an endpoint, nor when left out), then the others, each once."""
    first = [] if base_url or not embedded else [EMBEDDED]
    return first + [model for model in dict.fromkeys(others) if model not in first]


def model_order(data: dict[str, Any]) -> list[str]:
    """The models measured: the embedded one first, then the others by name."""
    return sorted(data.get("models", {}), key=lambda model: (model != EMBEDDED, model))


def leaderboard_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per registered env (and one for the reasoning-gym family): greedy pass@1 of each model."""
    import rlhub

    ids = [s.id for s in rlhub.list_envs() if s.source == "rlhub"] + ["rg/<task>-v0"]
    domains = {s.id: s.domain for s in rlhub.list_envs()}
    rows = []
    for env_id in ids:
        row: dict[str, Any] = {"env": env_id, "domain": domains.get(env_id, "mixed"), "models": {}}
        for model, entry in sorted(data.get("models", {}).items()):
            result = entry["envs"].get(env_id)
            if result is None:
                continue
            if result["status"] != "measured":
                row["models"][model] = {"status": "not measured", "reason": result["reason"]}
                continue
            greedy = result["baseline"]["greedy"]
            cell = {k: greedy[k] for k in ("n", "pass@1", "pass@1_se", "mean_reward")}
            sampled = result["baseline"].get("sampled")
            if sampled:
                cell[f"sampled_pass@{sampled['k']}"] = sampled[f"pass@{sampled['k']}"]
            if "tasks" in greedy:
                cell["tasks"] = greedy["tasks"]
            row["models"][model] = cell
        rows.append(row)
    return rows


def leaderboard_json(data: dict[str, Any]) -> str:
    doc = {
        "commit": data.get("commit"),
        "date": data.get("date"),
        "settings": data.get("settings"),
        "models": model_order(data),
        "rows": leaderboard_rows(data),
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def leaderboard_page(data: dict[str, Any]) -> str:
    """``docs/leaderboard.md``: greedy pass@1 (± one standard error, sample size) of each model on each env."""
    models = model_order(data)
    out = [
        "# Leaderboard",
        GENERATED,
        "Greedy pass@1 on a fixed seeded sample of each env's test split (± one standard error; n examples), "
        f"last {_dated(data)}; each env's card says when its numbers were measured and with which settings "
        "(new tokens per turn, sample sizes). reasoning-gym's tasks are one row: a few examples of each of a few "
        "tasks spread over its task list. The env cards in [envs.md](envs.md) hold the sampled "
        "pass@k, the difficulty breakdown, the probes and the cost. Add a model with "
        "`python -m rlhub.authoring.leaderboard measure --model NAME` (or an endpoint: `--base-url URL --model NAME`), "
        "then `python -m rlhub.authoring.leaderboard write`.",
    ]
    rows = []
    notes = []
    for row in leaderboard_rows(data):
        cells = [f"`{row['env']}`", row["domain"]]
        for model in models:
            cell = row["models"].get(model)
            if cell is None:
                cells.append("not run")
            elif cell.get("status") == "not measured":
                cells.append("not measured")
                notes.append(f"- `{row['env']}` ({model}): {_esc(cell['reason'])}")
            else:
                cells.append(f"{_pct(cell['pass@1'], cell['pass@1_se'])} (n={cell['n']})")
        rows.append(cells)
    out.append(_table(["env", "domain", *(f"`{m}`" for m in models)], rows))
    if notes:
        out.append("Not measured, and why:\n\n" + "\n".join(notes))
    return "\n\n".join(out) + "\n"


def baseline_cell(env_id: str, data: dict[str, Any] | None = None) -> str:
    """The README's cell for an env: the embedded model's greedy pass@1 (n), or "not measured"."""
    data = load_measurements() if data is None else data
    result = data.get("models", {}).get(EMBEDDED, {}).get("envs", {}).get(env_id)
    if result is None or result["status"] != "measured":
        return "not measured"
    greedy = result["baseline"]["greedy"]
    return f"{_pct(greedy['pass@1'])} (n={greedy['n']})"


README_HEADER = "| id | domain | what the model does | rewards | baseline pass@1 (embedded model) |"


def readme_with_baselines(text: str, data: dict[str, Any]) -> str:
    """The README with its env table's last column (:data:`README_HEADER`) filled from the measurements."""
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip("\n") == README_HEADER)
    except StopIteration:
        raise RLHubError(f"README.md has no env table headed {README_HEADER!r}; add that header row") from None
    i = start + 2
    while i < len(lines) and lines[i].startswith("| `"):
        env_id = lines[i].split("`")[1]
        head = lines[i].rstrip("\n").rstrip(" |").rpartition(" | ")[0]
        lines[i] = f"{head} | {baseline_cell(env_id, data)} |\n"
        i += 1
    return "".join(lines)


def write_pages(data: dict[str, Any] | None = None, folder: str | Path | None = None) -> list[Path]:
    data = load_measurements() if data is None else data
    folder = Path(folder) if folder else repo_root() / "docs"
    md, js = folder / "leaderboard.md", folder / "leaderboard.json"
    md.write_text(leaderboard_page(data), encoding="utf-8")
    js.write_text(leaderboard_json(data), encoding="utf-8")
    readme = folder.parent / "README.md"
    readme.write_text(readme_with_baselines(readme.read_text(encoding="utf-8"), data), encoding="utf-8")
    return [md, js, readme]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rlhub.authoring.leaderboard", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("measure", help="Measure models on the envs and store the numbers (docs/measurements.json).")
    run.add_argument("--model", action="append", help=f"A model to measure besides {EMBEDDED} (repeatable).")
    run.add_argument("--base-url", help="Measure --model through this OpenAI-compatible endpoint instead.")
    run.add_argument("--only", nargs="+", metavar="ID", help="Measure these env ids only (rg/<task>-v0: the family).")
    run.add_argument("--no-embedded", action="store_true", help=f"Measure only the --model ones, not {EMBEDDED}.")
    run.add_argument("--no-trust", action="store_true", help="Skip the rlhub validate probes (model-independent).")
    run.add_argument("--out", help="The JSON file (default: docs/measurements.json).")
    for f in dataclasses.fields(Settings):
        run.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=f.default)
    write = sub.add_parser(
        "write", help="Render docs/leaderboard.{md,json} and README's baseline column from the JSON."
    )
    write.add_argument("--measurements", help="The JSON file (default: docs/measurements.json).")
    record = sub.add_parser("record-run", help="Store a finished training run's rewards for its env card.")
    record.add_argument("run_dir", help="The run's output folder.")
    record.add_argument(
        "--recipe", required=True, help="The recipe the card should name, e.g. recipes/sql-quickstart.yaml."
    )
    record.add_argument("--window", type=int, default=5, help="Steps averaged at each end (default 5).")
    record.add_argument("--out", help="The JSON file (default: docs/measurements.json).")
    args = parser.parse_args(argv)
    if args.command == "record-run":
        run = record_run(args.run_dir, args.recipe, window=args.window, out=args.out)
        print(f"recorded: reward {run['first']['reward']:.3f} (first {run['window']}) -> {run['last']['reward']:.3f}")
    elif args.command == "measure":
        models = models_to_measure(args.model or [], base_url=args.base_url, embedded=not args.no_embedded)
        if not models:
            parser.error("nothing to measure: give --model NAME (or drop --no-embedded)")
        settings = Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})
        started = time.perf_counter()
        measure(models, settings, only=args.only, base_url=args.base_url, out=args.out, with_trust=not args.no_trust)
        print(f"measured in {time.perf_counter() - started:.0f} s")
    else:
        for path in write_pages(load_measurements(args.measurements)):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
