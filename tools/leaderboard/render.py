"""Rendering the stored measurements: ``docs/leaderboard.md``, ``docs/leaderboard.json``, the README's baseline
column, and the difficulty charts. Every function here returns text (or draws one PNG); none reads the stored file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlhub.authoring.measurements import (
    EMBEDDED,
    MEASURE_COMMAND,
    WRITE_COMMAND,
    dated,
    escape,
    percent,
    stored_for,
    table,
)
from rlhub.errors import RLHubError
from tools.leaderboard.records import Cell, NotMeasured, Row

GENERATED = f"<!-- Generated from docs/measurements.json by `{WRITE_COMMAND}`; do not edit by hand. -->"
FAMILY_ROW = "rg/<task>-v0"
"""The leaderboard's one row for reasoning-gym's tasks."""
README_HEADER = "| id | domain | what the model does | rewards | baseline pass@1 (embedded model) |"


def model_order(data: dict[str, Any]) -> list[str]:
    """The models measured: the embedded one first, then the others by name."""
    return sorted(data.get("models", {}), key=lambda model: (model != EMBEDDED, model))


def _cell(result: dict[str, Any]) -> Cell | NotMeasured:
    if result["status"] != "measured":
        return NotMeasured(result["reason"])
    greedy = result["baseline"]["greedy"]
    sampled = result["baseline"].get("sampled")
    k = sampled["k"] if sampled else None
    return Cell(
        n=greedy["n"],
        pass_at_1=greedy["pass@1"],
        pass_at_1_se=greedy["pass@1_se"],
        mean_reward=greedy["mean_reward"],
        sampled_k=k,
        sampled_pass_at_k=sampled[f"pass@{k}"] if sampled else None,
        tasks=greedy.get("tasks"),
    )


def leaderboard_rows(data: dict[str, Any]) -> list[Row]:
    """One row per registered env (and one for the reasoning-gym family): each model's greedy numbers."""
    import rlhub

    ids = [s.id for s in rlhub.list_envs() if s.source == "rlhub"] + [FAMILY_ROW]
    domains = {s.id: s.domain for s in rlhub.list_envs()}
    rows = []
    for env_id in ids:
        cells = {
            model: _cell(entry["envs"][env_id])
            for model, entry in sorted(data.get("models", {}).items())
            if env_id in entry["envs"]
        }
        rows.append(Row(env_id, domains.get(env_id, "mixed"), cells))
    return rows


def leaderboard_json(data: dict[str, Any]) -> str:
    """``docs/leaderboard.json``: the rows of :func:`leaderboard_rows`, with the measurement's commit and settings."""
    doc = {
        "commit": data.get("commit"),
        "date": data.get("date"),
        "settings": data.get("settings"),
        "models": model_order(data),
        "rows": [row.to_dict() for row in leaderboard_rows(data)],
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def leaderboard_page(data: dict[str, Any]) -> str:
    """``docs/leaderboard.md``: greedy pass@1 (± one standard error, sample size) of each model on each env."""
    models = model_order(data)
    out = [
        "# Leaderboard",
        GENERATED,
        "Greedy pass@1 on a fixed seeded sample of each env's test split (± one standard error; n examples), "
        f"last {dated(data)}; each env's card says when its numbers were measured and with which settings "
        "(new tokens per turn, sample sizes). reasoning-gym's tasks are one row: a few examples of each of a few "
        "tasks spread over its task list. The env cards in [envs.md](envs.md) hold the sampled "
        f"pass@k, the difficulty breakdown, the probes and the cost. Add a model with `{MEASURE_COMMAND} --model NAME` "
        f"(or an endpoint: `--base-url URL --model NAME`), then `{WRITE_COMMAND}`.",
    ]
    rows = []
    notes = []
    for row in leaderboard_rows(data):
        cells = [f"`{row.env}`", row.domain]
        for model in models:
            cell = row.models.get(model)
            if cell is None:
                cells.append("not run")
            elif isinstance(cell, NotMeasured):
                cells.append("not measured")
                notes.append(f"- `{row.env}` ({model}): {escape(cell.reason)}")
            else:
                cells.append(f"{percent(cell.pass_at_1, cell.pass_at_1_se)} (n={cell.n})")
        rows.append(cells)
    out.append(table(["env", "domain", *(f"`{m}`" for m in models)], rows))
    if notes:
        out.append("Not measured, and why:\n\n" + "\n".join(notes))
    return "\n\n".join(out) + "\n"


def baseline_cell(env_id: str, data: dict[str, Any]) -> str:
    """The README's cell for an env: the embedded model's greedy pass@1 (n), or "not measured"."""
    found = stored_for(env_id, data.get("models", {}).get(EMBEDDED, {}).get("envs", {}))
    if found is None or found[1]["status"] != "measured":
        return "not measured"
    greedy = found[1]["baseline"]["greedy"]
    earlier = f", on {found[0]}" if found[0] != env_id else ""
    return f"{percent(greedy['pass@1'])} (n={greedy['n']}{earlier})"


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
