"""Env packages run behind their declared capabilities: real packages, pip-installed, each trying one attack.

Every attack package is a small env (arithmetic underneath) whose scoring, import or gold answer tries one
thing; each must end in a named ``CapabilityViolation`` and leave nothing outside its sandbox, while a benign
package on the same path scores its gold answer 1.0. The packages are built and installed once per module.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hub_packages import ATTACKS, IMPORT_MARKER, SECRETS, VIOLATIONS, import_attack, write_package, write_victim

import rlhub
from rlhub.authoring.scaffold import new_env
from rlhub.env import registry
from rlhub.errors import ConfigError, RLHubError
from rlhub.hub import CapabilityViolation, read_manifest
from rlhub.hub.client import SandboxedEnv
from rlhub.hub.sandbox import bwrap_problem, remove_stale_folders

pytestmark = pytest.mark.skipif(bwrap_problem() is not None, reason=f"bubblewrap unusable: {bwrap_problem()}")
RACE = """\
if completions[0] == "attack":  # a violation its own code catches, then a long score
    try:
        open(os.path.join(PLACES["outside"], "race.txt"), "w").write("x")
    except PermissionError:
        pass
    time.sleep(1.5)
else:
    time.sleep(0.2)"""
"""What ``attack-race-v0`` does when it scores: a request that records a violation and is still running when
another request arrives."""

GOLD_SEES_ENVIRONMENT = """
    def gold_completion(self, example):
        return {"seen": {k: os.environ.get(k) for k in PLACES["secrets"]}, "home": os.path.expanduser("~")}
"""


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    home, run, outside = root / "home", root / "run", root / "outside"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("PRIVATE KEY")
    run.mkdir()
    (run / "secret.txt").write_text("run secret")
    outside.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    found = {
        "root": str(root), "home": str(home), "run": str(run), "outside": str(outside),
        "site": str(root / "site"), "port": listener.getsockname()[1], "secrets": sorted(SECRETS),
    }  # fmt: skip
    yield found, listener
    listener.close()


@pytest.fixture(scope="module")
def site(places):
    """Every package pip-installed (one pip run) into one target folder, on sys.path while the module runs."""
    found, _ = places
    root = Path(found["root"])
    sources = [write_package(root, name, attack, found) for name, attack in ATTACKS.items()]
    sources.append(write_package(root, "environment", "pass", found, extra=GOLD_SEES_ENVIRONMENT))
    sources.append(write_package(root, "race", RACE, found))
    victim = write_victim(root, found)
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--target"]
    done = subprocess.run([*pip, found["site"], *map(str, sources), str(victim)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    os.chmod(root, 0o755)  # the sandbox's own uid reads the installed packages
    sys.path.insert(0, found["site"])
    registry.clear_cache()
    yield found
    sys.path.remove(found["site"])
    registry.clear_cache()


@pytest.fixture
def secrets_set(monkeypatch, places):
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", places[0]["home"])


def _processes_of(uid: int) -> list[str]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if any(line.split()[1] == str(uid) for line in text.splitlines() if line.startswith("Uid:")):
            found.append(status.parent.name)
    return found


def test_benign_package_runs_sandboxed_and_scores_gold_one(site):
    env = rlhub.make("attack-benign-v0")
    try:
        assert isinstance(env, SandboxedEnv) and env.sandbox.running
        example = env.examples("train", limit=1)[0]
        assert env.score(env.gold_completion(example), example).rewards["correct"] == 1.0
        assert env.score("no answer", example).rewards["correct"] == 0.0
    finally:
        env.close()
    assert not env.sandbox.running and not Path(env.sandbox.plan.folder).exists()
    with pytest.raises(ConfigError, match="no_such_key"):  # the sandboxed env's config errors stay config errors
        rlhub.make("attack-benign-v0", no_such_key=1)
    assert not isinstance(rlhub.make("arithmetic-v1"), SandboxedEnv)  # rlhub's own envs stay in-process


@pytest.mark.parametrize("attack", sorted(VIOLATIONS))
def test_attack_fails_with_its_named_violation_and_leaves_no_trace(site, places, secrets_set, attack):
    found, listener = places
    env = rlhub.make(f"attack-{attack}-v0")
    example = env.examples("train", limit=1)[0]
    started = time.monotonic()
    with pytest.raises(CapabilityViolation, match=rf"'rlhub-env-attack-{attack}'.*\({VIOLATIONS[attack]}\)") as err:
        env.score("1", example)
    assert err.value.capability == VIOLATIONS[attack]
    assert time.monotonic() - started < 30
    assert not env.sandbox.running and not Path(env.sandbox.plan.folder).exists()
    env.close()
    time.sleep(0.1)
    assert _processes_of(env.sandbox.plan.uid) == []  # every process it started ended with it
    assert os.listdir(found["outside"]) == []
    assert (Path(found["site"]) / "rlhub_env_victim" / "__init__.py").read_text().endswith("]\n")
    with pytest.raises(TimeoutError):
        listener.accept()  # no connection arrived


def test_a_violation_stays_with_its_request_when_another_arrives_meanwhile(site, places):
    """Requests to a sandbox run one at a time: a second request arriving while the first (which recorded a
    violation its own code caught) still runs must not clear that violation (the first was then answered as if
    nothing had happened)."""
    env = rlhub.make("attack-race-v0")
    example = env.examples("train", limit=1)[0]
    gold = env.gold_completion(example)
    outcome = {}

    def score(name: str, completion: str) -> None:
        try:
            outcome[name] = env.score_batch([completion], [example])[0].rewards["correct"]
        except CapabilityViolation as exc:
            outcome[name] = exc.capability
        except RLHubError as exc:  # the sandbox stopped at the first request's violation
            outcome[name] = type(exc).__name__

    first = threading.Thread(target=score, args=("attack", "attack"))
    first.start()
    time.sleep(0.5)
    second = threading.Thread(target=score, args=("honest", gold))
    second.start()
    first.join(60)
    second.join(60)
    env.close()
    assert outcome["attack"] == "filesystem", outcome
    # The honest request scores right, or fails with the sandbox that the first request's violation stopped.
    assert outcome["honest"] == 1.0 or isinstance(outcome["honest"], str), outcome
    assert not (Path(places[0]["outside"]) / "race.txt").exists()


def test_the_env_sees_no_secret_variables_and_no_home(site, secrets_set):
    env = rlhub.make("attack-environment-v0")
    try:
        seen = env.gold_completion(env.examples("train", limit=1)[0])
    finally:
        env.close()
    assert seen == {"seen": dict.fromkeys(sorted(SECRETS)), "home": "/tmp/work"}


def test_import_time_side_effects_stay_in_the_sandbox(places, tmp_path, monkeypatch):
    found, _ = places
    marker = Path(found["outside"]) / IMPORT_MARKER
    source = write_package(tmp_path, "import", "pass", found, init=import_attack(found))
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--target"]
    done = subprocess.run([*pip, str(tmp_path / "site"), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    os.chmod(tmp_path, 0o755)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    registry.clear_cache()
    try:
        with pytest.raises(CapabilityViolation, match=r"\(filesystem\): write to .*imported.txt") as err:
            registry.get_spec("attack-import-v0")
        assert err.value.package == "rlhub-env-attack-import"
        assert not marker.exists()
        # Trusted, the same package runs in this process, import included (and that choice is logged).
        monkeypatch.setenv("RLHUB_TRUST", "rlhub-env-attack-import")
        registry.clear_cache()
        assert registry.get_spec("attack-import-v0").source == "pip:rlhub-env-attack-import==0.1.0"
        assert marker.read_text() == "imported"
    finally:
        marker.unlink(missing_ok=True)
        registry.clear_cache()


def test_trusted_package_runs_in_process_and_the_choice_is_logged(site, monkeypatch, caplog):
    from rlhub.hub import isolation

    isolation._log_trust.cache_clear()
    monkeypatch.setenv("RLHUB_TRUST", "other,rlhub_env_attack_write")
    env = rlhub.make("attack-write-v0")
    assert not isinstance(env, SandboxedEnv)
    assert any("'rlhub-env-attack-write' runs in-process" in r.getMessage() for r in caplog.records)
    written = Path(site["outside"]) / "written.txt"
    try:
        example = env.examples("train", limit=1)[0]
        env.score("1", example)
        assert written.read_text() == "pwned"  # what the sandbox stops, in-process
    finally:
        written.unlink(missing_ok=True)


def test_a_lock_that_trusts_a_package_at_its_version_runs_it_in_process(site, monkeypatch, caplog, tmp_path):
    """``trust = "in-process"`` in rlhub.lock counts for the pinned version only, and is logged like $RLHUB_TRUST."""
    from rlhub.hub import isolation
    from rlhub.hub.lock import write_lock

    isolation._log_trust.cache_clear()
    monkeypatch.delenv("RLHUB_TRUST", raising=False)
    lock = tmp_path / "rlhub.lock"
    monkeypatch.setenv("RLHUB_LOCK", str(lock))
    pinned = {
        "name": "rlhub-env-attack-write", "version": "0.1.0", "envs": ["attack-write-v0"], "index_url": "x",
        "wheel_sha256": "0" * 64, "code_hash": "c", "data_hash": "d", "reward_hash": "r", "trust": "in-process",
        "files": {},
    }  # fmt: skip
    write_lock(lock, [{**pinned, "version": "0.0.9"}])  # another version: still sandboxed
    assert isinstance(rlhub.make("attack-write-v0"), SandboxedEnv)
    write_lock(lock, [{**pinned, "trust": "sandbox"}])
    assert isinstance(rlhub.make("attack-write-v0"), SandboxedEnv)
    write_lock(lock, [pinned])
    assert not isinstance(rlhub.make("attack-write-v0"), SandboxedEnv)
    assert any("trusted by rlhub.lock" in r.getMessage() for r in caplog.records)


def test_manifest_errors_name_the_key_and_the_fix(tmp_path):
    path = tmp_path / "rlhub.toml"
    path.write_text('envs = ["a-v0"]\nlicense = "MIT"\n[capabilities]\nmemory_mb = 10\n')
    with pytest.raises(RLHubError, match=r"rlhub.toml: manifest key 'capabilities.memory_mb': .*256") as err:
        read_manifest(path)
    assert "\n" not in str(err.value)
    path.write_text('envs = ["a-v0"]\nlicense = "MIT"\n[capabilities]\nnetwork = ["example.com"]\n')
    with pytest.raises(RLHubError, match=r"'capabilities.network': .*'api.example.com:443'"):
        read_manifest(path)
    path.write_text('envs = ["a-v0"]\n')
    with pytest.raises(RLHubError, match=r"manifest key 'license': Field required; add it"):
        read_manifest(path)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.rlhub]\nenvs = ["a-v0"]\nlicense = "MIT"\nsurprise = 1\n')
    with pytest.raises(RLHubError, match=r"manifest key 'surprise': .*remove it"):
        read_manifest(pyproject)


def test_scaffold_writes_the_default_manifest(tmp_path):
    new_env("word-count", "code", package=tmp_path / "pkg")
    manifest = read_manifest(tmp_path / "pkg" / "rlhub_env_word_count" / "rlhub.toml")
    assert manifest.envs == ("word-count-v0",)
    caps = manifest.capabilities
    assert (caps.network, caps.memory_mb, caps.cpu_seconds, caps.processes) == ((), 1024, 10.0, 16)
    assert 'rlhub_env_word_count = ["rlhub.toml"]' in (tmp_path / "pkg" / "pyproject.toml").read_text()


@pytest.mark.parametrize("attack, busy", [("benign", False), ("spin", True)])
def test_a_killed_host_leaves_no_sandbox_behind(site, places, attack, busy):
    # A trainer killed with SIGKILL runs no clean-up: the sandbox must end by itself (its lifeline closes),
    # idle or with a reward spinning when the host dies. The host is a child process so the test can kill it.
    found, _ = places
    host = (
        "import sys, threading\n"
        f"sys.path.insert(0, {found['site']!r})\n"  # before rlhub loads the registry's entry points
        "import rlhub\n"
        f"env = rlhub.make('attack-{attack}-v0')\n"
        "print(env.sandbox.plan.uid, env.sandbox.plan.folder, flush=True)\n"
        "example = env.examples('train', limit=1)[0]\n"
        f"if {busy}: threading.Thread(target=env.score, args=('1', example), daemon=True).start()\n"
        "threading.Event().wait()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", host], stdout=subprocess.PIPE, text=True)
    try:
        uid, folder = proc.stdout.readline().split()
        uid = int(uid)
        deadline = time.monotonic() + 60
        while not _processes_of(uid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_of(uid), "the sandbox never started"
        time.sleep(1.0)  # the reward is spinning now
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while _processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_of(uid) == []
    # Its host folder (env.sock, stderr) stays until the next sandbox is set up, which removes it once it is
    # older than STALE_AFTER_S (aged here) and its lock is free.
    assert os.path.isdir(folder)
    os.utime(folder, (time.time() - 3600, time.time() - 3600))
    assert folder in remove_stale_folders() and not os.path.exists(folder)
