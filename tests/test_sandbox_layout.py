"""The sandbox package's layout: no import cycle, one definition of each shared setting, small modules, one resolver."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rlhub.sandbox import bwrap_backend, subprocess_backend
from rlhub.sandbox.config import PYTHON_FLAGS, ZYGOTE_PATH, zygote_config
from rlhub.sandbox.docker_backend import DockerBackend

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "rlhub.sandbox"
TABLE_ENTRY = re.compile(r"(rlhub\.sandbox\.\w+):\w+")
"""A ``module:attr`` string, as in the backend table: resolved at run time, but an edge all the same."""


def _module_name(path: Path) -> str:
    return PACKAGE if path.name == "__init__.py" else f"{PACKAGE}.{path.stem}"


def _sandbox_imports(path: Path, modules: set[str]) -> set[str]:
    """The sandbox modules that ``path`` imports anywhere (functions included) or names in a ``module:attr``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([PACKAGE, *([base] if base else [])])
            # `from rlhub.sandbox import pool` names a module; `from rlhub.sandbox import run_python` the package.
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.update(match.group(1) for match in TABLE_ENTRY.finditer(node.value))
    return {name for name in found if name in modules}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as the list of its modules, first repeated at the end; None if it has none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph[module]):
            if cycle := visit(imported):
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if cycle := visit(module):
            return cycle
    return None


def _sandbox_graph(directory: Path) -> dict[str, set[str]]:
    paths = sorted(directory.glob("*.py"))
    modules = {_module_name(path) for path in paths}
    return {_module_name(path): _sandbox_imports(path, modules) - {_module_name(path)} for path in paths}


def test_the_cycle_finder_sees_an_import_inside_a_function(tmp_path):
    (tmp_path / "backends.py").write_text("def make():\n    from rlhub.sandbox.docker_backend import DockerBackend\n")
    (tmp_path / "docker_backend.py").write_text("from rlhub.sandbox.backends import logger\n")
    assert _cycle(_sandbox_graph(tmp_path)) == [
        "rlhub.sandbox.backends",
        "rlhub.sandbox.docker_backend",
        "rlhub.sandbox.backends",
    ]


def test_the_sandbox_modules_import_one_another_without_a_cycle():
    graph = _sandbox_graph(ROOT / "rlhub" / "sandbox")
    assert "rlhub.sandbox.bwrap_backend" in graph["rlhub.sandbox.backends"]  # the graph sees the backend table
    cycle = _cycle(graph)
    assert cycle is None, f"import cycle in rlhub/sandbox: {' -> '.join(cycle)}; move what both need to config.py"


@pytest.mark.parametrize("name", ["PYTHON_FLAGS", "ZYGOTE_PATH", "BASE_ENV", "PRELOAD", "zygote_config"])
def test_each_shared_setting_is_defined_once(name):
    definitions = []
    for path in sorted((ROOT / "rlhub").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
                targets = [node.target.id]
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                targets = [node.name]
            else:
                continue
            definitions += [f"{path.relative_to(ROOT)}:{node.lineno}" for target in targets if target == name]
    assert len(definitions) == 1, f"{name} is defined at {definitions}; define it once, in rlhub/sandbox/config.py"


class _FakeDockerClient:
    class images:  # the SDK's attribute name
        @staticmethod
        def get(image):
            return image

    def ping(self):
        return True


def test_each_backend_keeps_its_interpreter_flags(monkeypatch):
    """The host's interpreter runs without ``site`` (bwrap, subprocess); an image's runs its own."""
    monkeypatch.setattr(bwrap_backend, "bwrap_problem", lambda: None)
    monkeypatch.setattr(bwrap_backend, "PipeChannel", lambda argv, **_: argv)
    monkeypatch.setattr(subprocess_backend, "PipeChannel", lambda argv, **_: argv)

    argv = bwrap_backend.BwrapBackend().start()
    assert argv[-2] == bwrap_backend.ZYGOTE_IN_SANDBOX
    bwrap_flags = argv[argv.index("--") + 2 : -2]  # bwrap's options, "--", the interpreter, flags, zygote, config
    argv = subprocess_backend.SubprocessBackend().start()
    os.rmdir(json.loads(argv[-1])["scratch"][0])
    assert argv[0] == sys.executable and argv[-2] == str(ZYGOTE_PATH)
    subprocess_flags = argv[1:-2]
    command = DockerBackend(client=_FakeDockerClient()).container_kwargs(uid=1_000_000_001)["command"]
    docker_flags = command[1 : command.index("-c")]

    assert bwrap_flags == subprocess_flags == ["-I", "-S", "-B", "-X", "utf8"]
    assert docker_flags == ["-I", "-B", "-X", "utf8"]


SANDBOX_FILES = sorted((ROOT / "rlhub" / "sandbox").glob("*.py"))


@pytest.mark.parametrize("path", SANDBOX_FILES, ids=lambda path: path.name)
def test_sandbox_modules_stay_small(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 600, f"{path.name} has {lines} lines; split it (the zygote ships standalone modules, see config)"


def test_the_sandbox_imports_modules_only_through_the_one_resolver():
    found = [
        f"{path.name}:{number}"
        for path in SANDBOX_FILES
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "import_module" in line
    ]
    assert not found, f"{found} import modules their own way; use rlhub.resolve (the zygote ships it, see config)"


def _start_zygote(argv: list[str]) -> tuple[subprocess.Popen, dict]:
    zygote = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    header = zygote.stdout.read(4)
    return zygote, (json.loads(zygote.stdout.read(int.from_bytes(header, "big"))) if header else {})


def _host_config(tmp_path: Path, **changes) -> dict:
    config = zygote_config(
        uid=None, max_processes=None, workdir=str(tmp_path / "work"), scratch=[str(tmp_path)],
        private_ipc=False, site_packages=[],
    )  # fmt: skip
    return {**config, **changes}


def test_the_zygote_preloads_through_the_resolver_and_names_what_does_not_import(tmp_path):
    config = _host_config(tmp_path, preload=["json", "no_such_module_for_the_zygote"])
    zygote, ready = _start_zygote([sys.executable, *PYTHON_FLAGS, str(ZYGOTE_PATH), json.dumps(config)])
    stderr = zygote.communicate(timeout=60)[1].decode()
    assert ready == {} and zygote.returncode != 0
    message = "a module the sandbox preloads: cannot import 'no_such_module_for_the_zygote' (ModuleNotFoundError"
    assert message in stderr.strip().splitlines()[-1]


def test_the_zygote_runs_from_the_docker_command_alone_without_importing_rlhub(tmp_path):
    """The docker backend's command, ``python3 -c SOURCE CONFIG``, with the host's interpreter and its ``site``."""
    command = DockerBackend(client=_FakeDockerClient()).container_kwargs(uid=1_000_000_001)["command"]
    config = _host_config(tmp_path, **{"sources": json.loads(command[-1])["sources"]})
    zygote, ready = _start_zygote([sys.executable, *command[1:-1], json.dumps(config)])
    code = "import sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('rlhub', 'resolve', '_protocol')))"
    request = {"code": [["main.py", code]], "stdin": "", "files": {}, "timeout": 30, "memory_mb": 1024}
    payload = json.dumps({**request, "max_output": 10_000, "token": None, "calls": None}).encode()
    zygote.stdin.write(len(payload).to_bytes(4, "big") + payload)
    zygote.stdin.close()
    reply = json.loads(zygote.stdout.read(int.from_bytes(zygote.stdout.read(4), "big")))
    zygote.wait(timeout=60)
    assert ready["ready"] is True
    assert (reply["status"], reply["stdout"]) == ("ok", "[]\n"), reply["stderr"]
