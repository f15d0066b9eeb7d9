"""Benchmark: rlhub's GRPO trainer against TRL's ``GRPOTrainer``, side by side in one process.

Both train the embedded SmolLM2-135M-Instruct (float32) with LoRA r=16, alpha=32, dropout 0 on all linear
layers, on ``arithmetic-v0`` with the quickstart recipe's env config (difficulty 1, prompt_style user,
few_shot 2) and reward weights (correct 1.0, format 0.5), for the same number of steps with the same
prompts per step (the same prompts, in the same order: TRL's dataset is put in the order rlhub's prompt
stream takes them and TRL's shuffling is off), group size G, max new tokens, temperature 1.0 / top_p 1.0,
learning rate (constant, no warmup, AdamW, no weight decay, grad-norm clip 1.0), beta 0, loss_type dapo,
epsilon 0.2 / 0.28, per-group reward scaling, one optimizer step per generation batch (TRL: batch size
P*G, no gradient accumulation; rlhub: one micro-batch of P*G), no gradient checkpointing, no checkpoints,
wandb off. The torch thread count is set once, equally, for both (same process, run one after the other;
``--order`` picks which goes first, and the report records it).

Measured per trainer: the first ``--warmup`` steps run but are left out of the timing; of the rest,
seconds per step (generation + reward + update: rlhub's ``charts/step_time``; TRL from the
``on_step_begin``/``on_step_end`` callbacks, which bracket its generation in ``_prepare_inputs`` and its
optimizer step), samples/s (completions per second of those steps' wall time; model load, LoRA wrapping,
trainer construction and the final checkpoint are excluded), mean reward over all steps run (warm-up
included; the rubric's weighted sum, as each trainer logs it), and mean completion length. Ratios are
rlhub/TRL (above 1 means rlhub is faster / scores higher).

What is not aligned (and could not be):
  * Generation: TRL samples with ``model.generate`` (HF's sampler, dynamic cache, its own eos/pad
    handling); rlhub samples with its own KV-cache loop (``HFRolloutEngine``) that stops at the chat
    template's end-of-turn token. The sampling RNG streams differ, so the completions (and so their
    lengths, rewards and the amount of work per step) differ even from the same weights and prompts;
    with 2 prompts and a few steps the mean reward is noisy and says little about learning.
  * The update: rlhub shares the prompt's forward across a group and skips the forward/backward of
    zero-advantage sequences (same gradient); TRL runs every sequence of prompt + completion. These
    are the implementations being compared, not a setup difference.
  * TRL's step includes its own bookkeeping (metrics such as entropy and clip ratios, gathered logs,
    ``pad_to_multiple_of``); rlhub's includes its metric computation too, but writes logs (metrics.jsonl)
    after its step time is taken.
  * TRL's dataloader fetches the batch before ``on_step_begin`` (a few dataset rows, negligible).
  * Sequential, not interleaved: whichever runs second may benefit (or suffer) from a warm CPU / page
    cache; run again with ``--order`` swapped to check.

Run: ``python bench/trainer_vs_trl.py --steps 4 --json bench-results.json``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import rlhub

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "quickstart.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4, help="timed optimizer steps per trainer (after the warm-up)")
    p.add_argument("--warmup", type=int, default=1, help="steps run first and left out of the timing")
    p.add_argument("--prompts", type=int, default=2, help="prompts per step")
    p.add_argument("--group", type=int, default=8, help="completions per prompt (G)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for both (default: os.cpu_count())")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--order", choices=["trl-first", "rlhub-first"], default="trl-first")
    p.add_argument("--recipe", default=str(RECIPE))
    p.add_argument("--json", dest="json_path", default=None, help="write the results here")
    return p.parse_args(argv)


def reset_accelerate() -> None:
    """Both trainers make an ``Accelerator``; its state is a process-wide singleton."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def summarize(name: str, step_times: list[float], rewards: list[float], lengths: list[float], args) -> dict:
    timed = step_times[args.warmup :]
    n = args.prompts * args.group
    total = sum(timed)
    return {
        "trainer": name,
        "steps_run": len(step_times),
        "steps_timed": len(timed),
        "step_times_s": [round(t, 3) for t in step_times],
        "s_per_step": total / len(timed) if timed else float("nan"),
        "samples_per_s": n * len(timed) / total if total else float("nan"),
        "rewards": rewards,
        "mean_reward": statistics.fmean(rewards) if rewards else float("nan"),
        "mean_completion_length": statistics.fmean(lengths) if lengths else float("nan"),
    }


# --- rlhub ---------------------------------------------------------------------------------------------
def run_rlhub(args, common: dict, workdir: Path) -> dict:
    from rlhub.trainers.loop import train
    from rlhub.trainers.recipe import load_recipe

    total_steps = args.steps + args.warmup
    overrides = [
        f"training.max_steps={total_steps}",
        f"training.prompts_per_step={args.prompts}",
        f"training.micro_batch_size={args.prompts * args.group}",
        f"algorithm.group_size={args.group}",
        f"training.max_new_tokens={args.max_new_tokens}",
        "training.temperature=1.0",
        "training.top_p=1.0",
        f"training.learning_rate={common['lr']}",
        f"training.num_threads={common['threads']}",
        f"training.seed={args.seed}",
        "training.save_every=0",
        f"training.output_dir={workdir.as_posix()}/{{run_name}}",
        "logging.wandb=false",
        "logging.completions_every=0",
        "logging.run_name=rlhub-bench",
        "eval.every=0",
    ]
    recipe = load_recipe(args.recipe, overrides)
    seed_all(args.seed)
    result = train(recipe, recipe_name="bench", overwrite=True, progress=False)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "charts/step_time" in r]
    return summarize(
        "rlhub",
        [r["charts/step_time"] for r in rows],
        [r["reward"] for r in rows],
        [r["completions/mean_length"] for r in rows],
        args,
    )


# --- TRL -------------------------------------------------------------------------------------------------
def trl_dataset(args, recipe):
    """TRL's dataset in exactly the order rlhub's prompt stream takes the examples."""
    from rlhub.integrations.trl import to_dataset
    from rlhub.trainers.loop import PromptStream

    env = rlhub.make(recipe.env.id, **recipe.env.config)
    ds = to_dataset(env, "train", seed=args.seed)
    order = PromptStream(list(range(len(ds))), seed=args.seed).take(args.prompts * (args.steps + args.warmup))
    examples = env.examples("train", seed=args.seed)
    assert all(ds[i]["answer"] == examples[i].answer for i in order[:8]), "dataset and env examples disagree"
    return env, ds.select(order)


def run_trl(args, common: dict, workdir: Path) -> dict:
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlhub.integrations.trl import reward_funcs
    from rlhub.models import load_model_and_tokenizer
    from rlhub.trainers.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    env, dataset = trl_dataset(args, recipe)
    funcs = reward_funcs(env)
    # The recipe's weights where it names a rubric function, the env's own otherwise (as rlhub's build_rubric).
    weights = [float(recipe.rewards.get(f.__name__, f.weight)) for f in funcs]
    a, lora = recipe.algorithm, recipe.lora

    class Timer(TrainerCallback):
        def __init__(self):
            self.step_times: list[float] = []
            self.logs: list[dict] = []
            self._t0 = 0.0

        def on_step_begin(self, *_, **__):
            self._t0 = time.perf_counter()

        def on_step_end(self, *_, **__):
            self.step_times.append(time.perf_counter() - self._t0)

        def on_log(self, _args, _state, _control, logs=None, **__):
            if logs and "reward" in logs:
                self.logs.append(dict(logs))

    seed_all(args.seed)
    model, tokenizer = load_model_and_tokenizer(recipe.model.name, dtype=recipe.model.dtype, device="cpu")
    config = GRPOConfig(
        output_dir=str(workdir / "trl"),
        max_steps=args.steps + args.warmup,
        per_device_train_batch_size=args.prompts * args.group,
        gradient_accumulation_steps=1,
        num_generations=args.group,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        learning_rate=common["lr"],
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=recipe.training.max_grad_norm,
        optim="adamw_torch",
        beta=a.beta,
        loss_type=a.loss_type,
        epsilon=a.epsilon,
        epsilon_high=a.epsilon_high,
        scale_rewards=a.scale_rewards,
        num_iterations=a.num_iterations,
        reward_weights=weights,
        shuffle_dataset=False,
        gradient_checkpointing=False,
        bf16=False,
        use_cpu=True,
        seed=args.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        log_completions=False,
    )
    timer = Timer()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            task_type="CAUSAL_LM",
        ),
        callbacks=[timer],
    )
    trainer.train()
    return {
        **summarize(
            "trl",
            timer.step_times,
            [float(r["reward"]) for r in timer.logs],
            [float(r.get("completions/mean_length", float("nan"))) for r in timer.logs],
            args,
        ),
        "reward_weights": dict(zip([f.__name__ for f in funcs], weights)),
    }


# --- report ----------------------------------------------------------------------------------------------
def print_table(results: dict[str, dict], ratios: dict[str, float], header: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=header)
    table.add_column("metric")
    for name in ("rlhub", "trl"):
        table.add_column(name, justify="right")
    table.add_column("rlhub/TRL", justify="right")
    for key, label, fmt in (
        ("samples_per_s", "samples/s (completions / wall s)", "{:.2f}"),
        ("s_per_step", "s / step", "{:.2f}"),
        ("mean_reward", "mean reward (all steps)", "{:.3f}"),
        ("mean_completion_length", "mean completion length (tokens)", "{:.1f}"),
    ):
        ratio = ratios.get(key)
        table.add_row(
            label,
            *(fmt.format(results[n][key]) for n in ("rlhub", "trl")),
            "-" if ratio is None else f"{ratio:.2f}",
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from rlhub.trainers.recipe import load_recipe

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("WANDB_MODE", "disabled")
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    recipe = load_recipe(args.recipe)
    common = {"lr": args.lr if args.lr is not None else recipe.training.learning_rate, "threads": threads}
    runners = {"rlhub": run_rlhub, "trl": run_trl}
    order = ["trl", "rlhub"] if args.order == "trl-first" else ["rlhub", "trl"]
    results: dict[str, dict] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rlhub-bench-") as tmp:
        for name in order:
            reset_accelerate()
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            results[name] = runners[name](args, common, Path(tmp))
            results[name]["total_wall_s_incl_load"] = round(time.perf_counter() - t0, 1)
    ratios = {
        key: results["rlhub"][key] / results["trl"][key]
        for key in ("samples_per_s", "s_per_step", "mean_reward", "mean_completion_length")
        if results["trl"][key]
    }
    out = {
        "benchmark": "rlhub GRPO vs TRL GRPOTrainer",
        "settings": {
            "model": recipe.model.name,
            "env": recipe.env.id,
            "env_config": recipe.env.config,
            "prompts_per_step": args.prompts,
            "group_size": args.group,
            "max_new_tokens": args.max_new_tokens,
            "learning_rate": common["lr"],
            "steps_timed": args.steps,
            "warmup_steps": args.warmup,
            "torch_threads": threads,
            "order": order,
            "seed": args.seed,
            "versions": {
                "rlhub": rlhub.__version__,
                "trl": __import__("trl").__version__,
                "transformers": __import__("transformers").__version__,
                "torch": torch.__version__,
            },
        },
        "results": results,
        "ratios_rlhub_over_trl": ratios,
        "script_wall_s": round(time.perf_counter() - start, 1),
    }
    header = (
        f"rlhub vs TRL GRPO: {args.prompts} prompts x {args.group} completions, {args.max_new_tokens} new tokens, "
        f"{args.steps} timed steps (+{args.warmup} warm-up), {threads} threads, order {' then '.join(order)}"
    )
    print_table(results, ratios, header)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
