"""The README stays true: every registered env is in its table, and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import rlhub

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_registered_env_is_in_the_readme_table():
    rows = set(re.findall(r"^\| `([a-z0-9-]+-v\d+)` \|", README, flags=re.M))
    assert rows == {s.id for s in rlhub.list_envs()}


def test_readme_set_up_commands_are_the_scripts_ci_runs():
    assert "bash scripts/quickstart.sh" in README and "bash scripts/test.sh" in README
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    for script in ("quickstart.sh", "test.sh", "setup.sh"):
        assert (ROOT / "scripts" / script).is_file()


def test_readme_recipes_exist():
    for recipe in set(re.findall(r"recipes/[\w./-]+\.yaml", README)):
        assert (ROOT / recipe).is_file(), recipe
