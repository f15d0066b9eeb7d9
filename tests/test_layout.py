"""The import rules of the layout: envs use rewards and the core, rewards only the core; one import for env authors."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import rlhub.env

ROOT = Path(__file__).resolve().parents[1]
CORE_FOR_REWARDS = (
    "rlhub.errors",
    "rlhub.types",
    "rlhub.resolve",
    "rlhub.arithmetic",
    "rlhub.sandbox",
    "rlhub.rewards",
)
"""What a reward module may import from rlhub (the sandbox for code rewards and the shared worker pool)."""
CHECKOUT_PACKAGES = ("envs", "rewards", "trainers")
"""Folders of the checkout installed as ``rlhub.envs``, ``rlhub.rewards``, ``rlhub.trainers`` (see pyproject.toml)."""
LIBRARY = ("rlhub", *CHECKOUT_PACKAGES)


def _rlhub_imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return {m for m in modules if m == "rlhub" or m.startswith("rlhub.")}


def _python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def _within(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


@pytest.mark.parametrize("path", sorted((ROOT / "envs").glob("*.py")), ids=lambda p: p.name)
def test_env_modules_import_no_validation_trainer_or_engine(path):
    banned = ("rlhub.authoring", "rlhub.trainers", "rlhub.generation", "rlhub.evaluate", "rlhub.cli")
    bad = sorted(m for m in _rlhub_imports(path) if _within(m, banned))
    assert not bad, f"{path.name} imports {bad}; an env needs only rlhub.env, rlhub.rewards and the core"


@pytest.mark.parametrize("path", sorted((ROOT / "rewards").glob("*.py")), ids=lambda p: p.name)
def test_reward_modules_import_only_the_core(path):
    bad = sorted(m for m in _rlhub_imports(path) if not _within(m, CORE_FOR_REWARDS))
    assert not bad, f"{path.name} imports {bad}; rewards may use only {CORE_FOR_REWARDS}"


def test_the_env_api_is_one_import():
    needed = {"ConfigError", "DataConfig", "DatasetEnv", "EnvConfig", "Example", "Message", "MultiTurnConfig"}
    needed |= {"MultiTurnEnv", "Probe", "ProceduralEnv", "Rubric", "TextEnv", "ToolBox"}
    assert needed <= set(rlhub.env.__all__)
    namespace: dict = {}
    exec(f"from rlhub.env import {', '.join(sorted(needed))}", namespace)
    assert namespace["Rubric"].__module__ == "rlhub.rewards.rubric"
    assert namespace["MultiTurnEnv"].multi_turn and not namespace["ProceduralEnv"].multi_turn


def test_rlhub_keeps_few_modules_at_its_top_level():
    modules = sorted(p.name for p in (ROOT / "rlhub").glob("*.py"))
    assert len(modules) <= 11, f"rlhub/ holds {modules}: put new code in the subpackage whose job it is"


def test_trainers_keep_their_functions_short():
    """The loop reads like nanoGPT's: set-up helpers, then numbered steps; no function in trainers/ over 120 lines."""
    long = []
    for path in sorted((ROOT / "trainers").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 120:
                long.append(f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, f"split these into helpers: {long}"


def test_trainers_reach_envs_only_through_the_registry():
    for path in sorted((ROOT / "trainers").glob("*.py")):
        bad = sorted(m for m in _rlhub_imports(path) if m.startswith(("rlhub.envs", "rlhub.authoring")))
        assert not bad, f"trainers/{path.name} imports {bad}; trainers make envs with rlhub.make (the registry)"


def test_packages_export_what_they_import_not_through_a_module_getattr():
    """A module ``__getattr__`` that imports on first use hides an import cycle rather than removing it."""
    lazy = [
        str(path.relative_to(ROOT))
        for path in _python_files(*LIBRARY)
        if any(
            isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
            for node in ast.parse(path.read_text(encoding="utf-8")).body
        )
    ]
    assert not lazy, f"{lazy} define a module __getattr__; import what the module exports at its top instead"
    assert set(rlhub.env.__all__) <= set(vars(rlhub.env)), "rlhub.env exports a name it does not import"


def _checkout_module(name: str) -> bool:
    """Whether ``name`` starts with a checkout folder's name and names a module in that folder."""
    top, _, rest = name.partition(".")
    first = rest.split(".")[0]
    module = ROOT / top / first
    return top in CHECKOUT_PACKAGES and (not first or module.with_suffix(".py").exists() or module.is_dir())


def test_modules_import_the_packages_by_their_installed_names():
    """``envs.humaneval`` imported from the checkout is a second module beside ``rlhub.envs.humaneval``: its own
    globals, caches and classes, so an ``isinstance`` or a monkeypatch on one misses the other."""
    bad = []
    for path in _python_files("tests", "bench", *LIBRARY):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):  # resolve("envs.x:Y"), setattr paths
                names = [node.value.partition(":")[0]] if re.fullmatch(r"\w+(\.\w+)+(:\w+)?", node.value) else []
            else:
                continue
            bad += [f"{path.relative_to(ROOT)}:{node.lineno} names {n}" for n in names if n and _checkout_module(n)]
    assert not bad, f"use rlhub.envs / rlhub.rewards / rlhub.trainers instead: {bad}"
