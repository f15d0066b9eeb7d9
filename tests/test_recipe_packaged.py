"""load_recipe finds the recipes rlhub ships by name (``quickstart.yaml``), in a checkout and installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlhub.errors import ConfigError
from rlhub.trainers.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]


def test_a_checkout_finds_a_shipped_recipe_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no recipes/ here
    assert load_recipe("quickstart.yaml") == load_recipe(ROOT / "recipes" / "quickstart.yaml")
    with pytest.raises(ConfigError, match=r"recipe nonesuch\.yaml not found"):
        load_recipe("nonesuch.yaml")


def installed_layout(site: Path) -> Path:
    """The tree a wheel installs into ``site``: the packages where pyproject's package-dir puts them, and the
    registry and recipes under ``rlhub/_data``, where setup.py's build step copies them (data/ is not needed)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package, folder in sorted(package_dirs.items()):
        shutil.copytree(ROOT / folder, site.joinpath(*package.split(".")), ignore=ignore, dirs_exist_ok=True)
    data = site / "rlhub" / "_data"
    data.mkdir()
    shutil.copy2(ROOT / "registry.yaml", data / "registry.yaml")
    shutil.copytree(ROOT / "recipes", data / "recipes")
    return site


@pytest.mark.slow
def test_an_installed_rlhub_finds_a_shipped_recipe_by_name(tmp_path):
    site = installed_layout(tmp_path / "site")
    work = tmp_path / "elsewhere"
    work.mkdir()
    probe = (
        f"import json, sys; sys.path.insert(0, {str(site)!r}); "
        "from rlhub.trainers import recipe; "
        "print(json.dumps([recipe.__file__, recipe.load_recipe('quickstart.yaml').model_dump()]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=work, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    module_file, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert module_file.startswith(str(site))  # the installed copy ran, not the checkout's
    assert loaded == json.loads(json.dumps(load_recipe(ROOT / "recipes" / "quickstart.yaml").model_dump()))
