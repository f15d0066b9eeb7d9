"""sql-mcp: text-to-SQL where the model explores the database through tools served by an MCP server.

Task: sql-v2's question, gold query and databases for the same (seed, index), asked without the schema. The
model looks at the database with ``list_tables()``, ``describe_table(name)`` and ``run_query(sql)`` (read-only,
half a CPU second, the first 20 rows shown), tools of an MCP server that rlhub starts over stdio
(``rlhub.envs._sql_mcp_server``: the example's database is a file it opens with SQLite's ``mode=ro``, named in
each call's ``_meta`` by the env, never by the model), then answers with one query.

Output format: tool calls as ``<tool_call>{"name": "run_query", "arguments": {"sql": "..."}}</tool_call>``;
the final turn has reasoning in ``<think>...</think>`` and the query alone in ``<answer>...</answer>``, as
in sql-v2. A server that dies under a call answers it with an error and ends the episode (truncated); the
next call starts a new server.

Rewards: sql-v2's: ``correct`` (``rlhub.rewards.sql.sql_execution``: the gold's rows on the example's database
and on ``variants`` more; weight 1.0), ``format`` (think/answer layout, weight ``format_weight``).

Version history:
    v0: first version.
    v1: graded on sql-v2's variant databases (three by default, one per NULL profile, the first wide), so a
        ``LIMIT`` that cuts the answer short or an ``IS NULL`` / ``IS NOT NULL`` condition added scores 0 even
        when the explored database cannot tell it from the gold; questions, gold and the explored database
        are as in v0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import sqlite3
import sys
import tempfile
import uuid
import weakref
from pathlib import Path
from random import Random

from rlhub.env import EpisodeState, Example, Message, MultiTurnConfig, MultiTurnEnv
from rlhub.env.mcp import McpServer, McpToolBox
from rlhub.envs._sql_mcp_server import DATABASE_META
from rlhub.envs.sql import QUESTION, SQLConfig, SQLEnv
from rlhub.rewards.sql import build_database

TASK = (
    "Answer a question about a SQLite database. You do not see its schema: explore it with the tools "
    "(list_tables, describe_table, run_query).\n\n{question}\n\nThen write one SQLite SELECT query that answers "
    "the question, and put the query alone in the <answer> tags."
)
_SQL_QUESTION = re.compile(re.escape(QUESTION).replace(r"\{ddl\}", ".*?").replace(r"\{question\}", "(.*?)"), re.DOTALL)


@dataclasses.dataclass
class SqlMcpConfig(MultiTurnConfig, SQLConfig):
    max_turns: int = 6
    """Assistant turns per episode (the gold transcript takes four)."""
    tool_timeout: float = 10.0
    """Seconds a tool call may take before the model is told it timed out."""


class SqlMcpEnv(MultiTurnEnv, SQLEnv):
    Config = SqlMcpConfig

    def build_toolbox(self) -> McpToolBox:
        """The server's tools, over a fresh directory of databases (removed when the env is closed or collected)."""
        self.databases = Path(tempfile.mkdtemp(prefix="rlhub-sql-mcp-"))
        self._remove_databases = weakref.finalize(self, shutil.rmtree, self.databases, ignore_errors=True)
        server = McpServer(
            command=sys.executable, args=["-m", "rlhub.envs._sql_mcp_server", "--root", str(self.databases)]
        )
        return McpToolBox(server, timeout=self.config.tool_timeout)

    def toolbox_for(self, example: Example | None) -> McpToolBox:
        """The tools over the example's database, written to a file the first time it is asked for."""
        if example is None:
            return self.toolbox
        spec = example.info["databases"][0]
        name = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]
        path = self.databases / f"{name}.sqlite"
        if not path.exists():
            partial = path.with_suffix(f".{uuid.uuid4().hex}.partial")  # another thread may write it too
            memory, disk = build_database(spec), sqlite3.connect(partial)
            memory.backup(disk)
            memory.close()
            disk.close()
            partial.replace(path)
        return self.toolbox.with_meta({DATABASE_META: name})

    def generate(self, rng: Random, split: str, index: int) -> Example:
        example = super().generate(rng, split, index)
        question = _SQL_QUESTION.match(example.prompt[-1]["content"]).group(1)
        prompt = self.make_prompt(TASK.format(question=question))
        return dataclasses.replace(example, id=example.id.replace("sql/", "sql-mcp/", 1), prompt=prompt)

    def respond(self, messages: list[Message], state: EpisodeState) -> list[Message]:
        losses = self.toolbox.server_losses
        replies = super().respond(messages, state)
        if self.toolbox.server_losses > losses and not state.done:  # the server died under a call: end the episode
            state.done = state.truncated = True
            state.close()
        return replies

    def gold_transcript(self, example: Example) -> list[Message]:
        """List the tables, describe them (two parallel calls), run the gold query, then answer with it."""
        toolbox = self.toolbox_for(example)
        tables = list(example.info["databases"][0]["rows"])
        turns = [
            [("list_tables", {})],
            [("describe_table", {"name": t}) for t in tables],
            [("run_query", {"sql": example.answer})],
        ]
        messages: list[Message] = []
        for calls in turns:
            blocks = [json.dumps({"name": name, "arguments": arguments}) for name, arguments in calls]
            messages.append({"role": "assistant", "content": "".join(f"<tool_call>{b}</tool_call>" for b in blocks)})
            messages += [
                {"role": "tool", "name": name, "content": toolbox.call(name, arguments).content}
                for name, arguments in calls
            ]
        messages.append(
            {
                "role": "assistant",
                "content": self.format_answer(example.answer, reasoning="The query's rows answer the question."),
            }
        )
        return messages

    def close(self) -> None:
        super().close()
        self.toolbox.close()
        self._remove_databases()
