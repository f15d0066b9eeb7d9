"""An MCP server over SQLite databases, for sql-mcp: list the tables, describe one, run a read-only query.

Run it as ``python -m rlhub.envs._sql_mcp_server --root DIR`` (stdio, the default) or with ``--transport
streamable-http --port N`` (on 127.0.0.1). ``DIR`` holds ``NAME.sqlite`` files; each tool call names its
database in the request's ``_meta`` (key :data:`DATABASE_META`, set by the env, never by the model) or, without
it, uses ``--database NAME``. Databases are opened read-only (SQLite URI ``mode=ro``), and each query runs
under ``rlhub.rewards.sql.run_query``'s locks: reading only, :data:`QUERY_SECONDS` of CPU time, at most
``MAX_RESULT_ROWS`` rows, of which :data:`SHOWN_ROWS` are shown.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from rlhub.rewards.sql import QueryRefused
from rlhub.rewards.sql import run_query as query

DATABASE_META = "rlhub/database"
"""The ``_meta`` key of a tool call that names its database (a file name in ``--root``, without ``.sqlite``)."""

QUERY_SECONDS = 0.5
"""CPU seconds one ``run_query`` call may take."""

SHOWN_ROWS = 20
"""Rows of a query's result shown to the model; the rest are counted."""

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def build_server(root: Path, default: str | None = None) -> MCPServer:
    """The server's tools over the databases in ``root``.

    Args:
        root: The directory of ``NAME.sqlite`` files.
        default: The database of calls whose ``_meta`` names none.

    Returns:
        An ``MCPServer`` with ``list_tables``, ``describe_table`` and ``run_query``.
    """
    server = MCPServer("rlhub-sql", log_level="WARNING")

    def connect(ctx: Context) -> sqlite3.Connection:
        meta = ctx.request_context.meta or {}
        name = meta.get(DATABASE_META, default)
        if not isinstance(name, str) or not _NAME.fullmatch(name) or not (root / f"{name}.sqlite").is_file():
            raise ToolError(f"no database {name!r}: the client must name one in _meta[{DATABASE_META!r}]")
        return sqlite3.connect((root / f"{name}.sqlite").resolve().as_uri() + "?mode=ro", uri=True)

    def tables(db: sqlite3.Connection) -> dict[str, str]:
        return dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"))

    @server.tool()
    def list_tables(ctx: Context) -> str:
        """List the tables of the database."""
        with closing(connect(ctx)) as db:
            return "\n".join(tables(db)) or "(no tables)"

    @server.tool()
    def describe_table(name: Annotated[str, Field(description="A table name, as list_tables gives it.")], ctx: Context):
        """Show a table's columns (its CREATE TABLE statement) and its number of rows."""
        with closing(connect(ctx)) as db:
            known = tables(db)
            if name not in known:
                raise ToolError(f"no table {name!r}; the tables are: {', '.join(known)}")
            (count,) = db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()
        return f"{known[name]}\n-- {count} rows"

    @server.tool()
    def run_query(sql: Annotated[str, Field(description="One SQLite SELECT statement.")], ctx: Context) -> str:
        """Run one read-only SQLite query and show the rows it returns (the first 20, and how many in all)."""
        with closing(connect(ctx)) as db:
            try:
                rows = query(db, sql, time_limit=QUERY_SECONDS)
            except QueryRefused as exc:
                raise ToolError(f"query refused: {exc}") from None
        shown = [", ".join(map(repr, row)) for row in rows[:SHOWN_ROWS]]
        if len(rows) > SHOWN_ROWS:
            shown.append(f"... {len(rows) - SHOWN_ROWS} more rows ({len(rows)} in all)")
        return "\n".join(shown) or "(no rows)"

    return server


def main(argv: list[str] | None = None) -> None:
    """Serve the tools over stdio or streamable HTTP until the client goes away (or the process is stopped)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the directory of NAME.sqlite files")
    parser.add_argument("--database", help="the database of calls whose _meta names none")
    parser.add_argument("--transport", choices=("stdio", "streamable-http"), default="stdio")
    parser.add_argument("--port", type=int, default=8000, help="the HTTP port (on 127.0.0.1)")
    args = parser.parse_args(argv)
    server = build_server(args.root, args.database)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
