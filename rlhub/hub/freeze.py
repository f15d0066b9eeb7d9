"""``rlhub hub freeze DIR``: the frozen rollouts of an env package, and the re-score that the drift gate uses.

``rollouts.jsonl`` sits beside the package's pyproject.toml: for the first :data:`EXAMPLES` test examples
(seed 0) of each env it serves, the gold completion, a near miss (the gold's layout around another example's
answer) and garbage, each with the rewards it earned, one JSON row each::

    {"env": "word-count-v0", "split": "test", "index": 0, "kind": "gold", "completion": "...",
     "rewards": {"correct": 1.0, "format": 1.0}}

Publishing re-scores the rows of the last published version with the new code: an env id whose rewards
change must be a new ``-vN`` (see :mod:`rlhub.hub.publish`). The package's code runs in a child process that
imports it from a staging folder and trusts it (it is the author's own code, on the author's machine), so
this process never imports two versions of one package.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhub.errors import RLHubError
from rlhub.hub.isolation import TRUST_VARIABLE
from rlhub.hub.manifest import MANIFEST_FILE, Manifest, read_manifest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FROZEN_FILE = "rollouts.jsonl"
EXAMPLES = 3
"""Test examples per env that get frozen rollouts."""
GARBAGE = "I am not sure; maybe the answer is somewhere else."


@dataclass(frozen=True)
class PackageSource:
    """An env package's source folder: its distribution name, version and manifest."""

    directory: Path
    name: str
    version: str
    summary: str
    manifest: Manifest

    @classmethod
    def read(cls, directory: str | Path) -> PackageSource:
        """Read ``pyproject.toml`` and the ``rlhub.toml`` beside the package's ``__init__.py``.

        Raises:
            RLHubError: Either is missing or incomplete; says what to add.
        """
        directory = Path(directory)
        try:
            project = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))["project"]
            name, version = project["name"], project["version"]
        except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
            raise RLHubError(f"{directory}: no pyproject.toml with [project] name and version ({exc}); "
                             "scaffold one with `rlhub new-env NAME --package DIR`")  # fmt: skip
        manifests = sorted(directory.glob(f"*/{MANIFEST_FILE}"))
        if len(manifests) != 1:
            raise RLHubError(f"{directory}: expected one package folder with an {MANIFEST_FILE}, found "
                             f"{[str(m.relative_to(directory)) for m in manifests]}")  # fmt: skip
        return cls(directory, name, str(version), project.get("description", ""), read_manifest(manifests[0]))

    @property
    def rollouts_path(self) -> Path:
        return self.directory / FROZEN_FILE


# --- the child process: the package's code scores here ------------------------------------------------


def _near_miss(gold: Any, other: Any) -> Any:
    """The gold completion with another example's answer in its answer's place (its first half if no slot)."""
    from rlhub.authoring.probes import _answer_slot
    from rlhub.types import last_assistant_text

    text = last_assistant_text(gold)
    slot, other_slot = _answer_slot(text), _answer_slot(last_assistant_text(other))
    if slot is not None and other_slot is not None and other_slot.content != slot.content:
        wrong = slot.fill(other_slot.content)
    else:
        wrong = text[: len(text) // 2]
    if isinstance(gold, list):
        last = max(i for i, m in enumerate(gold) if m.get("role") == "assistant")
        return [*gold[:last], {**gold[last], "content": wrong}, *gold[last + 1 :]]
    return wrong


def rollouts(env_id: str) -> list[dict[str, Any]]:
    """Gold, near-miss and garbage rollouts on ``env_id``'s first test examples, with their rewards."""
    import rlhub

    env = rlhub.make(env_id)
    examples = env.examples("test", limit=EXAMPLES, seed=0)
    golds = [env.gold_completion(ex) for ex in examples]
    rows = []
    for i, gold in enumerate(golds):
        near = _near_miss(gold, golds[(i + 1) % len(golds)])
        for kind, completion in (("gold", gold), ("near-miss", near), ("garbage", GARBAGE)):
            rows.append({"env": env_id, "split": "test", "index": i, "kind": kind, "completion": completion})
    return rescore(rows, {env_id: env})


def rescore(rows: list[dict[str, Any]], envs: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``rows`` with the rewards the installed code gives them now (``None``: its env is not registered)."""
    import rlhub
    from rlhub.env.registry import load_registry

    envs = dict(envs or {})
    registered = load_registry()
    scored = [{**row, "rewards": None} for row in rows]
    for env_id in sorted({row["env"] for row in rows} & set(registered)):
        env = envs.get(env_id) or rlhub.make(env_id)
        mine = [row for row in scored if row["env"] == env_id]
        examples = {}
        for split in {row["split"] for row in mine}:
            examples[split] = env.examples(split, limit=1 + max(r["index"] for r in mine if r["split"] == split))
        scores = env.score_batch([r["completion"] for r in mine], [examples[r["split"]][r["index"]] for r in mine])
        for row, score in zip(mine, scores):
            row["rewards"] = dict(score.rewards)
    return scored


def _child() -> None:
    """Answer one request (JSON on stdin: ``freeze``, ``rescore``, ``validate``) with JSON on stdout."""
    from rlhub.authoring.validate import validate_env

    request = json.load(sys.stdin)
    answer = {
        "rollouts": [row for env_id in request.get("freeze", ()) for row in rollouts(env_id)],
        "rescored": {key: rescore(rows) for key, rows in request.get("rescore", {}).items()},
        "validate": [validate_env(env_id).to_dict() for env_id in request.get("validate", ())],
    }
    sys.stdout.write("\n" + json.dumps(answer) + "\n")


# --- the host side ------------------------------------------------------------------------------------


@contextlib.contextmanager
def staged(source: str | Path) -> Iterator[Path]:
    """A temporary folder with ``source`` (a package folder or a wheel) pip-installed into it, without deps."""
    with tempfile.TemporaryDirectory(prefix="rlhub-stage-") as folder:
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target"]
        done = subprocess.run([*pip, folder, str(Path(source).resolve())], capture_output=True, text=True)
        if done.returncode != 0:
            raise RLHubError(f"cannot install {source} to score it: {last_line(done.stderr)}")
        yield Path(folder)


def run_package_code(stage: Path, package: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`_child` on ``request`` with the staged package first on the path, trusted (in-process)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(stage), env.get("PYTHONPATH")]))
    env[TRUST_VARIABLE] = ",".join(filter(None, [package, env.get(TRUST_VARIABLE)]))
    code = "from rlhub.hub.freeze import _child; _child()"
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(request), capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise RLHubError(f"{package}'s code failed while scoring: {last_line(done.stderr)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def last_line(text: str) -> str:
    """The last non-blank line of a command's output: where pip, build and Python put the error."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def reward_hash(rows: list[dict[str, Any]]) -> str:
    """sha256 over the rollouts and the rewards they earned: what a version's rewards do, in 16 hex digits."""
    canonical = [[r["env"], r["split"], r["index"], r["kind"], r["completion"], r["rewards"]] for r in rows]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:16]


def read_rollouts(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``rollouts.jsonl``.

    Raises:
        RLHubError: It is missing (run ``rlhub hub freeze``) or not JSON lines.
    """
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError:
        raise RLHubError(f"{path} is missing: run `rlhub hub freeze {path.parent}` to freeze rollouts first")
    except ValueError as exc:
        raise RLHubError(f"{path}: not JSON lines ({exc}); run `rlhub hub freeze {path.parent}` again")


def same_rewards(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    """The names of the rewards that differ between two rows' rewards (all of them if either is missing)."""
    if a is None or b is None:
        return sorted(set(a or {}) | set(b or {}))

    def differ(x: Any, y: Any) -> bool:
        if x is None or y is None:
            return x is not y
        return not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)

    return sorted(name for name in set(a) | set(b) if differ(a.get(name), b.get(name)))


def freeze(directory: str | Path) -> Path:
    """Score gold, near-miss and garbage rollouts with the package's code and write ``rollouts.jsonl``.

    Args:
        directory: The env package's folder (with pyproject.toml).

    Returns:
        The path written.
    """
    source = PackageSource.read(directory)
    with staged(source.directory) as stage:
        rows = run_package_code(stage, source.name, {"freeze": list(source.manifest.envs)})["rollouts"]
    source.rollouts_path.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows), "utf-8")
    return source.rollouts_path
