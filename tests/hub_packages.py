"""Real env packages for the hub's tests and bench: scaffolded, given an env whose scoring runs a snippet, installed.

``write_package`` writes one package (its env is ``PackageEnv``: arithmetic underneath, with ``attack`` run first
whenever it scores); ``install_packages`` pip-installs packages into a target folder, as the hub's users get them.
``ATTACKS`` and ``VIOLATIONS`` are the attack matrix, shared by the sandbox's tests and the hub install's.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from rlhub.authoring.scaffold import new_env
from rlhub.errors import RLHubError

SECRETS = {"WANDB_API_KEY": "wandb-secret-1", "OPENAI_API_KEY": "sk-secret-2", "HF_TOKEN": "hf_secret_3"}

ATTACKS = {
    # What each package does when it scores (``PLACES``: the paths and port of the test's traps).
    "benign": "pass",
    "network": "socket.create_connection(('127.0.0.1', PLACES['port']), timeout=2)",
    "ssh": "open(os.path.join(PLACES['home'], '.ssh', 'id_rsa')).read()",
    "run-folder": "open(os.path.join(PLACES['run'], 'secret.txt')).read()",
    "other-package": textwrap.dedent("""\
        for folder in [*sys.path, PLACES['site']]:
            try:
                print(open(os.path.join(folder, 'rlhub_env_victim', 'secret.txt')).read())
            except FileNotFoundError:
                pass"""),
    "write": "open(os.path.join(PLACES['outside'], 'written.txt'), 'w').write('pwned')",
    "rewrite-package": "open(os.path.join(PLACES['site'], 'rlhub_env_victim', '__init__.py'), 'a').write('#')",
    "fork-bomb": textwrap.dedent("""\
        for _ in range(500):
            try:
                if os.fork() == 0:
                    time.sleep(3)
                    os._exit(0)
            except BlockingIOError:
                pass"""),
    "memory": "bytearray(4 * 1024**3)",
    "spin": "while True: pass",
    "nan": "return [Score(reward=0.0, rewards={'correct': math.nan}) for _ in completions]",
    "inf": "return [Score(reward=0.0, rewards={'correct': math.inf}) for _ in completions]",
    "huge": "return [Score(reward=0.0, rewards={'correct': 1e30}) for _ in completions]",
}
VIOLATIONS = {
    # The capability each attack must be stopped by (the benign package is stopped by none).
    "network": "network",
    "ssh": "filesystem",
    "run-folder": "filesystem",
    "other-package": "filesystem",
    "write": "filesystem",
    "rewrite-package": "filesystem",
    "fork-bomb": "processes",
    "memory": "memory",
    "spin": "cpu",
    "nan": "reward",
    "inf": "reward",
    "huge": "reward",
}
IMPORT_MARKER = "imported.txt"
"""What the import-time attack (:func:`import_attack`) writes in ``PLACES['outside']``."""

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


def declare_network(source: Path, pairs: list[str]) -> None:
    """Have the package whose source folder is ``source`` (as :func:`write_package` returns it) declare
    ``pairs`` (``host:port``) as its network capability."""
    manifest = next(source.glob("*/rlhub.toml"))
    text = manifest.read_text()
    assert "network = []" in text, f"{manifest} declares no empty network to replace"
    manifest.write_text(text.replace("network = []", "network = [" + ", ".join(f'"{p}"' for p in pairs) + "]"))


def import_attack(places: dict) -> str:
    """Source for a package's ``__init__.py`` that writes :data:`IMPORT_MARKER` outside its sandbox when imported."""
    return f"open({os.path.join(places['outside'], IMPORT_MARKER)!r}, 'w').write('imported')\n"


def write_victim(root: Path, places: dict, attack: str = "pass", version: str = "0.1.0") -> Path:
    """The ``victim`` package that attacks read or rewrite (benign unless given an ``attack``): ships
    ``rlhub_env_victim/secret.txt``."""
    victim = write_package(root, "victim", attack, places)
    (victim / "rlhub_env_victim" / "secret.txt").write_text("victim secret")
    pyproject = victim / "pyproject.toml"
    text = pyproject.read_text().replace('["rlhub.toml"]', '["rlhub.toml", "secret.txt"]')
    pyproject.write_text(text.replace('version = "0.1.0"', f'version = "{version}"'))
    return victim


BUILD_WHEELS = """
import os, sys
from setuptools import build_meta

for source in sys.argv[2:]:
    pid = os.fork()
    if pid == 0:
        os.chdir(source)
        build_meta.build_wheel(sys.argv[1])
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:
        sys.exit(f"building {source} failed")
"""
"""Builds each package with setuptools' PEP 517 backend, imported once and forked per package (5x faster than
``pip wheel``: the packages are the scaffold's setuptools projects, and one forked build cannot taint the next)."""


def build_wheels(sources: list[Path], out: Path) -> list[Path]:
    """Build each package in ``sources`` into a wheel in ``out``; the wheels' paths.

    Raises:
        RuntimeError: A build failed; the message holds the end of its output.
    """
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", BUILD_WHEELS, str(out.resolve()), *map(str, sources)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building wheels of {[s.name for s in sources]} failed: {done.stderr[-3000:]}")
    return sorted(out.glob("*.whl"))


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


class FakeSandbox:
    """What ``SandboxClient`` uses of an ``EnvSandbox``: its socket, its plan, and how it stops or fails."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.plan = SimpleNamespace(package="rlhub-env-fake", capabilities=SimpleNamespace(cpu_seconds=1))
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def failure(self, what: str) -> RLHubError:
        self.stop()
        return RLHubError(f"the env server died during {what}")


@contextlib.contextmanager
def unix_server(path: str, app, **settings):
    """A uvicorn server of ``app`` on the unix socket ``path``, run in a thread while the block runs.

    Yields:
        The server and its thread, as ``(server, thread)``.
    """
    import uvicorn

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", **settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.01)
    try:
        yield server, thread
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
