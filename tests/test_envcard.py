"""Env cards show every env's real prompt, rewards, config and versions; docs/envs.md stays generated."""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import shutil
import subprocess
import types
from pathlib import Path

import pytest

import rlhub
from rlhub.authoring.envcard import (
    docs_page,
    env_card,
    fenced,
    field_docs,
    main,
    md_text,
    module_doc,
    reward_description,
)
from rlhub.env.registry import get_spec

ROOT = Path(__file__).resolve().parents[1]
ALL_IDS = [s.id for s in rlhub.list_envs()]


def _tables(card: str) -> list[list[str]]:
    """The markdown tables of a card, each as its lines."""
    tables, current = [], []
    for line in [*card.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def _cells(line: str) -> int:
    return len(re.split(r"(?<!\\)\|", line)) - 2


def test_docs_page_is_current():
    expected = docs_page()
    path = ROOT / "docs" / "envs.md"
    fix = f"RLHUB_DATA={os.environ['RLHUB_DATA']} python -m rlhub.authoring.envcard --write docs/envs.md"
    assert path.is_file(), f"docs/envs.md is missing; generate it with: {fix}"
    assert path.read_text(encoding="utf-8") == expected, f"docs/envs.md is out of date; regenerate it with: {fix}"


def test_docs_page_indexes_every_env_by_domain_and_holds_its_card():
    page = (ROOT / "docs" / "envs.md").read_text(encoding="utf-8")
    for spec in rlhub.list_envs():  # registry.yaml's envs (the tests install no env package)
        assert f"[`{spec.id}`](#{spec.id})" in page
        assert f"### `{spec.id}`" in page
        card_start = page.index(f"### `{spec.id}`")
        domain_start = page.rindex("\n## ", 0, card_start)
        assert page[domain_start:].startswith(
            f"\n## {dict(math='Math', code='Code', tool='Tools', instruction='Instruction following')[spec.domain]}\n"
        )
    assert "### `rg/<task>-v2`" in page and "pip install 'rlhub[rg]'" in page
    assert str(ROOT) not in page and "/work/" not in page  # nothing machine-specific


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_every_env_card_shows_its_prompt_gold_rewards_config_and_history(env_id):
    spec = get_spec(env_id)
    env = spec.make()
    card = env_card(env_id)
    assert card.startswith(f"# `{env_id}`\n") and md_text(spec.description) in card
    assert f"| data license | {md_text(spec.license, cell=True)} |" in card

    example = env.examples("train", limit=1, seed=0)[0]
    assert fenced(example.prompt[-1]["content"]) in card
    gold = env.gold_completion(example)
    for message in gold if isinstance(gold, list) else [{"content": gold}]:
        assert fenced(message["content"]) in card

    rewards = _tables(card.split("## Rewards")[1])[0]
    assert [row.split("|")[1].strip() for row in rewards[2:]] == [f"`{name}`" for name in env.rubric.names]
    for row, (name, weight) in zip(rewards[2:], env.rubric.weights.items()):
        assert row.split("|")[2].strip() == f"{weight:g}"
        assert row.split("|")[3].strip(), f"reward {name!r} of {env_id} has no description"

    config = _tables(card.split("## Config")[1])[0]
    assert [row.split("|")[1].strip() for row in config[2:]] == [f"`{f.name}`" for f in dataclasses.fields(env.config)]
    for key, value in spec.config.items():  # the defaults shown are the registry's, where it sets them
        assert any(row.startswith(f"| `{key}` |") and f"`{value!r}`" in row for row in config), key

    history = module_doc(importlib.import_module(spec.entry_point.split(":")[0])).history
    assert history and all(f"- {md_text(line)}" in card.split("## Version history")[1] for line in history)

    if env.multi_turn:
        tools = _tables(card.split("## Tools")[1])[0]
        names = [s["function"]["name"] for s in env.toolbox_for(example).schemas]
        assert [row.split("|")[1].strip() for row in tools[2:]] == [f"`{n}`" for n in names]
    else:
        assert "## Tools" not in card

    for table in _tables(card):
        assert len({_cells(line) for line in table}) == 1, table  # every row has the header's columns


def test_a_reward_without_a_docstring_is_described_by_the_module_docstring():
    def documented(completions, **kwargs):
        """1.0 iff it is right.

        More detail.
        """

    rewards = (
        "Rewards: ``correct`` (1.0 if the value (as an integer) matches; weight 1.0), ``used`` (a\ncount, weight 0)."
    )
    assert reward_description("correct", documented, rewards) == "1.0 iff it is right."
    assert reward_description("correct", lambda completions: [], rewards) == "1.0 if the value (as an integer) matches"
    assert reward_description("used", lambda completions: [], rewards) == "a count"
    assert reward_description("other", lambda completions: [], rewards) == ""


def test_version_history_entries_may_run_over_several_lines():
    module = types.ModuleType("m", "m: x.\n\nVersion history:\n    v0: first.\n    v1: longer\n        text.\n")
    assert module_doc(module).history == ["v0: first.", "v1: longer text."]


def test_field_docs_read_docstrings_and_comments_through_base_classes():
    @dataclasses.dataclass
    class Base:
        a: int = 1
        """The a field."""

    @dataclasses.dataclass
    class Child(Base):
        b: str = "x"  # The b field.
        c: float = 0.5

    assert field_docs(Child) == {"a": "The a field.", "b": "The b field."}


def test_markdown_escapes_keep_code_fences_and_tables_intact():
    assert fenced("```python\nx = 1\n```").startswith("````text\n")
    assert md_text("the <answer> tag, ``<answer>``, a | b", cell=True) == "the &lt;answer> tag, `<answer>`, a \\| b"


def test_cli_prints_the_card_and_the_module_writes_it(tmp_path):
    rlhub_cli = shutil.which("rlhub")
    out = subprocess.run([rlhub_cli, "envs", "show", "countdown-v0", "--markdown"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == env_card("countdown-v0")
    main(["countdown-v0", "--write", str(tmp_path / "card.md")])
    assert (tmp_path / "card.md").read_text() == out.stdout


@pytest.mark.parametrize(
    "env_id, reference",
    [
        ("arithmetic-v1", "math-verify"),
        ("gsm8k-v1", "math-verify"),
        ("math-v1", "math-verify"),
        ("calculator-v1", "math-verify"),
        ("sql-v2", "test-suite comparison"),
        ("sql-mcp-v1", "test-suite comparison"),
    ],
)
def test_a_card_lists_where_its_verifier_decides_otherwise_than_the_reference(env_id, reference):
    env = rlhub.make(env_id)
    checks = [getattr(r.fn, "reference_check", None) for r in env.rubric.items]
    [check] = [c for c in checks if c is not None]
    assert reference in check.reference and check.differences
    card = env_card(env_id)
    assert f"cross-checked against {md_text(check.reference)}" in card
    for kind, why in check.differences.items():
        assert f"- {md_text(kind)}: {md_text(why)}" in card
