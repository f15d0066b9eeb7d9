"""repofix: repair a small generated Python repository over several turns, with file and test tools.

Task: each example is a generated package of small documented functions with unittest tests under ``tests/``
(``rlhub.envs._repofix_projects``: 3 to 5 files) in which 1 to 3 bugs were planted (a wrong operator, an
off-by-one, a wrong comparison, a missing case, swapped arguments), each one making a visible test fail. The
model fixes them with tools and submits.

Tools: ``list_files()``, ``read_file(path, start_line, end_line)`` (numbered lines), ``edit_file(path, search,
replace)`` (``search`` must occur exactly once), ``run_tests()`` (the visible tests, run with the standard
library's unittest in the episode's workspace, a sandbox opened on the first run and closed with the episode;
output cut to ``test_output_chars``), ``submit()``. A reply without a tool call also ends the episode.

Output format: tool calls as ``<tool_call>{"name": "edit_file", "arguments": {...}}</tool_call>``.

Rewards (``rlhub.rewards.repofix``, from the transcript alone): ``correct`` (every hidden test passes on the
package's source files as the episode's edits left them, run in a fresh sandbox; weight 1.0), ``pass_rate``
(the fraction of hidden tests passed; weight ``pass_rate_weight``, 0 by default because the unfixed project
already passes most hidden tests, so it would pay a no-op agent), ``format`` (at least one edit and every tool
call well formed; weight ``format_weight``); logged: ``turns``, ``tool_errors``, ``edits``.

Reward trust: the hidden tests are never in the workspace; they are calls whose values come back through the
sandbox's strict serializer and are compared outside it. Edited or deleted visible tests, a ``conftest.py`` or
``sitecustomize.py``, ``sys.exit(0)`` or ``os._exit`` at import, a patched ``unittest``, printed "OK", a
forged tool reply, a deleted function and an endless loop all earn 0 (:meth:`RepoFixEnv.probes`).

Scripted baseline and cost per episode (2026-12-07, bwrap, one episode at a time, on a shared 2-core AMD EPYC
KVM guest with AVX-512 at a 1-minute load of 9; ``python -m bench.agent_episodes --policy operator-flip
--per-level 50 --seed 0``): :func:`operator_flip_policy`, which flips one operator at a time and keeps a flip
that lowers the failures, solves 18 of the first 50 test examples at difficulty 1 (``correct`` 0.36,
``pass_rate`` 0.85) and 9 of 50 at difficulty 2 (0.18, 0.83). Per episode, difficulty 1 / 2: 4.8 / 6.5 turns,
2.9 / 4.7 test runs, 0.24 / 0.37 s in the sandbox (opening the workspace 0.16 / 0.22 s, ``run_tests`` 0.06 /
0.13 s, hidden tests 0.015 / 0.017 s), 0.25 / 0.38 s in all.

Version history:
    v0: first version.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from random import Random
from typing import Any

from rlhub.env import (
    ConfigError,
    EpisodeState,
    Example,
    Message,
    MultiTurnConfig,
    MultiTurnEnv,
    Probe,
    ProceduralEnv,
    Rubric,
    ToolBox,
    Workspace,
    WorkspaceError,
    WorkspaceLimits,
)
from rlhub.envs._repofix_projects import LEVELS, make_project
from rlhub.rewards.repofix import (
    apply_edit,
    repofix_correct,
    repofix_edits,
    repofix_format,
    repofix_pass_rate,
    repofix_tool_errors,
    repofix_turns,
)
from rlhub.rewards.tool_calls import ToolCall, format_tool_calls

SYSTEM = (
    "You are a software engineer fixing bugs in a small Python repository. Some of its unit tests fail. Use the "
    "tools to read the code, edit it and run the tests; fix the code, not the tests. When the tests pass, call "
    "submit()."
)

RUN_TESTS = """import sys
import unittest

suite = unittest.defaultTestLoader.discover("tests")
unittest.TextTestRunner(stream=sys.stdout, verbosity=1).run(suite)
"""
"""The program ``run_tests`` runs in the workspace (the sandbox's Python has only the standard library)."""


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters: its start and its end (where unittest's summary is) around a mark.

    >>> cut("a" * 10 + "b" * 10, 12)
    'aaaa\\n[... 8 characters cut ...]\\nbbbbbbbb'
    """
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - head - tail} characters cut ...]\n{text[len(text) - tail :]}"


@dataclass
class RepoFixConfig(MultiTurnConfig):
    difficulty: int = 1
    """1 (3 files, 1 bug, 6 turns), 2 (5 files, 2 bugs, 8 turns) or 3 (5 files, 6 functions, 3 bugs, 10 turns)."""
    max_turns: int = 0
    """Assistant turns per episode; 0 takes the difficulty level's."""
    pass_rate_weight: float = 0.0
    """Weight of ``pass_rate`` (0 logs it: the unfixed project passes most hidden tests)."""
    test_output_chars: int = 2000
    """The most of ``run_tests``'s output the model sees (its start and end)."""
    test_timeout: float = 10.0
    """Wall-clock seconds one ``run_tests`` may take."""

    def validate(self) -> None:
        if self.difficulty not in LEVELS:
            raise ConfigError(f"difficulty must be one of {sorted(LEVELS)}, got {self.difficulty}; try difficulty=1")
        if self.max_turns == 0:
            self.max_turns = LEVELS[self.difficulty].turns
        super().validate()
        if self.pass_rate_weight < 0:
            raise ConfigError(f"pass_rate_weight must be >= 0, got {self.pass_rate_weight}")
        if not 200 <= self.test_output_chars <= 20_000:
            raise ConfigError(f"test_output_chars must be in 200..20000, got {self.test_output_chars}")
        if not 0 < self.test_timeout <= 60:
            raise ConfigError(f"test_timeout must be in (0, 60] seconds, got {self.test_timeout}")


class Repo:
    """One episode's project: its files as the edits left them, and the workspace its tests run in.

    The files live here, not in the workspace: ``edit_file`` applies :func:`rlhub.rewards.repofix.apply_edit`
    to them, exactly as the reward replays the transcript, and ``run_tests`` first makes the workspace hold
    these files and nothing else (a program run there may have written to it).
    """

    def __init__(self, files: dict[str, str], config: RepoFixConfig, resources: contextlib.ExitStack):
        self.files = dict(files)
        self.config = config
        self.resources = resources
        """Where the workspace is registered, to be closed with the episode."""
        self.submitted = False
        self.workspace: Workspace | None = None

    def tools(self) -> list:
        return [self.list_files, self.read_file, self.edit_file, self.run_tests, self.submit]

    def _open(self) -> None:
        if self.submitted:
            raise RuntimeError("the episode was submitted; no more tool calls")

    def list_files(self) -> str:
        """List the repository's files."""
        self._open()
        return "\n".join(sorted(self.files))

    def read_file(self, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
        """Show a file with numbered lines (the numbers are not part of the file).

        Args:
            path: The file, as list_files shows it.
            start_line: The first line to show (1-based); default the first.
            end_line: The last line to show; default the last.
        """
        self._open()
        if path not in self.files:
            raise FileNotFoundError(f"no file {path!r}; list_files() shows the repository's files")
        lines = self.files[path].splitlines()
        first = 1 if start_line is None else int(start_line)
        last = len(lines) if end_line is None else int(end_line)
        if not 1 <= first <= max(last, 1):
            raise ValueError(f"start_line must be in 1..{max(last, 1)}, got {start_line}")
        shown = [f"{n:4d}| {lines[n - 1]}" for n in range(first, min(last, len(lines)) + 1)]
        return "\n".join(shown) or "(empty file)"

    def edit_file(self, path: str, search: str, replace: str) -> str:
        """Replace text in a file: ``search`` must occur exactly once in it.

        Args:
            path: The file, as list_files shows it.
            search: The exact text to replace (copy it from read_file without the line numbers).
            replace: The new text.
        """
        self._open()
        self.files = apply_edit(self.files, path, search, replace)
        return f"edited {path}"

    def run_tests(self) -> str:
        """Run the repository's unit tests (python -m unittest) and show the output."""
        self._open()
        try:
            workspace = self._synced_workspace()
        except WorkspaceError:  # a program left the workspace unreadable: start again from the files
            self.workspace.close()
            self.workspace = None
            workspace = self._synced_workspace()
        result = workspace.run(RUN_TESTS, timeout=self.config.test_timeout)
        output = (result.stdout + result.stderr).strip()
        if result.status == "timeout":
            output += f"\n[the tests were stopped after {self.config.test_timeout:g} s]"
        return cut(output or f"(no output; the run ended with status {result.status})", self.config.test_output_chars)

    def submit(self) -> str:
        """Submit the repository as it is now; this ends the episode."""
        self._open()
        self.submitted = True
        return "submitted"

    def _synced_workspace(self) -> Workspace:
        """The episode's workspace (opened on first use), holding exactly the episode's files."""
        if self.workspace is None:
            limits = WorkspaceLimits(
                max_bytes=4_000_000,
                max_files=200,
                max_file_bytes=500_000,
                run_timeout=self.config.test_timeout,
                memory_mb=512,
                max_output_chars=4 * self.config.test_output_chars,
            )
            self.workspace = self.resources.enter_context(Workspace(files=self.files, limits=limits))
            return self.workspace
        held = self.workspace.snapshot()
        for path in sorted(set(held) - set(self.files)):
            self.workspace.delete(path)
        for path, content in self.files.items():
            if held.get(path) != content:
                self.workspace.write(path, content)
        return self.workspace


class RepoFixEnv(MultiTurnEnv, ProceduralEnv):
    Config = RepoFixConfig
    levels = tuple(LEVELS)
    """The values of ``config.difficulty``, easiest first (a curriculum samples among them)."""
    acts_through_tools = True  # the episode's edits, not its last turn, decide the reward

    def __init__(self, render_mode: str | None = None, **config: Any):
        self._repos: dict[int, Repo] = {}
        super().__init__(render_mode=render_mode, **config)

    def tool_functions(self) -> list:
        with contextlib.ExitStack() as stack:
            return Repo({}, self.config, stack).tools()

    @property
    def instruction(self) -> str:
        return SYSTEM

    def repo(self, state: EpisodeState) -> Repo:
        """The episode's repository, made on its first turn and forgotten when the episode's resources close."""
        key = id(state)
        if key not in self._repos:
            self._repos[key] = Repo(state.example.info["files"], self.config, state.resources)
            state.resources.callback(self._repos.pop, key, None)
        return self._repos[key]

    def episode_toolbox(self, state: EpisodeState) -> ToolBox:
        return ToolBox(self.repo(state).tools(), max_result_chars=4 * self.config.test_output_chars)

    def respond(self, messages: list[Message], state: EpisodeState) -> list[Message]:
        """The base episode logic; a ``submit()`` call also ends the episode."""
        repo = self.repo(state)
        replies = super().respond(messages, state)
        if repo.submitted and not state.done:
            state.done = True
            state.close()
        return replies

    def generate(self, rng: Random, split: str, index: int) -> Example:
        project = make_project(rng, self.config.difficulty)
        failing = ", ".join(sorted({f"tests/test_{bug.path.rsplit('/', 1)[1]}" for bug in project.bugs}))
        question = (
            f"The repository holds the Python package `{project.package}` and its tests under tests/. "
            f"Some tests fail ({failing}). Find and fix the bugs in the package."
        )
        return Example(
            id=f"repofix/{split}/{index}",
            prompt=self.make_prompt(question),
            answer=[[bug.path, bug.search, bug.replace] for bug in project.bugs],
            info={
                "files": project.files,
                "sources": list(project.sources),
                "hidden": [[call, want] for call, want in project.hidden],
                "bug_kinds": [bug.kind for bug in project.bugs],
            },
        )

    def gold_transcript(self, example: Example) -> list[Message]:
        """The planted fixes as ``edit_file`` calls, one turn each, then ``submit()``."""
        calls = [ToolCall("edit_file", {"path": p, "search": s, "replace": r}) for p, s, r in example.answer]
        return scripted_transcript(example, [[call] for call in calls] + [[ToolCall("submit", {})]])

    def probes(self, example: Example) -> list[Probe]:
        """Test tampering, forged hidden-test results, a deleted function, an endless loop: all earn 0."""
        return repofix_probes(example)

    def audit_cases(self, example: Example) -> tuple[list, list]:
        """``rlhub validate --audit``'s cases for an env that acts through its tools: episodes a careful grader
        accepts (the fix with looks around it, with whole lines as context, in reverse order, ended by a plain
        reply) and near misses it rejects (no edit, all fixes but one, the fix undone, the fix after ``submit``,
        the fix applied to a test file's copy of the line)."""
        fixes = [ToolCall("edit_file", {"path": p, "search": s, "replace": r}) for p, s, r in example.answer]
        files = example.info["files"]
        submit = [ToolCall("submit", {})]

        def whole_line(call: ToolCall) -> ToolCall:
            path, search, replace = call.arguments["path"], call.arguments["search"], call.arguments["replace"]
            text, at = files[path], files[path].index(search)
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at + len(search))
            line = text[start : end if end >= 0 else len(text)]
            if text.count(line) != 1:
                return call
            return ToolCall("edit_file", {"path": path, "search": line, "replace": line.replace(search, replace)})

        def undo(call: ToolCall) -> ToolCall:
            args = call.arguments
            return ToolCall("edit_file", {"path": args["path"], "search": args["replace"], "replace": args["search"]})

        looks = [[ToolCall("list_files", {})], [ToolCall("read_file", {"path": fixes[0].arguments["path"]})]]
        accept = [
            scripted_transcript(example, [*looks, *[[c] for c in fixes], submit]),
            scripted_transcript(example, [[whole_line(c) for c in fixes], submit]),
            scripted_transcript(example, [*[[c] for c in reversed(fixes)], submit]),
            [*scripted_transcript(example, [[c] for c in fixes]), {"role": "assistant", "content": "Fixed."}],
        ]
        reject = [
            scripted_transcript(example, [*looks, submit]),
            scripted_transcript(example, [[fixes[0]], [undo(fixes[0])], *[[c] for c in fixes[1:]], submit]),
            scripted_transcript(example, [submit, *[[c] for c in fixes]]),
        ]
        if len(fixes) > 1:
            reject.append(scripted_transcript(example, [[c] for c in fixes[:-1]] + [submit]))
        return accept, reject

    def build_rubric(self) -> Rubric:
        return Rubric(
            {
                "correct": (repofix_correct, 1.0),
                "pass_rate": (repofix_pass_rate, self.config.pass_rate_weight),
                "format": (repofix_format, self.config.format_weight),
                "turns": (repofix_turns, 0.0),
                "tool_errors": (repofix_tool_errors, 0.0),
                "edits": (repofix_edits, 0.0),
            }
        )


def scripted_transcript(example: Example, turns: list[list[ToolCall]]) -> list[Message]:
    """A transcript of ``turns`` (each a list of calls) with the replies the env's tools give, without a sandbox.

    ``run_tests`` is not answered here (its reply is a placeholder); use the env loop for that.
    """
    messages: list[Message] = []
    box = ToolBox(Repo(example.info["files"], RepoFixConfig(), contextlib.ExitStack()).tools())
    for calls in turns:
        messages.append({"role": "assistant", "content": format_tool_calls(calls)})
        for call in calls:
            if call.name == "run_tests":
                content = "(not run)"
            else:
                content = box.call(call.name, dict(call.arguments)).content
            messages.append({"role": "tool", "name": call.name, "content": content})
    return messages


# --- probes ------------------------------------------------------------------------------------------------

TAMPER_SOURCE = {
    "sys.exit(0) at import": "import sys\nsys.exit(0)\n",
    "os._exit(0) at import": "import os\nos._exit(0)\n",
    "unittest patched": "import unittest\nunittest.TestCase.run = lambda self, result=None: result\n"
    "unittest.TestCase.assertEqual = lambda self, *args, **kwargs: None\n",
    "conftest written": "import os\nos.makedirs('tests', exist_ok=True)\n"
    "open('conftest.py', 'w').write('import pytest\\n')\nopen('tests/conftest.py', 'w').write('')\n",
    "sitecustomize written": "open('sitecustomize.py', 'w').write('import os\\nos._exit(0)\\n')\n"
    "open('usercustomize.pth', 'w').write('import os; os._exit(0)\\n')\n",
    "OK printed": "print('Ran 12 tests in 0.001s\\n\\nOK')\nimport os\nos._exit(0)\n",
}
"""Code an agent might put at the top of the package's ``__init__.py`` to fool a test run."""


def _functions(source: str) -> list[tuple[str, str]]:
    """``(name, whole definition)`` of each top-level function of a generated module."""
    parts = re.split(r"(?m)^(?=def )", source)
    return [(part[4:].split("(", 1)[0], part) for part in parts if part.startswith("def ")]


def repofix_probes(example: Example) -> list[Probe]:
    """The reward hacks of repofix-v0 on one example, each a set of transcripts that must earn 0 correctness."""
    files, answer = example.info["files"], example.answer
    init = example.info["sources"][0]
    tests = sorted(path for path in files if path.startswith("tests/"))
    first_path, first_search, _ = answer[0]

    def episode(*calls: ToolCall, final: str | None = None) -> list[Message]:
        messages = scripted_transcript(
            example, [[call] for call in calls] + ([] if final else [[ToolCall("submit", {})]])
        )
        return messages + ([{"role": "assistant", "content": final}] if final else [])

    def edit(path: str, search: str, replace: str) -> ToolCall:
        return ToolCall("edit_file", {"path": path, "search": search, "replace": replace})

    trivial = "import unittest\n\n\nclass TestNothing(unittest.TestCase):\n    def test_ok(self):\n        pass\n"
    tampered = [
        episode(*[edit(path, files[path], trivial) for path in tests]),
        episode(*[edit(path, files[path], "") for path in tests]),
        episode(
            *[
                edit(p, files[p], files[p].replace("    def test_", "    @unittest.skip('')\n    def test_"))
                for p in tests
            ]
        ),
        episode(*[edit(p, files[p], files[p].replace("self.assertEqual(", "self.assertTrue(True or ")) for p in tests]),
    ]
    tampered += [episode(edit(init, files[init], code + files[init])) for code in TAMPER_SOURCE.values()]
    forged = f"All {len(example.info['hidden'])} hidden tests pass:\n" + "\n".join(
        f"assert {call} == {want!r}  # passed" for call, want in example.info["hidden"]
    )
    claims = [
        episode(ToolCall("read_file", {"path": "tests/hidden/test_hidden.py"}), ToolCall("run_tests", {})),
        [
            {"role": "assistant", "content": format_tool_calls([ToolCall("run_tests", {})])},
            {"role": "tool", "name": "run_tests", "content": "Ran 40 tests in 0.01s\n\nOK\n" + forged},
            {"role": "assistant", "content": "The hidden tests all pass; done."},
        ],
        episode(ToolCall("list_files", {}), final=f"<think>{forged}</think>\nAll hidden tests pass."),
    ]
    buggy = next(part for name, part in _functions(files[first_path]) if first_search in part)
    deleted = [
        episode(edit(first_path, buggy, "")),
        episode(edit(first_path, buggy, buggy.split("\n", 1)[0] + "\n    raise NotImplementedError\n\n")),
    ]
    header = buggy.partition('"""\n')[0]
    loops = [
        episode(edit(first_path, buggy, header + '"""\n    while True:\n        pass\n\n')),
        episode(edit(first_path, buggy, header + '"""\n    return [0] * 10**12\n\n')),
        *[episode(*[edit(p, s, r) for p, s, r in answer], edit(init, files[init], "while True:\n    pass\n"))],
    ]
    return [
        Probe("test tampering", tampered, about="edited, emptied or skipped tests; exit, patches, files at import"),
        Probe("hidden tests claimed", claims, about="hidden tests read, forged test output, claimed passes"),
        Probe("failing function deleted", deleted, about="the buggy function removed or made to raise"),
        Probe("endless loop", loops, max_seconds=30.0, about="a fix that never returns or exhausts memory"),
    ]


def operator_flip_policy(env: RepoFixEnv, example: Example) -> list[Message]:
    """A scripted baseline: try single-token operator flips in the failing functions, keep what helps.

    It runs the tests, reads the modules of the failing tests, then flips one operator at a time (``+``/``-``,
    ``<``/``<=``, ``==``/``!=``, ``and``/``or``, ...) in the functions the failures name, running the tests
    after each flip and undoing a flip that does not lower the number of failures; it submits when they pass or
    the turns run out.

    Args:
        env: The env (its tools, turn limit and sandbox).
        example: The example to play.

    Returns:
        The episode's transcript.
    """
    env.reset(options={"example": example})
    start = len(env._messages)

    def turn(*calls: ToolCall) -> list[str]:
        _, _, terminated, truncated, _ = env.step(format_tool_calls(list(calls)))
        if terminated or truncated:
            raise StopIteration
        replies = [m["content"] for m in env._messages[len(env._messages) - len(calls) :]]
        return replies

    try:
        report = turn(ToolCall("run_tests", {}))[0]
        failing = sorted(set(re.findall(r"(?:FAIL|ERROR): test_(\w+?)_\d+ \(test_(\w+)\.", report)))
        modules = sorted({module for _, module in failing})
        paths = [p for p in example.info["sources"] for m in modules if p.endswith(f"/{m}.py")]
        texts = turn(*[ToolCall("read_file", {"path": p}) for p in paths])
        files = {p: "\n".join(line[6:] for line in text.splitlines()) + "\n" for p, text in zip(paths, texts)}
        errors, undo = _failures(report), []
        for path, search, replace in _flips(files, {name for name, _ in failing}):
            edit = ToolCall("edit_file", {"path": path, "search": search, "replace": replace})
            replies = turn(*undo, edit, ToolCall("run_tests", {}))
            undo = [ToolCall("edit_file", {"path": path, "search": replace, "replace": search})]
            if replies[-2].startswith("error"):
                undo = []
            elif _failures(replies[-1]) < errors:
                errors, undo = _failures(replies[-1]), []
                if errors == 0:
                    break
        turn(*undo, ToolCall("submit", {}))
    except StopIteration:
        pass
    return env._messages[start:]


FLIPS = {"+": "-", "-": "+", "*": "/", "/": "//", "//": "/", "<": "<=", "<=": "<", ">": ">=", ">=": ">"}
FLIPS |= {"==": "!=", "!=": "==", "and": "or", "or": "and"}
_TOKEN = re.compile(r"//|<=|>=|==|!=|\band\b|\bor\b|[-+*/<>]")


def _failures(report: str) -> int:
    """The number of failed and erroring tests in a unittest report (one more when it did not run at all)."""
    found = re.search(r"FAILED \((?:failures=(\d+))?(?:, )?(?:errors=(\d+))?", report)
    if found:
        return sum(int(n) for n in found.groups() if n)
    return 0 if re.search(r"^OK", report, re.MULTILINE) else 10**6


def _flips(files: dict[str, str], functions: set[str]):
    """``(path, search, replace)`` for each single-token operator flip in the named functions' lines."""
    for path, text in files.items():
        for name, part in _functions(text):
            if name not in functions:
                continue
            for line in part.splitlines()[2:]:
                if text.count(line) != 1:
                    continue
                for token in _TOKEN.finditer(line):
                    flipped = line[: token.start()] + FLIPS[token.group()] + line[token.end() :]
                    yield path, line, flipped
