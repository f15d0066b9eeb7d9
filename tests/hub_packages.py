"""Real env packages for the hub's tests and bench: scaffolded, given an env whose scoring runs a snippet, installed.

``write_package`` writes one package (its env is ``PackageEnv``: arithmetic underneath, with ``attack`` run first
whenever it scores); ``install_packages`` pip-installs packages into a target folder, as the hub's users get them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from rlhub.authoring.scaffold import new_env

ENV_MODULE = """
import math, os, socket, sys, time
from rlhub.envs.arithmetic import ArithmeticEnv
from rlhub.types import Score

PLACES = {places!r}


class PackageEnv(ArithmeticEnv):
    def score_batch(self, completions, examples):
{attack}
        return super().score_batch(completions, examples)
"""


def write_package(
    root: Path, name: str, attack: str, places: dict, *, extra: str = "", init: str = "", slug: str | None = None
) -> Path:
    """A scaffolded env package whose env is ``PackageEnv`` above, running ``attack`` when it scores.

    Args:
        root: The package's source goes to ``root/src/<slug>``.
        name: Names the package ``attack-<name>`` (``victim``: ``victim``), unless ``slug`` is given.
        attack: Python statements run at the start of every ``score_batch`` (``pass`` for none).
        places: Paths and values the attack reads as ``PLACES``.
        extra: Source appended to the env module.
        init: Source prepended to the package's ``__init__.py`` (runs at import).
        slug: The scaffold's name: the env id is ``<slug>-v0``, the distribution ``rlhub-env-<slug>``.

    Returns:
        The package's source folder (what pip installs).
    """
    slug = slug or (f"attack-{name}" if name != "victim" else "victim")
    src = root / "src" / slug
    _, written = new_env(slug, "math", package=src)
    package = next(p.parent for p in written if p.name == "__init__.py")
    module = package / "env.py"
    module.write_text(ENV_MODULE.format(places=places, attack=textwrap.indent(attack, " " * 8)) + extra)
    init_file = package / "__init__.py"
    text = init_file.read_text()
    start = text.index('"entry_point": ') + len('"entry_point": ')
    end = text.index(",", start)
    init_file.write_text(init + text[:start] + repr(f"{package.name}.env:PackageEnv") + text[end:])
    manifest = package / "rlhub.toml"
    manifest.write_text(manifest.read_text().replace("cpu_seconds = 10", "cpu_seconds = 2"))
    return src


def install_packages(sources: list[Path], target: Path) -> None:
    """pip-install ``sources`` (one pip run, no dependencies) into the folder ``target``, readable by any uid.

    Raises:
        RuntimeError: pip failed; the message holds the end of its output.
    """
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--target"]
    done = subprocess.run([*pip, str(target), *map(str, sources)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip install of {[s.name for s in sources]} failed: {done.stderr[-3000:]}")
    os.chmod(target, 0o755)  # the sandbox's own uid reads the installed packages
