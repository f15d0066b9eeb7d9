"""``rlhub hub publish DIR``: build an env package, prove it, refuse silent reward drift, upload it, index it.

The steps, each of which stops the publish with one line saying what to fix:

1. Read the package (pyproject.toml, its ``rlhub.toml``) and its frozen rollouts (``rlhub hub freeze``); the
   version must be newer than every version on the hub index.
2. Build the wheel and sdist (``python -m build``).
3. The drift gate (Gymnasium's rule: changed behaviour is a new version), in a child process with the wheel
   installed in a staging folder: an env id that the last version served must give that version's frozen
   rollouts the same rewards, unless the package now serves a higher ``-vN`` of it instead. The package's own
   rollouts must still earn what ``rollouts.jsonl`` says.
4. ``rlhub validate`` every env, with every probe, in the same way.
5. Upload both files with ``twine upload --repository-url URL`` (credentials: ``TWINE_USERNAME`` /
   ``TWINE_PASSWORD`` or the options), then add the version to the hub index file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from packaging.version import Version

from rlhub.errors import RLHubError
from rlhub.hub.freeze import (
    PackageSource,
    last_line,
    read_rollouts,
    reward_hash,
    run_package_code,
    same_rewards,
    staged,
)
from rlhub.hub.index import add_version, canonical, local_path, read_index, sorted_versions, write_index
from rlhub.hub.lock import content_hashes, wheel_file_hashes

CARD_FILE = "card.json"
"""An env card's measured figures, optional, beside pyproject.toml (``{env_id: {figure: value}}``)."""


def build(directory: Path, out: Path, isolation: bool = True) -> tuple[Path, Path]:
    """Build the wheel and sdist of the package in ``directory`` into ``out``; their paths."""
    command = [sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(out), str(directory)]
    done = subprocess.run(command + ([] if isolation else ["--no-isolation"]), capture_output=True, text=True)
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    if done.returncode != 0 or len(wheels) != 1 or len(sdists) != 1:
        raise RLHubError(f"building {directory} failed: {last_line(done.stderr + done.stdout)}")
    return wheels[0], sdists[0]


def drift_problems(published: list[dict], rescored: list[dict], envs: tuple[str, ...], last: str) -> list[str]:
    """What the drift gate refuses: env ids of version ``last`` whose frozen rollouts now earn other rewards.

    Args:
        published: The last version's frozen rollouts, with the rewards it gave them.
        rescored: The same rows with the rewards the new code gives them (``None``: env not served).
        envs: The env ids the new version serves.
        last: The last published version (for the message).
    """
    changed: dict[str, Counter] = {}
    totals = Counter(row["env"] for row in published)
    gone = set()
    for old, new in zip(published, rescored):
        env_id = old["env"]
        name, _, number = env_id.rpartition("-v")
        if new["rewards"] is None:
            bumped = any(e.rpartition("-v")[0] == name and int(e.rpartition("-v")[2]) > int(number) for e in envs)
            if not bumped:
                gone.add(env_id)
            continue
        names = same_rewards(old["rewards"], new["rewards"])
        if names:
            changed.setdefault(env_id, Counter())["rollouts"] += 1
            changed[env_id].update(names)
    problems = [
        f"{env_id}: rewards {', '.join(sorted(set(c) - {'rollouts'}))} changed on {c['rollouts']} of "
        f"{totals[env_id]} frozen rollouts since {last}, under the same id; changed rewards are a new version: "
        f"register {env_id.rpartition('-v')[0]}-v{int(env_id.rpartition('-v')[2]) + 1} and run `rlhub hub freeze`"
        for env_id, c in sorted(changed.items())
    ]
    problems += [
        f"{env_id} (published in {last}) is no longer served and has no higher -vN; keep it or register its successor"
        for env_id in sorted(gone)
    ]
    return problems


def _stale(frozen: list[dict], rescored: list[dict]) -> int:
    return sum(bool(same_rewards(a["rewards"], b["rewards"])) for a, b in zip(frozen, rescored))


def _card(source: PackageSource) -> dict[str, Any] | None:
    path = source.directory / CARD_FILE
    if not path.is_file():
        return None
    try:
        figures = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RLHubError(f"{path}: not JSON ({exc}); it holds the env card's figures as {{env_id: {{name: value}}}}")
    return {env_id: figures[env_id] for env_id in source.manifest.envs if env_id in figures} or None


def _probe_scores(reports: list[dict]) -> dict[str, dict[str, float]]:
    """Each probe's highest correctness and total reward over the package's envs."""
    scores: dict[str, dict[str, float]] = {}
    for report in reports:
        for check in report["checks"]:
            if check["kind"] == "probe" and check["max_total"] is not None:
                best = scores.setdefault(check["name"], {"correct": 0.0, "total": 0.0})
                best["correct"] = max(best["correct"], check["max_correct"] or 0.0)
                best["total"] = max(best["total"], check["max_total"])
    return dict(sorted(scores.items()))


def upload(files: list[Path], repository_url: str, username: str | None, password: str | None) -> None:
    """``twine upload`` the files; credentials from the arguments, else ``TWINE_USERNAME``/``TWINE_PASSWORD``."""
    env = dict(os.environ)
    env.update({k: v for k, v in (("TWINE_USERNAME", username), ("TWINE_PASSWORD", password)) if v})
    command = [sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar"]
    done = subprocess.run(
        [*command, "--repository-url", repository_url, *map(str, files)], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise RLHubError(f"upload to {repository_url} failed: {last_line(done.stdout + done.stderr)}")


def publish(
    directory: str | Path,
    hub: str,
    repository_url: str,
    *,
    index_url: str | None = None,
    username: str | None = None,
    password: str | None = None,
    isolation: bool = True,
) -> dict[str, Any]:
    """Build, validate, drift-check, upload and index the env package in ``directory``.

    Args:
        directory: The package folder (pyproject.toml, the package, ``rollouts.jsonl``).
        hub: The hub index file to add the version to (a path or file URL).
        repository_url: Where ``twine`` uploads (a pypiserver's root, ``https://upload.pypi.org/legacy/``).
        index_url: The simple index pip installs from; default ``repository_url`` + ``simple/``.
        username: Upload user (default ``$TWINE_USERNAME``).
        password: Upload password (default ``$TWINE_PASSWORD``).
        isolation: Build in an isolated environment (``python -m build``'s default).

    Returns:
        The index entry of the new version.
    """
    # 1. The package, its frozen rollouts and the index
    source = PackageSource.read(directory)
    frozen = read_rollouts(source.rollouts_path)
    index_file = local_path(hub)
    index = read_index(index_file.resolve().as_uri())
    known = index["packages"].get(canonical(source.name))
    last = sorted_versions(known)[-1] if known else None
    if last is not None and Version(source.version) <= Version(last):
        raise RLHubError(f"{source.name} {source.version} is not newer than {last} on the hub index: "
                         "bump version in pyproject.toml")  # fmt: skip
    published = known["versions"][last]["rollouts"] if known else []

    with tempfile.TemporaryDirectory(prefix="rlhub-publish-") as folder:
        # 2. Build
        wheel, sdist = build(source.directory, Path(folder), isolation)
        with staged(wheel) as stage:
            # 3. The drift gate first (it is quick), with the built wheel's code
            rescored = run_package_code(stage, source.name, {"rescore": {"frozen": frozen, "published": published}})
            rescored = rescored["rescored"]
            problems = drift_problems(published, rescored["published"], source.manifest.envs, last or "")
            if problems:
                raise RLHubError(f"refused: {'; '.join(problems)}")
            stale = _stale(frozen, rescored["frozen"])
            if stale:
                raise RLHubError(f"{source.rollouts_path}: {stale} of {len(frozen)} rollouts earn other rewards with "
                                 f"this code; run `rlhub hub freeze {source.directory}` again")  # fmt: skip
            # 4. Validate, every probe
            reports = run_package_code(stage, source.name, {"validate": list(source.manifest.envs)})["validate"]
        failed = [(r["env_id"], [c["name"] for c in r["checks"] if not c["passed"]]) for r in reports]
        failed = [f"{env_id} fails {', '.join(names)}" for env_id, names in failed if names]
        if failed:
            raise RLHubError(f"{source.name} {source.version} does not validate: {'; '.join(failed)}; run "
                             "`rlhub validate ENV_ID` with the package installed to see why")  # fmt: skip
        # 5. Hashes, upload, index
        code_hash, data_hash = content_hashes(wheel_file_hashes(wheel))
        upload([wheel, sdist], repository_url, username, password)
        entry = {
            "envs": list(source.manifest.envs),
            "index_url": index_url or repository_url.rstrip("/") + "/simple/",
            "wheel": {"filename": wheel.name, "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()},
            "sdist": {"filename": sdist.name, "sha256": hashlib.sha256(sdist.read_bytes()).hexdigest()},
            "code_hash": code_hash,
            "data_hash": data_hash,
            "reward_hash": reward_hash(rescored["frozen"]),
            "validate": {"passed": all(r["passed"] for r in reports), "probes": _probe_scores(reports)},
            "rollouts": rescored["frozen"],
        }
        card = _card(source)
        if card:
            entry["card"] = card
    add_version(index, source.name, source.version, source.summary, source.manifest.license, entry)
    write_index(index_file, index)
    return entry
