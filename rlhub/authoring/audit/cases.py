"""What every audit domain hands back: labelled completions, and the few helpers the domains share."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rlhub.authoring.probes import _Target


class Case(NamedTuple):
    """One completion of an audit set and what it does to the gold (``"thin-space thousands"``)."""

    kind: str
    completion: Any


@dataclass
class Cases:
    """One example's audit sets.

    Attributes:
        accept: Rewrites of the gold that a careful grader accepts: each must earn full correctness.
        reject: Near misses of the gold that a careful grader rejects: each must earn no correctness.
    """

    accept: list[Case] = field(default_factory=list)
    reject: list[Case] = field(default_factory=list)


def distinct(pairs: list[tuple[str, str | None]], gold: str, complete: Callable[[str], Any]) -> list[Case]:
    """``(kind, text)`` pairs as cases, each completion ``complete(text)``: once each, none ``None`` or ``gold``."""
    seen = {gold, None}
    out = []
    for kind, text in pairs:
        if text not in seen:
            seen.add(text)
            out.append(Case(kind, complete(text)))
    return out


def placed(t: _Target, contents: list[tuple[str, str]], gold: str) -> list[Case]:
    """``(kind, answer)`` pairs as completions in the gold layout, once each, none equal to ``gold``."""
    return distinct(contents, gold, lambda content: t.final(t.slot.fill(content)))


def question_numbers(t: _Target) -> list[str]:
    """The numbers written in the example's question, in order (``1,200`` read as ``1200``)."""
    return [n.replace(",", "") for n in re.findall(r"(?<![\w.])\d[\d,]*(?:\.\d+)?", t.question)]


def letters(rng, length: int) -> str:
    """``length`` random lowercase letters."""
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(length))
