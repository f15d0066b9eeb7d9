"""The attack matrix through the hub: every attack package published to a real package index, installed with
``rlhub hub install``, refused, and gone.

``rlhub hub publish`` refuses these packages (its validate runs them), so each is published as a malicious
publisher (or a compromised index) would: uploaded to a ``pypiserver`` with ``twine``, and listed on the hub
index by hand with true hashes and the frozen rollouts of an honest env. ``rlhub hub install`` must refuse each
in one line that names the package and the capability it violated, leave no trace outside its sandbox, and
leave it neither installed nor in ``rlhub.lock``; the benign package takes the same path and is recorded. One
virtualenv serves every install, one after another.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hub_index import PASSWORD, USER, fresh_venv, in_venv, pypi_server, venv_site  # noqa: F401 (the pypi fixture)
from hub_packages import (
    ATTACKS,
    IMPORT_MARKER,
    SECRETS,
    VIOLATIONS,
    build_wheels,
    import_attack,
    write_package,
    write_victim,
)

from rlhub.hub.freeze import freeze, read_rollouts, reward_hash
from rlhub.hub.index import FORMAT, add_version, write_index
from rlhub.hub.lock import content_hashes, wheel_file_hashes
from rlhub.hub.sandbox import bwrap_problem
from rlhub.sandbox.config import WORKER_UID_BASE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bwrap_problem() is not None, reason=f"bubblewrap unusable: {bwrap_problem()}"),
]
EXPECTED = {**VIOLATIONS, "import": "filesystem"}
"""Each attack package and the capability its install must be refused for."""
VERSION, UPGRADE = "0.1.0", "0.2.0"
"""Every package's version; the victim's second version (it attacks)."""


def _publish_by_hand(wheels: list[Path], pypi: str, index_file: Path, rollouts: list[dict]) -> None:
    """Upload ``wheels`` with twine and list each on the hub index, claiming the rewards of an honest env."""
    upload = [sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar"]
    upload += ["--repository-url", pypi, "-u", USER, "-p", PASSWORD, *map(str, wheels)]
    done = subprocess.run(upload, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    index = {"format": FORMAT, "packages": {}}
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        name = name.replace("_", "-")
        env_id = name.removeprefix("rlhub-env-") + "-v0"
        rows = [{**row, "env": env_id} for row in rollouts]
        code_hash, data_hash = content_hashes(wheel_file_hashes(wheel))
        entry = {
            "envs": [env_id], "index_url": pypi + "simple/", "code_hash": code_hash, "data_hash": data_hash,
            "wheel": {"filename": wheel.name, "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()},
            "reward_hash": reward_hash(rows), "validate": {"passed": True, "probes": {}}, "rollouts": rows,
        }  # fmt: skip
        add_version(index, name, version, "arithmetic, scored", "MIT", entry)
    write_index(index_file, index)


@pytest.fixture(scope="module")
def hub(pypi, tmp_path_factory):
    """The attack packages and the victim on the package index and the hub index, one fresh virtualenv, traps."""
    root = tmp_path_factory.mktemp("attacks")
    python = fresh_venv(root / "venv")
    home, run, outside, project, tmp = (root / name for name in ("home", "run", "outside", "project", "tmp"))
    for folder in (home / ".ssh", run, outside, project, tmp):
        folder.mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("PRIVATE KEY")
    (run / "secret.txt").write_text("run secret")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    places = {
        "root": str(root), "home": str(home), "run": str(run), "outside": str(outside),
        "site": str(venv_site(python)), "port": listener.getsockname()[1], "secrets": sorted(SECRETS),
    }  # fmt: skip
    sources = [write_package(root, name, ATTACKS[name], places) for name in VIOLATIONS]
    sources.append(write_package(root, "import", "pass", places, init=import_attack(places)))
    victim = write_victim(root, places)
    upgrade = write_victim(root / "upgrade", places, attack=ATTACKS["write"], version=UPGRADE)
    wheels = build_wheels([*sources, victim, upgrade], root / "wheels")
    _publish_by_hand(wheels, pypi, root / "index.json", read_rollouts(freeze(victim)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLHUB_")}
    env.update(SECRETS, WANDB_MODE="offline", HOME=str(home), TMPDIR=str(tmp), RLHUB_CACHE=str(root / "cache"))
    yield {
        "python": python,
        "index": root / "index.json",
        "project": project,
        "env": env,
        "places": places,
        "listener": listener,
    }
    listener.close()
    shutil.rmtree(root, ignore_errors=True)  # the virtualenv and the packages; no temp virtualenv stays behind


def hub_install(hub: dict, ref: str) -> tuple[int, str, int]:
    """``rlhub hub install REF`` in the virtualenv: its exit code, its stderr, and its process id."""
    command = [str(hub["python"]), "-m", "rlhub", "hub", "install", ref, "--hub", hub["index"].as_uri()]
    proc = subprocess.Popen(command, cwd=hub["project"], env=hub["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    _, stderr = proc.communicate(timeout=300)
    return proc.returncode, stderr, proc.pid


@pytest.fixture(scope="module")
def benign(hub):
    """The victim installed from the hub like any package: (its lock's bytes, its ``__init__.py``'s bytes)."""
    code, stderr, _ = hub_install(hub, f"victim-v0@{VERSION}")
    assert code == 0, stderr[-3000:]
    init = Path(hub["places"]["site"], "rlhub_env_victim", "__init__.py")
    return (hub["project"] / "rlhub.lock").read_bytes(), init.read_bytes()


def _sandbox_processes(host_pid: int) -> list[str]:
    """Processes left under the sandbox uids that the process ``host_pid`` handed out (see next_worker_uid)."""
    first = WORKER_UID_BASE + (host_pid % 100_000) * 1000
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uids = next(line for line in status.read_text().splitlines() if line.startswith("Uid:")).split()[1:]
        except (OSError, StopIteration):
            continue
        if any(first <= int(uid) < first + 1000 for uid in uids):
            found.append(status.parent.name)
    return found


def test_the_benign_package_installs_validated_and_recorded(hub, benign):
    lock, _ = benign
    assert f'name = "rlhub-env-victim"\nversion = "{VERSION}"\nenvs = ["victim-v0"]' in lock.decode()
    assert 'trust = "sandbox"' in lock.decode()


@pytest.mark.parametrize("attack", sorted(EXPECTED))
def test_install_refuses_the_attack_naming_its_violation_and_leaves_nothing(hub, benign, attack):
    lock, victim_init = benign
    places = hub["places"]
    code, stderr, pid = hub_install(hub, f"attack-{attack}-v0@{VERSION}")
    package = f"rlhub-env-attack-{attack}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, stderr[-3000:]
    assert re.fullmatch(
        rf"error: refused {package} {VERSION}: environment package '{package}' violated its capabilities "
        rf"\({EXPECTED[attack]}\): .+; uninstalled it, nothing recorded in rlhub\.lock",
        lines[0],
    ), lines[0]
    # Neither installed nor recorded.
    assert sorted(Path(places["site"]).glob(f"rlhub_env_attack_{attack.replace('-', '_')}*")) == []
    assert (hub["project"] / "rlhub.lock").read_bytes() == lock
    # No trace outside the sandbox: no file written, no package changed, no connection, no process, no folder.
    assert os.listdir(places["outside"]) == [] and not (Path(places["outside"]) / IMPORT_MARKER).exists()
    assert Path(places["site"], "rlhub_env_victim", "__init__.py").read_bytes() == victim_init
    assert os.listdir(hub["project"]) == ["rlhub.lock"] and os.listdir(hub["env"]["TMPDIR"]) == []
    assert _sandbox_processes(pid) == []
    with pytest.raises(TimeoutError):
        hub["listener"].accept()  # no connection arrived


def test_an_attack_listed_without_frozen_rollouts_is_refused_before_it_installs(hub, benign, tmp_path):
    # With no rollouts to re-score, install could not check its rewards: refused before pip, so none of it runs.
    index = json.loads(hub["index"].read_text())
    entry = index["packages"]["rlhub-env-attack-write"]["versions"][VERSION]
    entry.update(rollouts=[], reward_hash=reward_hash([]))
    bare = tmp_path / "index.json"
    write_index(bare, index)
    code, stderr, _ = hub_install({**hub, "index": bare}, f"attack-write-v0@{VERSION}")
    assert code == 1 and re.fullmatch(
        r"error: refused rlhub-env-attack-write 0\.1\.0: its hub index entry has no frozen rollouts for "
        r"attack-write-v0, .*nothing installed\. Its publisher must run `rlhub hub freeze DIR` .*",
        stderr.strip(),
    ), stderr[-3000:]
    assert sorted(Path(hub["places"]["site"]).glob("rlhub_env_attack_write*")) == []
    assert os.listdir(hub["places"]["outside"]) == []
    assert (hub["project"] / "rlhub.lock").read_bytes() == benign[0]


def test_a_refused_upgrade_puts_back_the_locked_version(hub, benign):
    lock, victim_init = benign
    code, stderr, _ = hub_install(hub, f"victim-v0@{UPGRADE}")
    assert code == 1 and re.fullmatch(
        rf"error: refused rlhub-env-victim {UPGRADE}: environment package 'rlhub-env-victim' violated its "
        rf"capabilities \(filesystem\): .+; reinstalled {VERSION} as rlhub\.lock pins it, nothing recorded in "
        r"rlhub\.lock",
        stderr.strip(),
    ), stderr[-3000:]
    site = Path(hub["places"]["site"])
    assert [p.name for p in site.glob("rlhub_env_victim-*.dist-info")] == [f"rlhub_env_victim-{VERSION}.dist-info"]
    assert (site / "rlhub_env_victim" / "__init__.py").read_bytes() == victim_init
    assert (hub["project"] / "rlhub.lock").read_bytes() == lock
    assert os.listdir(hub["places"]["outside"]) == []


def test_after_the_attacks_the_benign_package_still_makes_and_scores_gold_one(hub, benign):
    code = (
        f"import rlhub; env = rlhub.make('victim-v0@{VERSION}'); example = env.examples('train', limit=1)[0]; "
        "print(env.score(env.gold_completion(example), example).rewards['correct']); env.close()"
    )
    made = in_venv(hub["python"], "-c", code, env=hub["env"], cwd=hub["project"], timeout=300)
    assert made.returncode == 0 and made.stdout.split() == ["1.0"], made.stderr[-3000:]
