"""rlhub reward functions (TRL-compatible signature) and rubrics.

Every reward has TRL's GRPOTrainer signature, ``fn(completions, **columns) -> list[float | None]``.
:data:`REWARDS` names the ready-to-use ones; recipes refer to rewards by those names or by a dotted
path (see :func:`get_reward`). Importing this package is cheap: sympy and math-verify load only in the
worker processes that compare non-numeric math answers.
"""

from __future__ import annotations

from rlhub.errors import ConfigError
from rlhub.resolve import resolve

from .code import code_all_pass, code_format, code_pass_rate, extract_code
from .countdown import countdown_reward, evaluate_expression
from .format import answer_tag_format, boxed_format, tag_count_format, think_answer_format
from .length import cosine_length_reward, length_penalty
from .math import gold_answer, math_accuracy, math_equal, math_equal_batch
from .parsing import completion_text, extract_answer, extract_boxed, extract_tag, strip_think
from .repetition import repetition_penalty
from .rubric import RewardFn, Rubric
from .tool_calls import ToolCall, parse_tool_calls, tool_call_format, tool_call_match

REWARDS: dict[str, RewardFn] = {
    "math_accuracy": math_accuracy,
    "think_answer_format": think_answer_format,
    "answer_tag_format": answer_tag_format,
    "boxed_format": boxed_format,
    "tag_count_format": tag_count_format,
    "countdown": countdown_reward,
    "code_format": code_format,
    "code_pass_rate": code_pass_rate,
    "code_all_pass": code_all_pass,
    "tool_call_match": tool_call_match,
    "tool_call_format": tool_call_format,
    "repetition_penalty": repetition_penalty(),
    "cosine_length": cosine_length_reward(),
    "length_penalty": length_penalty(),
}
"""Ready-to-use reward functions by name; the factories' entries are their default instances."""


def get_reward(name: str) -> RewardFn:
    """The reward function a recipe names: a key of :data:`REWARDS` or a dotted path.

    Args:
        name: ``"math_accuracy"``, or ``"package.module:function"`` / ``"package.module.function"``.

    Returns:
        The reward function.

    Raises:
        ConfigError: The name is neither in :data:`REWARDS` nor an importable callable.

    Example:
        >>> get_reward("countdown") is countdown_reward
        True
        >>> get_reward("rlhub.rewards.format:boxed_format").__name__
        'boxed_format'
    """
    if name in REWARDS:
        return REWARDS[name]
    fix = f"use one of {', '.join(sorted(REWARDS))} or a dotted path like 'package.module:function'"
    if ":" not in name and "." not in name:
        raise ConfigError(f"unknown reward {name!r}; {fix}")
    try:
        fn = resolve(name, what="reward")
    except ConfigError as exc:
        raise ConfigError(f"{exc}; {fix}") from exc
    if not callable(fn):
        raise ConfigError(f"reward {name!r} is not callable; {fix}")
    return fn


__all__ = [
    "REWARDS",
    "RewardFn",
    "Rubric",
    "ToolCall",
    "answer_tag_format",
    "boxed_format",
    "code_all_pass",
    "code_format",
    "code_pass_rate",
    "completion_text",
    "cosine_length_reward",
    "countdown_reward",
    "evaluate_expression",
    "extract_answer",
    "extract_boxed",
    "extract_code",
    "extract_tag",
    "get_reward",
    "gold_answer",
    "length_penalty",
    "math_accuracy",
    "math_equal",
    "math_equal_batch",
    "parse_tool_calls",
    "repetition_penalty",
    "strip_think",
    "tag_count_format",
    "think_answer_format",
    "tool_call_format",
    "tool_call_match",
]
