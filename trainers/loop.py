"""The training loop every algorithm shares: rollout, reward, advantage, update, log, checkpoint.

Reads top to bottom. What differs between algorithms (advantages, loss) lives in a small module
(``grpo.py``); this file owns everything else, once.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import math
import random
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rlhub
from rlhub.env.registry import get_spec
from rlhub.errors import ConfigError, RLHubError
from rlhub.generation import make_engine
from rlhub.generation.rollout import encode_prompt, rollout
from rlhub.rewards import Rubric, get_reward
from rlhub.trainers import checkpoint
from rlhub.trainers.critic import Critic, build_critic
from rlhub.trainers.forward import CompletionLogits, make_batch
from rlhub.trainers.losses import BatchTotals
from rlhub.trainers.model import load_trainable
from rlhub.trainers.recipe import Recipe
from rlhub.trainers.tracking import Tracker, git_commit

log = logging.getLogger(__name__)

# Skip micro-batches whose sequences all have zero advantage (see step 5). A switch so tests can force
# every micro-batch to run and check that skipping leaves the update unchanged.
SKIP_TIED_MICRO_BATCHES = True

ALGORITHMS = {
    "grpo": "rlhub.trainers.grpo:GRPO",
    "ppo": "rlhub.trainers.ppo:PPO",
    "rloo": "rlhub.trainers.rloo:RLOO",
    "reinforce_pp": "rlhub.trainers.reinforce_pp:ReinforcePlusPlus",
}


# --- helpers ----------------------------------------------------------------------------------------
def load_algorithm(recipe: Recipe):
    name = recipe.algorithm.name
    target = ALGORITHMS.get(name, name)
    if ":" in target:
        module_name, attr = target.split(":", 1)
    else:
        module_name, _, attr = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"algorithm.name {name!r} is neither one of {sorted(ALGORITHMS)} nor an importable path")
    if getattr(cls, "uses_critic", False):
        return cls(recipe.algorithm, recipe.critic)
    return cls(recipe.algorithm)


def build_rubric(env, weights: dict[str, float]) -> Rubric:
    """The env's rubric with the recipe's weights; names the rubric lacks add reward functions."""
    own = {k: v for k, v in weights.items() if k in env.rubric.names}
    rubric = env.rubric.reweighted(own) if own else env.rubric
    extra = {k: v for k, v in weights.items() if k not in env.rubric.names}
    if not extra:
        return rubric
    items = {r.name: (r.fn, r.weight) for r in rubric.items}
    items.update({name: (get_reward(name), w) for name, w in extra.items()})
    return Rubric(items)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class PromptStream:
    """Training examples in a seeded order, reshuffled each epoch; ``position`` makes it resumable."""

    examples: list
    seed: int
    position: int = 0
    _order: list[int] = field(default_factory=list)
    _epoch: int = -1

    def take(self, n: int) -> list:
        out = []
        for _ in range(n):
            epoch, idx = divmod(self.position, len(self.examples))
            if epoch != self._epoch:
                self._order = list(range(len(self.examples)))
                random.Random(self.seed * 7919 + epoch).shuffle(self._order)
                self._epoch = epoch
            out.append(self.examples[self._order[idx]])
            self.position += 1
        return out


def params_digest(*models) -> str:
    h = hashlib.sha256()
    for name, p in sorted((f"{i}.{n}", p) for i, m in enumerate(models) for n, p in m.named_parameters()):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def make_scheduler(optimizer, recipe: Recipe, frozen_steps: int = 0):
    """The policy's learning-rate schedule over its updates (``frozen_steps``: steps it waits for the critic)."""
    t = recipe.training
    total = max((t.max_steps - frozen_steps) * recipe.algorithm.num_iterations, 1)

    def factor(update: int) -> float:
        if update < t.warmup_steps:
            return (update + 1) / (t.warmup_steps + 1)
        progress = (update - t.warmup_steps) / max(total - t.warmup_steps, 1)
        if t.lr_scheduler == "linear":
            return max(0.0, 1 - progress)
        if t.lr_scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(sum(values) / len(values)) if values else 0.0


def evaluate(engine, env, encode, n: int, max_new_tokens: int) -> dict[str, float]:
    """Greedy completions on ``n`` test examples, scored by the env's (training) rubric."""
    examples = env.examples("test", limit=n)
    samples = rollout(engine, env, examples, [encode(ex) for ex in examples], 1, max_new_tokens, 0.0, 1.0)
    scores = env.score_batch([c.output for c in samples], examples)
    metrics = {"eval/reward": mean([s.reward for s in scores])}
    # pass@1 as `rlhub eval` counts it: the env's first reward function (its correctness check) scores 1.0.
    first = env.rubric.names[0]
    metrics["eval/pass@1"] = mean([1.0 if (s.rewards[first] or 0) >= 1.0 else 0.0 for s in scores])
    for name in env.rubric.names:
        metrics[f"eval/{name}"] = mean([s.rewards[name] for s in scores])
    return metrics


def critic_advantages(algorithm, critic: Critic, batches, rewards: torch.Tensor, ref_logps: dict):
    """PPO: the critic's values of the rollout, GAE per micro-batch, whitened over the step.

    Stores ``old_values``, ``returns`` and ``advantages`` ([B, T]) in each micro-batch; returns per-sequence
    mean advantages (for the completions table) and critic metrics.
    """
    raw, masks = [], []
    with torch.no_grad():
        for k, (idx, batch) in enumerate(batches):
            values = critic.module(batch, mode="values").float()
            adv, returns = algorithm.token_advantages(
                rewards[idx].to(values.device), batch["loss_mask"], values, batch["old_logp"], ref_logps.get(k)
            )
            batch["old_values"], batch["returns"] = values, returns
            raw.append(adv)
            masks.append(batch["loss_mask"])
    per_sequence = []
    for (_, batch), adv in zip(batches, algorithm.whiten(raw, masks)):
        batch["advantages"] = adv
        m = batch["loss_mask"]
        per_sequence.append((adv * m).sum(-1) / m.sum(-1).clamp(min=1))
    m = torch.cat([b["loss_mask"].flatten() for _, b in batches]) > 0
    values = torch.cat([b["old_values"].flatten() for _, b in batches])[m]
    returns = torch.cat([b["returns"].flatten() for _, b in batches])[m]
    raw_adv = torch.cat([a.flatten() for a in raw])[m]
    var = returns.var() if returns.numel() > 1 else torch.tensor(0.0)
    metrics = {
        "values/mean": float(values.mean()) if values.numel() else 0.0,
        "values/returns_mean": float(returns.mean()) if returns.numel() else 0.0,
        "values/advantage_mean": float(raw_adv.mean()) if raw_adv.numel() else 0.0,
        # 1 - Var(returns - values) / Var(returns): 1 is a perfect critic, <= 0 no better than a constant.
        "values/explained_variance": float(1 - (returns - values).var() / var) if var > 0 else 0.0,
    }
    return torch.cat(per_sequence).cpu(), metrics


# --- the run ----------------------------------------------------------------------------------------
@dataclass
class RunResult:
    run_dir: Path
    steps: int
    rewards: list[float]
    summary: dict[str, Any]
    is_main_process: bool = True


def train(
    recipe: Recipe,
    *,
    recipe_name: str = "recipe",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> RunResult:
    """Run ``recipe`` end to end and return where its outputs went."""
    from rlhub.serve.container import serving

    # A served env (env.url) is reached over HTTP; env.container serves it from its image for the run.
    with serving(recipe.env.id, url=recipe.env.url, container=recipe.env.container) as env_url:
        return _train(recipe, env_url, recipe_name=recipe_name, resume=resume, overwrite=overwrite, progress=progress)


def _train(recipe: Recipe, env_url: str | None, *, recipe_name: str, resume: bool, overwrite: bool, progress: bool):
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    t, a = recipe.training, recipe.algorithm
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    accelerator = Accelerator(mixed_precision=t.mixed_precision, cpu=not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    device = accelerator.device

    # Run folder: created fresh, or reused with --resume.
    run_name = recipe.logging.run_name or f"{recipe_name}-{recipe.env.id}"
    run_dir = Path(t.output_dir.format(run_name=run_name))
    last_ckpt = checkpoint.latest(run_dir) if run_dir.exists() else None
    if resume and last_ckpt is None:
        raise RLHubError(f"--resume: {run_dir} has no checkpoint yet; run without --resume to start it")
    if not resume and run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise RLHubError(f"{run_dir} already holds a run; pass --resume to continue it or --overwrite to replace it")
    if overwrite and not resume and accelerator.is_main_process and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    accelerator.wait_for_everyone()

    # Environment, reward and algorithm.
    spec = get_spec(recipe.env.id)
    env = rlhub.make(env_url) if env_url else rlhub.make(recipe.env.id, **recipe.env.config)
    rubric = env.rubric = build_rubric(env, recipe.rewards)
    multi_turn = getattr(env, "multi_turn", False)
    algorithm = load_algorithm(recipe)
    uses_critic = getattr(algorithm, "uses_critic", False)
    if uses_critic and accelerator.distributed_type.value == "DEEPSPEED":
        raise ConfigError(
            "ppo's critic has an optimizer of its own, which accelerate's DeepSpeed integration does not take; "
            "launch with recipes/accelerate/ddp.yaml or fsdp.yaml"
        )
    if algorithm.needs_reference and not recipe.lora.enabled:
        raise ConfigError(
            "algorithm.beta > 0 needs the reference policy, which rlhub takes from the base model under the LoRA "
            "adapter; set lora.enabled=true or algorithm.beta=0"
        )
    train_examples = env.examples("train", seed=t.seed)
    if not train_examples:
        raise RLHubError(f"{recipe.env.id} has no training examples")

    # Model, LoRA, optimizer.
    generator = seed_everything(t.seed + rank)
    model, tokenizer = load_trainable(recipe.model.name, recipe)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=t.learning_rate, weight_decay=t.weight_decay)
    scheduler = make_scheduler(optimizer, recipe, frozen_steps=recipe.critic.warmup_steps if uses_critic else 0)
    # PPO's critic: a value head inside the policy's forward module (shared), or a module of its own.
    critic: Critic | None = None
    critic_part, critic_params = build_critic(recipe, model, tokenizer) if uses_critic else (None, [])
    shared_critic = uses_critic and recipe.critic.kind == "shared"
    # Both model calls of the training forward (shared prompt, then completions) sit in one module, so
    # DDP/FSDP see one forward per backward.
    forward_module = CompletionLogits(
        model,
        share_prefix=not recipe.model.gradient_checkpointing,
        value_head=critic_part if shared_critic else None,
    )
    forward, optimizer = accelerator.prepare(forward_module, optimizer)
    if uses_critic:
        critic_optimizer = torch.optim.AdamW(
            critic_params, lr=recipe.critic.learning_rate or t.learning_rate, weight_decay=t.weight_decay
        )
        if shared_critic:
            critic_optimizer = accelerator.prepare(critic_optimizer)
            critic_module = forward
        else:
            critic_module, critic_optimizer = accelerator.prepare(critic_part, critic_optimizer)
        critic = Critic(shared_critic, critic_module, critic_optimizer, critic_params, recipe.critic.warmup_steps)
    policy = accelerator.unwrap_model(forward).model
    if device.type != "cpu":
        generator = torch.Generator(device=device).manual_seed(t.seed + rank)
    # Sampling: the policy itself (hf), or vLLM synced with it after every update (generation.backend).
    engine = make_engine(recipe.generation, policy, tokenizer, generator, seed=t.seed + rank, dtype=recipe.model.dtype)

    stream = PromptStream(train_examples, seed=t.seed)
    start_step, history = 0, []
    extras = {}
    if critic is not None:
        critic_weights = accelerator.unwrap_model(forward).value_head if critic.shared else critic.module
        extras = {"critic": critic_weights, "critic_optimizer": critic.optimizer}
    if resume:
        state = checkpoint.load(
            last_ckpt,
            model=policy,
            optimizer=optimizer,
            scheduler=scheduler,
            generator=generator,
            accelerator=accelerator,
            extras=extras,
        )
        start_step, stream.position, history = state["step"], state["position"], state["reward_history"]
        engine.sync_weights(policy)

    config = {
        **recipe.model_dump(),
        "env_spec": {**spec.to_dict(), "code_hash": spec.code_hash()},
        "git_commit": git_commit(),
        "world_size": world,
        "rlhub_version": rlhub.__version__,
    }
    tracker = Tracker(
        run_dir,
        config,
        use_wandb=recipe.logging.wandb,
        project=recipe.logging.project,
        run_name=run_name,
        resume=resume,
        enabled=accelerator.is_main_process,
    )
    if accelerator.is_main_process:
        (run_dir / "recipe.json").write_text(json.dumps(recipe.model_dump(), indent=1))

    prompt_cache: dict[str, list[int]] = {}

    def encode(example) -> list[int]:
        if example.id not in prompt_cache:
            prompt_cache[example.id] = encode_prompt(tokenizer, env, example)
        return prompt_cache[example.id]

    G, P, mb = a.group_size, t.prompts_per_step, t.micro_batch_size
    bar = tqdm(
        total=t.max_steps,
        initial=start_step,
        disable=not (progress and accelerator.is_main_process),
        desc="train",
        dynamic_ncols=True,
    )
    run_start = time.perf_counter()
    eval_every = recipe.eval.every
    evals: dict[int, dict[str, float]] = {}

    def maybe_evaluate(step: int) -> None:
        if (eval_every or recipe.eval.before_after) and accelerator.is_main_process:
            evals[step] = evaluate(engine, env, encode, recipe.eval.n, t.max_new_tokens)
            tracker.log(evals[step], step=step)

    if start_step == 0:
        maybe_evaluate(0)
    for step in range(start_step, t.max_steps):
        step_start = time.perf_counter()

        # 1. Rollout: this process's prompts (processes take interleaved slices of the stream).
        all_prompts = stream.take(P * world)
        examples = all_prompts[rank * P : (rank + 1) * P]
        prompt_ids = [encode(ex) for ex in examples]
        # Tool envs run whole episodes: the env answers each call, and its tokens stay out of the loss.
        completions = rollout(engine, env, examples, prompt_ids, G, t.max_new_tokens, t.temperature, t.top_p)
        gen_time = time.perf_counter() - step_start

        # 2. Reward: the rubric on each completion (a reward that raises scores 0 and is counted).
        reward_start = time.perf_counter()
        rows = [examples[c.prompt_index] for c in completions]
        scores = env.score_batch([c.output for c in completions], rows)
        rewards = torch.tensor([s.reward for s in scores], dtype=torch.float32)
        reward_time = time.perf_counter() - reward_start

        # 3. Reference log-probs (adapter disabled: the base model, no second copy in memory).
        batches = []
        for start in range(0, len(completions), mb):
            idx = list(range(start, min(start + mb, len(completions))))
            part = [completions[i] for i in idx]
            batch = make_batch(
                prompt_ids,
                [c.prompt_index for c in part],
                [c.token_ids for c in part],
                [c.logprobs for c in part],
                engine.pad_id,
                device,
                loss_masks=[c.loss_mask for c in part],
            )
            batches.append((idx, batch))
        ref_logps = {}
        if algorithm.needs_reference:
            with torch.no_grad(), policy.disable_adapter():
                for k, (_, batch) in enumerate(batches):
                    ref_logps[k], _ = forward(batch, temperature=t.temperature)

        # 4. Advantages: per sequence from the rewards (group baselines), or per token from the critic (PPO).
        critic_metrics: dict[str, float] = {}
        if critic is None:
            advantages = algorithm.advantages(rewards)
        else:
            advantages, critic_metrics = critic_advantages(algorithm, critic, batches, rewards, ref_logps)

        # 5. Update: num_iterations passes; micro-batches accumulate into one optimizer step each.
        totals = BatchTotals(
            sequences=len(completions),
            tokens=sum(sum(c.loss_mask) for c in completions),
            max_new_tokens=t.max_new_tokens,
        )
        # With one process and no KL term, zero-advantage sequences add nothing to the gradient: a
        # micro-batch made only of them skips its forward/backward (the normalizers above still count its
        # sequences, so the gradient is unchanged). Groups are laid out contiguously, so a micro-batch of
        # whole groups whose rewards all tie is skipped.
        skippable = SKIP_TIED_MICRO_BATCHES and world == 1 and not algorithm.needs_reference and critic is None
        work = [
            (k, idx, batch)
            for k, (idx, batch) in enumerate(batches)
            if not skippable or bool(advantages[idx].abs().gt(0).any())
        ]
        # PPO's value warm-up: the critic learns from the frozen policy's samples first.
        policy_frozen = critic is not None and step < critic.warmup_steps
        stats: dict[str, list[float]] = {"loss": [], "entropy": [], "ratio": [], "ratio_max": []}
        grad_norm = critic_grad_norm = 0.0
        forward.train()
        for iteration in range(a.num_iterations):
            if not work:  # all skipped: AdamW still steps on the zero gradient, as it would had they run
                for p in trainable:
                    p.grad = torch.zeros_like(p)
            for j, (k, idx, batch) in enumerate(work):
                with ExitStack() as no_sync:
                    if j < len(work) - 1:  # gradients are all-reduced on the last micro-batch only
                        no_sync.enter_context(accelerator.no_sync(forward))
                        if critic is not None and not critic.shared:
                            no_sync.enter_context(accelerator.no_sync(critic.module))
                    extra: dict[str, Any] = {}
                    if critic is None:
                        logp, entropy = forward(batch, temperature=t.temperature)
                        adv = advantages[idx].to(device)
                    else:
                        if critic.shared:
                            logp, entropy, values = forward(
                                batch, mode="logprobs_values", temperature=t.temperature, detach_values=policy_frozen
                            )
                        else:
                            logp, entropy = forward(batch, temperature=t.temperature)
                            values = critic.module(batch, mode="values")
                        adv = batch["advantages"]
                        extra = {
                            "values": values,
                            "old_values": batch["old_values"],
                            "returns": batch["returns"],
                            "policy_weight": 0.0 if policy_frozen else 1.0,
                        }
                    loss, st = algorithm.loss(
                        logp, batch["old_logp"], ref_logps.get(k), adv, batch["loss_mask"], totals, **extra
                    )
                    accelerator.backward(loss)
                m = batch["loss_mask"]
                stats["loss"].append(loss.item())
                for key, value in st.items():  # per-token statistics: masked means; scalars: batch shares
                    if value.dim():
                        value = float((value * m).sum() / m.sum().clamp(min=1))
                    else:
                        value, key = float(value) * len(work), f"{key}:share"
                    stats.setdefault(key, []).append(value)
                stats["entropy"].append(float((entropy * m).sum() / m.sum().clamp(min=1)))
                if iteration == 0:  # before this step's update: training vs sampling log-probs of the same policy
                    ratio = torch.exp(logp.detach() - batch["old_logp"])[m > 0]
                    if ratio.numel():
                        stats["ratio"].append(float(ratio.mean()))
                        stats["ratio_max"].append(float(ratio.max()))
            if work and critic is not None:
                critic_grad_norm = float(accelerator.clip_grad_norm_(critic.params, t.max_grad_norm))
                critic.optimizer.step()
                critic.optimizer.zero_grad(set_to_none=True)
            if not policy_frozen:
                grad_norm = float(accelerator.clip_grad_norm_(trainable, t.max_grad_norm))
                optimizer.step()
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if not policy_frozen:
            engine.sync_weights(policy)  # the next rollout (and in-loop eval) samples from the updated policy
        step_time = time.perf_counter() - step_start

        # 6. Log: gathered across processes, namespaced keys.
        all_rewards = accelerator.gather(rewards.to(device)).cpu()
        lengths = torch.tensor([sum(c.loss_mask) for c in completions], dtype=torch.float32)
        all_lengths = accelerator.gather(lengths.to(device)).cpu()
        metrics: dict[str, Any] = {
            "reward": float(all_rewards.mean()),
            "reward_std": float(all_rewards.std()) if all_rewards.numel() > 1 else 0.0,
            "completions/mean_length": float(all_lengths.mean()),
            "completions/clipped_ratio": mean([0.0 if c.finished else 1.0 for c in completions]),
            "losses/policy": mean(stats["loss"]) * len(work) if work else 0.0,
            "losses/clip_fraction": mean(stats.get("clipped", [])),
            "losses/entropy": mean(stats["entropy"]),
            "losses/grad_norm": grad_norm,
            "charts/learning_rate": scheduler.get_last_lr()[0],
            "charts/step_time": step_time,
            "charts/generation_time": gen_time,
            "charts/reward_time": reward_time,
            "charts/tokens_per_s": float(all_lengths.sum()) / step_time,
            "charts/samples_per_s": len(completions) * world / step_time,
            "charts/skipped_micro_batches": float(len(batches) - len(work)),
        }
        if G > 1:
            metrics["charts/zero_advantage_groups"] = float((rewards.view(-1, G).std(1) == 0).float().mean())
        if stats["ratio"]:  # training forward vs sampler on the same weights: ~1 unless their numerics drift
            metrics["ratio/mean"], metrics["ratio/max"] = mean(stats["ratio"]), max(stats["ratio_max"])
        if stats.get("kl"):
            metrics["losses/kl"] = mean(stats["kl"])
        for key in sorted(set(stats) - {"loss", "clipped", "kl", "entropy", "ratio", "ratio_max"}):
            metrics[f"losses/{key.removesuffix(':share')}"] = mean(stats[key])
        if critic is not None:
            metrics.update(critic_metrics)
            metrics["losses/critic_grad_norm"] = critic_grad_norm
            metrics["charts/policy_frozen"] = float(policy_frozen)
        if multi_turn:
            states = [c.state for c in completions]
            calls = sum(st.tools.calls for st in states)
            metrics["tools/turns_per_episode"] = mean([st.turns for st in states])
            metrics["tools/calls_per_episode"] = calls / len(states)
            metrics["tools/error_rate"] = sum(st.tools.errors for st in states) / max(calls, 1)
            metrics["tools/env_tokens"] = float(sum(len(c.loss_mask) - sum(c.loss_mask) for c in completions))
            metrics["tools/model_tokens"] = float(sum(sum(c.loss_mask) for c in completions))
            for name in env.toolbox.tools:
                metrics[f"tools/calls/{name}"] = float(sum(st.tools.per_tool.get(name, 0) for st in states))
        for name in rubric.names:
            vals = [s.rewards[name] for s in scores if s.rewards[name] is not None]
            metrics[f"rewards/{name}/mean"] = mean(vals)
            metrics[f"rewards/{name}/std"] = float(np.std(vals)) if vals else 0.0
        if "correct" in rubric.names:
            metrics["accuracy"] = mean([1.0 if (s.rewards["correct"] or 0) >= 1.0 else 0.0 for s in scores])
        metrics["rewards/errors"] = float(sum(len(s.errors) for s in scores))
        history.append(metrics["reward"])
        tracker.log(metrics, step=step + 1)
        every = recipe.logging.completions_every
        if every and (step + 1) % every == 0:
            tracker.log_completions(
                [
                    {
                        "prompt": rows[i].prompt[-1]["content"],
                        "completion": "\n".join(f"[{m['role']}] {m['content']}" for m in c.messages)
                        if multi_turn
                        else c.text,
                        **{f"reward/{k}": v for k, v in scores[i].rewards.items()},
                        "reward": scores[i].reward,
                        "advantage": float(advantages[i]),
                    }
                    for i, c in enumerate(completions)
                ],
                step=step + 1,
            )
        bar.update(1)
        bar.set_postfix(reward=f"{metrics['reward']:.3f}", step_s=f"{step_time:.1f}")
        if not (progress and accelerator.is_main_process) and accelerator.is_main_process:
            log.info("step %d reward %.3f step_time %.1fs", step + 1, metrics["reward"], step_time)

        if (eval_every and (step + 1) % eval_every == 0) or step + 1 == t.max_steps:
            maybe_evaluate(step + 1)

        # 7. Checkpoint.
        if t.save_every and (step + 1) % t.save_every == 0 and step + 1 < t.max_steps:
            checkpoint.save(
                run_dir,
                step + 1,
                model=policy,
                optimizer=optimizer,
                scheduler=scheduler,
                generator=generator,
                state={"position": stream.position, "reward_history": history},
                accelerator=accelerator,
                extras=extras,
            )
    bar.close()

    final = checkpoint.save(
        run_dir,
        t.max_steps,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        generator=generator,
        state={"position": stream.position, "reward_history": history},
        accelerator=accelerator,
        extras=extras,
    )
    digest = params_digest(policy, *([accelerator.unwrap_model(extras["critic"])] if extras else []))
    (run_dir / f"final-params-rank{rank}.sha256").write_text(digest)
    k = min(5, max(len(history) // 2, 1))
    summary = {
        "steps": t.max_steps,
        "wall_time_s": round(time.perf_counter() - run_start, 1),
        "reward_first": mean(history[:k]),
        "reward_last": mean(history[-k:]),
        "window": k,
        "checkpoint": str(final),
    }
    if 0 in evals and t.max_steps in evals:  # before and after training, on the same test examples
        before, after = evals[0], evals[t.max_steps]
        summary["eval"] = {k: {"before": before[k], "after": after[k], "gain": after[k] - before[k]} for k in before}
    sync = tracker.finish(summary)
    if sync:
        summary["wandb_sync"] = sync
    return RunResult(run_dir, t.max_steps, history, summary, accelerator.is_main_process)
