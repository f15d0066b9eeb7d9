"""The dtype probe: how fast a small LoRA training step runs here in float32 and in bfloat16.

``model.dtype: auto`` (:func:`rlhub.models.resolve_dtype`) runs it once per CPU and torch version, in a child
process of its own, so the run's random state, threads and memory are never touched:

    python -m rlhub.trainers.precision THREADS

prints one JSON line: matmul GFLOP/s and the step's seconds (sampling, training, and their sum) per dtype.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from functools import partial
from typing import Any

import torch

PROBE_MODEL = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "num_hidden_layers": 4,
    "vocab_size": 6528,
    "tie_word_embeddings": True,
}
"""The probe's model: SmolLM2-135M's layer shapes with 4 of its 30 layers and its vocabulary cut in the same
proportion, so the LM head's share of the work stays about the same; its weights (72 MB in float32) still
outgrow a CPU's cache, as a real model's do, so sampling streams them from memory."""


def measure(threads: int, repeats: int = 2) -> dict[str, Any]:
    """Matmul GFLOP/s and a small LoRA step's seconds in float32 and bfloat16, with ``threads`` torch threads.

    The step imitates the quickstart's on a randomly initialized model of :data:`PROBE_MODEL`'s shape with a
    LoRA adapter (r=16 on every linear layer): a 160-token prompt prefilled once, 8 completions sampled for 32
    tokens from its cache, then a forward and backward over them in micro-batches of 4, each on top of the
    prompt's cache. Each figure is the best of ``repeats`` runs after a warm-up; the dtypes take turns, so a
    change in the machine's load falls on both. It sets this process's threads and seed: run it in a child.

    Args:
        threads: torch threads to measure with (the run's).
        repeats: Timed runs of each part, after one warm-up run.

    Returns:
        ``threads``; ``matmul_gflops``, ``step_s``, ``sample_s`` and ``train_s``, each by dtype name;
        ``probe_s`` (the probe's own time) and ``measured`` (when).
    """
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    started = time.perf_counter()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(**PROBE_MODEL))
    prompt = torch.randint(base.config.vocab_size, (1, 160))
    completions = torch.randint(base.config.vocab_size, (8, 32))
    size, work = 1024, {}
    for name in ("float32", "bfloat16"):
        dtype = getattr(torch, name)
        lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(copy.deepcopy(base).to(dtype), lora)
        matrix = torch.randn(size, size).to(dtype)
        work[name] = {
            "matmul": partial(torch.matmul, matrix, matrix),
            "sample": partial(sample, model, prompt, len(completions), completions.shape[1]),
            "train": partial(train, model, prompt, completions, micro_batch=4),
        }
    best = {name: dict.fromkeys(parts, float("inf")) for name, parts in work.items()}
    for repeat in range(repeats + 1):
        for name, parts in work.items():
            for part, run in parts.items():
                start = time.perf_counter()
                run()
                if repeat:  # the first round warms up
                    best[name][part] = min(best[name][part], time.perf_counter() - start)
    return {
        "threads": threads,
        "matmul_gflops": {name: round(2 * size**3 / b["matmul"] / 1e9, 1) for name, b in best.items()},
        "step_s": {name: round(b["sample"] + b["train"], 4) for name, b in best.items()},
        "sample_s": {name: round(b["sample"], 4) for name, b in best.items()},
        "train_s": {name: round(b["train"], 4) for name, b in best.items()},
        "probe_s": round(time.perf_counter() - started, 1),
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def sample(model, prompt, n: int, new_tokens: int) -> None:
    """Sample as the rollout engine does: the prompt prefilled once, its cache copied to ``n`` rows, then decode."""
    from transformers import DynamicCache

    from rlhub.generation.rollout import kv_cache_name

    kv = kv_cache_name()
    model.eval()
    with torch.no_grad():
        mask = torch.ones_like(prompt)
        out = model(input_ids=prompt, attention_mask=mask, use_cache=True, logits_to_keep=1, **{kv: DynamicCache()})
        cache = getattr(out, kv)
        cache.batch_repeat_interleave(n)
        logits, mask = out.logits[:, -1].float().repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)
        for _ in range(new_tokens):
            token = torch.multinomial(logits.log_softmax(-1).exp(), 1)
            mask = torch.cat([mask, mask.new_ones(n, 1)], dim=1)
            logits = model(input_ids=token, attention_mask=mask, use_cache=True, **{kv: cache}).logits[:, -1].float()


def train(model, prompt, completions, micro_batch: int) -> None:
    """Train as rlhub's forward does: per micro-batch, the prompt once and the completions on its cache; backward."""
    from transformers import DynamicCache

    from rlhub.generation.rollout import kv_cache_name

    kv = kv_cache_name()
    model.train()
    for part in completions.split(micro_batch):
        mask = torch.ones_like(prompt)
        out = model(input_ids=prompt, attention_mask=mask, use_cache=True, logits_to_keep=1, **{kv: DynamicCache()})
        cache = getattr(out, kv)
        cache.batch_repeat_interleave(len(part))
        mask = torch.ones(len(part), prompt.shape[1] + part.shape[1] - 1, dtype=torch.long)
        rest = model(input_ids=part[:, :-1], attention_mask=mask, use_cache=True, **{kv: cache})
        logits = torch.cat([out.logits.repeat_interleave(len(part), dim=0), rest.logits], dim=1).float()
        logits.log_softmax(-1).gather(-1, part[..., None]).sum().backward()
    model.zero_grad(set_to_none=True)


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]))))
