"""Turn a model completion into the answer a reward grades: the text, the reasoning cut away, the answer block.

Every function here is total on model output: whatever the text (empty, 1 MB, binary-ish, unicode), it
returns a string or ``None`` and never raises. ``None`` means "no gradable answer", which scores 0.
"""

from __future__ import annotations

import re
from typing import Any

from rlhub.errors import ConfigError

ANSWER_MODES = ("tags", "boxed")
r"""How :func:`extract_answer` finds the answer: an ``<answer>`` block or the last ``\boxed{}``."""

_TAG_NAME = re.compile(r"[A-Za-z][\w-]*")
_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)


def completion_text(completion: Any) -> str:
    """The assistant text of one completion, in either of TRL's completion formats.

    Args:
        completion: A plain string, or a conversational completion: a list of chat messages
            (``{"role": ..., "content": ...}``) whose assistant messages are joined. Message content may
            also be a list of parts (``{"type": "text", "text": ...}``). Anything else yields ``""``.

    Returns:
        The text to grade; ``""`` for ``None`` or an unrecognised shape.

    Example:
        >>> completion_text("<answer>4</answer>")
        '<answer>4</answer>'
        >>> completion_text([{"role": "assistant", "content": "<answer>4</answer>"}])
        '<answer>4</answer>'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, bytes):
        return completion.decode("utf-8", errors="replace")
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)):
        return ""
    messages = [m for m in completion if isinstance(m, dict)]
    if any(m.get("role") == "assistant" for m in messages):
        messages = [m for m in messages if m.get("role") == "assistant"]
    return "\n".join(_content_text(m.get("content")) for m in messages)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = (p.get("text") if isinstance(p, dict) else p for p in content)
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def strip_think(text: str) -> str:
    """Drop the reasoning, so that an answer written while thinking never counts.

    Everything up to the last ``</think>`` is reasoning (this also covers chat templates that open
    ``<think>`` in the prompt), and an unclosed ``<think>`` runs to the end of the text.

    Args:
        text: A completion's text.

    Returns:
        The text outside the reasoning block; ``""`` when the completion never stops thinking.

    Example:
        >>> strip_think("<think>maybe <answer>3</answer></think> <answer>4</answer>")
        ' <answer>4</answer>'
        >>> strip_think("<think>still thinking <answer>3</answer>")
        ''
    """
    _, closed, after = text.rpartition("</think>")
    if closed:
        text = after
    return text.partition("<think>")[0]


def extract_tag(text: str, tag: str = "answer") -> str | None:
    """The stripped content of the one ``<tag>...</tag>`` block in ``text``.

    Anti-hacking rule: a completion that opens or closes the tag more than once (answer spam) or
    leaves it unclosed has no answer, so that listing many candidates never earns credit.

    Args:
        text: A completion's text (usually after :func:`strip_think`).
        tag: The tag name, without angle brackets.

    Returns:
        The block's content with surrounding whitespace removed (possibly ``""``), or ``None`` when the
        tag is missing, repeated, unclosed or closed before it opens.

    Example:
        >>> extract_tag("<answer> 42 </answer>", "answer")
        '42'
        >>> extract_tag("<answer>1</answer><answer>2</answer>", "answer") is None
        True
    """
    if not _TAG_NAME.fullmatch(tag):
        raise ConfigError(f"tag must be a plain name like 'answer', got {tag!r}")
    opening, closing = f"<{tag}>", f"</{tag}>"
    if text.count(opening) != 1 or text.count(closing) != 1:
        return None
    start = text.index(opening) + len(opening)
    end = text.index(closing)
    if end < start:
        return None
    return text[start:end].strip()


def extract_boxed(text: str) -> str | None:
    r"""The content of the last ``\boxed{...}`` in ``text`` (braces balanced), or of ``\boxed 5``.

    Escaped braces ``\{`` and ``\}`` are content, not structure, so ``\boxed{\{1, 2\}}`` works.

    Args:
        text: A completion's text.

    Returns:
        The stripped content, or ``None`` when there is no ``\boxed`` or its braces never close.

    Example:
        >>> extract_boxed(r"so \boxed{1}, or rather \boxed{\frac{1}{2}}")
        '\\frac{1}{2}'
        >>> extract_boxed(r"$\boxed 5$"), extract_boxed(r"\boxed{12")
        ('5', None)
    """
    span = boxed_span(text)
    return None if span is None else text[span[0] : span[1]].strip()


def boxed_span(text: str) -> tuple[int, int] | None:
    r"""Where the content of the last ``\boxed`` in ``text`` is: ``text[start:end]`` (see :func:`extract_boxed`).

    Example:
        >>> text = r"so \boxed{\frac{1}{2}}."
        >>> start, end = boxed_span(text)
        >>> text[:start], text[start:end], text[end:]
        ('so \\boxed{', '\\frac{1}{2}', '}.')
    """
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    start += len("\\boxed")
    rest = text[start:]
    body = rest.lstrip()
    start += len(rest) - len(body)
    if not body.startswith("{"):
        if not rest[:1].isspace():
            return None
        token = body.split("$", 1)[0].split(None, 1)
        return (start, start + len(token[0])) if token else None
    depth = 0
    for match in _BRACE_OR_ESCAPE.finditer(body):
        if match.group() == "{":
            depth += 1
        elif match.group() == "}":
            depth -= 1
            if depth == 0:
                return start + 1, start + match.start()
    return None


def split_gsm8k(solution: str) -> tuple[str, str] | None:
    """A GSM8K reference solution cut at its last ``####``: the worked reasoning and the final answer.

    Returns:
        ``(reasoning, answer)``, both stripped, or ``None`` when there is no ``####``.

    Example:
        >>> split_gsm8k("She pays 500 + 500 = 1,000 dollars.\\n#### 1,000")
        ('She pays 500 + 500 = 1,000 dollars.', '1,000')
    """
    reasoning, mark, answer = solution.rpartition("####")
    return (reasoning.strip(), answer.strip()) if mark else None


def extract_answer(text: str, mode: str = "tags") -> str | None:
    r"""The answer a reward grades: the reasoning dropped, then the answer block found.

    Args:
        text: A completion's text.
        mode: ``"tags"`` for the single ``<answer>`` block (see :func:`extract_tag`), ``"boxed"`` for
            the last ``\boxed{}`` (see :func:`extract_boxed`).

    Returns:
        The answer text, or ``None`` when there is none.

    Raises:
        ConfigError: ``mode`` is not one of :data:`ANSWER_MODES` (a config error, not model output).

    Example:
        >>> extract_answer("<think>2+2</think><answer>4</answer>")
        '4'
        >>> extract_answer(r"<think>\boxed{3}</think> so \boxed{4}", mode="boxed")
        '4'
    """
    if mode == "tags":
        return extract_tag(strip_think(text), "answer")
    if mode == "boxed":
        return extract_boxed(strip_think(text))
    raise ConfigError(f"answer_format must be one of {ANSWER_MODES}, got {mode!r}")
