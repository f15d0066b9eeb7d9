"""`rlhub new-env`: every scaffold passes `rlhub validate` and its own test before anyone edits it.

The scaffolds go into a temporary copy of the checkout's layout (registry.yaml, README.md, envs/,
tests/); ``rlhub.envs`` is extended to that envs/ folder, as an editable install of it would be.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rlhub.authoring.scaffold import VARIANTS, EnvNames, new_env
from rlhub.cli import main
from rlhub.env.registry import parse_registry
from rlhub.errors import RLHubError

ROOT = Path(__file__).resolve().parents[1]
README_ROW = re.compile(r"^\| `([a-z0-9-]+-v\d+)` \|", re.M)  # as tests/test_docs.py reads the table
SCAFFOLDS = {f"new-{domain}{'-mt' if multi else ''}": (domain, multi) for domain, multi in VARIANTS}

CONFTEST = "import rlhub.envs\n\nrlhub.envs.__path__.insert(0, {envs!r})\n"


def make_layout(folder: Path) -> Path:
    folder.mkdir()
    for name in ("registry.yaml", "README.md"):
        (folder / name).write_text((ROOT / name).read_text())
    (folder / "envs").mkdir()
    return folder


def registry_ids(folder: Path) -> list[str]:
    return [s.id for s in parse_registry(yaml.safe_load((folder / "registry.yaml").read_text()), "registry.yaml")]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A checkout layout with one scaffold of every (domain, multi-turn) variant, made through the CLI."""
    folder = make_layout(tmp_path_factory.mktemp("scaffold") / "repo")
    before = {"ids": registry_ids(folder), "rows": set(README_ROW.findall((folder / "README.md").read_text()))}
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        for name, (domain, multi) in SCAFFOLDS.items():
            result = runner.invoke(main, ["new-env", name, "--domain", domain, *(["--multi-turn"] if multi else [])])
            assert result.exit_code == 0, result.output
            assert f"next: rlhub validate {name}-v0" in result.output
    (folder / "tests" / "conftest.py").write_text(CONFTEST.format(envs=str(folder / "envs")))
    return folder, before


@pytest.fixture
def in_process(checkout, monkeypatch):
    """rlhub in this process reading the scaffolded checkout: its registry.yaml, and its envs/ on rlhub.envs's
    path (what `pip install -e .` of that checkout gives)."""
    import rlhub.envs
    from rlhub.env import registry

    folder, _ = checkout
    monkeypatch.setattr(rlhub.envs, "__path__", [str(folder / "envs"), *rlhub.envs.__path__])
    monkeypatch.setenv("RLHUB_REGISTRY", str(folder / "registry.yaml"))
    registry.clear_cache()
    yield registry
    registry.clear_cache()
    for module in [m for m in sys.modules if m.startswith("rlhub.envs.new_")]:
        del sys.modules[module]  # imported from the temporary folder: gone with it


def run_env(folder: Path) -> dict[str, str]:
    return {**os.environ, "RLHUB_REGISTRY": str(folder / "registry.yaml")}


def test_scaffold_writes_module_test_registry_entry_and_readme_row(checkout):
    folder, before = checkout
    new_ids = [f"{name}-v0" for name in SCAFFOLDS]
    assert registry_ids(folder) == before["ids"] + new_ids  # appended, the existing entries untouched
    specs = {s.id: s for s in parse_registry(yaml.safe_load((folder / "registry.yaml").read_text()), "r")}
    assert specs["new-code-mt-v0"].entry_point == "rlhub.envs.new_code_mt:NewCodeMtEnv"
    assert (specs["new-tool-v0"].domain, specs["new-tool-v0"].config) == ("tool", {"difficulty": 1})
    readme = (folder / "README.md").read_text()
    assert set(README_ROW.findall(readme)) == before["rows"] | set(new_ids)  # test_docs stays green
    # Each row goes after its domain's last row: new-math-v0 among the math rows, new-code-v0 after codegen-v0.
    assert readme.index("| `new-math-v0` |") < readme.index("| `codegen-v0` |") < readme.index("| `new-code-v0` |")
    for name in SCAFFOLDS:
        module = (folder / "envs" / f"{name.replace('-', '_')}.py").read_text()
        assert not re.search(r"ScaffoldName|scaffold[-_]name", module)  # every placeholder replaced
        assert module.startswith(f'"""{name.replace("-", "_")}: ') and "Version history:\n    v0:" in module
        assert f'ENV_ID = "{name}-v0"' in (folder / "tests" / f"test_{name.replace('-', '_')}.py").read_text()


def test_every_scaffold_passes_rlhub_validate_untouched(in_process):
    ids = [f"{name}-v0" for name in SCAFFOLDS]
    result = CliRunner().invoke(main, ["validate", *ids, "-n", "4", "--json"])
    assert result.exit_code == 0, result.output[-3000:]
    reports = json.loads(result.output)
    assert [r["env_id"] for r in reports] == ids and all(r["passed"] for r in reports)
    core = {"examples load", "deterministic", "gold scores 1.0", "garbage scores 0", "gymnasium api"}
    assert all(core <= {c["name"] for c in r["checks"]} for r in reports)


def test_every_scaffolds_own_test_passes(checkout):
    folder, _ = checkout
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        capture_output=True,
        text=True,
        cwd=folder,
        env=run_env(folder),
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert f"{4 * len(SCAFFOLDS)} passed" in out.stdout  # four tests per scaffold, none skipped


def test_scaffolds_are_lint_clean_under_the_repo_config(checkout):
    folder, _ = checkout
    files = [str(p) for p in sorted((folder / "envs").glob("*.py")) + sorted((folder / "tests").glob("test_*.py"))]
    config = ["--config", str(ROOT / "pyproject.toml")]
    check = subprocess.run([sys.executable, "-m", "ruff", "check", *config, *files], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *config, *files], capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout


def test_multi_turn_scaffolds_are_tool_envs(in_process):
    for name, (_, multi) in SCAFFOLDS.items():
        env = in_process.make(f"{name}-v0")
        assert env.multi_turn is multi, name
        if multi:  # the gold transcript really calls a tool, and the logged count says so
            example = env.examples("train", limit=1)[0]
            assert env.score(env.gold_completion(example), example).rewards["tool_calls"] >= 1


def test_refuses_to_overwrite_in_one_line(checkout):
    folder, _ = checkout
    before = {p: p.read_text() for p in [folder / "registry.yaml", folder / "README.md", folder / "envs/new_math.py"]}
    out = subprocess.run(
        [sys.executable, "-m", "rlhub", "new-env", "new-math", "--domain", "code"],
        capture_output=True,
        text=True,
        cwd=folder,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "new_math.py already exists; new-env never overwrites" in lines[0]
    assert {p: p.read_text() for p in before} == before


def test_refuses_an_id_the_registry_has(tmp_path):
    folder = make_layout(tmp_path / "repo")
    with pytest.raises(RLHubError, match=r"already registers 'countdown-v0'"):
        new_env("countdown", "math", root=folder)
    assert not (folder / "envs" / "countdown.py").exists()  # nothing written


@pytest.mark.parametrize(
    "name, message",
    [
        ("WordCount", r"must be lowercase letters and digits joined by - or _"),
        ("word count", r"must be lowercase"),
        ("9lives", r"must be lowercase"),
        ("word--count", r"must be lowercase"),
        ("class", r"module name 'class'"),
        ("test-env", r"module name 'test_env', which Python or pytest reserve"),
    ],
)
def test_bad_names_are_refused(name, message, tmp_path):
    with pytest.raises(RLHubError, match=message):
        new_env(name, "math", root=make_layout(tmp_path / "repo"))


def test_names_derive_from_one_given_name():
    names = EnvNames.parse("word_count-v2")
    assert (names.env_id, names.module, names.class_prefix) == ("word-count-v2", "word_count", "WordCount")
    assert (names.distribution, names.package) == ("rlhub-env-word-count", "rlhub_env_word_count")


def test_outside_a_checkout_points_to_package(tmp_path):
    with pytest.raises(RLHubError, match=r"is not an rlhub checkout .* or pass --package DIR"):
        new_env("word-count", "math", root=tmp_path)


def test_package_folder_must_be_new_or_empty(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "keep.txt").write_text("x")
    with pytest.raises(RLHubError, match=r"pkg already exists and is not empty"):
        new_env("word-count", "math", package=tmp_path / "pkg")
    assert [p.name for p in (tmp_path / "pkg").iterdir()] == ["keep.txt"]


def test_description_is_quoted_when_yaml_needs_it(tmp_path):
    folder = make_layout(tmp_path / "repo")
    new_env("word-count", "math", root=folder, description="Count words: fast # really | truly")
    spec = next(
        s
        for s in parse_registry(yaml.safe_load((folder / "registry.yaml").read_text()), "r")
        if s.id == "word-count-v0"
    )
    assert spec.description == "Count words: fast # really | truly"
    assert "| count words: fast # really \\| truly |" in (folder / "README.md").read_text()
