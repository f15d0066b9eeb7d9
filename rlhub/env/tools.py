"""Tools for multi-turn environments: JSON schemas from typed Python functions, and safe execution.

A tool is a plain function with type hints and a Google-style docstring; its schema (what the model
is shown) is generated from them. Executing a call never raises: unknown tools, bad arguments and
exceptions inside the tool come back as an error message for the model, and are counted.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def tool_schema(fn: Callable) -> dict[str, Any]:
    """The JSON schema of a typed, documented function (the ``tools=`` format of chat templates).

    >>> def add(a: int, b: int) -> int:
    ...     '''Add two integers.
    ...
    ...     Args:
    ...         a: The first.
    ...         b: The second.
    ...     '''
    ...     return a + b
    >>> tool_schema(add)["function"]["parameters"]["required"]
    ['a', 'b']
    """
    from transformers.utils import get_json_schema

    return get_json_schema(fn)


@dataclass
class ToolResult:
    name: str
    content: str
    error: bool


@dataclass
class ToolStats:
    """Per-episode counts, summed into the trainer's metrics."""

    calls: int = 0
    errors: int = 0
    per_tool: dict[str, int] = field(default_factory=dict)


class ToolBox:
    """Named tools, each called with keyword arguments; results are strings for the model."""

    def __init__(self, tools: Sequence[Callable], max_result_chars: int = 2000):
        self.tools = {fn.__name__: fn for fn in tools}
        self.max_result_chars = max_result_chars

    @property
    def schemas(self) -> list[dict[str, Any]]:
        return [tool_schema(fn) for fn in self.tools.values()]

    def call(self, name: str, arguments: dict[str, Any], stats: ToolStats | None = None) -> ToolResult:
        stats = stats if stats is not None else ToolStats()
        stats.calls += 1
        stats.per_tool[name] = stats.per_tool.get(name, 0) + 1
        fn = self.tools.get(name)
        if fn is None:
            return self._error(stats, name, f"unknown tool {name!r}; available: {', '.join(self.tools)}")
        try:
            inspect.signature(fn).bind(**arguments)
        except TypeError as exc:
            return self._error(stats, name, f"bad arguments for {name}: {exc}")
        try:
            result = fn(**arguments)
        except Exception as exc:
            return self._error(stats, name, f"{name} failed: {type(exc).__name__}: {exc}")
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        if len(text) > self.max_result_chars:
            text = text[: self.max_result_chars] + " [truncated]"
        return ToolResult(name, text, False)

    @staticmethod
    def _error(stats: ToolStats, name: str, message: str) -> ToolResult:
        stats.errors += 1
        return ToolResult(name, f"error: {message}", True)
