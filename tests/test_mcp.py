"""Tools from MCP servers (rlhub.env.mcp) and sql-mcp-v1, against real server processes (stdio and HTTP)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from rlhub.env.mcp import McpServer, McpToolBox
from rlhub.env.tools import ToolStats

SERVER_MODULE = "rlhub.envs._sql_mcp_server"
SLOW_QUERY = "SELECT length(printf('%.*c', 2000000000, 'x')) FROM t"
"""One C call that SQLite's progress handler cannot stop: it holds the server for seconds."""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _gone(*pids: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _servers_under(root: Path) -> list[int]:
    """The pids of live processes whose command line names ``root``."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if str(root).encode() in handle.read() and _alive(int(pid)):
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A directory holding one database, ``a``: a table ``t`` of the numbers 0..29."""
    tmp_path = tmp_path_factory.mktemp("databases")
    db = sqlite3.connect(tmp_path / "a.sqlite")
    db.execute("CREATE TABLE t (x INTEGER)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(30)])
    db.commit()
    db.close()
    return tmp_path


def _server(root: Path, **fields) -> McpServer:
    return McpServer(
        command=sys.executable, args=["-m", SERVER_MODULE, "--root", str(root), "--database", "a"], **fields
    )


@pytest.fixture(scope="module")
def box(root):
    """One server for the tests that leave it as they found it."""
    toolbox = McpToolBox(_server(root), timeout=5.0)
    yield toolbox
    toolbox.close()


def test_the_server_lists_its_tools_in_the_toolbox_schema_shape(box):
    schemas = {s["function"]["name"]: s for s in box.schemas}
    assert set(schemas) == {"list_tables", "describe_table", "run_query"}
    run_query = schemas["run_query"]
    assert run_query["type"] == "function" and run_query["function"]["description"].startswith("Run one read-only")
    parameters = run_query["function"]["parameters"]
    assert parameters["type"] == "object" and parameters["required"] == ["sql"]
    assert parameters["properties"]["sql"] == {"description": "One SQLite SELECT statement.", "type": "string"}
    assert set(box.tools) == set(schemas)


def test_a_call_is_forwarded_and_its_result_returned(box):
    stats = ToolStats()
    result = box.call("run_query", {"sql": "SELECT SUM(x), COUNT(*) FROM t"}, stats)
    assert (result.content, result.error) == ("435, 30", False)
    assert box.call("describe_table", {"name": "t"}, stats).content == "CREATE TABLE t (x INTEGER)\n-- 30 rows"
    rows = box.call("run_query", {"sql": "SELECT x FROM t"}, stats).content.splitlines()
    assert rows[:2] == ["0", "1"] and rows[-1] == "... 10 more rows (30 in all)"
    assert (stats.calls, stats.errors, stats.per_tool) == (3, 0, {"run_query": 2, "describe_table": 1})


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("drop_everything", {}, "error: unknown tool 'drop_everything'; available: list_tables, describe_table"),
        ("run_query", {}, "error: run_query failed: "),
        ("run_query", {"sql": 5}, "error: run_query failed: "),
        ("run_query", {"sql": "DELETE FROM t"}, "query refused: not authorized"),
        ("run_query", {"sql": "ATTACH DATABASE ':memory:' AS other"}, "query refused"),
        (
            "run_query",
            {"sql": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n, t"},
            "query refused: interrupted",
        ),
        ("describe_table", {"name": "nope"}, "no table 'nope'; the tables are: t"),
    ],
)
def test_bad_calls_come_back_as_counted_error_turns(box, root, name, arguments, message):
    stats = ToolStats()
    result = box.call(name, arguments, stats)
    assert result.error and result.content.startswith("error: ") and message in result.content
    assert (stats.calls, stats.errors) == (1, 1)
    assert sqlite3.connect(root / "a.sqlite").execute("SELECT COUNT(*) FROM t").fetchone() == (30,)


def test_a_call_past_its_timeout_is_an_error_turn_and_the_server_goes_on(root):
    with_deadline = McpToolBox(_server(root), timeout=1.0)
    try:
        assert with_deadline.schemas  # started: the clock below is the call's alone
        start = time.monotonic()
        result = with_deadline.call("run_query", {"sql": SLOW_QUERY})
        assert result.error and result.content == "error: run_query timed out after 1 s"
        assert time.monotonic() - start < 4
        with_deadline.timeout = 30.0
        assert with_deadline.call("list_tables", {}).content == "t"
    finally:
        with_deadline.close()


def test_a_server_killed_during_a_call_answers_it_with_an_error_and_the_next_call_restarts_it(root):
    box = McpToolBox(_server(root), timeout=5.0)
    box.call("list_tables", {})
    first = box.pid
    killer = threading.Timer(0.5, os.kill, (first, signal.SIGKILL))
    killer.start()
    stats = ToolStats()
    result = box.call("run_query", {"sql": SLOW_QUERY}, stats)
    killer.join()
    assert result.error and "exited (killed by signal 9); the call to run_query was not answered" in result.content
    assert (stats.calls, stats.errors, box.server_losses) == (1, 1, 1)
    assert _gone(first)
    assert box.call("list_tables", {}).content == "t" and box.pid not in (None, first)
    box.close()


def test_the_server_gets_only_its_spec_environment_its_limits_and_a_session_of_its_own(root, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "secret-wandb")
    monkeypatch.setenv("HF_TOKEN", "secret-hf")
    toolbox = McpToolBox(_server(root, env={"GREETING": "hello"}, memory_mb=1536, cpu_seconds=120))
    try:
        toolbox.call("list_tables", {})
        pid = toolbox.pid
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if item)
        assert set(environ) == {b"PATH", b"GREETING"} and environ[b"GREETING"] == b"hello"
        with open(f"/proc/{pid}/limits") as handle:
            limits = {line[:26].strip(): line[26:].split() for line in handle}
        assert limits["Max address space"][:2] == [str(1536 * 1024 * 1024)] * 2
        assert limits["Max cpu time"][:2] == ["120", "120"]
        assert limits["Max processes"][0] != "unlimited"
        assert os.getsid(pid) == pid != os.getsid(0)
    finally:
        toolbox.close()
    assert _gone(pid)


STUBBORN_SERVER = textwrap.dedent(
    '''
    import signal, subprocess
    from mcp.server.mcpserver import MCPServer

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(["sleep", "600"])
    server = MCPServer("stubborn")

    @server.tool()
    def child_pid() -> str:
        """The pid of the server's child."""
        return str(child.pid)

    server.run("stdio")
    '''
)


def test_close_kills_a_server_that_ignores_sigterm_and_its_children(tmp_path):
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN_SERVER)
    toolbox = McpToolBox(McpServer(command=sys.executable, args=[str(script)]))
    child = int(toolbox.call("child_pid", {}).content)
    server = toolbox.pid
    assert _alive(server) and _alive(child)
    toolbox.close()
    assert _gone(server, child)
    assert toolbox.call("child_pid", {}).content.endswith("is closed")


def test_servers_left_open_are_stopped_at_interpreter_exit(root):
    program = textwrap.dedent(
        f"""
        import sys
        from rlhub.env.mcp import McpServer, McpToolBox
        box = McpToolBox(McpServer(command=sys.executable, args=["-m", "{SERVER_MODULE}", "--root", {str(root)!r}]))
        box.schemas
        print(box.pid, flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _gone(int(done.stdout.split()[-1]))


def test_a_server_that_cannot_start_is_named_in_the_error_turn(tmp_path):
    toolbox = McpToolBox(McpServer(command=sys.executable, args=["-c", "import sys; sys.exit('no such tool server')"]))
    try:
        result = toolbox.call("anything", {})
        assert result.error and "did not start" in result.content and "no such tool server" in result.content
    finally:
        toolbox.close()


def test_config_errors_name_the_fix():
    from rlhub.errors import ConfigError

    for bad in ({}, {"command": "x", "url": "http://h/mcp"}, {"url": "ftp://h"}, {"command": "x", "memory_mb": 0}):
        with pytest.raises(ConfigError):
            McpToolBox(bad)


def test_streamable_http_server(root):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [sys.executable, "-m", SERVER_MODULE, "--root", str(root), "--transport", "streamable-http"]
    server = subprocess.Popen([*args, "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the HTTP server did not come up"
                time.sleep(0.1)
        toolbox = McpToolBox(McpServer(url=f"http://127.0.0.1:{port}/mcp"), meta={"rlhub/database": "a"})
        try:
            assert {s["function"]["name"] for s in toolbox.schemas} == {"list_tables", "describe_table", "run_query"}
            assert toolbox.call("run_query", {"sql": "SELECT MAX(x) FROM t"}).content == "29"
            unnamed = toolbox.with_meta({"rlhub/database": "../a"}).call("list_tables", {})
            assert unnamed.error and "no database '../a'" in unnamed.content
        finally:
            toolbox.close()
    finally:
        server.kill()
        server.wait()


# --- sql-mcp-v1 ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env():
    from rlhub.envs.sql_mcp import SqlMcpEnv

    sql_env = SqlMcpEnv()
    yield sql_env
    sql_env.close()


@pytest.fixture(scope="module")
def examples(env):
    return env.examples("test", limit=3)


def test_examples_are_sql_v2_questions_asked_without_the_schema(env, examples):
    import rlhub

    sql = rlhub.make("sql-v2").examples("test", limit=3)
    for mine, theirs in zip(examples, sql):
        assert (mine.answer, mine.info) == (theirs.answer, theirs.info)
        assert "CREATE TABLE" not in mine.prompt[-1]["content"] and "list_tables" in mine.prompt[0]["content"]
        assert mine.id.startswith("sql-mcp/test/")


def test_a_gold_episode_through_the_gymnasium_api_scores_full_marks(env, examples):
    ex = examples[0]
    gold = env.gold_transcript(ex)
    assert [m["role"] for m in gold] == [
        "assistant",
        "tool",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert "error" not in " ".join(m["content"] for m in gold if m["role"] == "tool")
    env.reset(options={"example": ex})
    for turn in [m["content"] for m in gold if m["role"] == "assistant"]:
        _, reward, terminated, truncated, info = env.step(turn)
    assert terminated and not truncated and reward == pytest.approx(1.0 + env.config.format_weight)
    assert info["rewards"] == {"correct": 1.0, "format": 1.0} and (info["tool_calls"], info["tool_errors"]) == (4, 0)
    env.reset(options={"example": ex})
    _, _, terminated, _, info = env.step("<think>guess</think>\n<answer>SELECT * FROM sqlite_master</answer>")
    assert terminated and info["rewards"]["correct"] == 0.0


def test_the_model_cannot_reach_another_database_or_write(env, examples):
    ex = examples[0]
    table = next(iter(ex.info["databases"][0]["rows"]))
    env.reset(options={"example": ex})
    call = json.dumps({"name": "run_query", "arguments": {"sql": f"DELETE FROM {table}"}})
    obs, *_ = env.step(f"<tool_call>{call}</tool_call>")
    assert "not authorized" in obs
    files = list(env.databases.glob("*.sqlite"))
    rows = [
        sqlite3.connect(f"file:{f}?mode=ro", uri=True).execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        for f in files
    ]
    assert all(count[0] > 0 for count in rows)


def test_a_server_killed_mid_episode_ends_the_episode_cleanly_and_the_next_one_restarts_it(env, examples):
    ex = examples[1]
    list_tables = '<tool_call>{"name": "list_tables", "arguments": {}}</tool_call>'
    env.reset(options={"example": ex})
    obs, _, terminated, truncated, _ = env.step(list_tables)
    assert not (terminated or truncated) and "error" not in obs
    pid = env.toolbox.pid
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)
    obs, reward, terminated, truncated, info = env.step(list_tables)
    assert obs == "" and truncated and not terminated and reward == 0.0
    error = env._messages[-1]
    assert (
        error["role"] == "tool"
        and "error: MCP server" in error["content"]
        and "exited (killed by signal 9)" in error["content"]
    )
    assert info["tool_errors"] == 1
    assert _servers_under(env.databases) == []  # nothing of the dead server is left
    env.reset(options={"example": ex})
    obs, *_ = env.step(list_tables)
    assert "error" not in obs and env.toolbox.pid not in (None, pid)


def test_an_episode_through_the_rollout_driver(env, examples):
    from rlhub.generation import Sampling
    from rlhub.generation.rollout import Completion, HFRolloutEngine, run_episodes
    from rlhub.models import load_embedded_tokenizer

    tokenizer = load_embedded_tokenizer()
    example = examples[0]
    gold = [m["content"] for m in env.gold_transcript(example) if m["role"] == "assistant"]

    class GoldEngine(HFRolloutEngine):
        """Replays the gold transcript's assistant turns, the next one each time it is asked."""

        def generate(self, prompt_ids, n, sampling):
            eos = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
            outs = []
            for i, ids in enumerate(prompt_ids):
                turn = self.tokenizer.decode(ids).count("<|im_start|>assistant") - 1
                tokens = [*self.tokenizer.encode(gold[turn], add_special_tokens=False), eos]
                outs += [Completion(i, tokens, [-0.5] * len(tokens), gold[turn], True) for _ in range(n)]
            return outs

    prompt_ids = [
        tokenizer.apply_chat_template(example.prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
    ]
    engine = GoldEngine(model=None, tokenizer=tokenizer, stop_ids=[tokenizer.eos_token_id])
    episodes = run_episodes(engine, env, [example], prompt_ids, 2, Sampling(max_new_tokens=2000))
    assert len(episodes) == 2
    for ep in episodes:
        assert ep.state.done and not ep.state.truncated and ep.state.tools.calls == 4 and ep.state.tools.errors == 0
        assert env.score(ep.messages, example).rewards == {"correct": 1.0, "format": 1.0}


def test_validate_env_passes(tmp_path, monkeypatch):
    import yaml

    from rlhub.authoring.validate import validate_env
    from rlhub.env import registry

    entries = yaml.safe_load(registry.default_registry_path().read_text())
    if not any(entry["id"] == "sql-mcp-v1" for entry in entries["envs"]):
        entries["envs"].append(
            {
                "id": "sql-mcp-v1",
                "entry_point": "rlhub.envs.sql_mcp:SqlMcpEnv",
                "version": 1,
                "domain": "tool",
                "tags": ["multi-turn", "tools", "mcp", "sql", "sqlite"],
                "description": "Text-to-SQL over MCP tools.",
                "license": "Apache-2.0 (generated)",
                "config": {"rows": 12, "variants": 3, "max_turns": 6},
            }
        )
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(entries))
    monkeypatch.setenv("RLHUB_REGISTRY", str(tmp_path / "registry.yaml"))
    registry.clear_cache()
    try:
        report = validate_env("sql-mcp-v1", n=4)
    finally:
        registry.clear_cache()
    failed = [(c.name, c.detail) for c in report.checks if not c.passed]
    assert not failed, failed
