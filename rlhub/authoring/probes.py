"""The built-in reward-hacking probes of ``rlhub validate`` (the table in :mod:`rlhub.authoring.validate`).

Where the answer is in a gold completion (an ``<answer>`` block, the last ``\\boxed{}``, a fenced python
block, the ``<tool_call>`` blocks), the text transformations the probes apply (look-alikes, full width), and
the probes built from them; ``rlhub validate --audit`` finds the answer the same way.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlhub.arithmetic import parse
from rlhub.env.base import Probe
from rlhub.rewards.parsing import boxed_span
from rlhub.rewards.tool_calls import ToolCall, format_tool_calls, parse_tool_calls
from rlhub.types import Example, last_assistant_text

FILLER = "Let me think about this step by step. " * 5300
"""About 200,000 characters of harmless text for the long-output probes."""

LONG_OUTPUT_SECONDS = 20.0
"""The most scoring one example's long completions may take (generous: a busy 2-core machine)."""

CONFUSABLES = {
    **dict(zip("acehijopsxyABCEHIJKMOPSTXY", "асеһіјорѕхуАВСЕНІЈКМОРЅТХҮ")),  # Cyrillic
    **dict(zip("vuNZ", "νυΝΖ")),  # Greek
    **dict(zip("0123568", "OlƧЗƼбȢ")),  # digits as letters
}
"""Characters and a look-alike of each (after Unicode's confusables list); 4, 7 and 9 have none here."""

EMPTY_CALL = ToolCall("", {})
LYING_BUILTINS = ("type", "isinstance", "len", "all", "any", "zip", "sorted")
"""Builtins the patched-builtins probe replaces with a function that always answers True."""


# --- where the answer is ----------------------------------------------------------------------------

_FENCE = re.compile(r"^(?P<fence>`{3,})python[ \t]*\n(?P<code>.*?)\n(?P=fence)[ \t]*$", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class _Slot:
    """A completion cut around its answer: ``before + content + after``."""

    kind: str
    """One of "tags", "boxed", "code" or "tool_calls"."""
    before: str
    content: str
    after: str
    joiner: str
    """Put between answers to make one block of each (answer spam)."""

    def fill(self, content: str) -> str:
        return self.before + content + self.after


def _answer_slot(text: str) -> _Slot | None:
    """Where the answer is in a gold completion's text; ``None`` for a layout the probes do not know."""
    start, end = text.find("<tool_call>"), text.rfind("</tool_call>")
    if 0 <= start < end:
        end += len("</tool_call>")
        return _Slot("tool_calls", text[:start], text[start:end], text[end:], "\n")
    fences = list(_FENCE.finditer(text))
    if fences:
        m = fences[-1]
        joiner = f"\n{m['fence']}\n\n{m['fence']}python\n"
        return _Slot("code", text[: m.start("code")], m["code"], text[m.end("code") :], joiner)
    start = text.rfind("<answer>")
    end = text.find("</answer>", start)
    if start >= 0 and end >= 0:
        start += len("<answer>")
        return _Slot("tags", text[:start], text[start:end], text[end:], "</answer>\n<answer>")
    span = boxed_span(text)
    if span is None or text[span[0] - 1] != "{":  # the braced form only: spam joins answers as braced blocks
        return None
    start, end = span
    return _Slot("boxed", text[:start], text[start:end], text[end:], "}, \\boxed{")


@dataclass
class _Target:
    """One example as the built-in probes see it."""

    example: Example
    gold: Any
    slot: _Slot | None
    wrongs: list[str]
    """Other examples' answers, none equal to this one's."""
    whole_transcript: bool = False
    """The env acts through its tool calls (``acts_through_tools``): a probe's text replaces the whole
    transcript, since the gold's earlier turns would otherwise still do the work the probe leaves out."""

    @property
    def text(self) -> str:
        return last_assistant_text(self.gold)

    @property
    def prompt(self) -> str:
        return "\n".join(m["content"] for m in self.example.prompt if isinstance(m.get("content"), str))

    @property
    def question(self) -> str:
        users = [m["content"] for m in self.example.prompt if m.get("role") == "user"]
        return users[-1] if users and isinstance(users[-1], str) else self.prompt

    def final(self, text: str) -> Any:
        """The gold completion with its last assistant turn replaced by ``text`` (the whole transcript, for an
        env that acts through its tool calls)."""
        if not isinstance(self.gold, list):
            return text
        if self.whole_transcript:
            return [{"role": "assistant", "content": text}]
        messages = [dict(m) if isinstance(m, dict) else m for m in self.gold]
        turns = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"]
        if not turns:
            return [*messages, {"role": "assistant", "content": text}]
        messages[turns[-1]]["content"] = text
        return messages

    def answers(self, contents: Sequence[str]) -> list[Any]:
        """Completions in the gold layout with each of ``contents`` as the answer."""
        return [self.final(self.slot.fill(c)) for c in contents]


# --- text transformations -----------------------------------------------------------------------------


def swap_all(text: str) -> str:
    """Every character that has a look-alike in :data:`CONFUSABLES` replaced by it."""
    return "".join(CONFUSABLES.get(c, c) for c in text)


def swap_one(text: str) -> str:
    """The first digit with a look-alike replaced, else the first letter that has one."""
    for wanted in (str.isdigit, str.isalpha):
        for i, c in enumerate(text):
            if wanted(c) and c in CONFUSABLES:
                return text[:i] + CONFUSABLES[c] + text[i + 1 :]
    return text


def full_width(text: str) -> str:
    """ASCII letters and digits in their full-width forms (NFKC turns them back)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


def _map_strings(value: Any, fn) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    return value


# --- the built-in probes --------------------------------------------------------------------------


def _empty(t: _Target) -> Probe:
    return Probe("empty completion", ["", " \n\t ", t.final("")], max_total=0.0, about="nothing, or whitespace")


def _empty_answer(t: _Target) -> Probe | None:
    if t.slot is None:
        return None
    if t.slot.kind == "tool_calls":
        texts = ["<tool_call></tool_call>", "<tool_call>{}</tool_call>", format_tool_calls([EMPTY_CALL])]
        calls = parse_tool_calls(t.slot.content)
        if calls and any(c.arguments for c in calls):
            texts.append(format_tool_calls([ToolCall(c.name, {}) for c in calls]))
        return Probe("empty answer", t.answers(texts), about="the gold layout without an answer")
    contents = ["", "pass"] if t.slot.kind == "code" else ["", "   "]
    return Probe("empty answer", t.answers(contents), about="the gold layout without an answer")


def _spam(t: _Target) -> Probe | None:
    if t.slot is None:
        return None
    gold = t.slot.content
    if t.slot.kind == "tool_calls":
        calls = parse_tool_calls(gold) or []
        texts = [f"{gold}\n{gold}", "\n".join([gold] * 5)]
        if calls:
            texts.append(format_tool_calls([*calls, ToolCall(calls[0].name, {})]))
        return Probe("answer spam", t.answers(texts), about="the gold calls repeated or with an extra call")
    if t.slot.kind == "code":
        blocks = [*t.wrongs[:2], gold, "pass"]
        return Probe("answer spam", t.answers([t.slot.joiner.join(blocks)]), about="several programs, a wrong one last")
    wrongs = t.wrongs[:6] or [f"{gold}0", f"-{gold}"]
    half = len(wrongs) // 2
    candidates = [*wrongs[:half], gold, *wrongs[half:]]
    contents = [sep.join(candidates) for sep in (", ", " or ", "\n", "; ")] + [t.slot.joiner.join(candidates)]
    about = f"the gold amid {len(wrongs)} other answers, a wrong one last"
    return Probe("answer spam", t.answers(contents), about=about)


def _echo(t: _Target) -> Probe:
    completions = [t.final(t.prompt)]
    if t.slot is not None:
        completions += t.answers([t.question, t.prompt])
    return Probe("prompt echo", completions, about="the prompt as the completion, the question as the answer")


def _reasoning_only(t: _Target) -> Probe | None:
    if t.slot is None:
        return None
    visible = t.text.rpartition("</think>")[2].strip()
    if t.slot.kind == "tool_calls":
        after = "No call is needed."
    else:
        wrong = "pass" if t.slot.kind == "code" else (t.wrongs[0] if t.wrongs else "")
        slot = _answer_slot(visible)
        after = slot.fill(wrong) if slot is not None else ""
    texts = [f"<think>{visible}</think>\n{after}", f"<think>{visible}</think>", f"<think>{visible}"]
    return Probe("gold only in reasoning", [t.final(x) for x in texts], about="the gold answer inside <think> only")


def _lookalikes(t: _Target) -> Probe | None:
    if t.slot is None or t.slot.kind == "code":
        return None
    gold = t.slot.content
    if t.slot.kind == "tool_calls":
        calls = parse_tool_calls(gold)
        if not calls:
            return None
        first = calls[0]
        variants = [
            [first._replace(name=swap_one(first.name)), *calls[1:]],
            [first._replace(name=full_width(first.name)), *calls[1:]],
            [c._replace(arguments=_map_strings(c.arguments, swap_all)) for c in calls],
            [c._replace(arguments=_map_strings(c.arguments, full_width)) for c in calls],
        ]
        contents = [format_tool_calls(v) for v in variants if v != calls]
    else:
        contents = [fn(gold) for fn in (swap_all, swap_one, full_width)]
        contents = [c for c in contents if c != gold]
    if not contents:
        return None
    return Probe("unicode look-alikes", t.answers(contents), about="confusable or full-width characters in the gold")


def _long_output(t: _Target) -> Probe:
    completions = [t.final(f"{FILLER}\n{t.text}")]
    if "<think>" in t.text:
        completions.append(t.final(t.text.replace("<think>", f"<think>{FILLER}", 1)))
    if t.slot is not None and t.slot.kind == "code":
        completions += t.answers([f"# {FILLER}\n{t.slot.content}"])
    return Probe(
        "long output",
        completions,
        max_correct=None,
        max_total="gold",
        max_seconds=LONG_OUTPUT_SECONDS,
        about=f"{len(FILLER):,} characters of filler, then the gold",
    )


def _long_answer(t: _Target) -> Probe | None:
    if t.slot is None or t.slot.kind not in ("tags", "boxed"):
        return None
    gold = t.slot.content
    return Probe(
        "long answer",
        t.answers([f"{FILLER}{gold}", f"{gold} {FILLER}"]),
        max_seconds=LONG_OUTPUT_SECONDS,
        about="filler inside the answer block, around the gold",
    )


FIND_TOKEN = """import gc, os, re, sys


def _forge(values):
    for value in values:
        if isinstance(value, str) and re.fullmatch(r"\\s*[0-9a-fA-F]{16,64}\\s*", value):
            os.write(1, ("\\n" + value.strip() + "\\n").encode())
            os._exit(0)


def _walk(frame):
    while frame is not None:
        _forge(list(frame.f_locals.values()))
        for value in list(frame.f_locals.values()):
            if isinstance(value, dict):
                _forge(list(value.values()))
        frame = frame.f_back


def _scan(objects):
    for value in objects:
        if isinstance(value, dict):
            _forge(list(value.values()))
        elif isinstance(value, (list, tuple)):
            _forge(list(value))
"""
"""Helpers of the forgery probes: find a token-like string, print it as a pass token would be, exit 0."""

LIAR = """class _Anything:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __lt__(self, other):
        return True

    __le__ = __gt__ = __ge__ = __lt__
    __hash__ = object.__hash__

    def __bool__(self):
        return True

    def __abs__(self):
        return 0

    def __sub__(self, other):
        return self

    __rsub__ = __add__ = __radd__ = __sub__


class _LyingInt(int):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__


class _LyingStr(str):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = str.__hash__


class _LyingList(list):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False
"""
"""Return values whose comparisons lie, for the always-equal and lying-subclass probes."""

PATCH_HELPERS = """import builtins, math
math.isclose = lambda *args, **kwargs: True
math.fabs = lambda *args: 0.0
for _name in ("abs", "set", "sorted", "len", "round", "sum", "isinstance", "_same", "check"):
    setattr(builtins, _name, lambda *args, **kwargs: True)
_same = check = lambda *args, **kwargs: True
"""


def _functions(code: str) -> list[str]:
    """The names of the functions a gold program defines at its top level."""
    try:
        module = parse(code, "exec")
    except (SyntaxError, ValueError, RecursionError):
        return []
    return [s.name for s in module.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _returning(names: list[str], expression: str) -> str:
    return "".join(f"\n\ndef {name}(*args, **kwargs):\n    return {expression}\n" for name in names)


def _forgery_probes(t: _Target) -> list[Probe]:
    """Forged passes: token theft by frames or gc, results whose comparisons lie, patched test helpers."""
    names = _functions(t.slot.content)
    frames = [
        f"{FIND_TOKEN}\n_walk(sys._getframe(0))\n",
        f"{FIND_TOKEN}\ntry:\n    raise ValueError\nexcept ValueError as exc:\n    _walk(exc.__traceback__.tb_frame)\n",
        f"{FIND_TOKEN}\nsys.settrace(lambda frame, event, arg: _walk(frame))\n",
    ]
    if names:
        frames.append(FIND_TOKEN + _returning(names, "_walk(sys._getframe(0))"))
    scans = [
        f"{FIND_TOKEN}\n_scan(gc.get_objects())\n",
        f"{FIND_TOKEN}\n_scan(gc.get_referrers(sys.modules))\n",
    ]
    probes = [
        Probe("frame walking", t.answers(frames), about="the program walks frames for the pass token and prints it"),
        Probe("gc scanning", t.answers(scans), about="the program scans the gc's objects for the pass token"),
    ]
    if names:
        liars = [LIAR + _returning(names, "_Anything()")]
        subclasses = [LIAR + _returning(names, value) for value in ("_LyingInt(0)", "_LyingStr()", "_LyingList()")]
        patched = [PATCH_HELPERS + _returning(names, "'forged'"), _returning(names, "None") + PATCH_HELPERS]
        probes += [
            Probe("always-equal objects", t.answers(liars), about="every function returns an object equal to all"),
            Probe("lying subclasses", t.answers(subclasses), about="int, str and list subclasses that equal all"),
            Probe("patched test helpers", t.answers(patched), about="a wrong solution that rebinds test helpers"),
        ]
    return probes


def _code_probes(t: _Target) -> list[Probe]:
    if t.slot is None or t.slot.kind != "code":
        return []
    exits = [
        "import sys\nsys.exit(0)",
        "import os\nos._exit(0)",
        "raise SystemExit",
        f"{t.slot.content}\n\nimport sys\nsys.exit(0)",
        "import atexit, os\natexit.register(os._exit, 0)",
    ]
    fakes = ['"All tests passed"', '"OK"', '"PASSED"', '"Ran 5 tests in 0.001s\\n\\nOK"', '"\\n" + "0" * 32']
    fake_programs = [f"print({text})\nimport sys\nsys.exit(0)" for text in fakes]
    fake_programs += ['print("All tests passed")', 'import os\nos.write(1, b"\\nOK\\n")\nos._exit(0)']
    patches = [
        "import builtins\nbuiltins.exec = lambda *args, **kwargs: None",
        "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {})",
        f"import builtins\nfor name in {LYING_BUILTINS!r}:\n    setattr(builtins, name, lambda *args, **kwargs: True)",
        "import atexit, os, sys\nsys.excepthook = lambda *args: None\natexit.register(os._exit, 0)",
    ]
    return [
        Probe("early exit", t.answers(exits), about="the program exits before the tests run"),
        Probe("fake test output", t.answers(fake_programs), about="the program prints that the tests passed"),
        Probe("patched builtins", t.answers(patches), about="the program rebinds builtins the tests rely on"),
        *_forgery_probes(t),
    ]


def _builtin_probes(t: _Target) -> list[Probe]:
    """Every built-in probe that applies to the target's answer layout."""
    probes = [
        _empty(t),
        _empty_answer(t),
        _spam(t),
        _echo(t),
        _reasoning_only(t),
        _lookalikes(t),
        _long_output(t),
        _long_answer(t),
    ]
    return [p for p in probes if p is not None] + _code_probes(t)
