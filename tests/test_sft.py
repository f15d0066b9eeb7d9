"""The cold start (recipe section sft): a supervised stage that fine-tunes the LoRA adapter before RL."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import rlhub
from rlhub.errors import ConfigError, RLHubError
from rlhub.generation.rollout import encode_prompt
from rlhub.rewards import Rubric
from rlhub.trainers import loop, sft
from rlhub.trainers.recipe import load_recipe

GOLD = {"source": "gold", "examples": 4, "batch_size": 2, "max_steps": 2, "learning_rate": 1e-2}


def tiny_recipe(model_dir: str, out: Path, **extra):
    values = {
        "model.name": model_dir,
        "model.dtype": "float32",
        "env.id": "arithmetic-v1",
        "algorithm.group_size": 2,
        "training.max_steps": 1,
        "training.prompts_per_step": 2,
        "training.micro_batch_size": 4,
        "training.max_new_tokens": 8,
        "training.learning_rate": 1e-2,
        "training.output_dir": str(out),
        "logging.wandb": False,
        "monitor.rescore": 0,
        **extra,
    }
    return load_recipe(None, values)


def metric_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def lora_state(policy) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(policy).items()}


def saved_adapter(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def spy_on_first_step(monkeypatch) -> dict[str, torch.Tensor]:
    """Record the adapter's weights as the RL loop's first step receives the policy."""
    seen: dict[str, torch.Tensor] = {}
    real = loop.train_step

    def first_step(run, step):
        if not seen:
            seen.update(lora_state(run.policy))
        return real(run, step)

    monkeypatch.setattr(loop, "train_step", first_step)
    return seen


def test_gold_sft_trains_the_adapter_that_rl_starts_from(tiny_model_dir, tmp_path, monkeypatch):
    seen = spy_on_first_step(monkeypatch)
    out = tmp_path / "run"
    loop.train(tiny_recipe(tiny_model_dir, out, sft=GOLD), progress=False)

    logged = [r for r in metric_rows(out) if "sft/loss" in r]
    assert [r["sft/step"] for r in logged] == [1, 2] and all(r["step"] == 0 for r in logged)
    adapter = saved_adapter(out / "checkpoints" / "sft" / "adapter")
    # LoRA starts with B = 0: trained, it is no longer zero; and RL's first step saw exactly these weights.
    lora_b = [k for k in adapter if "lora_B" in k]
    assert lora_b and all(adapter[k].abs().sum() > 0 for k in lora_b)
    assert seen.keys() == adapter.keys()
    assert all(torch.equal(seen[k], adapter[k]) for k in adapter)
    assert (out / "checkpoints" / "step-000000" / "state.json").is_file()  # the hand-off, for --resume


def test_sft_lowers_the_loss_on_gold_completions(tiny_model_dir, tmp_path):
    section = {**GOLD, "batch_size": 4, "max_steps": None, "epochs": 4}  # four steps on the same four completions
    out = tmp_path / "run"
    loop.train(tiny_recipe(tiny_model_dir, out, sft=section), progress=False)

    losses = [r["sft/loss"] for r in metric_rows(out) if "sft/loss" in r]
    assert len(losses) == 4
    assert all(b < a for a, b in itertools.pairwise(losses)), losses


def test_resume_skips_a_finished_sft_stage(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"

    def crash(run, step):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train_step", crash)  # killed after the sft stage, before RL's first step ends
    with pytest.raises(KeyboardInterrupt):
        loop.train(tiny_recipe(tiny_model_dir, out, sft=GOLD), progress=False)
    adapter = saved_adapter(out / "checkpoints" / "sft" / "adapter")
    monkeypatch.undo()

    def no_second_stage(run):
        raise AssertionError("--resume ran the finished sft stage again")

    monkeypatch.setattr(sft, "cold_start", no_second_stage)
    seen = spy_on_first_step(monkeypatch)
    result = loop.train(tiny_recipe(tiny_model_dir, out, sft=GOLD), resume=True, progress=False)
    assert result.steps == 1 and (out / "checkpoints" / "step-000001" / "state.json").is_file()
    assert all(torch.equal(seen[k], adapter[k]) for k in adapter)  # resumed from the fine-tuned weights


def test_without_sft_the_run_is_unchanged(tiny_model_dir, tmp_path, monkeypatch):
    def never(run):
        raise AssertionError("the sft stage ran without an sft section")

    monkeypatch.setattr(sft, "cold_start", never)
    out = tmp_path / "run"
    loop.train(tiny_recipe(tiny_model_dir, out), progress=False)
    assert [r["step"] for r in metric_rows(out)] == [1]
    assert not any(k.startswith("sft/") for r in metric_rows(out) for k in r)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest", "step-000001"]


def full_marks(completions, **kwargs):
    """A second reward that every sample earns: only the first (the correctness check) may filter."""
    return [1.0] * len(completions)


def rejection_run(tiny_model_dir, tmp_path, correct, samples=3):
    """What ``rejection_rows`` reads of a run: the tiny policy samples, ``correct`` is the rubric's first reward."""
    from tiny_models import tiny_model

    from rlhub.generation import Sampling, make_engine

    recipe = tiny_recipe(tiny_model_dir, tmp_path, sft={"source": "rejection", "examples": 6, "samples": samples})
    model, tokenizer = tiny_model()
    env = rlhub.make("arithmetic-v1")
    env.rubric = Rubric(
        {"correct": (correct, 1.0), "format": (lambda completions, **kw: [1.0] * len(completions), 1.0)}
    )
    engine = make_engine(recipe.generation, model, tokenizer, torch.Generator().manual_seed(0))
    t = recipe.training
    sampling = Sampling(max_new_tokens=t.max_new_tokens, temperature=t.temperature, top_p=t.top_p)
    encode = lambda ex: encode_prompt(tokenizer, env, ex)
    run = SimpleNamespace(recipe=recipe, env=env, engine=engine, sampling=sampling, encode=encode)
    return run, env.examples("train", limit=6, seed=recipe.training.seed)


def test_rejection_keeps_only_the_correct_samples(tiny_model_dir, tmp_path):
    def even_answers(completions, answer, **kwargs):  # marks a known subset correct, whatever was sampled
        return [float(int(a) % 2 == 0) for a in answer]

    run, examples = rejection_run(tiny_model_dir, tmp_path, even_answers)
    rows = sft.rejection_rows(run, examples)
    kept = [run.encode(ex) for ex in examples if int(ex.answer) % 2 == 0]
    assert 0 < len(kept) < len(examples)
    assert len(rows) == 3 * len(kept)
    for row in rows:
        prompt = next(p for p in kept if row["input_ids"][: len(p)] == p)
        assert row["assistant_masks"] == [0] * len(prompt) + [1] * (len(row["input_ids"]) - len(prompt))


def test_rejection_that_keeps_nothing_says_what_to_do(tiny_model_dir, tmp_path):
    run, examples = rejection_run(tiny_model_dir, tmp_path, lambda completions, **kw: [0.5] * len(completions))
    with pytest.raises(RLHubError, match=r"kept nothing: none of 18 samples scored correct=1\.0; set sft\.source=gold"):
        sft.rejection_rows(run, examples)


def test_multi_turn_gold_trains_on_the_assistant_turns_only():
    from rlhub.models import load_embedded_tokenizer

    tokenizer = load_embedded_tokenizer()
    env = rlhub.make("calculator-v1")
    example = env.examples("train", limit=1)[0]
    transcript = env.gold_completion(example)
    assert any(m["role"] == "tool" for m in transcript)
    ids, mask = sft.transcript_tokens(tokenizer, encode_prompt(tokenizer, env, example), example.prompt, transcript)
    assert len(ids) == len(mask)
    trained = tokenizer.decode([t for t, m in zip(ids, mask) if m])
    assistant = [m["content"] for m in transcript if m["role"] == "assistant"]
    assert trained == "".join(f"{text}<|im_end|>" for text in assistant)  # each turn learns to stop, too
    # The whole sequence is what the chat template writes for the conversation.
    rendered = tokenizer.apply_chat_template(example.prompt + transcript, tokenize=False).rstrip()
    assert tokenizer.decode(ids) == rendered


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("sft.source=silver", r"recipe key 'sft\.source'"),
        ("sft.examples=0", r"recipe key 'sft\.examples'"),
        ("sft.batch_size=0", r"recipe key 'sft\.batch_size'"),
        ("sft.learning_rate=0", r"recipe key 'sft\.learning_rate'"),
        ("sft.max_steps=0", r"recipe key 'sft\.max_steps'"),
        ("sft.epochs=0", r"recipe key 'sft\.epochs'"),
        ("sft.samples=4", r"sft\.samples applies only to sft\.source=rejection"),
        ("sft.lr=0.1", r"unknown recipe key 'sft\.lr'"),
    ],
)
def test_bad_sft_settings_fail_in_one_line(setting, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(None, [setting])
