"""``docs/audit.json``: the recorded audits, dated with their commit, and the env card section drawn from them."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from rlhub.authoring.audit.run import AuditReport
from rlhub.authoring.measurements import commit_of, stored_docs

RECORD_COMMAND = "rlhub validate {env_id} --audit --record"


def audit_path() -> Path:
    """``docs/audit.json`` beside the stored measurements (:func:`rlhub.authoring.measurements.stored_docs`)."""
    return stored_docs() / "audit.json"


def load_audits(path: str | Path | None = None) -> dict[str, Any]:
    """The recorded audits, or an empty record when none are (cards then say "not audited")."""
    path = Path(path) if path else audit_path()
    if not path.is_file():
        return {"envs": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def record(reports: list[AuditReport], path: str | Path | None = None) -> Path:
    """Store ``reports`` in ``docs/audit.json`` (or ``path``), each dated with the commit; other envs' stay.

    Returns:
        The file written.
    """
    path = Path(path) if path else audit_path()
    data = load_audits(path)
    stamp = {"commit": commit_of(path.parent), "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat()}
    for report in reports:
        if report.no_data is None:
            data["envs"][report.env_id] = {**report.to_dict(), **stamp}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _phrase(text: str) -> str:
    """A docstring's sentence as a table phrase: lower case first, no closing period."""
    return text[:1].lower() + text[1:].rstrip(".")


def _rate(rate: dict[str, Any]) -> str:
    if not rate["total"]:
        return "none generated"
    return f"{100 * rate['failed'] / rate['total']:.1f}% ({rate['failed']} of {rate['total']})"


def audit_section(env_id: str, level: int = 2, data: dict[str, Any] | None = None) -> list[str]:
    """An env card's "Verifier audit" section from the recorded audit of ``env_id``.

    Args:
        env_id: The env.
        level: The heading level of the section.
        data: The recorded audits (default: ``docs/audit.json``).

    Returns:
        Markdown blocks: the rates with their counts, the slowest scoring time, the ladder, failing kinds.
    """
    from rlhub.authoring.envcard import code, md_text

    data = load_audits() if data is None else data
    audit = data.get("envs", {}).get(env_id)
    out = [f"{'#' * level} Verifier audit"]
    if audit is None:
        return [*out, f"_Not audited yet; `{RECORD_COMMAND.format(env_id=env_id)}` audits it._"]
    b, ladder = audit["bounds"], audit["ladder"]
    verdict = "within its bounds" if audit["passed"] else "**outside its bounds**"
    out.append(
        f"`rlhub validate --audit` on {audit['examples']} test examples (seed 0), {audit['date']} at commit "
        f"`{audit['commit']}`: {verdict}. False negatives are rewrites of the gold that a careful grader accepts "
        "(other number formats, wrappers, equivalent queries or programs) scored below full correctness; false "
        "positives are near misses of the gold (off by one, a boundary moved, a constraint broken) scored above 0."
    )
    rows = [
        ["false negatives", _rate(audit["fn"]), f"at most {100 * b['fn']:g}%"],
        ["false positives", _rate(audit["fp"]), f"at most {100 * b['fp']:g}%"],
        [
            "slowest scoring",
            f"{audit['slowest_s']:.2f} s (of {audit['completions']} completions)",
            f"at most {b['seconds']:g} s",
        ],
    ]
    policies = {
        "oracle": ("the gold completion", f"at least {b['oracle']:g}"),
        "random": ("the layout with a random answer", f"at most {b['random']:g}"),
        "heuristic": (_phrase(audit.get("heuristic") or "a shortcut"), f"at most {b['heuristic']:g}"),
    }
    rows += [
        [f"{name} policy: {md_text(about, cell=True)}", f"{ladder[name]:.3f} mean correctness", bound]
        for name, (about, bound) in policies.items()
        if name in ladder
    ]
    out.append(
        "\n".join(["| measure | measured | bound |", "|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in rows])
    )
    failing = [
        f"{code(kind)} {counts[0]} of {counts[1]}"
        for side in ("fn", "fp")
        for kind, counts in sorted(audit[side]["kinds"].items())
        if counts[0]
    ]
    if failing:
        out.append("Kinds of case that failed: " + ", ".join(failing) + ".")
        shown = [*audit["fn"]["examples"], *audit["fp"]["examples"]]
        out.append("\n".join(f"- {code(text)}" for text in shown))
    return out
