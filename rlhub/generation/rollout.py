"""Rollout engines: prompts in; completion text, token ids and sampling log-probs out.

The default engine samples with the policy itself on the training device, and is built for speed:
- each prompt is prefilled once and its KV cache copied to its G completions;
- a sequence that finishes leaves the batch (its cache rows are dropped), so late steps get cheaper;
- the log-prob of every sampled token is kept, so the trainer never re-runs a forward pass to get the
  "old" log-probs of the importance ratio.

Other engines (``rlhub.generation``: vLLM colocated or behind ``vllm serve``) implement the same
``RolloutEngine`` interface, so training, in-loop evaluation and ``rlhub eval`` share ``rollout()``.
"""

from __future__ import annotations

import functools
import re
import uuid
import warnings
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

from rlhub.errors import RLHubError
from rlhub.generation import Sampling
from rlhub.types import last_assistant_text


@dataclass
class Completion:
    """One sampled completion."""

    prompt_index: int
    """Which prompt of the batch this completes."""
    token_ids: list[int]
    """Sampled token ids, the stop token included when the model stopped."""
    logprobs: list[float]
    """log p(token) under the sampling policy (logits / temperature)."""
    text: str
    finished: bool
    """True when the model emitted a stop token (False: cut at max_new_tokens)."""

    @property
    def loss_mask(self) -> list[int]:
        """Every token is the model's own."""
        return [1] * len(self.token_ids)

    @property
    def output(self) -> str:
        """What the environment scores."""
        return self.text


class RolloutEngine(Protocol):
    """What trainers and evaluation need from a sampler."""

    tokenizer: object
    """Decodes completions; ``run_episodes`` also tokenizes the environment's replies with it."""
    pad_id: int
    """Pads prompts and completions in the trainer's batches."""

    def generate(self, prompt_ids: list[list[int]], n: int, sampling: Sampling) -> list[Completion]:
        """``n`` completions for each prompt, sampled as ``sampling`` says, grouped: prompt 0's n completions first."""
        ...

    def sync_weights(self, policy) -> None:
        """Make the next ``generate`` sample from ``policy``'s current weights (call after each update)."""
        ...


def kv_cache_name() -> str:
    """The keyword (and output field) of a causal LM's KV cache: ``cache`` in current transformers (5.2x),
    ``past_key_values`` before; passing the old name to a new version only earns a deprecation warning."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in getattr(CausalLMOutputWithPast, "__dataclass_fields__", {}) else "past_key_values"


def left_pad(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into (ids, attention_mask)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        if s:
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s) :] = 1
    return ids.to(device), mask.to(device)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that ignore left padding."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def stop_token_ids(tokenizer, model) -> list[int]:
    ids = set()
    for tid in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(tid, int):
            ids.add(tid)
        elif isinstance(tid, (list, tuple)):
            ids.update(t for t in tid if isinstance(t, int))
    for token in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            ids.add(tid)
    if not ids:
        raise RLHubError("the tokenizer has no eos token; set one (tokenizer.eos_token) so completions can stop")
    return sorted(ids)


def _top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) - probs > top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


class HFRolloutEngine:
    """Samples with a Hugging Face causal LM (plain or peft-wrapped) and a KV cache.

    Args:
        model: The policy; called in eval mode under ``torch.no_grad``.
        tokenizer: Decodes completions; its pad token pads prompts.
        stop_ids: Token ids that end a completion (the tokenizer's eos and end-of-turn tokens).
        generator: Seeded torch generator for reproducible sampling.
    """

    def __init__(self, model, tokenizer, stop_ids: list[int], generator: torch.Generator | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.stop_ids = torch.tensor(sorted(set(stop_ids)), dtype=torch.long)
        self.generator = generator
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else int(self.stop_ids[0])

    def sync_weights(self, policy) -> None:
        """Nothing to do: this engine samples with the live policy."""

    @torch.no_grad()
    def generate(self, prompt_ids: list[list[int]], n: int, sampling: Sampling) -> list[Completion]:
        model = self.model
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            rows = self._sample(prompt_ids, n, sampling, device)
        finally:
            model.train(was_training)
        out = []
        for row, (tokens, logps, finished) in enumerate(rows):
            text_ids = tokens[:-1] if finished else tokens
            text = self.tokenizer.decode(text_ids, skip_special_tokens=True)
            out.append(Completion(row // n, tokens, logps, text, finished))
        return out

    def _sample(self, prompt_ids, n, sampling: Sampling, device):
        from transformers import DynamicCache

        max_new_tokens, temperature, top_p = sampling.max_new_tokens, sampling.temperature, sampling.top_p
        ids, mask = left_pad(prompt_ids, self.pad_id, device)
        kv = kv_cache_name()
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions(mask),
            use_cache=True,
            logits_to_keep=1,
            **{kv: DynamicCache()},
        )
        # Prefill once per prompt, then give each of its n completions a copy of the cache.
        cache = getattr(out, kv)
        cache.batch_repeat_interleave(n)
        logits = out.logits[:, -1].float().repeat_interleave(n, dim=0)
        mask = mask.repeat_interleave(n, dim=0)
        next_pos = positions(mask)[:, -1:] + 1
        total = len(prompt_ids) * n
        active = torch.arange(total, device=device)
        tokens: list[list[int]] = [[] for _ in range(total)]
        logps: list[list[float]] = [[] for _ in range(total)]
        finished = [False] * total
        stop_ids = self.stop_ids.to(device)
        for step in range(max_new_tokens):
            if temperature == 0:  # greedy (evaluation): log-probs of the untempered distribution
                logp_all = logits.log_softmax(-1)
                tok = logits.argmax(-1)
            else:
                scaled = logits / temperature
                logp_all = scaled.log_softmax(-1)
                sample_logits = _top_p_filter(scaled, top_p) if top_p < 1.0 else scaled
                tok = torch.multinomial(sample_logits.softmax(-1), 1, generator=self.generator).squeeze(-1)
            tok_logp = logp_all.gather(-1, tok[:, None]).squeeze(-1)
            done = torch.isin(tok, stop_ids)
            for r, t, lp, d in zip(active.tolist(), tok.tolist(), tok_logp.tolist(), done.tolist()):
                tokens[r].append(t)
                logps[r].append(lp)
                finished[r] = d
            if step == max_new_tokens - 1:
                break
            keep = ~done
            if not keep.any():
                break
            if not keep.all():
                idx = keep.nonzero().squeeze(-1)
                cache.batch_select_indices(idx)
                active, tok, mask, next_pos = active[idx], tok[idx], mask[idx], next_pos[idx]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            out = self.model(
                input_ids=tok[:, None],
                attention_mask=mask,
                position_ids=next_pos,
                use_cache=True,
                **{kv: cache},
            )
            cache = getattr(out, kv)
            logits = out.logits[:, -1].float()
            next_pos = next_pos + 1
        return list(zip(tokens, logps, finished))


@dataclass
class Episode:
    """A multi-turn episode as the trainer sees it: every token after the prompt, and which are the model's."""

    prompt_index: int
    token_ids: list[int]
    """Model turns and environment replies (tool results, chat-template glue), in order."""
    logprobs: list[float]
    """Sampling log-probs of the model's tokens; 0.0 on environment tokens."""
    loss_mask: list[int]
    """1 on tokens the model generated, 0 on tokens the environment inserted."""
    messages: list[dict]
    """The transcript: assistant and tool messages."""
    state: object
    finished: bool = True
    turn_spans: list[tuple[int, int]] = field(default_factory=list)
    """Each model turn's [start, end) in ``token_ids``, in order."""
    turn_rewards: list[float] = field(default_factory=list)
    """The env's ``turn_reward`` of each turn it replied to (recorded only when ``run_episodes`` is asked);
    the episode's final reward, the rubric's score, is not among them."""

    @property
    def text(self) -> str:
        return last_assistant_text(self.messages)

    @property
    def output(self) -> list[dict]:
        """What the environment scores: the whole transcript."""
        return self.messages


def encode_prompt(tokenizer, env, example) -> list[int]:
    """Token ids of an example's chat prompt plus the assistant header (tools via the template if asked)."""
    tools = getattr(env, "template_tools", None)
    extra = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(
        example.prompt, add_generation_prompt=True, tokenize=True, return_dict=False, **extra
    )


_TURN_MARK = "RLHUB-TURN-MARK"
"""Stands in for the model's turn when the template rewrites that turn once a reply follows it."""

_SPLIT_MARK = "\x00rlhub-split\x00"
"""A token added to a private copy of the tokenizer: text encoded after it is encoded as after a special token."""


def special_strings(tokenizer) -> list[str]:
    """The tokenizer's special and added-special token strings, longest first (the order a matcher tries them)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}).values()
    strings = set(getattr(tokenizer, "all_special_tokens", ())) | {t.content for t in added if t.special}
    return sorted((s for s in strings if s), key=len, reverse=True)


def mask_special_strings(tokenizer, messages: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """The messages with every special-token string in their content replaced by a unique placeholder.

    Text an environment writes (a tool result, a retrieved document, a user turn) is plain text: a
    ``<|im_end|>`` in it must not end its turn. The placeholders keep those strings out of the chat template's
    rendering, so every special token left in it is the template's own; :func:`encode_after_special` puts the
    strings back as plain-text tokens.

    Returns:
        The masked messages and ``{placeholder: original string}`` (empty when no content holds one).
    """
    specials = special_strings(tokenizer)
    pattern = re.compile("|".join(map(re.escape, specials))) if specials else None
    contents = [m.get("content") for m in messages]
    if pattern is None or not any(isinstance(c, str) and pattern.search(c) for c in contents):
        return messages, {}
    nonce = f"rlhubplain{uuid.uuid4().hex}"
    originals: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        key = f"{nonce}x{len(originals)}x"
        originals[key] = match.group(0)
        return key

    masked = [
        {**m, "content": pattern.sub(placeholder, m["content"])} if isinstance(m.get("content"), str) else m
        for m in messages
    ]
    return masked, originals


@functools.lru_cache(maxsize=8)
def _plain_text_encoder(tokenizer, vocabulary_size: int):
    """A copy of ``tokenizer``'s backend that encodes special-token strings as text, with :data:`_SPLIT_MARK`
    added (not special) so a text encoded after it is split off as it is after a special token. Cached by
    tokenizer and ``vocabulary_size``, so a token added to the tokenizer makes a new copy."""
    from tokenizers import AddedToken, Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.add_tokens([AddedToken(_SPLIT_MARK, special=False, normalized=False)])
    backend.encode_special_tokens = True
    return backend


def encode_after_special(tokenizer, text: str, originals: dict[str, str]) -> list[int]:
    """Token ids of ``text``, a rendering's part that follows a special token, with placeholders as plain text.

    Every special-token string in ``text`` is the template's and becomes its token; between them, each piece is
    encoded as the tokenizer encodes it after a special token, with the placeholders of
    :func:`mask_special_strings` replaced by their strings, encoded as text in context (merged with the text
    around them, no leading space added), so they never become control tokens.

    Args:
        tokenizer: A fast tokenizer (``backend_tokenizer``).
        text: The rendered text after a special token, placeholders in it.
        originals: ``{placeholder: string}`` from :func:`mask_special_strings`.

    Returns:
        The token ids.

    Raises:
        RLHubError: The tokenizer has no special tokens, or is not a fast tokenizer.
    """
    specials = special_strings(tokenizer)
    if not specials:
        raise RLHubError("the tokenizer has no special tokens; the chat template's structure needs them")
    if not hasattr(tokenizer, "backend_tokenizer"):
        raise RLHubError("encoding tool text as plain text needs a fast tokenizer; load it with use_fast=True")
    restore = re.compile("|".join(map(re.escape, originals))) if originals else None
    encoder = _plain_text_encoder(tokenizer, len(tokenizer))
    ids: list[int] = []
    for piece in re.split(f"({'|'.join(map(re.escape, specials))})", text):
        if piece in specials:
            ids.append(tokenizer.convert_tokens_to_ids(piece))
        elif piece:
            plain = restore.sub(lambda m: originals[m.group(0)], piece) if restore else piece
            ids += encoder.encode(_SPLIT_MARK + plain, add_special_tokens=False).ids[1:]
    return ids


def reply_tokens(tokenizer, history: list[dict], replies: list[dict]) -> list[int]:
    """Token ids of the environment's replies plus the next assistant header, as the chat template writes them.

    The model's own turn keeps its generated ids (no re-tokenization). The text the template adds after the
    turn's end-of-turn token is tokenized in context (the whole rendering at once, keeping the ids after the
    turn), so a tokenizer that adds a leading space to a text tokenized alone adds none here. A template that
    rewrites the turn once a reply follows it (Qwen3's drops an empty ``<think>`` block, QwQ's the reasoning) is
    not append-only: the episode keeps the sampled tokens, a warning says so, and the turn's end is found in a
    rendering where the turn is a marker (docs/token-fidelity.md). A special-token string inside a reply's
    content (a tool result holding ``<|im_end|>``) is encoded as plain text, never as the control token.

    Args:
        tokenizer: The tokenizer with the chat template.
        history: The conversation so far (prompt messages included), ending with the model's turn.
        replies: The environment's messages after that turn.

    Returns:
        The ids the template adds after the model's end-of-turn token.

    Raises:
        RLHubError: The template closes the model's turn differently once a reply follows, or the tokenizer
            merges its end-of-turn token with the text after it.
    """
    replies, originals = mask_special_strings(tokenizer, replies)
    before = tokenizer.apply_chat_template(history, tokenize=False)
    after = tokenizer.apply_chat_template(history + replies, tokenize=False, add_generation_prompt=True)
    end = len(before.rstrip())  # the generated turn ended at its end-of-turn token, before any trailing newline
    if not after.startswith(before[:end]):
        warnings.warn(
            "the chat template rewrites the model's previous turn when the conversation goes on (e.g. drops its "
            "<think> block); rlhub keeps the sampled tokens in the episode and trains on them, so a server that "
            "re-renders the conversation shows the model other text (see `rlhub check-tokens`)",
            stacklevel=3,
        )
        marked = [*history[:-1], {**history[-1], "content": _TURN_MARK}]
        before = tokenizer.apply_chat_template(marked, tokenize=False)
        after = tokenizer.apply_chat_template(marked + replies, tokenize=False, add_generation_prompt=True)
        closing = before[before.rindex(_TURN_MARK) + len(_TURN_MARK) :].rstrip()  # e.g. "<|im_end|>"
        end = after.rindex(_TURN_MARK) + len(_TURN_MARK) + len(closing)
        if after[end - len(closing) : end] != closing:
            raise RLHubError(
                "the chat template ends the model's turn differently once a tool message follows it; use a template "
                "that closes assistant turns one way (`rlhub check-tokens ENV --model M` shows where)"
            )
    ids = tokenizer.encode(after, add_special_tokens=False)
    head = tokenizer.encode(after[:end], add_special_tokens=False)
    if ids[: len(head)] != head:
        raise RLHubError(
            "the tokenizer merges the model's end-of-turn token with the text the chat template adds after it; "
            "make the end-of-turn token a special token of the tokenizer"
        )
    if originals:  # the template's tokens as encoded above; the replies' special strings as text
        return encode_after_special(tokenizer, after[end:], originals)
    return ids[len(head) :]


def run_episodes(engine, env, examples, prompt_ids, n: int, sampling: Sampling, *, turn_rewards=False):
    """``n`` multi-turn episodes per example, batched turn by turn; ``sampling.max_new_tokens`` budgets each episode.

    The first turn asks the engine for ``n`` samples of each prompt (one prefill per prompt, as single-turn
    rollout does); later turns continue each episode's own context.

    ``turn_rewards``: also record the env's ``turn_reward`` of each turn it replies to (per-turn credit).
    """
    from rlhub.env.multiturn import EpisodeState

    tokenizer = engine.tokenizer
    episodes = [
        Episode(i, [], [], [], [], EpisodeState(example=examples[i])) for i in range(len(examples)) for _ in range(n)
    ]
    contexts = [list(prompt_ids[ep.prompt_index]) for ep in episodes]
    active = list(range(len(episodes)))
    first_turn = True
    try:
        while active:
            budget = {e: sampling.max_new_tokens - sum(episodes[e].loss_mask) for e in active}
            active = [e for e in active if budget[e] > 0]
            if not active:
                break
            turn = replace(sampling, max_new_tokens=max(budget[e] for e in active))
            if first_turn:  # every episode of an example starts from its prompt: prefill it once, sample n
                outs = engine.generate([list(p) for p in prompt_ids[: len(examples)]], n, turn)
                first_turn = False
            else:
                outs = engine.generate([contexts[e] for e in active], 1, turn)
            if len(outs) != len(active):
                raise RLHubError(
                    f"the rollout engine returned {len(outs)} completions where {len(active)} were asked for; "
                    "an engine's generate(prompts, n, sampling) returns n completions per prompt, in prompt order"
                )
            still = []
            for e, out in zip(active, outs):
                ep = episodes[e]
                tokens, logps = out.token_ids[: budget[e]], out.logprobs[: budget[e]]
                finished = out.finished and len(tokens) == len(out.token_ids)
                text = out.text if finished else tokenizer.decode(tokens, skip_special_tokens=True)
                ep.turn_spans.append((len(ep.token_ids), len(ep.token_ids) + len(tokens)))
                ep.token_ids += tokens
                ep.logprobs += logps
                ep.loss_mask += [1] * len(tokens)
                ep.messages.append({"role": "assistant", "content": text})
                history = examples[ep.prompt_index].prompt + ep.messages
                replies = env.respond(history, ep.state)
                if ep.state.done or not finished:
                    ep.finished = finished
                    continue
                ep.messages += replies
                if turn_rewards:
                    ep.turn_rewards.append(float(env.turn_reward(history + replies, replies, ep.state)))
                glue = reply_tokens(tokenizer, history, replies)
                ep.token_ids += glue
                ep.logprobs += [0.0] * len(glue)
                ep.loss_mask += [0] * len(glue)
                contexts[e] += tokens + glue
                still.append(e)
            active = still
    finally:  # however the rollout ends, no episode keeps its resources (a workspace's sandbox)
        for ep in episodes:
            ep.state.close()
    return episodes


def rollout(engine, env, examples, prompt_ids, n: int, sampling: Sampling, *, turn_rewards=False):
    """``n`` samples per example, sampled as ``sampling`` says: multi-turn episodes for tool envs, single
    completions otherwise.

    Either kind has ``prompt_index``, ``token_ids``, ``logprobs``, ``loss_mask``, ``text`` and
    ``output`` (what ``env.score_batch`` takes). ``turn_rewards``: episodes record their turn rewards.
    """
    if env.multi_turn:
        return run_episodes(engine, env, examples, prompt_ids, n, sampling, turn_rewards=turn_rewards)
    return engine.generate(prompt_ids, n, sampling)


def hf_engine(config, policy, tokenizer, generator=None, *, seed: int = 0, dtype: str = "auto") -> HFRolloutEngine:
    """The ``hf`` rollout engine (:data:`rlhub.generation.ENGINES`): the policy samples itself, with a KV cache.

    Args:
        config: The recipe's :class:`~rlhub.generation.GenerationConfig` (nothing in it concerns this engine).
        policy: The policy being trained.
        tokenizer: Its tokenizer.
        generator: The seeded torch generator it samples with.
        seed: Unused: ``generator`` carries the seed.
        dtype: Unused: the policy's own.
    """
    return HFRolloutEngine(policy, tokenizer, stop_token_ids(tokenizer, policy), generator)
