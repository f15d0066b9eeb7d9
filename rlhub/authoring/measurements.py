"""The measured sections of an env card: Baseline, Difficulty, Trust, Cost and Training run.

They render ``docs/measurements.json``, which the maintainers' tool ``python -m tools.leaderboard`` (in a clone
of rlhub, not part of the package) measures and writes, with the leaderboard pages. This module only reads the
stored numbers: a wheel ships none, so its cards say "not measured".
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

from rlhub.env.data import shipped_data_dir
from rlhub.provenance import read_commit

EMBEDDED = "smollm2-135m-instruct"
"""The model every env is measured with."""

COMMAND = "python -m tools.leaderboard"
"""The measuring command the generated pages and cards name (kept as the checked-in pages say it)."""
MEASURE_COMMAND = f"{COMMAND} measure"
WRITE_COMMAND = f"{COMMAND} write"
RECORD_COMMAND = f"{COMMAND} record-run"


def stored_docs() -> Path:
    """The folder of the stored pages: ``docs/`` beside the shipped data, the repository's in a clone.

    A wheel keeps its shipped data in ``rlhub/_data/`` and no ``docs/`` there, so nothing is found and
    cards say "not measured" instead of failing.
    """
    return shipped_data_dir().parent / "docs"


def commit_of(folder: Path) -> str:
    """The commit of the checkout holding ``folder`` (``Commit.label``: 12 characters, ``+dirty`` when tracked files
    differ), or "unknown"."""
    commit = read_commit(folder)
    return commit.label if commit else "unknown"


def load_measurements(path: str | Path | None = None) -> dict[str, Any]:
    """The stored measurements, or an empty record when none are stored (cards then say "not measured").

    Args:
        path: The JSON file (default: ``docs/measurements.json`` of :func:`stored_docs`).

    Returns:
        ``{"models": {model: {"envs": {id: result}}}, "envs": {id: trust}, "training": {id: run}, ...}``.
    """
    path = Path(path) if path else stored_docs() / "measurements.json"
    if not path.is_file():
        return {"models": {}, "envs": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def difficulty_levels(env) -> range | None:
    """The levels of an env's ``difficulty`` field (1 up to the last value its config accepts), or None."""
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


# ---------------------------------------------------------------------------------------------------
# Markdown pieces, shared with the leaderboard page (tools/leaderboard/render.py).
# ---------------------------------------------------------------------------------------------------


def percent(value: float | None, se: float | None = None) -> str:
    """A rate as a percentage, with its standard error when given.

    >>> percent(0.5, 0.25), percent(0.125), percent(None)
    ('50.0% ± 25.0', '12.5%', 'n/a')
    """
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" + (f" ± {100 * se:.1f}" if se is not None else "")


def number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def dated(data: dict[str, Any]) -> str:
    """When and at which commit a record (or the whole measurement) was measured."""
    version = data.get("rlhub_version", "?")
    return f"measured {data.get('date', '?')} at commit `{data.get('commit', '?')}` (rlhub {version})"


def escape(text: str) -> str:
    """``text`` safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("<", "&lt;")


# ---------------------------------------------------------------------------------------------------
# The card's sections.
# ---------------------------------------------------------------------------------------------------


def stored_for(env_id: str, table: dict[str, Any]) -> tuple[str, Any] | None:
    """What ``table`` stores for ``env_id``, else for its newest earlier version: ``(stored id, record)`` or None.

    A new version (a changed reward, say) keeps showing its predecessor's measurement, labelled with the id it
    was measured on, until it is measured itself.

    Example:
        >>> stored_for("demo-v2", {"demo-v0": "a", "demo-v1": "b", "math-v3": "c"})
        ('demo-v1', 'b')
        >>> stored_for("demo-v0", {"demo-v1": "b"}) is None
        True
    """
    if env_id in table:
        return env_id, table[env_id]
    name, sep, version = env_id.rpartition("-v")
    if not sep or not version.isdigit():
        return None
    earlier = []
    for key in table:
        other, other_sep, other_version = key.rpartition("-v")
        if other_sep and other == name and other_version.isdigit() and int(other_version) < int(version):
            earlier.append((int(other_version), key))
    if not earlier:
        return None
    key = max(earlier)[1]
    return key, table[key]


def _earlier(env_id: str, stored_id: str, what: str, command: str, does: str = "measures") -> str:
    return (
        f"_{what} `{stored_id}`, before `{env_id}`'s changes (see its Version history); "
        f"{command} {does} `{env_id}` itself._"
    )


def card_sections(env_id: str, level: int = 2, data: dict[str, Any] | None = None) -> list[str]:
    """An env card's Baseline, Difficulty, Trust, Cost and Training run sections, from the stored measurements.

    Args:
        env_id: The env.
        level: The heading level of the sections.
        data: The measurements (default: :func:`load_measurements`).

    Returns:
        Markdown blocks; one "not measured" line per section when nothing is stored for the env.
    """
    data = load_measurements() if data is None else data
    h = "#" * level
    measure = f"`{MEASURE_COMMAND} --only {env_id}`"
    found = stored_for(env_id, data.get("models", {}).get(EMBEDDED, {}).get("envs", {}))
    result = found[1] if found else None
    if result is not None:  # the date, commit and settings of this env's own measurement
        data = {**data, **{key: result[key] for key in ("commit", "date", "settings") if key in result}}
    checks = stored_for(env_id, data.get("envs", {}))
    baseline = _baseline_section(env_id, h, data, result, measure)
    if found and found[0] != env_id:
        baseline.insert(1, _earlier(env_id, found[0], "Measured on", measure))
    trust = _trust_section(h, checks[1] if checks else None, measure)
    if checks and checks[0] != env_id:
        trust.insert(1, _earlier(env_id, checks[0], "Checked on", measure))
    return [
        *baseline,
        *_difficulty_section(env_id, h, result),
        *trust,
        *_cost_section(h, data, result),
        *training_section(env_id, h, data),
    ]


def _baseline_section(env_id: str, h: str, data: dict, result: dict | None, measure: str) -> list[str]:
    out = [f"{h} Baseline"]
    if result is None and env_id.startswith("rg/"):  # measured as one family: this task's row, if it was drawn
        task, _, version = env_id.rpartition("-v")
        envs = data.get("models", {}).get(EMBEDDED, {}).get("envs", {})
        stored_id, family = stored_for(f"rg/<task>-v{version}", envs) or ("", {})
        on = env_id if not stored_id else f"{task}-v{stored_id.rpartition('-v')[2]}"
        rows = [r for r in ((family or {}).get("difficulty") or {}).get("by_family", []) if r["group"] == on]
        said = (
            f"greedy pass@1 of `{EMBEDDED}` {percent(rows[0]['pass@1'], rows[0]['se'])} on {rows[0]['n']} test examples"
            + (f" (measured on `{on}`, before `{env_id}`'s changes)" if on != env_id else "")
            if rows
            else "this task was not among those drawn"
        )
        out.append(f"_reasoning-gym tasks are measured as one family (see docs/leaderboard.md): {said}._")
    elif result is None:
        out.append(f"_Not measured yet; {measure} measures it._")
    elif result["status"] != "measured":
        out.append(f"_Not measured: {escape(result['reason'])}_")
    else:
        settings = data.get("settings", {})
        greedy = result["baseline"]["greedy"]
        out.append(
            f"`{EMBEDDED}` on a fixed sample of the test split (seed {settings.get('seed', 0)}, at most "
            f"{settings.get('max_new_tokens', '?')} new tokens per turn), {dated(data)}; ± is one standard error."
        )
        rows = [
            [
                "greedy",
                str(greedy["n"]),
                "1",
                percent(greedy["pass@1"], greedy["pass@1_se"]),
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
                    percent(sampled["pass@1"], sampled["pass@1_se"]),
                    percent(sampled.get(f"pass@{k}")),
                    f"{sampled['mean_reward']:.3f}",
                ]
            )
        out.append(table(["sampling", "examples", "samples each", "pass@1", "pass@k", "mean reward"], rows))
        if not sampled:
            out.append("_No temperature-1 samples in this measurement (`sampled_n` 0)._")
    return out


def _difficulty_section(env_id: str, h: str, result: dict | None) -> list[str]:
    out = [f"{h} Difficulty"]
    difficulty = (result or {}).get("difficulty") or {}
    measured = result is not None and result["status"] == "measured"
    levels_skipped = False
    if measured and "by_level" not in difficulty and not env_id.startswith("rg/"):
        import rlhub

        levels_skipped = difficulty_levels(rlhub.make(env_id)) is not None
    if levels_skipped:
        out.append("_Per-level samples were not part of this measurement (`level_n` 0)._")
    elif not difficulty:
        out.append("_No levels or families._" if measured else "_Not measured._")
    for key, title in (("by_level", "difficulty level"), ("by_family", "task family")):
        if difficulty.get(key):
            out.append(f"Greedy pass@1 by {title}:")
            rows = [[f"`{r['group']}`", str(r["n"]), percent(r["pass@1"], r["se"])] for r in difficulty[key]]
            out.append(table([title, "examples", "pass@1"], rows))
    if result and result.get("chart"):
        out.append(f"![pass@1 of {env_id} by difficulty](measurements/{result['chart']})")
    if difficulty.get("lengths"):
        lengths = difficulty["lengths"]
        keys = ["min", "p25", "median", "p75", "p90", "max", "mean"]
        out.append(f"Lengths in tokens (`{EMBEDDED}`'s tokenizer) over the {lengths['examples']} test examples:")
        rows = [[name, *(number(lengths[f"{name}_tokens"][q]) for q in keys)] for name in ("prompt", "gold")]
        out.append(table(["", *keys], rows))
    return out


def _trust_section(h: str, checks: dict | None, measure: str) -> list[str]:
    out = [f"{h} Trust"]
    if checks is None:
        out.append(f"_Not measured yet; {measure} measures it._")
    elif checks["status"] != "measured":
        out.append(f"_Not measured: {escape(checks['reason'])}_")
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
                number(p["max_correct"]),
                number(p["max_total"]),
                "yes" if p["passed"] else "**no**",
            ]
            for p in checks["probes"]
        ]
        out.append(table(["probe", "rule", "highest correct", "highest total", "held"], rows))
    return out


def _cost_section(h: str, data: dict, result: dict | None) -> list[str]:
    out = [f"{h} Cost"]
    cost = (result or {}).get("cost")
    if not cost:
        out.append("_Not measured._")
    else:
        line = f"Reward: {cost['reward_ms_per_completion']:.3g} ms per completion"
        if "sandbox_programs_per_completion" in cost:
            line += f", {cost['sandbox_programs_per_completion']:.2f} sandbox programs per completion"
        out.append(line + f" (the greedy sample's completions, on the measuring machine; {dated(data)}).")
    return out


def training_section(env_id: str, h: str, data: dict[str, Any]) -> list[str]:
    """The card's "Training run" section: a recorded recipe run's reward, first steps against last."""
    found = stored_for(env_id, data.get("training", {}))
    out = [f"{h} Training run"]
    if found is None:
        out.append(f"_None recorded; `{RECORD_COMMAND} RUN_DIR --recipe RECIPE` records a finished run._")
        return out
    stored_id, run = found
    if stored_id != env_id:
        record = f"`{RECORD_COMMAND} RUN_DIR --recipe RECIPE`"
        out.append(_earlier(env_id, stored_id, "Recorded on", record, "records a run of"))
    w = run["window"]
    out.append(
        f"`rlhub train {run['recipe']}` ({run['algorithm']} + LoRA on `{run['model']}`, {run['steps']} steps of "
        f"{run['prompts_per_step']} prompts x {run['group_size']} samples, {run['wall_s'] / 60:.0f} min on the "
        f"recording machine), {dated(run)}. Mean training reward over the first {w} steps "
        f"**{run['first']['reward']:.3f}**, over the last {w} **{run['last']['reward']:.3f}**; share of samples "
        f"with full `{run['main_reward']}` {run['first']['accuracy']:.3f} -> {run['last']['accuracy']:.3f}."
    )
    rows = [
        [f"{i * w + 1}-{min((i + 1) * w, run['steps'])}", f"{statistics.fmean(r):.3f}", f"{statistics.fmean(a):.3f}"]
        for i, (r, a) in enumerate(zip(_windows(run["reward"], w), _windows(run["accuracy"], w)))
    ]
    out.append(table(["steps", "mean reward", f"full `{run['main_reward']}`"], rows))
    held = run.get("heldout")
    if held:  # python -m tools.leaderboard record-run ... --heldout BEFORE AFTER
        sampler = "greedy" if not held["temperature"] else f"temperature {held['temperature']}, k={held['k']}"
        pairs = len(held["pairs"])
        spread = f", pooled over {pairs} evals" if pairs > 1 else ""
        out.append(
            f"Held-out pass@1 ({held['examples']} test examples{spread}, {sampler}, {held['max_new_tokens']} tokens): "
            f"**{held['before']:.3f}** before training, **{held['after']:.3f}** after; difference "
            f"{held['difference']:+.3f}, 95% interval [{held['low']:+.3f}, {held['high']:+.3f}] (paired by example; "
            f"{held['gained']} gained, {held['lost']} lost)."
        )
    watch = run.get("hack_watch")
    if watch is not None:  # the run's summary.json: the hack watch's signals that tripped (trainers/monitor.py)
        said = ", ".join(f"`{name}`" for name in watch) if watch else "none"
        out.append(f"Hack watch signals that tripped during the run: {said}.")
    return out


def _windows(values: list[float], size: int) -> list[list[float]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
