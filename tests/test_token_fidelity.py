"""Token fidelity of multi-turn training: every multi-turn env x five chat templates, checked token by token.

The templates are SmolLM2's own (the embedded model's tokenizer) and four written here in the style of model
families, on small BPE tokenizers trained in a second: Qwen2.5-style (tools through ``tools=``), Qwen3-style
(earlier turns lose their ``<think>`` reasoning), Llama-3-style (turns trimmed) and a ChatML template on a
SentencePiece-style tokenizer (a piece tokenized alone gets a leading space). See docs/token-fidelity.md.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

import rlhub
from rlhub.env.registry import list_envs
from rlhub.errors import RLHubError
from rlhub.generation import Sampling, rollout
from rlhub.generation.fidelity import UNICODE_TEXT, check_tokens, main
from rlhub.generation.rollout import run_episodes

_TOOLS_HEADER = r"""
{%- if tools %}
    {{- '\n\n# Tools\n\nYou may call these functions, one JSON signature a line:\n<tools>' }}
    {%- for tool in tools %}{{- '\n' + (tool | tojson) }}{%- endfor %}
    {{- '\n</tools>\n\nWrite each call as <tool_call>{"name": ..., "arguments": {...}}</tool_call>.' }}
{%- endif %}
"""

_TOOL_RESPONSES = r"""
    {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
    {{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}
    {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
"""

QWEN25_STYLE = (
    r"""
{%- if messages[0].role == 'system' %}{%- set system = messages[0].content %}
{%- else %}{%- set system = 'You are a helpful assistant.' %}{%- endif %}
{{- '<|im_start|>system\n' + system }}"""
    + _TOOLS_HEADER
    + r"""{{- '<|im_end|>\n' }}
{%- for message in messages %}
  {%- if message.role == 'tool' %}"""
    + _TOOL_RESPONSES
    + r"""
  {%- elif not (loop.first and message.role == 'system') %}
    {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"""
)
"""ChatML; tools listed in the system turn; consecutive tool results grouped in one user turn."""

QWEN3_STYLE = (
    r"""
{%- if messages[0].role == 'system' or tools %}
  {{- '<|im_start|>system\n' + (messages[0].content if messages[0].role == 'system' else '') }}"""
    + _TOOLS_HEADER
    + r"""
  {{- '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
  {%- if message.role == 'tool' %}"""
    + _TOOL_RESPONSES
    + r"""
  {%- elif message.role == 'assistant' %}
    {%- set content = message.content %}
    {%- if not loop.last and '</think>' in content %}
      {%- set content = content.split('</think>')[-1].lstrip('\n') %}
    {%- endif %}
    {{- '<|im_start|>assistant\n' + content + '<|im_end|>\n' }}
  {%- elif not (loop.first and message.role == 'system') %}
    {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"""
)
"""As Qwen2.5's, but an assistant turn that is not the last message loses its reasoning (up to ``</think>``)."""

LLAMA3_STYLE = r"""
{{- bos_token }}
{%- if messages[0].role == 'system' %}{%- set system = messages[0].content | trim %}{%- set messages = messages[1:] %}
{%- else %}{%- set system = '' %}{%- endif %}
{{- '<|start_header_id|>system<|end_header_id|>\n\n' }}
{%- if tools %}
  {{- 'Environment: ipython\nCall a function by answering with its JSON. Functions:\n\n' }}
  {%- for tool in tools %}{{- (tool | tojson(indent=4)) + '\n\n' }}{%- endfor %}
{%- endif %}
{{- system + '<|eot_id|>' }}
{%- for message in messages %}
  {%- if message.role == 'tool' %}
    {{- '<|start_header_id|>ipython<|end_header_id|>\n\n' + message.content + '<|eot_id|>' }}
  {%- else %}
    {{- '<|start_header_id|>' + message.role + '<|end_header_id|>\n\n' + (message.content | trim) + '<|eot_id|>' }}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}
"""
"""Header tokens around each turn; tool results under the ``ipython`` role; message text trimmed."""

CHATML = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA3 = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
MARKUP = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
"""Added (not special) tokens, as Qwen's tokenizers have them: they stay in decoded text."""


@functools.cache
def corpus() -> tuple[str, ...]:
    """Text to train the test tokenizers on: the multi-turn envs' prompts and gold transcripts, and unicode."""
    texts = [UNICODE_TEXT]
    for env_id in ("calculator-v1", "retrieval-v0"):
        env = rlhub.make(env_id)
        for example in env.examples("train", limit=40):
            texts += [m["content"] for m in [*example.prompt, *env.gold_transcript(example)]]
    return tuple(texts)


def bpe_tokenizer(special: list[str], eos: str, template: str, bos: str | None = None, sentencepiece: bool = False):
    """A BPE tokenizer (vocabulary 1200) trained on :func:`corpus`, with ``special`` tokens and a chat template.

    Byte-level like GPT-2's, Qwen's and Llama 3's; or (``sentencepiece``) SentencePiece-style: "▁" marks spaces,
    prepended to the first piece of a text, with byte fallback.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if sentencepiece:
        tokenizer = Tokenizer(models.BPE(byte_fallback=True))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        metaspace = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        tokenizer.decoder = decoders.Sequence([metaspace, decoders.ByteFallback(), decoders.Fuse()])
        alphabet, special = [], special + [f"<0x{b:02X}>" for b in range(256)]
    else:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=1200, special_tokens=special, initial_alphabet=alphabet, show_progress=False
    )
    tokenizer.train_from_iterator(corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=eos, bos_token=bos, pad_token=eos, chat_template=template
    )
    fast.add_tokens(MARKUP)
    return fast


TEMPLATES = {
    "smollm2": None,  # the embedded model's own tokenizer and template
    "qwen2.5-style": (CHATML, "<|im_end|>", QWEN25_STYLE),
    "qwen3-style": (CHATML, "<|im_end|>", QWEN3_STYLE),
    "llama3-style": (LLAMA3, "<|eot_id|>", LLAMA3_STYLE, "<|begin_of_text|>"),
    "chatml-sentencepiece": (CHATML, "<|im_end|>", QWEN25_STYLE, None, True),
    # The model families' own templates, as TRL stores them (read from its package when it is installed).
    "shipped/qwen2.5": (CHATML, "<|im_end|>", "qwen2_5.jinja"),
    "shipped/qwen3": (CHATML, "<|im_end|>", "qwen3.jinja"),
    "shipped/llama3.1": (LLAMA3, "<|eot_id|>", "llama3_1.jinja", "<|begin_of_text|>"),
}
TOOLS_IN_TEMPLATE = set(TEMPLATES) - {"smollm2", "chatml-sentencepiece"}
"""Templates that render ``tools=``: their envs run with ``tool_prompt="template"``."""
SCRIPTS = {"tool-calls", "tool-errors", "parallel-calls", "long-result", "unicode", "fragmented", "edge-whitespace"}
SCRIPTS |= {"answer-only"}
"""The names of ``episode_scripts``: one episode each per check."""
REWRITTEN = {
    "qwen3-style": {"tool-calls", "parallel-calls", "unicode", "fragmented"},  # the earlier turns with reasoning
    "llama3-style": {"edge-whitespace"},  # turns are trimmed
    "shipped/llama3.1": {"edge-whitespace"},
    "shipped/qwen3": SCRIPTS,  # reasoning re-spaced; an empty <think> block on the last turn, none on earlier ones
}
"""The episodes whose history each template rewrites when it re-renders the conversation; the others: none."""
WARNED = {"qwen3-style", "shipped/qwen3"}
"""Templates whose rewrite moves the model turn's end: the rollout warns while training."""


@functools.cache
def tokenizer_for(template: str):
    if template == "smollm2":
        from rlhub.models import load_embedded_tokenizer

        return load_embedded_tokenizer()
    special, eos, jinja, *rest = TEMPLATES[template]
    if template.startswith("shipped/"):
        trl = importlib.util.find_spec("trl")
        if trl is None:
            pytest.skip("the shipped templates are read from TRL's package: pip install trl")
        jinja = (Path(trl.origin).parent / "chat_templates" / jinja).read_text()
    return bpe_tokenizer(special, eos, jinja, *rest)


MULTI_TURN_ENVS = sorted(spec.id for spec in list_envs() if spec.load_class().multi_turn)


def make_env(env_id: str, template: str):
    return rlhub.make(env_id, tool_prompt="template" if template in TOOLS_IN_TEMPLATE else "system")


def checked(tokenizer, env, **options):
    """``check_tokens``, and whether the rollout warned that the template is not append-only."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = check_tokens(tokenizer, env, **options)
    return report, any("rewrites the model's previous turn" in str(w.message) for w in caught)


def test_the_matrix_covers_every_multi_turn_env():
    assert {"calculator-v1", "retrieval-v0"} <= set(MULTI_TURN_ENVS)
    tagged = {spec.id for spec in list_envs() if "multi-turn" in spec.tags}
    assert tagged <= set(MULTI_TURN_ENVS)


@pytest.mark.parametrize("template", list(TEMPLATES))
@pytest.mark.parametrize("env_id", MULTI_TURN_ENVS)
def test_episodes_hold_exactly_the_sampled_and_template_tokens(env_id, template):
    report, warned = checked(tokenizer_for(template), make_env(env_id, template), template=template)
    assert report.exact, report.summary()
    assert report.episodes == len(SCRIPTS) and report.tokens_checked > 2000
    assert {r.episode.split()[0] for r in report.rewrites} == REWRITTEN.get(template, set()), report.summary()
    assert warned == (template in WARNED)


@pytest.mark.parametrize("env_id", MULTI_TURN_ENVS)
def test_a_template_that_strips_earlier_reasoning_is_reported_and_trained_on_the_sampled_tokens(env_id):
    report, warned = checked(tokenizer_for("qwen3-style"), make_env(env_id, "qwen3-style"), template="qwen3-style")
    # The episodes hold the sampled ids (reasoning included) and the template's own additions ...
    assert report.exact, report.summary()
    # ... and the report names every episode whose earlier turn had reasoning: the template re-renders it without.
    assert {r.episode.split()[0] for r in report.rewrites} == REWRITTEN["qwen3-style"], report.summary()
    for rewrite in report.rewrites:
        assert rewrite.part == "model" and rewrite.sampled.startswith("<think>")
        assert rewrite.rendered.startswith("<tool_call>")
    assert warned  # the rollout tells the user while training


def retokenizing_rollout(engine, env, examples, prompt_ids, n, sampling):
    """A wrong rollout: each model turn is decoded together with the environment's reply after it, and the text
    is encoded again (as trainers that re-render the conversation do)."""
    tokenizer = engine.tokenizer
    episodes = run_episodes(engine, env, examples, prompt_ids, n, sampling)
    for ep in episodes:
        ids, mask, logprobs, start = [], [], [], 0
        while start < len(ep.token_ids):
            model_end = ep.loss_mask.index(0, start) if 0 in ep.loss_mask[start:] else len(ep.token_ids)
            end = ep.loss_mask.index(1, model_end) if 1 in ep.loss_mask[model_end:] else len(ep.token_ids)
            stop = ep.token_ids[model_end - 1]
            again = tokenizer.encode(tokenizer.decode(ep.token_ids[start:end]), add_special_tokens=False)
            model = again.index(stop) + 1 if stop in again else len(again)
            ids += again
            mask += [1] * model + [0] * (len(again) - model)
            logprobs += (ep.logprobs[start:model_end] + [0.0] * len(again))[:model] + [0.0] * (len(again) - model)
            start = end
        ep.token_ids, ep.loss_mask, ep.logprobs = ids, mask, logprobs
    return episodes


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_retokenizing_the_model_turn_with_the_reply_is_caught(template):
    tokenizer = tokenizer_for(template)
    env = make_env("calculator-v1", template)
    report, _ = checked(tokenizer, env, rollout=retokenizing_rollout)
    assert not report.exact
    caught = {m.episode.split()[0] for m in report.mismatches if m.kind == "model"}
    assert {"fragmented", "unicode"} <= caught, report.summary()  # the turns sampled as non-canonical splits
    assert checked(tokenizer, env)[0].exact  # the same episodes through rlhub's rollout


def test_the_scripts_exercise_errors_parallel_calls_long_results_and_unicode():
    tokenizer, env = tokenizer_for("qwen2.5-style"), make_env("retrieval-v0", "qwen2.5-style")
    seen = []

    def spy(*args):
        seen.extend(run_episodes(*args))
        return seen

    check_tokens(tokenizer, env, rollout=spy)
    tools = [m for ep in seen for m in ep.messages if m["role"] == "tool"]
    assert sum(m["content"].startswith("error:") for m in tools) >= 5  # bad arguments, malformed, unknown tool
    assert any(len(m["content"]) > 1500 for m in tools)
    assert any(re.search(r"[^\x00-\x7f]", m["content"]) for m in tools)
    roles = ["".join(m["role"][0] for m in ep.messages) for ep in seen]
    assert any("attta" in r for r in roles)  # one turn, three calls, three results
    assert max(r.count("a") for r in roles) == env.config.max_turns


def test_the_trainer_batch_holds_the_sampled_ids_and_masks_the_environment():
    from rlhub.generation.fidelity import ScriptedEngine, end_of_turn_id, episode_scripts
    from rlhub.trainers.forward import make_batch

    tokenizer, env = tokenizer_for("llama3-style"), make_env("calculator-v1", "llama3-style")
    examples = env.examples("test", limit=2)
    prompts = [rollout.encode_prompt(tokenizer, env, ex) for ex in examples]
    scripts = [episode_scripts(env, ex)[name] for ex, name in zip(examples, ("tool-errors", "fragmented"))]
    engine = ScriptedEngine(tokenizer, prompts, scripts, end_of_turn_id(tokenizer))
    episodes = run_episodes(engine, env, examples, prompts, 1, Sampling(max_new_tokens=4096))
    batch = make_batch(
        prompts, [0, 1], [e.token_ids for e in episodes], [e.logprobs for e in episodes], engine.pad_id, "cpu",
        loss_masks=[e.loss_mask for e in episodes],
    )  # fmt: skip
    for row, samples in enumerate(engine.samples):
        trained = batch.completion[row][batch.loss_mask[row] > 0].tolist()
        assert trained == [t for s in samples for t in s.token_ids]
        old = batch.old_logp[row][batch.loss_mask[row] > 0].tolist()
        assert old == pytest.approx([lp for s in samples for lp in s.logprobs])


def test_check_tokens_command_on_a_saved_tokenizer(tmp_path, capsys):
    tokenizer_for("qwen2.5-style").save_pretrained(tmp_path)
    assert main("retrieval-v0", str(tmp_path)) == 0
    assert "retrieval-v0 x " in capsys.readouterr().out


def test_a_single_turn_env_is_refused():
    with pytest.raises(RLHubError, match="single-turn"):
        check_tokens(tokenizer_for("qwen2.5-style"), rlhub.make("arithmetic-v1"))


def test_trl_builds_the_same_environment_tokens(monkeypatch):
    """TRL's GRPOTrainer builds an environment_factory episode as the sampled ids, then the tool suffix of
    ``_get_tool_suffix_ids`` (masked), and so on; the adapter's tools call the env's ToolBox as rlhub's episodes
    do. Run TRL's suffix inside rlhub's rollout, under the template TRL would train with, and check it."""
    pytest.importorskip("trl")
    from trl.chat_template_utils import get_training_chat_template, is_chat_template_prefix_preserving
    from trl.trainer.grpo_trainer import GRPOTrainer

    if not hasattr(GRPOTrainer, "_get_tool_suffix_ids"):
        pytest.skip("this TRL builds tool suffixes another way")
    for template in TEMPLATES:
        tokenizer = tokenizer_for(template)
        prefix_preserving = is_chat_template_prefix_preserving(tokenizer)
        trainer = SimpleNamespace(
            processing_class=tokenizer,
            chat_template=None if prefix_preserving else get_training_chat_template(tokenizer),
            chat_template_kwargs={},
            _is_vlm=False,
            _tokenizer=tokenizer,
        )
        suffix = functools.partial(GRPOTrainer._get_tool_suffix_ids, trainer)
        monkeypatch.setattr(rollout, "reply_tokens", lambda tokenizer, history, replies, s=suffix: s(replies))
        report, _ = checked(tokenizer, make_env("calculator-v1", template), template=f"trl/{template}")
        assert report.exact, report.summary()
