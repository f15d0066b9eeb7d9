"""Rewards of repofix-v0: replay an episode's edits from its transcript, run hidden tests on the result.

The reward reads the transcript alone (so ``rlhub eval --rescore`` and TRL score the same way the env does):
the assistant's ``edit_file`` calls are replayed, in order, onto the example's original files with
:func:`apply_edit`, the very function the env's tool calls, so the tool and the reward cannot disagree about
what an edit did. A call after ``submit()`` is not replayed (the env refuses it too).

Of the result, only the package's source files, as the example lists them (``sources``), go to the sandbox:
never a test file, ``conftest.py``, ``sitecustomize.py``, a ``.pth`` file or any file the agent's code wrote
while the visible tests ran. The hidden tests are calls and expected values (``hidden``): the sandbox imports
the package, evaluates each call and returns its value through a strict serializer
(``rlhub.sandbox.SandboxPool.run_calls``); the values are compared here. So editing, deleting or skipping
the visible tests, exiting at import, patching ``unittest`` or printing "OK" earn nothing: the expected
values never enter the sandbox and nothing the program prints is read. All of an episode's calls run in one
program within :data:`TIMEOUT` seconds; an endless loop fails the calls it holds up.

Rewards: ``repofix_correct`` (1.0 iff every hidden test passes), ``repofix_pass_rate`` (the fraction that
passes), ``repofix_format`` (the episode edited a file and every tool call was well formed); logged:
``repofix_turns``, ``repofix_tool_errors``, ``repofix_edits``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlhub.sandbox.checks import same

from .code import run_distinct
from .tool_calls import parse_tool_calls_verbose

log = logging.getLogger(__name__)

TOOL_PARAMETERS = {
    "list_files": (frozenset(), frozenset()),
    "read_file": (frozenset({"path"}), frozenset({"start_line", "end_line"})),
    "edit_file": (frozenset({"path", "search", "replace"}), frozenset()),
    "run_tests": (frozenset(), frozenset()),
    "submit": (frozenset(), frozenset()),
}
"""Each tool's required and optional argument names (a call with others fails, in the env as here)."""

TIMEOUT = 3.0
"""Wall-clock seconds all of one episode's hidden tests may take together."""

MEMORY_MB = 512
"""Address-space limit of the hidden tests' processes, in MiB."""

MAX_FILE_CHARS = 50_000
"""The largest a file may grow by edits."""


class EditError(ValueError):
    """An edit that cannot be applied; its message tells the model what to do instead."""


def apply_edit(files: Mapping[str, str], path: Any, search: Any, replace: Any) -> dict[str, str]:
    """``files`` with the one occurrence of ``search`` in ``path`` replaced by ``replace``.

    Args:
        files: The project's files by path.
        path: The file to edit.
        search: Text that must occur exactly once in that file.
        replace: Its replacement.

    Returns:
        A new mapping; ``files`` is unchanged.

    Raises:
        EditError: No such file, arguments that are not strings, ``search`` empty, missing or found more
            than once, or a file grown past :data:`MAX_FILE_CHARS`.

    Example:
        >>> apply_edit({"a.py": "x = 1\\n"}, "a.py", "1", "2")
        {'a.py': 'x = 2\\n'}
        >>> try:
        ...     apply_edit({"a.py": "x = 1 + 1\\n"}, "a.py", "1", "2")
        ... except EditError as exc:
        ...     print(exc)
        search text occurs 2 times in a.py; include more of the surrounding lines so that it occurs once
    """
    if not isinstance(path, str) or path not in files:
        raise EditError(f"no file {path!r}; list_files() shows the project's files")
    if not isinstance(search, str) or not isinstance(replace, str):
        raise EditError("search and replace must be strings")
    if not search:
        raise EditError("search is empty; copy the exact lines to change from read_file, indentation included")
    text = files[path]
    first = text.find(search)
    if first < 0:
        raise EditError(f"search text not found in {path}; copy it exactly from read_file, indentation included")
    if text.find(search, first + 1) >= 0:
        count = text.count(search)
        raise EditError(
            f"search text occurs {max(count, 2)} times in {path}; include more of the surrounding lines so that it "
            "occurs once"
        )
    edited = text[:first] + replace + text[first + len(search) :]
    if len(edited) > MAX_FILE_CHARS:
        raise EditError(f"{path} would grow past {MAX_FILE_CHARS} characters; edit less at a time")
    return {**files, path: edited}


def well_formed(name: str, arguments: Mapping[str, Any]) -> bool:
    """Whether a call names a tool of the env with arguments its signature accepts."""
    if name not in TOOL_PARAMETERS:
        return False
    required, optional = TOOL_PARAMETERS[name]
    return required <= set(arguments) <= required | optional


@dataclass
class Replay:
    """What an episode's transcript did to the project."""

    files: dict[str, str]
    edits: int = 0
    """``edit_file`` calls that applied."""
    malformed: int = 0
    """Blocks that do not parse, unknown tools, arguments a tool does not take."""
    turns: int = 0


def replay(transcript: Any, files: Mapping[str, str]) -> Replay:
    """Apply a transcript's ``edit_file`` calls to ``files`` as the env did; stop at ``submit()``.

    Args:
        transcript: Chat messages (a plain string is one assistant turn).
        files: The example's original files.

    Returns:
        The files after the edits, and counts of what the calls did.
    """
    messages = [{"role": "assistant", "content": transcript}] if isinstance(transcript, str) else transcript
    result = Replay(dict(files))
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        result.turns += 1
        calls, errors = parse_tool_calls_verbose(message.get("content") or "")
        result.malformed += len(errors)
        for call in calls:
            if not well_formed(call.name, call.arguments):
                result.malformed += 1
            elif call.name == "submit":
                return result
            elif call.name == "edit_file":
                try:
                    result.files = apply_edit(result.files, **call.arguments)
                    result.edits += 1
                except EditError:
                    pass
    return result


def _matches(got: Any, want: Any) -> bool:
    """Equal values of exactly the same types; floats within a relative 1e-9 (a fix may round differently)."""
    if type(want) is float:
        return type(got) is float and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
    if type(want) in (list, tuple):
        return type(got) is type(want) and len(got) == len(want) and all(map(_matches, got, want))
    return same(got, want)


def _modules(sources: Sequence[str]) -> str:
    """A program importing every source module: ``tally/stats.py`` -> ``import tally.stats``."""
    names = [path.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for path in sources]
    return "\n".join(f"import {name}" for name in names)


_cache: OrderedDict[tuple, list[bool]] = OrderedDict()
_cache_lock = threading.Lock()
CACHE_SIZE = 2048
"""Hidden-test verdicts kept, so that ``correct`` and ``pass_rate`` share one sandbox run."""


def _run_hidden(pool, sources: tuple[tuple[str, str], ...], tests: str) -> list[bool]:
    """Each hidden test's verdict (``tests``: the ``[call, expected]`` pairs as JSON) on ``sources``."""
    key = (sources, tests)
    hidden = json.loads(tests)
    with _cache_lock:
        if key in _cache:
            return list(_cache[key])
    try:
        outcome = pool.run_calls(
            _modules([path for path, _ in sources]),
            [call for call, _ in hidden],
            timeout=TIMEOUT,
            memory_mb=MEMORY_MB,
            files=dict(sources),
        )
    except Exception as exc:  # a sandbox failure scores 0; it must never stop training
        log.warning("sandbox run failed (%s: %s); scoring 0", type(exc).__name__, exc)
        return [False] * len(hidden)
    passed = [r.ok and _matches(r.value, want) for r, (_, want) in zip(outcome.calls, hidden)]
    with _cache_lock:
        _cache[key] = passed
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return list(passed)


def hidden_results(
    transcripts: Sequence[Any], files: Sequence[Any], sources: Sequence[Any], hidden: Sequence[Any]
) -> list[list[bool] | None]:
    """Per transcript, whether each hidden test passes on the package its edits produced.

    Args:
        transcripts: Episodes' transcripts.
        files: Per episode, the example's original files.
        sources: Per episode, the paths of the package's source files (the only files run).
        hidden: Per episode, ``[call, expected value]`` pairs.

    Returns:
        One bool per hidden test, or ``None`` for an example without files or hidden tests.
    """
    jobs: list[tuple | None] = []
    for transcript, original, paths, tests in zip(transcripts, files, sources, hidden):
        if not isinstance(original, Mapping) or not paths or not tests:
            jobs.append(None)
            continue
        edited = replay(transcript, original).files
        chosen = tuple((path, edited[path]) for path in paths if path in edited)
        try:
            jobs.append((chosen, json.dumps([[str(call), want] for call, want in tests])))
        except (TypeError, ValueError):
            jobs.append(None)
    unique = list(dict.fromkeys(job for job in jobs if job is not None))
    verdicts = run_distinct(unique, lambda pool, job: _run_hidden(pool, *job), "rlhub-repofix-reward")
    return [None if job is None else verdicts.get(job, [False] * len(json.loads(job[1]))) for job in jobs]


def _transcripts(completions: Sequence[Any], transcript: Sequence[Any] | None) -> list[Any]:
    return list(transcript) if transcript is not None else list(completions)


def repofix_correct(completions, transcript=None, files=None, sources=None, hidden=None, **kwargs):
    """1.0 iff every hidden test passes on the package the episode's edits produced.

    Args:
        completions: Final assistant messages (the transcript column holds the whole episode).
        transcript: Per episode, its messages.
        files, sources, hidden: The example's columns (original files, source paths, hidden tests).
        **kwargs: Other columns (ignored).

    Returns:
        1.0 or 0.0 per episode; ``None`` for an example without hidden tests.

    Example:
        >>> files = {"m/__init__.py": "", "m/a.py": "def f(x):\\n    return x - 1\\n"}
        >>> edit = '<tool_call>{"name": "edit_file", "arguments": {"path": "m/a.py", "search": "x - 1", '
        >>> edit += '"replace": "x + 1"}}</tool_call>'
        >>> repofix_correct(["", ""], transcript=[[{"role": "assistant", "content": edit}], []],
        ...                 files=[files] * 2, sources=[["m/__init__.py", "m/a.py"]] * 2,
        ...                 hidden=[[["m.a.f(1)", 2]]] * 2)  # doctest: +SKIP
        [1.0, 0.0]
    """
    results = hidden_results(_transcripts(completions, transcript), files, sources, hidden)
    return [None if r is None else float(all(r)) for r in results]


def repofix_pass_rate(completions, transcript=None, files=None, sources=None, hidden=None, **kwargs):
    """The fraction of hidden tests that pass (the unfixed project already passes most of them).

    Args, Returns: as :func:`repofix_correct`, with a fraction in [0, 1].
    """
    results = hidden_results(_transcripts(completions, transcript), files, sources, hidden)
    return [None if r is None else sum(r) / len(r) for r in results]


def repofix_format(completions, transcript=None, files=None, **kwargs):
    """1.0 iff the episode applied at least one edit and every tool call was well formed.

    Well formed: the block parses, names one of the env's tools, and passes only arguments it takes. An episode
    that edits nothing scores 0, so a no-op agent earns nothing at all.

    Example:
        >>> call = '<tool_call>{"name": "edit_file", "arguments": {"path": "a.py", "search": "1", "replace": "2"}}'
        >>> repofix_format([""], transcript=[[{"role": "assistant", "content": call + "</tool_call>"}]],
        ...                files=[{"a.py": "x = 1"}])
        [1.0]
    """
    scores = []
    for episode, original in zip(_transcripts(completions, transcript), files or [None] * len(completions)):
        done = replay(episode, original if isinstance(original, Mapping) else {})
        scores.append(float(done.edits > 0 and done.malformed == 0))
    return scores


def repofix_turns(completions, transcript=None, **kwargs):
    """The episode's assistant turns (logged)."""
    return [float(replay(episode, {}).turns) for episode in _transcripts(completions, transcript)]


def repofix_edits(completions, transcript=None, files=None, **kwargs):
    """``edit_file`` calls that applied (logged)."""
    episodes = _transcripts(completions, transcript)
    originals = files or [None] * len(episodes)
    return [float(replay(e, f if isinstance(f, Mapping) else {}).edits) for e, f in zip(episodes, originals)]


def repofix_tool_errors(completions, transcript=None, **kwargs):
    """Tool replies that were errors: malformed calls, failed edits, bad paths (logged)."""
    counts = []
    for episode in _transcripts(completions, transcript):
        messages = episode if isinstance(episode, list) else []
        counts.append(
            float(
                sum(
                    1
                    for m in messages
                    if isinstance(m, dict) and m.get("role") == "tool" and str(m.get("content", "")).startswith("error")
                )
            )
        )
    return counts
