"""HF generation against a real vLLM server on the quickstart's rollout shape, side by side in one run.

    bash scripts/test-vllm.sh --bench       # builds vLLM's environment, starts the server, runs this

or, with a server already up (``RLHUB_VLLM_URL``, as scripts/test-vllm.sh starts it):

    python -m bench.vllm_generation --base-url http://127.0.0.1:8000 --json bench/results/vllm_generation.json

One rollout is the quickstart's: 4 arithmetic-v1 prompts x 8 samples x up to 64 new tokens, temperature 1,
from the quickstart's policy (the embedded SmolLM2-135M-Instruct with a rank-16 LoRA adapter on every
linear layer; its B factors are set non-zero, as after training, so vLLM really applies the adapter).
The two engines take alternate turns (hf, vllm, vllm, hf, ...) so that both meet the same load on a
shared machine; each turn is timed from the call to the completions in hand. vLLM's adapter sync
(save + ``/v1/load_lora_adapter``) is timed on its own, as the trainer pays it once per step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path


def build(base_url: str):
    import torch

    import rlhub
    from rlhub.generation import make_engine
    from rlhub.generation.rollout import encode_prompt
    from rlhub.trainers.loop import seed_everything
    from rlhub.trainers.model import load_trainable
    from rlhub.trainers.recipe import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parent.parent / "recipes" / "quickstart.yaml")
    generator = seed_everything(0)
    policy, tokenizer = load_trainable(recipe.model.name, recipe)
    with torch.no_grad():  # a trained-looking adapter: LoRA starts with B = 0, which would be a no-op
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 1e-3, generator=generator)
    env = rlhub.make(recipe.env.id, **recipe.env.config)
    examples = env.examples("train", seed=0)[: recipe.training.prompts_per_step]
    prompts = [encode_prompt(tokenizer, env, ex) for ex in examples]
    hf = make_engine(None, policy, tokenizer, generator)
    settings = {"backend": "vllm", "vllm_mode": "server", "base_url": base_url}
    vllm = make_engine(settings, policy, tokenizer)
    return recipe, policy, prompts, {"hf": hf, "vllm": vllm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=os.environ.get("RLHUB_VLLM_URL"), help="The vLLM server.")
    parser.add_argument("--rounds", type=int, default=3, help="Rollouts per engine.")
    parser.add_argument("--json", type=Path, help="Write the figures here.")
    args = parser.parse_args()
    if not args.base_url:
        parser.error("--base-url (or RLHUB_VLLM_URL) is required; scripts/test-vllm.sh --bench starts a server")
    import torch

    from rlhub.generation import Sampling

    recipe, policy, prompts, engines = build(args.base_url)
    t = recipe.training
    n = recipe.algorithm.group_size
    sampling = Sampling(max_new_tokens=t.max_new_tokens, temperature=t.temperature, top_p=t.top_p)
    syncs = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        engines["vllm"].sync_weights(policy)
        syncs.append(time.perf_counter() - start)
    times: dict[str, list[float]] = {"hf": [], "vllm": []}
    tokens: dict[str, list[int]] = {"hf": [], "vllm": []}
    order = ["hf", "vllm", "vllm", "hf"] * args.rounds
    for name in order[: 2 * args.rounds]:
        start = time.perf_counter()
        with torch.no_grad():
            completions = engines[name].generate(prompts, n, sampling)
        times[name].append(time.perf_counter() - start)
        tokens[name].append(sum(len(c.token_ids) for c in completions))
        print(f"{name:5s} {times[name][-1]:6.1f} s  {tokens[name][-1]} tokens", flush=True)
    figures = {
        "shape": f"{len(prompts)} prompts x {n} samples x <= {t.max_new_tokens} new tokens",
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "adapter_sync_s_median": statistics.median(syncs),
    }
    for name in engines:
        figures[f"{name}_rollout_s_median"] = statistics.median(times[name])
        figures[f"{name}_tokens_per_s"] = sum(tokens[name]) / sum(times[name])
        figures[f"{name}_rollout_s"] = times[name]
    figures["vllm_speedup"] = figures["hf_rollout_s_median"] / figures["vllm_rollout_s_median"]
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
