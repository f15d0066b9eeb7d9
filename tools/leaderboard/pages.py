"""The files of the clone this tool sits in: ``docs/measurements.json`` (measured, recorded) and the pages
written from it (``docs/leaderboard.md``, ``docs/leaderboard.json``, the README's baseline column).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import statistics
import time
from pathlib import Path
from typing import Any

from rlhub.authoring.measurements import EMBEDDED, commit_of, load_measurements
from rlhub.errors import RLHubError
from tools.leaderboard.measure import Settings, measure_env, measure_family, trust
from tools.leaderboard.records import Measured, TrainingRun, Window
from tools.leaderboard.render import (
    FAMILY_ROW,
    difficulty_chart,
    leaderboard_json,
    leaderboard_page,
    readme_with_baselines,
)

ROOT = Path(__file__).resolve().parents[2]
"""The clone: tools/leaderboard/ sits at its top."""
MEASUREMENTS = ROOT / "docs" / "measurements.json"


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def _save(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


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

    Envs already stored in ``out`` and not re-measured keep their numbers, each with the commit, date and
    settings it was measured with; the file is rewritten after every env, so a long run that stops keeps
    what it measured.

    Args:
        models: Model names (local checkpoints, or what ``base_url`` serves).
        settings: Sample sizes and sampling settings.
        only: Env ids to measure (``rg/<task>-v0``: the reasoning-gym family); all when None.
        base_url: An OpenAI-compatible endpoint serving ``models``.
        out: The JSON file (default: ``docs/measurements.json``).
        with_trust: Also run each env's ``rlhub validate`` probes (model-independent).
        log: Prints one line per env measured.

    Returns:
        The stored measurements.
    """
    import rlhub
    from rlhub.evaluate import load_engine, model_fingerprint

    out = Path(out) if out else MEASUREMENTS
    data = load_measurements(out)
    ids = [s.id for s in rlhub.list_envs() if s.source == "rlhub"] + [FAMILY_ROW]
    if only:
        unknown = sorted(set(only) - set(ids))
        if unknown:
            raise RLHubError(f"unknown env ids {unknown}; measure registered ids or {FAMILY_ROW}")
        ids = [i for i in ids if i in only]
    stamp = ("commit", "date", "settings")  # each result keeps those it was measured with
    for entry in data["models"].values():
        for result in entry["envs"].values():
            result.update({key: data[key] for key in stamp if key in data and key not in result})
    data.update(
        commit=commit_of(ROOT), date=_today(), rlhub_version=rlhub.__version__, settings=dataclasses.asdict(settings)
    )
    charts = out.parent / "measurements"

    for env_id in ids if with_trust else []:
        if env_id.startswith("rg/"):
            continue
        started = time.perf_counter()
        data["envs"][env_id] = trust(env_id, settings).to_dict()
        log(f"trust {env_id}: {time.perf_counter() - started:.0f} s")
        _save(data, out)
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
            stored = result.to_dict()
            if model == EMBEDDED and stored.get("difficulty"):
                stored["chart"] = difficulty_chart(env_id, model, stored["difficulty"], charts)
            entry["envs"][env_id] = {**stored, **{key: data[key] for key in stamp}}
            if isinstance(result, Measured):
                greedy = result.greedy
                log(f"{model} {env_id}: pass@1 {greedy.pass_at_1:.3f} (n={greedy.n}) in {result.seconds} s")
            else:
                log(f"{model} {env_id}: not measured ({result.reason})")
            _save(data, out)
    return data


def training_run(
    run_dir: str | Path, recipe: str, *, window: int = 5, heldout: list[tuple[str, str]] | None = None
) -> tuple[str, TrainingRun]:
    """A finished training run's per-step reward, read from its folder.

    Args:
        run_dir: The run's folder (``metrics.jsonl`` and ``recipe.json``; ``summary.json`` if it watched hacks).
        recipe: The recipe path to name in the card (as a user would type it).
        window: Steps averaged at each end ("first 5 vs last 5").
        heldout: ``(before, after)`` pairs of ``rlhub eval --out`` folders (the base model, then the run's
            adapter; one pair per level, say), pooled into one paired comparison on the run's env.

    Returns:
        The env id the run trained on, and the run's record.
    """
    import rlhub

    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "recipe.json").read_text(encoding="utf-8"))
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    except FileNotFoundError as exc:
        raise RLHubError(f"{run_dir} is not a run folder ({exc.filename} is missing); give the output_dir of a run")
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else {}
    watched = summary_file.is_file() and config.get("monitor", {}).get("enabled", False)
    tripped = summary.get("hack_watch", "") if watched else None
    rows = [r for r in rows if "reward" in r and "step" in r]
    steps = config["training"]["max_steps"]
    if [r["step"] for r in rows] != list(range(1, steps + 1)):
        raise RLHubError(f"{run_dir} has steps {len(rows)} of {steps}: record a finished run (rlhub train --resume)")
    if steps < 2 * window:
        raise RLHubError(f"{run_dir} ran {steps} steps; first and last {window} need at least {2 * window}")
    main_reward = next(iter(config["rewards"]), "correct")
    reward = [r["reward"] for r in rows]
    accuracy = [r.get("accuracy", r.get(f"rewards/{main_reward}/mean", 0.0)) for r in rows]
    run = TrainingRun(
        recipe=recipe,
        model=config["model"]["name"],
        algorithm=config["algorithm"]["name"].upper(),
        steps=steps,
        prompts_per_step=config["training"]["prompts_per_step"],
        group_size=config["algorithm"]["group_size"],
        main_reward=main_reward,
        window=window,
        reward=reward,
        accuracy=accuracy,
        first=Window(statistics.fmean(reward[:window]), statistics.fmean(accuracy[:window])),
        last=Window(statistics.fmean(reward[-window:]), statistics.fmean(accuracy[-window:])),
        wall_s=sum(r.get("charts/step_time", 0.0) for r in rows),
        hack_watch=None if tripped is None else [name for name in tripped.split(", ") if name],
        commit=summary.get("commit") or commit_of(ROOT),  # the run's own (runs before it was recorded: the checkout's)
        date=_today(),
        rlhub_version=rlhub.__version__,
        heldout=_heldout(config["env"]["id"], heldout, run_dir / "checkpoints" / f"step-{steps:06d}" / "adapter")
        if heldout
        else None,
    )
    return config["env"]["id"], run


def _heldout(env_id: str, pairs: list[tuple[str, str]], adapter: Path) -> dict[str, Any]:
    """The pooled paired comparison of ``pairs`` on ``env_id``, as the card shows it.

    Each pair must be the base model (no adapter) and then ``adapter``, the run's last one, by the hash of its files.
    """
    from rlhub.evaluate import compare_pooled, folder_hash

    expected = folder_hash(adapter) if adapter.is_dir() else None
    for before, after in pairs:
        models = [json.loads((Path(f) / "manifest.json").read_text(encoding="utf-8"))["model"] for f in (before, after)]
        if "adapter_hash" in models[0]:
            raise RLHubError(
                f"{before} evaluated an adapter ({models[0]['name']}); the 'before' eval is the base model's"
            )
        if expected is None or models[1].get("adapter_hash") != expected:
            raise RLHubError(
                f"{after} did not evaluate this run's last adapter ({adapter}, by the hash of its files); "
                f"evaluate it with `rlhub eval ... --model {adapter}`"
            )
    rows = {row.env_id: row for row in compare_pooled(pairs)}
    if env_id not in rows:
        raise RLHubError(
            f"the held-out evals do not evaluate {env_id} (they hold {', '.join(rows)}); evaluate the run's env"
        )
    manifest = json.loads((Path(pairs[0][0]) / "manifest.json").read_text(encoding="utf-8"))
    row = rows[env_id]
    return {
        **dataclasses.asdict(row),
        "pairs": [[Path(before).name, Path(after).name] for before, after in pairs],  # the folders' names
        "temperature": manifest["sampler"].get("temperature"),
        "k": manifest["sampler"].get("k", 1),
        "max_new_tokens": manifest["sampler"].get("max_new_tokens"),
    }


def record_run(
    run_dir: str | Path,
    recipe: str,
    *,
    window: int = 5,
    out: str | Path | None = None,
    heldout: list[tuple[str, str]] | None = None,
) -> TrainingRun:
    """Store a finished training run's per-step reward in the measurements, under its env id.

    Args:
        run_dir: The run's folder (see :func:`training_run`).
        recipe: The recipe path to name in the card.
        window: Steps averaged at each end.
        out: The JSON file (default: ``docs/measurements.json``).
        heldout: Before/after eval folder pairs (see :func:`training_run`).

    Returns:
        The stored record.
    """
    env_id, run = training_run(run_dir, recipe, window=window, heldout=heldout)
    path = Path(out) if out else MEASUREMENTS
    data = load_measurements(path)
    data.setdefault("training", {})[env_id] = run.to_dict()
    _save(data, path)
    return run


def write_pages(data: dict[str, Any] | None = None, folder: str | Path | None = None) -> list[Path]:
    """Write ``leaderboard.md``, ``leaderboard.json`` and the README's baseline column from the measurements.

    Args:
        data: The measurements (default: ``docs/measurements.json``).
        folder: The pages' folder (default: ``docs/``); the README is the one in its parent.

    Returns:
        The files written.
    """
    data = load_measurements(MEASUREMENTS) if data is None else data
    folder = Path(folder) if folder else ROOT / "docs"
    md, js = folder / "leaderboard.md", folder / "leaderboard.json"
    md.write_text(leaderboard_page(data), encoding="utf-8")
    js.write_text(leaderboard_json(data), encoding="utf-8")
    readme = folder.parent / "README.md"
    readme.write_text(readme_with_baselines(readme.read_text(encoding="utf-8"), data), encoding="utf-8")
    return [md, js, readme]
