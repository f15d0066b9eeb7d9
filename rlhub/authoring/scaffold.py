"""``rlhub new-env``: write a new environment that works before its author edits a line.

A scaffold is a small working toy for its domain (math, code or tool; single- or multi-turn) copied
from :mod:`rlhub.authoring.templates` under the new name, plus everything that makes it a registered, tested
environment. In an rlhub checkout that is ``envs/<module>.py``, an entry appended to
``registry.yaml``, ``tests/test_<module>.py`` and a row in the README's environment table. With
``package=`` it is instead a pip-installable env package (its own name, version and dependencies)
that registers through the ``rlhub.envs`` entry-point group. Either way ``rlhub validate <id>`` and
the written test pass as they are; the author then replaces the toy with the real task.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlhub import __version__
from rlhub.env.registry import DOMAINS, parse_registry
from rlhub.errors import RLHubError
from rlhub.hub.manifest import MANIFEST_FILE

TEMPLATES = Path(__file__).resolve().parent / "templates"
NAME_RE = re.compile(r"^(?P<slug>[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*?)(?:-v(?P<version>\d+))?$")
README_ROW = re.compile(r"^\| `(?P<id>[^`]+-v\d+)` \| (?P<domain>\w+) \|", re.M)


@dataclass(frozen=True)
class Variant:
    """One template and what the registry and README say about it."""

    template: str
    description: str
    rewards: tuple[str, ...]
    tags: tuple[str, ...]
    config: dict[str, Any]


VARIANTS: dict[tuple[str, bool], Variant] = {
    ("math", False): Variant(
        "math_env.py",
        "Compute a * b + c for random integers (the rlhub new-env math toy).",
        ("correct", "format"),
        ("procedural",),
        {"difficulty": 1},
    ),
    ("math", True): Variant(
        "math_multiturn.py",
        "Compute a * b + c with multiply and add tools, over several turns (the rlhub new-env math toy).",
        ("correct", "format", "tool_calls"),
        ("procedural", "multi-turn", "tools"),
        {"difficulty": 1, "max_turns": 4},
    ),
    ("code", False): Variant(
        "code_env.py",
        "Write a small Python function; generated asserts run in the sandbox (the rlhub new-env code toy).",
        ("correct", "pass_rate", "format"),
        ("procedural", "python", "unit-tests"),
        {"difficulty": 1},
    ),
    ("code", True): Variant(
        "code_multiturn.py",
        "Write a small Python function, trying it with a run_python tool first (the rlhub new-env code toy).",
        ("correct", "pass_rate", "format", "tool_calls"),
        ("procedural", "python", "unit-tests", "multi-turn", "tools"),
        {"difficulty": 1, "max_turns": 4},
    ),
    ("tool", False): Variant(
        "tool_env.py",
        "Call the right functions with the right arguments in one turn (the rlhub new-env tool toy).",
        ("correct", "format"),
        ("procedural", "function-calling"),
        {"difficulty": 1},
    ),
    ("tool", True): Variant(
        "tool_multiturn.py",
        "Total a shop's stock by calling a stock tool, over several turns (the rlhub new-env tool toy).",
        ("correct", "format", "tool_calls"),
        ("procedural", "multi-turn", "tools"),
        {"difficulty": 1, "max_turns": 4},
    ),
}
"""The template of each (domain, multi_turn)."""


@dataclass(frozen=True)
class EnvNames:
    """Every name a new environment goes by, derived from the one its author gives."""

    slug: str
    """``word-count``: the id without its version."""
    version: int

    @classmethod
    def parse(cls, name: str) -> EnvNames:
        """``word-count``, ``word_count`` or ``word-count-v0`` (lowercase letters, digits, - and _)."""
        m = NAME_RE.match(name)
        if not m:
            raise RLHubError(
                f"env name {name!r} must be lowercase letters and digits joined by - or _, starting with a "
                "letter, optionally ending in a version: e.g. word-count or word-count-v0"
            )
        slug = m["slug"].replace("_", "-")
        module = slug.replace("-", "_")
        if keyword.iskeyword(module) or module == "test" or module.startswith("test_") or module.endswith("_test"):
            raise RLHubError(f"env name {name!r} gives the module name {module!r}, which Python or pytest reserve")
        return cls(slug, int(m["version"] or 0))

    @property
    def env_id(self) -> str:
        return f"{self.slug}-v{self.version}"

    @property
    def module(self) -> str:
        return self.slug.replace("-", "_")

    @property
    def class_prefix(self) -> str:
        return "".join(part.capitalize() for part in self.slug.split("-"))

    @property
    def distribution(self) -> str:
        return f"rlhub-env-{self.slug}"

    @property
    def package(self) -> str:
        return f"rlhub_env_{self.module}"


def render(template: str, names: EnvNames) -> str:
    """A template's text with the placeholder names replaced (the id before the shorter slug)."""
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    for placeholder, value in (
        ("scaffold-name-v0", names.env_id),
        ("scaffold-name", names.slug),
        ("scaffold_name", names.module),
        ("ScaffoldName", names.class_prefix),
        ("    v0: first version.", f"    v{names.version}: first version."),
    ):
        text = text.replace(placeholder, value)
    return text


def registry_entry(names: EnvNames, domain: str, variant: Variant, entry_point: str, description: str) -> dict:
    """The env's registry entry, checked by the registry's own rules before anything is written."""
    entry = {
        "id": names.env_id,
        "entry_point": entry_point,
        "version": names.version,
        "domain": domain,
        "tags": list(variant.tags),
        "description": description,
        "license": "Apache-2.0 (generated)",
        "config": dict(variant.config),
    }
    parse_registry([entry], f"the new entry {names.env_id!r}")
    return entry


def _yaml_scalar(value: Any) -> str:
    """A one-line YAML value in registry.yaml's style: plain where YAML reads it back unchanged, else quoted."""
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_scalar(v)}" for k, v in value.items()) + "}"
    text = value if isinstance(value, str) else json.dumps(value)
    try:
        plain_ok = yaml.safe_load(f"k: {text}") == {"k": value} and "#" not in text
    except yaml.YAMLError:
        plain_ok = False
    return text if plain_ok else json.dumps(value, ensure_ascii=False)


def _py_literal(value: Any) -> str:
    """``value`` as Python source, in ruff's style (double quotes)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_py_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_py_literal(k)}: {_py_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _refuse_existing(paths: list[Path]) -> None:
    for path in paths:
        if path.exists():
            raise RLHubError(f"{path} already exists; new-env never overwrites: pick another name or remove it")


def _registry_ids(text: str, path: Path) -> list[str]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RLHubError(f"{path}: not valid YAML ({exc}); fix it before adding an env")
    return [spec.id for spec in parse_registry(data, str(path))]


# --- in a checkout ------------------------------------------------------------------------------------


def _append_registry_entry(text: str, entry: dict[str, Any]) -> str:
    first = re.search(r"^([ \t]*)- id:", text, re.M)
    indent = first.group(1) if first else "  "
    lines = [f"{indent}- id: {entry['id']}"]
    lines += [f"{indent}  {key}: {_yaml_scalar(value)}" for key, value in entry.items() if key != "id"]
    return text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"


def _readme_with_row(text: str, entry: dict[str, Any], variant: Variant) -> str | None:
    """The README with the env's row added to its environment table after its domain's last row (None: no table)."""
    rows = list(README_ROW.finditer(text))
    if not rows:
        return None
    same_domain = [m for m in rows if m["domain"] == entry["domain"]]
    anchor = (same_domain or rows)[-1]
    line_end = text.index("\n", anchor.end()) if "\n" in text[anchor.end() :] else len(text)
    what = entry["description"].rstrip(".").replace("|", "\\|")
    what = what[0].lower() + what[1:]
    rewards = ", ".join(f"`{r}`" for r in variant.rewards)
    row = f"| `{entry['id']}` | {entry['domain']} | {what} | {rewards} |"
    return text[:line_end] + "\n" + row + text[line_end:]


def scaffold_checkout(names: EnvNames, domain: str, variant: Variant, root: Path, description: str) -> list[Path]:
    """Write the env module, its registry entry, its test and its README row into the checkout at ``root``."""
    registry_path, readme_path = root / "registry.yaml", root / "README.md"
    if not registry_path.is_file() or not (root / "envs").is_dir():
        raise RLHubError(
            f"{root.resolve()} is not an rlhub checkout (no registry.yaml and envs/ there); run new-env at the "
            "repository root, or pass --package DIR to write a standalone env package"
        )
    module_path, test_path = root / "envs" / f"{names.module}.py", root / "tests" / f"test_{names.module}.py"
    _refuse_existing([module_path, test_path])
    registry_text = registry_path.read_text(encoding="utf-8")
    existing = _registry_ids(registry_text, registry_path)
    if names.env_id in existing:
        raise RLHubError(f"{registry_path} already registers {names.env_id!r}; pick another name or a new -vN")
    entry_point = f"rlhub.envs.{names.module}:{names.class_prefix}Env"
    entry = registry_entry(names, domain, variant, entry_point, description)
    new_registry = _append_registry_entry(registry_text, entry)
    try:
        appended = _registry_ids(new_registry, registry_path) == [*existing, names.env_id]
    except RLHubError:
        appended = False
    if not appended:
        raise RLHubError(f"could not append to {registry_path} safely; add this entry by hand: {entry}")
    readme = readme_path.read_text(encoding="utf-8") if readme_path.is_file() else ""
    if f"| `{names.env_id}` |" in readme:
        raise RLHubError(f"{readme_path} already has a row for {names.env_id!r}; remove it or pick another name")
    new_readme = _readme_with_row(readme, entry, variant)

    test_path.parent.mkdir(exist_ok=True)
    module_path.write_text(render(variant.template, names), encoding="utf-8")
    test_path.write_text(render("test_env.py", names), encoding="utf-8")
    registry_path.write_text(new_registry, encoding="utf-8")
    written = [module_path, test_path, registry_path]
    if new_readme is not None:
        readme_path.write_text(new_readme, encoding="utf-8")
        written.append(readme_path)
    return written


# --- as an env package --------------------------------------------------------------------------------

PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "{distribution}"
version = "0.1.0"
description = {description}
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["rlhub>={rlhub_version}"]

# rlhub finds the environments of every installed package through this entry-point group.
[project.entry-points."rlhub.envs"]
{slug} = "{package}:ENVS"

[tool.setuptools]
packages = ["{package}"]

# The manifest (what it serves, what its code may do) travels in the wheel as package data.
[tool.setuptools.package-data]
{package} = ["rlhub.toml"]
"""

MANIFEST = """\
# The manifest of {distribution}: the envs it registers and what their code may do. rlhub runs an installed
# env package in a sandbox with exactly these capabilities (see "Publishing an environment: capabilities"
# in rlhub's docs/adding-an-environment.md).
envs = ["{env_id}"]
license = "Apache-2.0"

[capabilities]
network = []            # host:port pairs it may connect to; [] is no network
writable = ["."]        # paths under its private workdir it may write
memory_mb = 1024        # address space of its process, MiB
cpu_seconds = 10        # CPU time per scoring call
processes = 16          # processes and threads at once
"""

PACKAGE_INIT = '''\
"""{distribution}: the {env_id} environment for rlhub.

rlhub loads ``ENVS`` through the ``rlhub.envs`` entry point in pyproject.toml: registry entries with
the fields of rlhub's registry.yaml. Change the prompt or the reward, add an entry with a new -vN.
"""

ENVS = [
    {{
{fields}
    }}
]
'''

PACKAGE_README = """\
# {distribution}

An rlhub environment package: `{env_id}` ({domain}).

{description}

| id | domain | what the model does | rewards |
|---|---|---|---|
| `{env_id}` | {domain} | {what} | {rewards} |

```bash
pip install -e .                # registers {env_id} through the rlhub.envs entry point
rlhub envs list                 # shows {env_id}, from pip:{distribution}==<version>
rlhub validate {env_id}
python -m pytest tests
```

Bump `version` in pyproject.toml with every release; change the prompt or the reward and register a
new id (`{slug}-v{next_version}`) beside the old one, so earlier runs stay reproducible.
"""


def scaffold_package(names: EnvNames, domain: str, variant: Variant, directory: Path, description: str) -> list[Path]:
    """Write a pip-installable env package (pyproject, module, registry entries, manifest, test, README)."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise RLHubError(f"{directory} already exists and is not empty; new-env never overwrites: pick another folder")
    entry = registry_entry(
        names, domain, variant, f"{names.package}.{names.module}:{names.class_prefix}Env", description
    )
    what = description.rstrip(".")
    files = {
        directory / "pyproject.toml": PYPROJECT.format(
            distribution=names.distribution,
            description=json.dumps(description, ensure_ascii=False),
            rlhub_version=__version__,
            slug=names.slug,
            package=names.package,
        ),
        directory / "README.md": PACKAGE_README.format(
            distribution=names.distribution,
            env_id=names.env_id,
            domain=domain,
            description=description,
            what=(what[0].lower() + what[1:]).replace("|", "\\|"),
            rewards=", ".join(f"`{r}`" for r in variant.rewards),
            slug=names.slug,
            next_version=names.version + 1,
        ),
        directory / names.package / "__init__.py": PACKAGE_INIT.format(
            distribution=names.distribution,
            env_id=names.env_id,
            fields="\n".join(f"        {_py_literal(k)}: {_py_literal(v)}," for k, v in entry.items()),
        ),
        directory / names.package / f"{names.module}.py": render(variant.template, names),
        directory / names.package / MANIFEST_FILE: MANIFEST.format(
            distribution=names.distribution, env_id=names.env_id
        ),
        directory / "tests" / f"test_{names.module}.py": render("test_env.py", names),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)


def new_env(
    name: str,
    domain: str,
    multi_turn: bool = False,
    *,
    root: str | Path = ".",
    package: str | Path | None = None,
    description: str | None = None,
) -> tuple[str, list[Path]]:
    """Scaffold a working environment named ``name``; nothing is written if any check fails.

    Args:
        name: ``word-count`` (or ``word_count``, ``word-count-v0``): the id is ``word-count-v0``,
            the module ``word_count``, the class ``WordCountEnv``.
        domain: ``math``, ``code`` or ``tool``: which toy to start from.
        multi_turn: Start from the domain's multi-turn toy (a ``MultiTurnEnv`` with tools).
        root: The rlhub checkout to add the env to (ignored with ``package``).
        package: Write a standalone env package into this (new or empty) folder instead.
        description: The registry's one-line description; defaults to the toy's.

    Returns:
        The env id and the files written or changed.
    """
    if domain not in DOMAINS:
        raise RLHubError(f"domain must be one of {list(DOMAINS)}, got {domain!r}")
    names = EnvNames.parse(name)
    variant = VARIANTS[(domain, multi_turn)]
    description = " ".join((description or variant.description).split())
    if not description:
        raise RLHubError("description must not be empty: say in one line what the model does")
    if package is not None:
        return names.env_id, scaffold_package(names, domain, variant, Path(package), description)
    return names.env_id, scaffold_checkout(names, domain, variant, Path(root), description)
