"""Token fidelity of multi-turn episodes: does training see exactly the tokens the model sampled?

rlhub's multi-turn rollout (:func:`rlhub.generation.rollout.run_episodes`) keeps the ids the model generated
and tokenizes only what the chat template writes after each model turn (tool results and the next assistant
header). :func:`check_tokens` proves it for one tokenizer (with its chat template) and one env, without a model:
a :class:`ScriptedEngine` "samples" chosen ids for scripted episodes (tool calls, tool errors, parallel calls,
a long tool result, unicode, reasoning, and non-canonical token splits such as models sample), the rollout
runs them, and :func:`check_episode_tokens` compares each episode, token by token, with:

1. the sampled ids: each model turn is in the episode as sampled, with its log-probs, loss mask 1;
2. what the template adds: between two model turns the episode holds exactly the template's tokens, loss
   mask 0, and nothing else is in the episode;
3. the context: each turn was sampled from the prompt plus the episode so far (what the trainer's forward
   pass conditions on).

What the template adds after model turn k: render the conversation through turn k, and again with the
environment's replies and the next assistant header; the model's turn ends at its stop token (the token the
template closes assistant turns with), and the added part is what follows that token in the second rendering.
Its reference tokens come from tokenizing the whole second rendering at once, as a server that renders the full
conversation would, so a tokenizer that merges across the boundary, or adds a leading space to a piece
tokenized alone, is caught.

Append-only history. Some templates rewrite earlier assistant turns as the conversation goes on (QwQ-style
templates drop the ``<think>`` reasoning of earlier turns, Qwen3's re-spaces it and writes an empty ``<think>``
block on the last turn only, Llama 3's trims whitespace), so re-rendering the conversation differs from the tokens
the model saw and sampled. The report names each episode where that happens (:attr:`FidelityReport.rewrites`).
rlhub trains on such templates one way: the episode keeps the sampled history (the model's context is its own
tokens, reasoning included, and training uses exactly those); only the environment's part comes from the
template; re-rendered model tokens are never trained on. The price is a shift between training and a server that
re-renders the conversation with that template. See docs/token-fidelity.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from rlhub.errors import RLHubError
from rlhub.generation import Sampling
from rlhub.generation.rollout import (
    Completion,
    encode_after_special,
    encode_prompt,
    mask_special_strings,
    run_episodes,
    stop_token_ids,
)
from rlhub.types import Example, Message

MAX_EPISODE_TOKENS = 1 << 14
"""Token budget of a scripted episode: large enough that no scripted turn is cut."""

UNICODE_TEXT = "Zürich, Ελλάδα, 東京, مرحبا, नमस्ते, e\u0301, 🚀👩‍💻"
"""Accents, Greek, CJK, right-to-left, Devanagari, a combining mark and emoji (a ZWJ sequence)."""

_CALL_BLOCK = re.compile(r"<tool_call>.*?</tool_call>", re.DOTALL)


# ---------------------------------------------------------------------------------------------------
# Scripted episodes.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptedTurn:
    """One assistant turn a scripted policy writes."""

    text: str
    fragmented: bool = False
    """Sample a non-canonical tokenization of the text (long tokens split in two), as models sometimes do."""


@dataclass
class SampledTurn:
    """What the engine was asked and what it sampled, for one model turn."""

    context: list[int]
    token_ids: list[int]
    logprobs: list[float]


def _call(name: str, arguments: Any) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}</tool_call>"


def _schema_call(schema: dict[str, Any]) -> str:
    """A well-formed call of a tool, with a placeholder for each required argument."""
    placeholders = {"string": "test", "integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}
    parameters = schema["function"].get("parameters", {})
    properties = parameters.get("properties", {})
    arguments = {p: placeholders.get(properties.get(p, {}).get("type"), "test") for p in parameters.get("required", [])}
    return _call(schema["function"]["name"], arguments)


def _with_unicode_arguments(call: str) -> str:
    """The call with every string argument replaced by :data:`UNICODE_TEXT`."""
    body = json.loads(call[len("<tool_call>") : -len("</tool_call>")])
    arguments = {k: UNICODE_TEXT if isinstance(v, str) else v for k, v in body["arguments"].items()}
    return _call(body["name"], arguments or {"text": UNICODE_TEXT})


def episode_scripts(env, example: Example) -> dict[str, list[ScriptedTurn]]:
    """Scripted policies for one example of a multi-turn env, by name.

    The calls come from the env's gold transcript (``gold_transcript``) when it has one, else from its tool
    schemas; each script ends with the gold final answer and fits in ``env.config.max_turns``.

    Args:
        env: A multi-turn env.
        example: The example whose tools and gold transcript the scripts use.

    Returns:
        ``tool-calls`` (the gold calls, with reasoning), ``tool-errors`` (bad arguments, a malformed call, an
        unknown tool), ``parallel-calls`` (three calls in one turn, one failing), ``long-result`` (a long call
        answered by a long error), ``unicode`` (non-ASCII reasoning, arguments and results, sampled as
        non-canonical token splits), ``fragmented`` (the gold calls sampled as non-canonical token splits),
        ``edge-whitespace`` (a call between newlines and spaces) and ``answer-only``.
    """
    toolbox = env.toolbox_for(example)
    try:
        gold = [m["content"] for m in env.gold_transcript(example) if m["role"] == "assistant"]
    except NotImplementedError:
        gold = [_schema_call(toolbox.schemas[0]), "<think>Done.</think>\nI am done."]
    calls = [block for turn in gold[:-1] for block in _CALL_BLOCK.findall(turn)] or [_schema_call(toolbox.schemas[0])]
    answer, tool = gold[-1], next(iter(toolbox.tools))
    bad_call = _call(tool, {"no_such_argument": 1})
    scripts = {
        "tool-calls": [f"<think>Step {i + 1}.</think>\n{call}" for i, call in enumerate(calls)] + [answer],
        "tool-errors": [
            bad_call,
            f'<tool_call>{{"name": "{tool}", "arguments": </tool_call>',
            _call("no_such_tool", {}),
            answer,
        ],
        "parallel-calls": [f"<think>Three calls, one bad.</think>\n{calls[0]}\n{bad_call}\n{calls[-1]}", answer],
        "long-result": [_call("lookup " + " ".join(f"item-{i} 東京" for i in range(150)), {}), answer],
        "unicode": [
            f"<think>{UNICODE_TEXT}</think>\n{_with_unicode_arguments(calls[0])}",
            answer.replace("<think>", f"<think>{UNICODE_TEXT} "),
        ],
        "fragmented": [f"<think>Step {i + 1}.</think>\n{call}" for i, call in enumerate(calls)] + [answer],
        "edge-whitespace": [f"\n  {calls[0]}\n", answer],
        "answer-only": [answer],
    }
    turns = {
        name: [ScriptedTurn(t, fragmented=name in ("fragmented", "unicode")) for t in s] for name, s in scripts.items()
    }
    keep = env.config.max_turns
    return {name: script[: keep - 1] + script[-1:] if len(script) > keep else script for name, script in turns.items()}


def _fragment(tokenizer, ids: list[int], vocab: dict[str, int], keep: set[int]) -> list[int]:
    """Another tokenization of the same text: every other token outside ``keep`` split into two vocabulary tokens."""
    out: list[int] = []
    for i, tid in enumerate(ids):
        piece = tokenizer.convert_ids_to_tokens(tid)
        cuts = [c for c in range(1, len(piece)) if piece[:c] in vocab and piece[c:] in vocab]
        if cuts and i % 2 == 0 and tid not in keep:
            out += [vocab[piece[: cuts[0]]], vocab[piece[cuts[0] :]]]
        else:
            out.append(tid)
    return out if tokenizer.decode(out) == tokenizer.decode(ids) else ids


class ScriptedEngine:
    """A rollout engine (the ``RolloutEngine`` protocol) whose "samples" are scripted turns, recorded as sampled.

    Each script belongs to one prompt; a context is matched to its script by the prompt it starts with, so every
    script needs a prompt of its own. The ``k``-th context of a script gets the script's turn ``k``: the text's
    ids as tokenized after the context (or a non-canonical split of them), then the stop token, with made-up
    log-probs; :attr:`samples` records what was asked and sampled.

    Args:
        tokenizer: Encodes the turns.
        prompts: The prompt ids of each script.
        scripts: The turns of each script.
        stop_id: The token that ends every turn (see :func:`end_of_turn_id`).
    """

    def __init__(self, tokenizer, prompts: list[list[int]], scripts: list[list[ScriptedTurn]], stop_id: int):
        if len({tuple(p) for p in prompts}) != len(prompts):
            raise RLHubError("ScriptedEngine needs a distinct prompt per script; give each script its own example")
        self.tokenizer, self.prompts, self.scripts, self.stop_id = tokenizer, prompts, scripts, stop_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_id
        self.samples: list[list[SampledTurn]] = [[] for _ in scripts]
        """For each script, the turns sampled so far."""
        self._vocab = tokenizer.get_vocab()
        self._added = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)

    def sync_weights(self, policy) -> None:
        """Nothing to sync: the turns are scripted."""

    def _encode(self, context: list[int], text: str) -> list[int]:
        """The text's ids as tokenized after ``context`` (what a model trained on the template samples); alone
        when the tokenizer merges it with the context's end."""
        tokenizer = self.tokenizer
        ids = tokenizer.encode(tokenizer.decode(context) + text, add_special_tokens=False)
        if ids[: len(context)] == context:
            return ids[len(context) :]
        return tokenizer.encode(text, add_special_tokens=False)

    def generate(self, prompt_ids: list[list[int]], n: int, sampling: Sampling) -> list[Completion]:
        if n != 1:
            raise RLHubError("ScriptedEngine samples one turn per context (n=1), as run_episodes asks")
        return [self._turn(row, context, sampling.max_new_tokens) for row, context in enumerate(prompt_ids)]

    def _turn(self, row: int, context: list[int], max_new_tokens: int) -> Completion:
        """The next scripted turn of the script whose prompt ``context`` starts with."""
        scripts = [i for i, p in enumerate(self.prompts) if context[: len(p)] == p]
        if not scripts:
            raise RLHubError("ScriptedEngine was asked to continue a context that starts with none of its prompts")
        s = max(scripts, key=lambda i: len(self.prompts[i]))
        turns, sampled = self.scripts[s], self.samples[s]
        if len(sampled) >= len(turns):
            raise RLHubError(f"script {s} has {len(turns)} turns; the rollout asked for turn {len(sampled) + 1}")
        turn = turns[len(sampled)]
        ids = self._encode(context, turn.text)
        if turn.fragmented:
            ids = _fragment(self.tokenizer, ids, self._vocab, self._added)
        ids.append(self.stop_id)
        tokens = ids[:max_new_tokens]
        logprobs = [-0.001 * (len(sampled) + 1) - 0.01 * j for j in range(len(tokens))]
        sampled.append(SampledTurn(list(context), tokens, logprobs))
        finished = tokens == ids
        text = self.tokenizer.decode(tokens[:-1] if finished else tokens, skip_special_tokens=True)
        return Completion(row, tokens, logprobs, text, finished)


def end_of_turn_id(tokenizer) -> int:
    """The token the chat template closes an assistant turn with: what a model trained on it stops with.

    Raises:
        RLHubError: That token is not one of the stop tokens rlhub's engines stop on.
    """
    probe = "rlhub-end-of-turn-probe"
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": probe}]
    rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
    closing = rendered[rendered.rindex(probe) + len(probe) :]
    stops = stop_token_ids(tokenizer, SimpleNamespace(generation_config=None))
    found = next((t for t in tokenizer.encode(closing, add_special_tokens=False) if t in stops), None)
    if found is None:
        raise RLHubError(
            f"the chat template closes assistant turns with {closing!r}, which holds none of the stop tokens "
            f"{tokenizer.convert_ids_to_tokens(stops)}; set tokenizer.eos_token to the template's end-of-turn token"
        )
    return found


# ---------------------------------------------------------------------------------------------------
# The check.
# ---------------------------------------------------------------------------------------------------


@dataclass
class Mismatch:
    """A place where an episode's tokens differ from what they must be."""

    episode: str
    turn: int
    """The model turn (0-based) the tokens belong to, or follow (the environment's tokens)."""
    kind: str
    """``model`` (not the sampled ids), ``env`` (not the template's tokens), ``mask``, ``logprob``, ``context`` (the
    turn was sampled from another context than the one trained on), ``message`` (the transcript's text is not the
    sampled text), ``template`` (the template's output cannot be cut at the model's stop token), ``length``."""
    position: int
    """Index into the episode's ``token_ids`` (``context``: into the prompt and episode)."""
    expected: str
    found: str

    def __str__(self) -> str:
        where = f"{self.episode} turn {self.turn} [{self.kind}] token {self.position}"
        return f"{where}: expected {self.expected}, found {self.found}"


@dataclass
class Rewrite:
    """The first place where re-rendering an episode's conversation differs from its (append-only) history."""

    episode: str
    turn: int
    """The model turn after which the conversation was re-rendered."""
    part: str
    """What the template rewrote: ``model`` (a model turn), ``env`` or ``prompt`` tokens."""
    position: int
    """Index into the episode's ``token_ids`` (``prompt``: into the prompt)."""
    sampled: str
    """The history's text from there."""
    rendered: str
    """The re-rendered text from there."""

    def __str__(self) -> str:
        return (
            f"{self.episode} after turn {self.turn}: {self.part} token {self.position} is "
            f"{self.sampled[:60]!r} in the history, {self.rendered[:60]!r} re-rendered"
        )


@dataclass
class FidelityReport:
    """The outcome of a token-fidelity check of one env under one tokenizer and chat template."""

    env_id: str
    template: str = ""
    episodes: int = 0
    tokens_checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)
    """At most one per episode: its first rewritten place."""

    @property
    def exact(self) -> bool:
        """Training sees exactly the sampled tokens and the template's tokens, masked right."""
        return not self.mismatches

    @property
    def append_only(self) -> bool:
        """Re-rendering the conversation never rewrote the history."""
        return not self.rewrites

    def summary(self) -> str:
        """A few lines for a terminal: the verdict, the first mismatches, and the first rewrite."""
        verdict = "exact" if self.exact else f"{len(self.mismatches)} MISMATCHES"
        lines = [f"{self.env_id} x {self.template}: {self.episodes} episodes, {self.tokens_checked} tokens: {verdict}"]
        lines += [f"  {m}" for m in self.mismatches[:20]]
        if self.rewrites:
            lines.append(
                f"  not append-only: re-rendering rewrites {len(self.rewrites)} of {self.episodes} episodes; training "
                f"keeps the sampled tokens (docs/token-fidelity.md). First: {self.rewrites[0]}"
            )
        return "\n".join(lines)


def _render(tokenizer, messages: list[Message], tools, generation_prompt: bool) -> str:
    extra = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt, **extra)


def _first_difference(a, b) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def template_addition(tokenizer, history: list[Message], replies: list[Message], stop_id: int, tools=None) -> list[int]:
    """The tokens the chat template adds after the model's turn that ends ``history``: the check's reference.

    The model's turn ends at ``stop_id``: the last occurrence of its text in the rendering of ``history`` is the
    n-th, and the addition is what follows the n-th occurrence in the rendering of ``history + replies`` with the
    next assistant header, tokenized in context (the whole rendering at once). A special-token string inside a
    reply's content is plain text: it is encoded as text in context, never as the control token.

    Args:
        tokenizer: The tokenizer with the chat template.
        history: The conversation so far (prompt messages included), ending with the model's turn.
        replies: The environment's messages after that turn.
        stop_id: The token the model's turn ended with.
        tools: The ``tools=`` argument of the template, if any.

    Returns:
        The token ids of the addition.

    Raises:
        RLHubError: The template does not close the turn with ``stop_id``, or the tokenizer merges the
            addition's first token with the turn's end.
    """
    stop = tokenizer.decode([stop_id])
    replies, originals = mask_special_strings(tokenizer, replies)
    before = _render(tokenizer, history, tools, False).rstrip()
    after = _render(tokenizer, history + replies, tools, True)
    if not before.endswith(stop):
        raise RLHubError(f"the template does not close the assistant turn with the model's stop token {stop!r}")
    boundary = -1
    for _ in range(before.count(stop)):
        boundary = after.find(stop, boundary + 1)
        if boundary < 0:
            raise RLHubError(f"the template drops an earlier {stop!r} when the conversation goes on")
    head = tokenizer.encode(after[: boundary + len(stop)], add_special_tokens=False)
    full = tokenizer.encode(after, add_special_tokens=False)
    if full[: len(head)] != head:
        raise RLHubError("the tokenizer merges the text after the model's stop token with the stop token")
    if originals:
        return encode_after_special(tokenizer, after[boundary + len(stop) :], originals)
    return full[len(head) :]


def _turns(messages: list[Message]) -> list[tuple[int, list[Message]]]:
    """For each assistant message: its index in ``messages`` and the replies that follow it."""
    starts = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    return [(s, messages[s + 1 : e]) for s, e in zip(starts, [*starts[1:], len(messages)])]


def _token_at_char(tokenizer, ids: list[int], char: int) -> int:
    """The index of the token of ``ids`` whose decoded text covers character ``char``."""
    lo, hi = 0, len(ids) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tokenizer.decode(ids[: mid + 1], clean_up_tokenization_spaces=False)) > char:
            hi = mid
        else:
            lo = mid + 1
    return lo


class _EpisodeCheck:
    """Walks one episode turn by turn, adding what differs to the report."""

    def __init__(self, tokenizer, report: FidelityReport, *, name: str, tools, example: Example, prompt, episode):
        self.tokenizer, self.report, self.name, self.tools = tokenizer, report, name, tools
        self.prompt_messages, self.prompt, self.ep = example.prompt, list(prompt), episode

    def miss(self, turn: int, kind: str, position: int, expected, found) -> None:
        """Record a mismatch; token lists are shown as decoded text and as tokens."""

        def show(x) -> str:
            if isinstance(x, str):
                return x
            return f"{self.tokenizer.decode(x)!r} {self.tokenizer.convert_ids_to_tokens(x)}"

        self.report.mismatches.append(Mismatch(self.name, turn, kind, position, show(expected), show(found)))

    def run(self, sampled: list[SampledTurn]) -> None:
        ep, turns, pos = self.ep, _turns(self.ep.messages), 0
        if not len(ep.token_ids) == len(ep.logprobs) == len(ep.loss_mask):
            return self.miss(0, "length", 0, "as many log-probs and mask values as tokens", "other lengths")
        if len(turns) != len(sampled):
            return self.miss(0, "length", 0, f"{len(sampled)} assistant messages", f"{len(turns)}")
        for k, (sample, (at, replies)) in enumerate(zip(sampled, turns)):
            if not self.model_turn(k, sample, pos, ep.messages[at]["content"]):
                return
            pos += len(sample.token_ids)
            if replies and k < len(sampled) - 1:
                history = self.prompt_messages + ep.messages[: at + 1]
                added = self.env_tokens(k, history, replies, sample.token_ids[-1], pos)
                if added is None:
                    return
                pos += added
                self.history(k, _render(self.tokenizer, history + replies, self.tools, True), pos, whole=True)
        if pos != len(ep.token_ids):
            return self.miss(len(sampled) - 1, "length", pos, "the end of the episode", ep.token_ids[pos : pos + 8])
        final = _render(self.tokenizer, self.prompt_messages + ep.messages, self.tools, False)
        self.history(len(sampled) - 1, final, pos, whole=False)

    def model_turn(self, k: int, sample: SampledTurn, pos: int, content: str) -> bool:
        """Check the sampled turn at ``pos``; False when the episode is misaligned from there on."""
        ep, n = self.ep, len(sample.token_ids)
        context = self.prompt + ep.token_ids[:pos]
        if sample.context != context:
            i = _first_difference(sample.context, context)
            self.miss(k, "context", i, sample.context[i : i + 8], context[i : i + 8])
            return False
        got = ep.token_ids[pos : pos + n]
        if got != sample.token_ids:
            i = _first_difference(sample.token_ids, got)
            self.miss(k, "model", pos + i, sample.token_ids[i : i + 8], got[i : i + 8])
            return False
        self.report.tokens_checked += n
        if ep.loss_mask[pos : pos + n] != [1] * n:
            self.miss(k, "mask", pos + ep.loss_mask[pos : pos + n].index(0), "loss mask 1", "0")
        if ep.logprobs[pos : pos + n] != sample.logprobs:
            i = _first_difference(sample.logprobs, ep.logprobs[pos : pos + n])
            self.miss(k, "logprob", pos + i, "the sampled log-prob", f"{ep.logprobs[pos + i]}")
        text = self.tokenizer.decode(sample.token_ids[:-1], skip_special_tokens=True)
        if content != text:
            self.miss(k, "message", pos, repr(text[:80]), repr(content[:80]))
        return True

    def env_tokens(self, k: int, history, replies, stop_id: int, pos: int) -> int | None:
        """Check the environment's tokens at ``pos``; their count, or None when the episode is misaligned."""
        ep = self.ep
        try:
            expected = template_addition(self.tokenizer, history, replies, stop_id, self.tools)
        except RLHubError as exc:
            self.miss(k, "template", pos, str(exc), ep.token_ids[pos : pos + 8])
            return None
        got = ep.token_ids[pos : pos + len(expected)]
        if got != expected:
            i = _first_difference(expected, got)
            self.miss(k, "env", pos + i, expected[i : i + 8], got[i : i + 8])
            return None
        self.report.tokens_checked += len(expected)
        if any(ep.loss_mask[pos : pos + len(expected)]):
            self.miss(k, "mask", pos + ep.loss_mask[pos : pos + len(expected)].index(1), "loss mask 0", "1")
        return len(expected)

    def history(self, k: int, rendered: str, end: int, whole: bool) -> None:
        """Record the episode's first rewrite: where ``rendered`` differs from the prompt and first ``end`` tokens
        (``whole``: the rendering is exactly those; else it may go on after them)."""
        if any(r.episode == self.name for r in self.report.rewrites):
            return
        ids = self.prompt + self.ep.token_ids[:end]
        text = self.tokenizer.decode(ids, clean_up_tokenization_spaces=False)
        if rendered == text or (not whole and rendered.startswith(text)):
            return
        at = _token_at_char(self.tokenizer, ids, _first_difference(text, rendered))
        part = "prompt" if at < len(self.prompt) else ("model" if self.ep.loss_mask[at - len(self.prompt)] else "env")
        char = len(self.tokenizer.decode(ids[:at], clean_up_tokenization_spaces=False))
        position = at if part == "prompt" else at - len(self.prompt)
        self.report.rewrites.append(Rewrite(self.name, k, part, position, text[char:], rendered[char:]))


def check_episode_tokens(
    tokenizer, env, episodes, samples: list[list[SampledTurn]], *, examples: list[Example], prompt_ids, labels=None
) -> FidelityReport:
    """Check rollout episodes against what the engine sampled and what the chat template adds.

    Args:
        tokenizer: The tokenizer, with the chat template, the episodes were made with.
        env: The multi-turn env (its ``template_tools`` go to the template, as in the rollout).
        episodes: The rollout's episodes (``token_ids``, ``logprobs``, ``loss_mask``, ``messages``, ``prompt_index``).
        samples: For each episode, the turns the engine sampled for it, in order.
        examples: The examples, by ``prompt_index``.
        prompt_ids: The prompts' token ids, by ``prompt_index``.
        labels: A name per episode for the report (default: its index).

    Returns:
        The report: mismatches (an episode is not exactly its sampled turns and the template's additions, masked
        1 and 0) and rewrites (re-rendering the conversation differs from an episode's history).
    """
    report = FidelityReport(getattr(env, "env_id", None) or type(env).__name__)
    tools = getattr(env, "template_tools", None)
    for e, (ep, sampled) in enumerate(zip(episodes, samples)):
        example, prompt = examples[ep.prompt_index], prompt_ids[ep.prompt_index]
        name = labels[e] if labels else str(e)
        check = _EpisodeCheck(tokenizer, report, name=name, tools=tools, example=example, prompt=prompt, episode=ep)
        check.run(sampled)
        report.episodes += 1
    return report


def check_tokens(tokenizer, env, *, template: str = "", split: str = "test", rollout=run_episodes) -> FidelityReport:
    """Run :func:`episode_scripts` through a rollout with a :class:`ScriptedEngine` and check every episode.

    Args:
        tokenizer: The tokenizer with the chat template to check (no model is needed).
        env: A multi-turn env; one example per script comes from ``split``.
        template: A label for the report (e.g. the model's name).
        split: Where the examples come from.
        rollout: The rollout to check; rlhub's :func:`~rlhub.generation.rollout.run_episodes` by default.

    Returns:
        A :class:`FidelityReport`.

    Raises:
        RLHubError: The env is not multi-turn, or the template has no usable end-of-turn token.
    """
    if not getattr(env, "multi_turn", False):
        raise RLHubError(
            f"{env.env_id or type(env).__name__} is single-turn: its completions are the sampled ids as they are; "
            "check a multi-turn env such as calculator-v1"
        )
    names = list(episode_scripts(env, env.examples(split, limit=1)[0]))
    examples = env.examples(split, limit=len(names))
    scripts = [episode_scripts(env, example)[name] for name, example in zip(names, examples)]
    prompt_ids = [list(encode_prompt(tokenizer, env, example)) for example in examples]
    engine = ScriptedEngine(tokenizer, prompt_ids, scripts, end_of_turn_id(tokenizer))
    episodes = rollout(engine, env, examples, prompt_ids, 1, Sampling(MAX_EPISODE_TOKENS))
    labels = [f"{name} ({example.id})" for name, example in zip(names, examples)]
    report = check_episode_tokens(
        tokenizer, env, episodes, engine.samples, examples=examples, prompt_ids=prompt_ids, labels=labels
    )
    report.template = template
    return report


def main(env_id: str, model: str) -> int:
    """``rlhub check-tokens ENV --model M``: check ``env_id``'s episodes under ``model``'s tokenizer and template.

    Args:
        env_id: A registered multi-turn env.
        model: An embedded model name, a local checkpoint folder, or an HF hub id (only its tokenizer is loaded).

    Returns:
        The exit status: 0 when the episodes are exact (a template that is not append-only is reported, and
        trained on as documented), 1 when a token differs.

    Raises:
        RLHubError: The tokenizer cannot be loaded, or the env is not multi-turn.
    """
    from transformers import AutoTokenizer

    from rlhub.env.registry import make
    from rlhub.models import EMBEDDED_MODELS, load_embedded_tokenizer

    if model in EMBEDDED_MODELS:
        tokenizer = load_embedded_tokenizer(model)
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(model)
        except OSError as exc:
            raise RLHubError(
                f"cannot load the tokenizer of {model!r} ({exc}); pass an embedded model name "
                f"({', '.join(EMBEDDED_MODELS)}), a checkpoint folder or a hub id"
            )
    report = check_tokens(tokenizer, make(env_id), template=model)
    print(report.summary())
    return 0 if report.exact else 1
