"""MkDocs hooks for rlhub's documentation site (``mkdocs.yml`` names this file under ``hooks:``).

Two things the API reference needs that configuration alone cannot give:

1. **The package as installed.** mkdocstrings reads source files, and pyproject's ``package-dir`` maps
   ``rlhub.envs``, ``rlhub.rewards`` and ``rlhub.trainers`` to the checkout's ``envs/``, ``rewards/`` and
   ``trainers/``, where no file finder looks for them. The hook lays ``rlhub`` out as pip installs it, as
   symlinks in a temporary folder, and points the Python handler there.
2. **Bare doctests.** Many of rlhub's docstrings hold ``>>>`` examples outside an ``Examples:`` section;
   Markdown would read ``>>>`` as nested quotes and ``[1, 2]`` as links. A preprocessor fences them as
   ``pycon`` code.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from markdown import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.plugins import event_priority

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the docs extra installs tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "rlhub"
DOCTEST_DIRECTIVE = re.compile(r"\s*# doctest:.*$")


def installed_layout(target: Path) -> Path:
    """Mirror the installed ``rlhub`` package under ``target`` with symlinks, following pyproject's package-dir.

    Args:
        target: An empty folder; ``target/rlhub`` is created in it.

    Returns:
        ``target``, the folder to search for ``rlhub``.
    """
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    top = target / PACKAGE
    top.mkdir()
    for entry in (ROOT / package_dir[PACKAGE]).iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for name, folder in package_dir.items():
        parent, _, child = name.rpartition(".")
        if parent == PACKAGE:
            (top / child).symlink_to(ROOT / folder)
    return target


class DoctestFences(Preprocessor):
    """Wrap each bare ``>>>`` example (up to the next blank line) in a ``pycon`` code fence."""

    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        fence = ""  # the marker of the code fence we are inside, if any
        in_doctest = False
        indent = 0  # the doctest's own indentation, left out of the fenced code
        for line in lines:
            stripped = line.lstrip()
            if in_doctest:
                if stripped:
                    line = line[indent:] if not line[:indent].strip() else line
                    out.append(DOCTEST_DIRECTIVE.sub("", line))
                    continue
                out.append("```")
                in_doctest = False
            elif fence:
                fence = "" if stripped.startswith(fence) else fence
            elif stripped.startswith(("```", "~~~")):
                fence = stripped[:3]
            elif stripped.startswith(">>>"):
                indent = len(line) - len(stripped)
                out += ["", "```pycon", DOCTEST_DIRECTIVE.sub("", stripped)]
                in_doctest = True
                continue
            out.append(line)
        return [*out, "```"] if in_doctest else out


class DoctestFencesExtension(Extension):
    def extendMarkdown(self, md):
        # After whitespace normalisation (30), before the fenced-code preprocessors (25) read the fences.
        md.preprocessors.register(DoctestFences(md), "rlhub_doctest_fences", 28)


_mirrors: list[Path] = []


@event_priority(100)  # before mkdocstrings' on_config, which creates the Python handler with its paths
def on_config(config):
    mirror = installed_layout(Path(tempfile.mkdtemp(prefix="rlhub-docs-")))
    _mirrors.append(mirror)
    handlers = config.plugins["mkdocstrings"].config.handlers
    handlers.setdefault("python", {})["paths"] = [str(mirror)]
    config.markdown_extensions.append(DoctestFencesExtension())
    return config


def on_shutdown():
    while _mirrors:
        shutil.rmtree(_mirrors.pop(), ignore_errors=True)
