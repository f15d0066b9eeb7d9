"""Tiny randomly initialized models for tests: a 2-layer Llama on the embedded SmolLM2 tokenizer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhub.models import load_embedded_tokenizer, prepare_for_generation

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def tiny_model(
    tokenizer: PreTrainedTokenizerBase | None = None, seed: int = 0, **config_overrides: Any
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A randomly initialized tiny Llama causal LM for tests: 2 layers, hidden size 64, built in a second.

    Args:
        tokenizer: Its tokenizer; default the embedded SmolLM2 tokenizer (so chat templates work).
        seed: Seeds the initialization without touching torch's global random state.
        **config_overrides: ``LlamaConfig`` fields to change, e.g. ``num_hidden_layers=1``.

    Returns:
        ``(model, tokenizer)`` on the CPU, the model in eval mode as ``from_pretrained`` returns it, the
        tokenizer padding on the left.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer if tokenizer is not None else load_embedded_tokenizer()
    prepare_for_generation(tokenizer)
    settings = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,  # grouped-query attention, as in SmolLM2
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = LlamaConfig(**(settings | config_overrides))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


def save_tiny_model(path: str | os.PathLike, seed: int = 0, **config_overrides: Any) -> Path:
    """Write a :func:`tiny_model` checkpoint (config, safetensors, tokenizer) that recipes can name as ``model``.

    Args:
        path: Folder to write; created if missing.
        seed: Passed to :func:`tiny_model`.
        **config_overrides: Passed to :func:`tiny_model`.

    Returns:
        The folder, loadable with :func:`load_model_and_tokenizer` or ``from_pretrained``.
    """
    model, tokenizer = tiny_model(seed=seed, **config_overrides)
    folder = Path(path)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
