"""Per-episode workspaces: persistence, limits, path escapes, isolation, and release on every exit path.

Runs on the automatic backend (real bubblewrap where it works, as on CI and the development machines);
the tests of what only bwrap provides skip, saying why, where bwrap cannot run or RLHUB_SANDBOX=subprocess
asks for the plain backend, except on CI, where a bwrap that does not work fails them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from rlhub.env import EpisodeState, MultiTurnEnv, ToolBox, Workspace, WorkspaceError, WorkspaceLimits
from rlhub.errors import ConfigError, RLHubError
from rlhub.sandbox.bwrap_backend import bwrap_problem

PLAIN = os.environ.get("RLHUB_SANDBOX") == "subprocess"
bwrap_only = pytest.mark.skipif(
    PLAIN or (bwrap_problem() is not None and not os.environ.get("CI")),
    reason="RLHUB_SANDBOX=subprocess" if PLAIN else f"bwrap cannot run sandboxes here: {bwrap_problem()}",
)
SMALL = WorkspaceLimits(max_bytes=200_000, max_files=40, max_file_bytes=50_000, run_timeout=5.0, max_output_chars=400)
FILES = {"calc/__init__.py": "def add(a, b):\n    return a - b\n", "tests/test_calc.py": "from calc import add\n"}


def _process_table() -> dict[tuple[int, int], tuple[int, bytes]]:
    """{(pid, start time): (parent pid, argv joined)} of every live (non-zombie) process; the start time
    tells a process from a later one that reuses its pid."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    argv = handle.read().replace(b"\0", b" ")
            except OSError:
                continue
            if fields[0] != "Z":
                table[int(entry), int(fields[19])] = (int(fields[1]), argv)
    return table


def process_tree(root: int) -> dict[tuple[int, int], bytes]:
    """{(pid, start time): argv} of every live process below ``root``."""
    table = _process_table()
    found, stack = {}, [root]
    while stack:
        parent = stack.pop()
        for key, (ppid, argv) in table.items():
            if ppid == parent and key not in found:
                found[key] = argv
                stack.append(key[0])
    return found


def descendants(root: int) -> set[tuple[int, int]]:
    """The live processes below ``root``."""
    return set(process_tree(root))


@pytest.fixture
def workspace():
    with Workspace(files=FILES, limits=SMALL) as ws:
        yield ws


# ----------------------------------------------------------------------------- files and runs


def test_files_and_runs_persist_across_calls_in_one_sandbox(workspace):
    before = descendants(os.getpid())
    assert workspace.list_files() == ["calc/__init__.py", "tests/test_calc.py"]
    failing = workspace.run("from calc import add\nassert add(2, 2) == 4")
    assert failing.status == "error" and "AssertionError" in failing.stderr
    workspace.write("calc/__init__.py", "def add(a, b):\n    return a + b\n")
    assert workspace.run("from calc import add\nprint(add(2, 2))").stdout == "4\n"
    # What a program writes stays for the next call; its cwd is the root.
    made = workspace.run("import os\nos.makedirs('out')\nopen('out/log.txt', 'w').write('one')")
    assert made.ok, made.stderr
    assert workspace.run("print(open('out/log.txt').read())").stdout == "one\n"
    assert workspace.read("out/log.txt") == "one"
    assert workspace.snapshot() == {
        "calc/__init__.py": "def add(a, b):\n    return a + b\n",
        "out/log.txt": "one",
        "tests/test_calc.py": "from calc import add\n",
    }
    workspace.delete("out")
    workspace.delete("tests/test_calc.py")
    assert workspace.list_files() == ["calc/__init__.py"]
    # One warm sandbox served every call: no process came or went.
    assert descendants(os.getpid()) == before


def test_scratch_and_processes_do_not_outlive_a_run(workspace):
    started = workspace.run(
        "import os, subprocess, sys, tempfile\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)\n"
        "open('pid', 'w').write(str(child.pid))\n"
        "open(os.path.join(tempfile.gettempdir(), 'scratch'), 'w').write('x')\n"
    )
    assert started.ok, started.stderr
    pid = workspace.read("pid")
    scratch = "os.path.exists(os.path.join(tempfile.gettempdir(), 'scratch'))"
    check = workspace.run(f"import os, tempfile\nprint({scratch}, os.path.exists('/proc/{pid}'))")
    assert check.stdout == "False False\n"


def test_output_is_cut_to_its_budget_keeping_start_and_end(workspace):
    result = workspace.run("print('start' + 'x' * 10_000 + 'end')")
    assert result.ok and result.truncated
    assert len(result.stdout) < SMALL.max_output_chars + 100
    assert result.stdout.startswith("start") and result.stdout.rstrip().endswith("end")


def test_a_run_timeout_kills_the_program_and_its_grandchildren(workspace):
    before = descendants(os.getpid())
    code = textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, '-c', 'import os, time; os.setsid(); time.sleep(60)'])
        open('grandchild', 'w').write(str(child.pid))
        while True:
            time.sleep(1)
    """)
    started = time.monotonic()
    result = workspace.run(code, timeout=1.5)
    assert result.status == "timeout" and time.monotonic() - started < 6
    assert descendants(os.getpid()) == before  # the program and the grandchild it detached are gone
    grandchild = workspace.read("grandchild")
    assert workspace.run(f"import os\nprint(os.path.exists('/proc/{grandchild}'))").stdout == "False\n"


# ----------------------------------------------------------------------------- limits


def test_writes_past_a_limit_are_refused_with_the_limit_named(workspace):
    with pytest.raises(WorkspaceError, match="max_file_bytes"):
        workspace.write("big.txt", "x" * (SMALL.max_file_bytes + 1))
    for i in range(4):
        workspace.write(f"part{i}.txt", "x" * 45_000)
    with pytest.raises(WorkspaceError, match="max_bytes"):
        workspace.write("one_more.txt", "x" * 45_000)
    workspace.write("part0.txt", "replaced")  # replacing frees what the old content held
    with pytest.raises(WorkspaceError, match="max_files"):
        for i in range(SMALL.max_files):
            workspace.write(f"many/{i}.txt", "")
    assert len(workspace.list_files()) <= SMALL.max_files


def test_a_program_cannot_write_a_file_past_max_file_bytes(workspace):
    result = workspace.run(f"with open('big.bin', 'wb') as f:\n    f.write(b'x' * {SMALL.max_file_bytes + 1})")
    assert result.status == "error" and "File too large" in result.stderr
    assert len(workspace.read("big.bin")) == SMALL.max_file_bytes


def test_a_program_that_makes_too_many_files_is_stopped_and_its_files_removed(workspace):
    result = workspace.run("import os\nos.mkdir('spam')\nfor i in range(100_000):\n    open(f'spam/{i}', 'w').close()")
    assert result.status == "killed" and "max_files" in result.stderr
    assert workspace.list_files() == sorted(FILES)
    workspace.write("still/usable.txt", "yes")


def test_a_program_that_fills_the_disk_is_stopped_and_its_files_removed(workspace):
    code = textwrap.dedent("""
        import os, time
        for i in range(10):  # 10 files of 45 kB: max_bytes (200 kB) goes before max_files (40)
            with open(f'fill{i}.bin', 'wb') as f:
                f.write(os.urandom(45_000))
        time.sleep(5)
    """)
    result = workspace.run(code)
    assert result.status != "ok" and "max_bytes" in result.stderr
    assert workspace.list_files() == sorted(FILES)


@bwrap_only
def test_the_workspace_is_a_tmpfs_capped_near_max_bytes(workspace):
    # Between two looks of the watcher a program meets the hard cap: the tmpfs is full.
    code = "import os\nst = os.statvfs('.')\nprint(st.f_blocks * st.f_frsize)"
    capacity = int(workspace.run(code).stdout)
    assert SMALL.max_bytes <= capacity <= SMALL.max_bytes + (SMALL.max_files + 2) * 4096


@pytest.mark.parametrize(
    "limits", [{"max_bytes": 0}, {"max_files": -1}, {"run_timeout": "10"}, {"memory_mb": 1.5}, {"max_files": True}]
)
def test_limits_are_validated(limits):
    with pytest.raises(ConfigError, match=next(iter(limits))):
        WorkspaceLimits(**limits)


# ----------------------------------------------------------------------------- escapes and isolation


@pytest.mark.parametrize("path", ["../escape.txt", "calc/../../escape.txt", "/etc/passwd", "", ".", "a\0b"])
def test_paths_outside_the_workspace_are_refused(workspace, path):
    for operation in (workspace.read, workspace.delete, lambda p: workspace.write(p, "x")):
        with pytest.raises(WorkspaceError):
            operation(path)
    assert workspace.list_files() == sorted(FILES)


def test_links_planted_by_a_program_are_never_followed(workspace, tmp_path):
    host_secret = tmp_path / "secret.txt"
    host_secret.write_text("host secret")
    planted = workspace.run(
        "import os\n"
        "os.symlink('/etc/passwd', 'passwd')\n"
        f"os.symlink({str(host_secret)!r}, 'secret')\n"
        "os.symlink('/etc', 'etc')\n"
        f"os.symlink({str(tmp_path)!r}, 'host')\n"
    )
    assert planted.ok, planted.stderr
    for path in ("passwd", "secret", "etc/passwd", "host/secret.txt"):
        with pytest.raises(WorkspaceError, match="symbolic link"):
            workspace.read(path)
    for path in ("passwd", "etc/new.txt", "host/new.txt"):
        with pytest.raises(WorkspaceError, match="symbolic link"):
            workspace.write(path, "overwritten")
    assert host_secret.read_text() == "host secret" and sorted(p.name for p in tmp_path.iterdir()) == ["secret.txt"]
    assert "passwd" not in workspace.snapshot() and "passwd" not in workspace.list_files()
    workspace.delete("etc")  # removes the link, not /etc
    assert workspace.run("import os\nprint(os.path.isdir('/etc'))").stdout == "True\n"


@bwrap_only
def test_a_program_sees_no_host_files_and_no_network(workspace, tmp_path):
    (tmp_path / "host.txt").write_text("host")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    code = textwrap.dedent(f"""
        import os, socket
        print(os.path.exists({str(tmp_path / "host.txt")!r}), os.path.exists(os.path.expanduser('~root/.bashrc')))
        for address in [('127.0.0.1', {port}), ('1.1.1.1', 53)]:
            try:
                socket.create_connection(address, timeout=2)
                print('connected')
            except OSError:
                print('refused')
        print(sorted(os.environ))
    """)
    try:
        result = workspace.run(code)
    finally:
        listener.close()
    lines = result.stdout.splitlines()
    assert lines[:3] == ["False False", "refused", "refused"], result
    assert "HOME" in lines[3] and "RLHUB" not in lines[3] and "VIRTUAL_ENV" not in lines[3]


# ----------------------------------------------------------------------------- release


def test_close_releases_the_sandbox_and_is_idempotent():
    before = descendants(os.getpid())
    ws = Workspace(files=FILES, limits=SMALL)
    assert len(descendants(os.getpid())) > len(before)
    ws.close()
    ws.close()
    assert ws.closed and descendants(os.getpid()) == before
    with pytest.raises(WorkspaceError, match="closed"):
        ws.read("calc/__init__.py")


def test_a_workspace_whose_files_break_a_rule_is_not_opened():
    before = descendants(os.getpid())
    for files in ({"../outside.txt": "x"}, {"big.txt": "x" * (SMALL.max_file_bytes + 1)}):
        with pytest.raises(WorkspaceError):
            Workspace(files=files, limits=SMALL)
    assert descendants(os.getpid()) == before


@pytest.mark.parametrize("backend", ["docker", "nonesuch"])
def test_backends_without_workspaces_are_refused_by_name(backend):
    with pytest.raises(RLHubError, match=backend):
        Workspace(backend=backend)


def test_close_from_another_thread_stops_a_running_program():
    ws = Workspace(limits=SMALL)
    threading.Timer(0.5, ws.close).start()
    started = time.monotonic()
    with pytest.raises(WorkspaceError):
        ws.run("import time\ntime.sleep(30)", timeout=30)
    assert time.monotonic() - started < 10 and ws.closed


def test_the_subprocess_backend_works_warns_and_removes_its_directory(caplog, monkeypatch):
    from rlhub.sandbox import backends

    monkeypatch.setattr(backends, "_warned_not_isolated", False)
    with caplog.at_level("WARNING", logger="rlhub.sandbox"), Workspace(files=FILES, backend="subprocess") as ws:
        assert "NOT isolated" in caplog.text
        result = ws.run("import os\nprint(os.getcwd())\nopen('made.txt', 'w').write('yes')")
        root = result.stdout.strip()
        assert ws.read("made.txt") == "yes" and os.path.isdir(root)
        with pytest.raises(WorkspaceError, match="symbolic link"):
            ws.run("import os\nos.symlink('/etc/passwd', 'passwd')")
            ws.read("passwd")
    assert not os.path.exists(os.path.dirname(root))


KILLED_TRAINER = """
import sys, threading, time
from rlhub.sandbox.workspace import Workspace, WorkspaceLimits

limits = WorkspaceLimits(run_timeout=300.0)
workspaces = [Workspace(files={"f.txt": "x"}, limits=limits, backend=sys.argv[1]) for _ in range(16)]
code = (
    "import subprocess, sys, time\\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\\n"
    "time.sleep(300)"
)
# Half are busy in a program (with a grandchild) when the trainer dies: they are not reading their pipe.
for ws in workspaces[:8]:
    threading.Thread(target=ws.run, args=(code,), daemon=True).start()
time.sleep(2.0)
print("ready", flush=True)
time.sleep(300)
"""


@bwrap_only
def test_a_killed_trainer_leaves_no_process_mount_or_directory(tmp_path):
    """16 workspaces, half of them running a program, and kill -9 of the process that opened them."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    trainer = subprocess.Popen(
        [sys.executable, "-c", KILLED_TRAINER, "bwrap"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        line = trainer.stdout.readline()
        assert line == b"ready\n", trainer.stderr.read().decode()[-2000:] if trainer.poll() is not None else line
        deadline = time.monotonic() + 60
        while True:  # until every busy program has started its grandchild
            tree = process_tree(trainer.pid)
            kinds = [
                "sandbox" if argv.startswith(b"bwrap") else "grandchild" if b"sleep(300)" in argv else "server"
                for argv in tree.values()
            ]
            if kinds.count("grandchild") == 8 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # 16 sandboxes, each with its server; in the 8 busy ones, a program (a fork of the server) and its grandchild.
        assert (kinds.count("sandbox"), kinds.count("server"), kinds.count("grandchild")) == (16, 16 + 8, 8)
        namespaces = set()
        for pid, _ in tree:
            namespaces.add(os.readlink(f"/proc/{pid}/ns/mnt"))
    finally:
        trainer.kill()
        trainer.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and set(tree) & set(_process_table()):
        time.sleep(0.1)
    live = set(_process_table())
    left = {key[0]: argv[:60] for key, argv in tree.items() if key in live}
    assert not left, f"{len(left)} processes left behind: {left}"
    # No process holds a sandbox's mount namespace any more, so its tmpfs mounts went with it.
    mount_namespaces = set()
    for pid, _ in _process_table():
        try:
            mount_namespaces.add(os.readlink(f"/proc/{pid}/ns/mnt"))
        except OSError:
            pass
    assert not (namespaces - {os.readlink("/proc/self/ns/mnt")}) & mount_namespaces
    assert list(scratch.iterdir()) == []  # nothing was ever written on the host


# ----------------------------------------------------------------------------- episodes


class WorkspaceEnv(MultiTurnEnv):
    """A tool env whose episodes each get a workspace (the pattern docs/workspace.md shows)."""

    def tool_functions(self) -> list:
        def read_file(path: str) -> str:
            """Read a file.

            Args:
                path: The file's path.
            """
            raise NotImplementedError

        return [read_file]

    def episode_toolbox(self, state: EpisodeState) -> ToolBox:
        if not hasattr(state, "toolbox"):
            workspace = state.resources.enter_context(Workspace(files={"a.txt": "hello"}, limits=SMALL))
            state.workspace = workspace
            state.toolbox = ToolBox([workspace.read])
        return state.toolbox

    def examples(self, split="train", limit=None):
        from rlhub.types import Example

        prompt = [{"role": "user", "content": "read a.txt"}]
        return [Example(id=f"ws/{i}", prompt=prompt, answer="hello") for i in range(limit or 2)]


def _workspace_env() -> WorkspaceEnv:
    """A ``WorkspaceEnv`` without data or rubric: enough for ``respond`` and the drivers' bookkeeping."""
    env = object.__new__(WorkspaceEnv)
    env.toolbox = ToolBox([])
    env.config = type("Config", (), {"max_turns": 3})()
    return env


CALL = '<tool_call>{"name": "read", "arguments": {"path": "a.txt"}}</tool_call>'


def test_an_episode_closes_its_workspace_when_it_ends():
    env = _workspace_env()
    state = EpisodeState()
    assert env.respond([{"role": "assistant", "content": CALL}], state)[0]["content"] == "hello"
    assert not state.workspace.closed
    env.respond([{"role": "assistant", "content": "done"}], state)
    assert state.done and state.workspace.closed


def _record_states(env) -> list:
    """The episode states ``env.respond`` sees, in order (the env still answers as before)."""
    states = []
    real_respond = MultiTurnEnv.respond

    def respond(messages, state):
        states.append(state)
        return real_respond(env, messages, state)

    env.respond = respond
    return states


def test_a_rollout_that_raises_mid_episode_closes_every_workspace():
    from rlhub.generation import Sampling
    from rlhub.generation.rollout import Completion, run_episodes

    env = _workspace_env()
    states = _record_states(env)

    class Tokenizer:
        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, **_):
            return "".join(m["content"] for m in messages)

        def encode(self, text, add_special_tokens=False):
            return [ord(c) for c in text]

        def decode(self, ids, skip_special_tokens=True):
            return "".join(map(chr, ids))

    class Engine:
        tokenizer = Tokenizer()
        calls = 0

        def generate(self, contexts, n, sampling):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("the inference server went away mid-episode")
            return [Completion(i, [1], [0.0], CALL, True) for i in range(len(contexts)) for _ in range(n)]

    examples = env.examples(limit=2)
    with pytest.raises(RuntimeError, match="went away"):
        run_episodes(Engine(), env, examples, [[0], [0]], 2, Sampling(max_new_tokens=100))
    workspaces = {id(s): s.workspace for s in states}
    assert len(workspaces) == 4 and all(ws.closed for ws in workspaces.values())


def test_reset_and_close_of_an_env_release_the_episode():
    import rlhub

    env = rlhub.make("calculator-v1")
    released = []
    env.reset(seed=0)
    env._state.resources.callback(released.append, "first episode")
    env.reset(seed=1)
    assert released == ["first episode"]
    env._state.resources.callback(released.append, "second episode")
    env.close()
    env.close()
    assert released == ["first episode", "second episode"]


def test_an_openai_endpoint_episode_that_raises_closes_its_workspace():
    from rlhub.generation import Sampling
    from rlhub.generation.openai import run_episode

    env = _workspace_env()
    env.multi_turn = True
    states = _record_states(env)

    class Client:
        calls = 0

        def complete(self, messages, **_):
            self.calls += 1
            if self.calls == 2:
                raise ConnectionError("the endpoint went away mid-episode")
            return CALL, "stop", 5

    with pytest.raises(ConnectionError):
        run_episode(Client(), env, env.examples(limit=1)[0], 0, Sampling(max_new_tokens=100))
    assert states and states[0].workspace.closed


def test_trl_environments_release_the_last_episode_on_reset():
    from rlhub.integrations.trl import RLHubEnvironment

    environment = type("WorkspaceEnvironment", (RLHubEnvironment,), {"env": _workspace_env()})()
    environment.reset(prompt=[], answer="hello", example_id="ws/0")
    first = environment.state.workspace
    assert environment._call("read", None, (), {"path": "a.txt"}) == "hello"
    environment.reset(prompt=[], answer="hello", example_id="ws/1")
    second = environment.state.workspace
    assert first.closed and not second.closed
    del environment  # TRL drops its environments at the end: the last episode goes with them
    assert second.closed


def test_served_sessions_close_their_env_when_deleted_or_expired():
    from rlhub.serve.server import _Sessions

    class Env:
        closed = 0

        def close(self):
            self.closed += 1

    sessions = _Sessions(Env, ttl=0.2, limit=8)
    deleted_id, deleted = sessions.open()
    _, expired = sessions.open()
    sessions.close(deleted_id)
    assert deleted.env.closed == 1 and expired.env.closed == 0
    time.sleep(0.3)
    assert len(sessions) == 0 and expired.env.closed == 1
