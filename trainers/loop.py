"""The training loop every algorithm shares: rollout, reward, advantage, update, log, checkpoint.

Reads top to bottom: ``train`` sets a run up (``set_up`` and its helpers), then ``train_step`` runs the
numbered steps. What differs between algorithms (advantages, the loss, PPO's critic) sits behind the
contract in ``algorithm.py``; this file owns everything else, once.
"""

from __future__ import annotations

import hashlib
import json
import logging
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
from rlhub.evaluate import mean
from rlhub.generation import Sampling, make_engine
from rlhub.generation.rollout import encode_prompt, rollout
from rlhub.rewards import Rubric, get_reward
from rlhub.trainers import checkpoint, curriculum, sampling, sft, turn_credit
from rlhub.trainers.algorithm import ALGORITHMS, Algorithm, load_algorithm  # noqa: F401  (ALGORITHMS: public)
from rlhub.trainers.async_rollout import AsyncRollout, check_supported
from rlhub.trainers.curriculum import Curriculum
from rlhub.trainers.forward import MicroBatch, make_batch
from rlhub.trainers.losses import BatchTotals
from rlhub.trainers.metrics import (
    UpdateStats,
    completion_rows,
    reward_metrics,
    rollout_metrics,
    tool_metrics,
)
from rlhub.trainers.model import build_policy, with_concrete_dtype
from rlhub.trainers.monitor import HackWatch
from rlhub.trainers.recipe import Recipe
from rlhub.trainers.tracking import Tracker, git_commit, git_label

log = logging.getLogger(__name__)

# Skip micro-batches whose sequences all have zero advantage (see step 5). A switch so tests can force
# every micro-batch to run and check that skipping leaves the update unchanged.
SKIP_TIED_MICRO_BATCHES = True


# --- helpers ----------------------------------------------------------------------------------------
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

    def state_dict(self) -> dict:
        """What a checkpoint stores to resume the stream (JSON)."""
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]


def prompt_stream(recipe: Recipe, env, served: bool) -> PromptStream | Curriculum:
    """The training prompts in order: one stream, or one per difficulty level under ``training.curriculum``."""
    t, c = recipe.training, recipe.training.curriculum
    if c is None:
        examples = env.examples("train", seed=t.seed)
        if not examples:
            raise RLHubError(f"{recipe.env.id} has no training examples")
        return PromptStream(examples, seed=t.seed)
    levels = curriculum.check_supported(recipe, env, served)
    streams = {}
    for level in levels:
        level_env = rlhub.make(recipe.env.id, **{**recipe.env.config, curriculum.LEVEL_FIELD: level})
        streams[level] = PromptStream(level_env.examples("train", seed=t.seed), seed=t.seed)
    return Curriculum(streams, band=c.band, ema_weight=c.ema_weight, explore=c.explore, seed=t.seed)


def params_digest(*models) -> str:
    h = hashlib.sha256()
    for name, p in sorted((f"{i}.{n}", p) for i, m in enumerate(models) for n, p in m.named_parameters()):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def evaluate(engine, env, env_id: str, encode, n: int, max_new_tokens: int) -> dict[str, float]:
    """Greedy completions on ``n`` test examples, scored by the env's (training) rubric and counted as
    ``rlhub eval`` counts them (pass@1: the first reward function, its correctness check, scores 1.0)."""
    from rlhub.evaluate import summarize

    examples = env.examples("test", limit=n)
    greedy = Sampling(max_new_tokens=max_new_tokens, temperature=0.0)
    samples = rollout(engine, env, examples, [encode(ex) for ex in examples], 1, greedy)
    rows = [examples[c.prompt_index] for c in samples]
    scores = env.score_batch([c.output for c in samples], rows)
    result = summarize(env, env_id, "policy", len(examples), 1, samples, rows, scores)
    metrics = {"eval/reward": result.mean_reward, "eval/pass@1": result.pass_at_1}
    metrics.update({f"eval/{name}": value for name, value in result.rewards.items()})
    return metrics


# --- set-up -----------------------------------------------------------------------------------------
@dataclass
class RunResult:
    run_dir: Path
    steps: int
    rewards: list[float]
    summary: dict[str, Any]
    is_main_process: bool = True


@dataclass(kw_only=True)
class Run:
    """A run, set up: what the steps read (recipe, env, models, engine) and update (stream, history)."""

    recipe: Recipe
    accelerator: Any
    run_dir: Path
    env: Any
    algorithm: Algorithm
    policy: Any  # the (peft) model being trained, unwrapped
    forward: Any  # its training forward module, as accelerate prepared it
    trainable: list
    optimizer: Any
    scheduler: Any
    generator: torch.Generator
    engine: Any
    sampling: Sampling  # how the engine samples training completions (the recipe's training settings)
    stream: PromptStream | Curriculum  # training.curriculum: one stream per difficulty level
    tracker: Tracker
    tokenizer: Any
    watch: HackWatch
    rollouts: AsyncRollout | None = None  # training.max_off_policy_steps >= 1: a worker samples ahead
    start_step: int = 0
    history: list[float] = field(default_factory=list)
    precision: dict[str, Any] = field(default_factory=dict)  # what model.dtype resolved to, and why
    _prompts: dict[str, list[int]] = field(default_factory=dict)

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def all_sum(self, values: list[float]) -> list[float]:
        """``values`` summed over the processes (a collective op: every process must call it)."""
        summed = self.accelerator.reduce(torch.tensor(values, device=self.accelerator.device), reduction="sum")
        return summed.tolist()

    def encode(self, example) -> list[int]:
        """The example's prompt token ids (chat template applied), cached by example id."""
        if example.id not in self._prompts:
            self._prompts[example.id] = encode_prompt(self.tokenizer, self.env, example)
        return self._prompts[example.id]

    def save(self, step: int) -> Path:
        return checkpoint.save(
            self.run_dir,
            step,
            model=self.policy,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            generator=self.generator,
            state={**self.stream.state_dict(), "reward_history": self.history, "hack_watch": self.watch.state_dict()},
            accelerator=self.accelerator,
            extras=self.algorithm.checkpoint_state(),
        )


def open_run_dir(recipe: Recipe, recipe_name: str, resume: bool, overwrite: bool, accelerator):
    """The run's name, its folder (created fresh, or reused with --resume) and its last checkpoint."""
    run_name = recipe.logging.run_name or f"{recipe_name}-{recipe.env.id}"
    run_dir = Path(recipe.training.output_dir.format(run_name=run_name))
    last_ckpt = checkpoint.latest(run_dir) if run_dir.exists() else None
    if resume and last_ckpt is None:
        raise RLHubError(f"--resume: {run_dir} has no checkpoint yet; run without --resume to start it")
    if not resume and run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise RLHubError(f"{run_dir} already holds a run; pass --resume to continue it or --overwrite to replace it")
    if overwrite and not resume and accelerator.is_main_process and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    accelerator.wait_for_everyone()
    return run_name, run_dir, last_ckpt


def set_up(recipe: Recipe, env_url: str | None, recipe_name: str, resume: bool, overwrite: bool) -> Run:
    from accelerate import Accelerator

    t = recipe.training
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    accelerator = Accelerator(mixed_precision=t.mixed_precision, cpu=not torch.cuda.is_available())
    # model.dtype auto: bfloat16 where it makes the step faster (measured in a child process, so no RNG moves).
    recipe, precision = with_concrete_dtype(recipe, accelerator.device)
    rank = accelerator.process_index
    run_name, run_dir, last_ckpt = open_run_dir(recipe, recipe_name, resume, overwrite, accelerator)

    # Environment, reward and algorithm.
    spec = get_spec(recipe.env.id)
    env = rlhub.make(env_url) if env_url else rlhub.make(recipe.env.id, **recipe.env.config)
    env.rubric = build_rubric(env, recipe.rewards)
    algorithm = load_algorithm(recipe)
    if recipe.algorithm.credit == "turn" and not env.multi_turn:
        raise ConfigError(
            f"algorithm.credit=turn needs a multi-turn env, and {recipe.env.id} answers in one turn (its episode "
            "reward is its only turn's); set algorithm.credit=episode"
        )
    if algorithm.needs_reference and not recipe.lora.enabled:
        raise ConfigError(
            "algorithm.beta > 0 needs the reference policy, which rlhub takes from the base model under the LoRA "
            "adapter; set lora.enabled=true or algorithm.beta=0"
        )
    sampling.check_supported(recipe)
    stream = prompt_stream(recipe, env, served=env_url is not None)

    # Model, LoRA, optimizer; sampling: the policy itself (hf), or vLLM synced with it (generation.backend).
    generator = seed_everything(t.seed + rank)
    built = build_policy(recipe, algorithm, accelerator)
    policy = built.model
    if accelerator.device.type != "cpu":
        generator = torch.Generator(device=accelerator.device).manual_seed(t.seed + rank)
    engine = make_engine(
        recipe.generation, policy, built.tokenizer, generator, seed=t.seed + rank, dtype=recipe.model.dtype
    )
    start_step, history = 0, []
    if resume:
        state = checkpoint.load(
            last_ckpt,
            model=policy,
            optimizer=built.optimizer,
            scheduler=built.scheduler,
            generator=generator,
            accelerator=accelerator,
            extras=algorithm.checkpoint_state(),
        )
        stream.load_state_dict(state)
        start_step, history = state["step"], state["reward_history"]
        engine.sync_weights(policy)

    config = {
        **recipe.model_dump(),
        "env_spec": {**spec.to_dict(), "code_hash": spec.code_hash()},
        "git_commit": git_commit(),
        "precision": precision.to_dict(),
        "world_size": accelerator.num_processes,
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
    watch = HackWatch(recipe.monitor, env, alert=tracker.alert)
    if resume:
        watch.load_state_dict(state.get("hack_watch"))
    run = Run(
        recipe=recipe,
        accelerator=accelerator,
        run_dir=run_dir,
        env=env,
        algorithm=algorithm,
        policy=policy,
        forward=built.forward,
        trainable=built.trainable,
        optimizer=built.optimizer,
        scheduler=built.scheduler,
        generator=generator,
        engine=engine,
        sampling=Sampling(max_new_tokens=t.max_new_tokens, temperature=t.temperature, top_p=t.top_p),
        stream=stream,
        tracker=tracker,
        tokenizer=built.tokenizer,
        watch=watch,
        start_step=start_step,
        history=history,
        precision=precision.to_dict(),
    )
    if recipe.sft is not None and not resume:  # a cold start: fine-tune the policy first (trainers/sft.py)
        sft.cold_start(run)
    if t.max_off_policy_steps:  # async: a worker process samples ahead (trainers/async_rollout.py)
        check_supported(recipe, algorithm, env.multi_turn, accelerator.num_processes)
        run.rollouts = AsyncRollout(recipe, policy, stream, run.encode, sampling=run.sampling, version=start_step)
    return run


# --- the run ----------------------------------------------------------------------------------------
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
    from tqdm.auto import tqdm

    run = set_up(recipe, env_url, recipe_name, resume, overwrite)
    t, every = recipe.training, recipe.logging.completions_every
    show = progress and run.is_main
    bar = tqdm(total=t.max_steps, initial=run.start_step, disable=not show, desc="train", dynamic_ncols=True)
    run_start = time.perf_counter()
    evals: dict[int, dict[str, float]] = {}

    def maybe_evaluate(step: int) -> None:
        if (recipe.eval.every or recipe.eval.before_after) and run.is_main:
            if run.rollouts is not None:  # async: only the worker's engine follows each step; catch this one up
                run.engine.sync_weights(run.policy)
            evals[step] = evaluate(run.engine, run.env, recipe.env.id, run.encode, recipe.eval.n, t.max_new_tokens)
            run.tracker.log({**evals[step], **run.watch.eval(step, evals[step])}, step=step)

    if run.start_step == 0:
        maybe_evaluate(0)
    for step in range(run.start_step, t.max_steps):
        metrics, table = train_step(run, step)
        run.history.append(metrics["reward"])
        run.tracker.log(metrics, step=step + 1)
        if every and (step + 1) % every == 0:
            run.tracker.log_completions(table(), step=step + 1)
        bar.update(1)
        bar.set_postfix(reward=f"{metrics['reward']:.3f}", step_s=f"{metrics['charts/step_time']:.1f}")
        if not show and run.is_main:
            log.info("step %d reward %.3f step_time %.1fs", step + 1, metrics["reward"], metrics["charts/step_time"])
        if (recipe.eval.every and (step + 1) % recipe.eval.every == 0) or step + 1 == t.max_steps:
            maybe_evaluate(step + 1)
        # 7. Checkpoint (the final one below, after the loop).
        if t.save_every and (step + 1) % t.save_every == 0 and step + 1 < t.max_steps:
            run.save(step + 1)
    bar.close()
    if run.rollouts is not None:  # async: stop the generation worker
        run.rollouts.close()
    return finish(run, evals, time.perf_counter() - run_start)


@dataclass
class StepTimer:
    """Seconds a step spent sampling and scoring, summed over its draws."""

    generation: float = 0.0
    reward: float = 0.0


def draw(run: Run, timer: StepTimer) -> sampling.Groups:
    """Steps 1-2 for this process's slice of the next ``prompts_per_step x processes`` prompts of the stream."""
    t, env, G = run.recipe.training, run.env, run.recipe.algorithm.group_size
    start = time.perf_counter()
    # 1. Rollout: this process's prompts (processes take interleaved slices of the stream).
    P, rank = t.prompts_per_step, run.accelerator.process_index
    if run.rollouts is not None:  # async: the batch the worker sampled ahead, at most k versions old
        examples, prompt_ids, completions = run.rollouts.next_batch()
    else:
        examples = run.stream.take(P * run.world)[rank * P : (rank + 1) * P]
        prompt_ids = [run.encode(ex) for ex in examples]
        # Tool envs run whole episodes: the env answers each call, and its tokens stay out of the loss.
        per_turn = run.recipe.algorithm.credit == "turn"  # episodes also record each turn's reward
        completions = rollout(run.engine, env, examples, prompt_ids, G, run.sampling, turn_rewards=per_turn)
    reward_start = time.perf_counter()
    timer.generation += reward_start - start

    # 2. Reward: the rubric on each completion (a reward that raises scores 0 and is counted).
    rows = [examples[c.prompt_index] for c in completions]
    scores = env.score_batch([c.output for c in completions], rows)
    rewards = torch.tensor([s.reward for s in scores], dtype=torch.float32)
    if isinstance(run.stream, Curriculum):  # the levels' pass rates, counted as rlhub eval counts pass@1
        first = env.rubric.names[0]
        run.stream.observe(rows, [(s.rewards.get(first) or 0.0) >= 1.0 for s in scores], run.all_sum)
    timer.reward += time.perf_counter() - reward_start
    return sampling.Groups(examples, prompt_ids, completions, scores, rewards)


def train_step(run: Run, step: int):
    """Steps 1-6 of one training step: returns its metrics and a callable building its completions table."""
    recipe, env, algorithm, accelerator = run.recipe, run.env, run.algorithm, run.accelerator
    t, G, device = recipe.training, recipe.algorithm.group_size, accelerator.device
    step_start = time.perf_counter()

    # 1-2. Rollout and reward (see draw); dynamic sampling draws again while groups tie (trainers/sampling.py).
    timer = StepTimer()
    dynamic = recipe.algorithm.dynamic_sampling
    if dynamic is None:
        groups, sampling_metrics = draw(run, timer), {}
    else:
        groups, sampling_metrics = sampling.fill(
            lambda: draw(run, timer),
            size=t.prompts_per_step,
            group_size=G,
            max_draws=dynamic.max_draws,
            all_sum=run.all_sum,
        )
    prompt_ids, completions, scores, rewards = groups.prompt_ids, groups.completions, groups.scores, groups.rewards
    rows = [groups.examples[c.prompt_index] for c in completions]
    gen_time, reward_time = timer.generation, timer.reward

    # 3. Micro-batches, and reference log-probs (adapter disabled: the base model, no second copy in memory).
    batches = micro_batches(prompt_ids, completions, t.micro_batch_size, run.engine.pad_id, device)
    ref_logps = {}
    if algorithm.needs_reference:
        with torch.no_grad(), run.policy.disable_adapter():
            for k, (_, batch) in enumerate(batches):
                ref_logps[k], _ = run.forward(batch, temperature=t.temperature)

    # 4. Advantages: per sequence from the rewards (group baselines), or per token from PPO's critic or,
    # under algorithm.credit=turn, from each turn's return-to-go (trainers/turn_credit.py).
    frozen = algorithm.policy_frozen(step)
    if recipe.algorithm.credit == "turn":
        advantages, algorithm_metrics = turn_credit.assign_turn_advantages(completions, rewards, G, batches)
    else:
        advantages, algorithm_metrics = algorithm.assign_advantages(rewards, batches, ref_logps)

    # 5. Update: num_iterations passes; micro-batches accumulate into one optimizer step each.
    totals = BatchTotals(
        sequences=len(completions), tokens=sum(sum(c.loss_mask) for c in completions), max_new_tokens=t.max_new_tokens
    )
    # With one process and no KL term, zero-advantage sequences add nothing to the gradient: a
    # micro-batch made only of them skips its forward/backward (the normalizers above still count its
    # sequences, so the gradient is unchanged). Groups are laid out contiguously, so a micro-batch of
    # whole groups whose rewards all tie is skipped (with per-token advantages: when every token's is 0).
    skippable = SKIP_TIED_MICRO_BATCHES and run.world == 1 and algorithm.skips_tied()
    work = [(k, idx, b) for k, (idx, b) in enumerate(batches) if not skippable or bool(b.advantages.abs().gt(0).any())]
    update_metrics = update(run, work, ref_logps, totals, frozen)
    if run.rollouts is not None:  # async: the worker samples its next batch with this version
        run.rollouts.push(run.policy)
    elif not frozen:
        run.engine.sync_weights(run.policy)  # the next rollout (and in-loop eval) samples from the updated policy
    step_time = time.perf_counter() - step_start

    # 6. Log: gathered across processes, namespaced keys.
    all_rewards = accelerator.gather(rewards.to(device)).cpu()
    lengths = torch.tensor([sum(c.loss_mask) for c in completions], dtype=torch.float32)
    all_lengths = accelerator.gather(lengths.to(device)).cpu()
    metrics: dict[str, Any] = {
        **rollout_metrics(all_rewards, all_lengths, completions, G, rewards),
        **update_metrics,
        "charts/learning_rate": run.scheduler.get_last_lr()[0],
        "charts/step_time": step_time,
        "charts/generation_time": gen_time,
        "charts/reward_time": reward_time,
        "charts/tokens_per_s": float(all_lengths.sum()) / step_time,
        "charts/samples_per_s": len(completions) * run.world / step_time,
        "charts/skipped_micro_batches": float(len(batches) - len(work)),
        **algorithm_metrics,
        **sampling_metrics,
        **(run.stream.metrics() if isinstance(run.stream, Curriculum) else {}),
        **(run.rollouts.metrics() if run.rollouts is not None else {}),  # async: staleness, drops, overlap
    }
    multi_turn = env.multi_turn
    if multi_turn:
        metrics.update(tool_metrics(completions, env.toolbox))
    metrics.update(reward_metrics(scores, env.rubric.names))
    # Hack watch: signals that precede a reward-hacked run (warned once each; trainers/monitor.py).
    metrics.update(run.watch.step(metrics, [c.output for c in completions], rows, scores))
    return metrics, lambda: completion_rows(rows, completions, scores, advantages, multi_turn)


def micro_batches(prompt_ids, completions, size: int, pad_id: int, device) -> list[tuple[list[int], MicroBatch]]:
    """The step's completions as padded tensors, ``size`` at a time: (indices into completions, batch)."""
    batches = []
    for start in range(0, len(completions), size):
        idx = list(range(start, min(start + size, len(completions))))
        part = [completions[i] for i in idx]
        batch = make_batch(
            prompt_ids,
            [c.prompt_index for c in part],
            [c.token_ids for c in part],
            [c.logprobs for c in part],
            pad_id,
            device,
            loss_masks=[c.loss_mask for c in part],
        )
        batches.append((idx, batch))
    return batches


def update(run: Run, work, ref_logps: dict, totals: BatchTotals, frozen: bool) -> dict[str, float]:
    """Step 5: ``num_iterations`` optimizer steps over the micro-batches in ``work``; returns their metrics."""
    t, algorithm, accelerator, forward = run.recipe.training, run.algorithm, run.accelerator, run.forward
    stats, grad_norm, own_metrics = UpdateStats(), 0.0, {}
    # async: clip against the pre-update policy and reweight stale samples (truncated importance sampling).
    correction = run.rollouts.correction if run.rollouts is not None else None
    forward.train()
    for iteration in range(run.recipe.algorithm.num_iterations):
        if not work:  # all skipped: AdamW still steps on the zero gradient, as it would had they run
            for p in run.trainable:
                p.grad = torch.zeros_like(p)
        for j, (k, _, batch) in enumerate(work):
            with ExitStack() as no_sync:
                if j < len(work) - 1:  # gradients are all-reduced on the last micro-batch only
                    for module in (forward, *algorithm.no_sync_modules()):
                        no_sync.enter_context(accelerator.no_sync(module))
                loss, st, logp, entropy = algorithm.micro_batch_loss(
                    forward, batch, ref_logps.get(k), totals, t.temperature, frozen, correction
                )
                accelerator.backward(loss)
            stats.add(loss, st, logp, entropy, batch, len(work), first_pass=iteration == 0)
        own_metrics.update(algorithm.after_backward(accelerator, t.max_grad_norm, bool(work)))
        if not frozen:
            grad_norm = float(accelerator.clip_grad_norm_(run.trainable, t.max_grad_norm))
            run.optimizer.step()
            run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return {**stats.metrics(len(work)), "losses/grad_norm": grad_norm, **own_metrics}


def finish(run: Run, evals: dict[int, dict[str, float]], wall_time: float) -> RunResult:
    """The final checkpoint, the parameters' digest, and the run's summary (printed and sent to W&B)."""
    t, history, accelerator = run.recipe.training, run.history, run.accelerator
    final = run.save(t.max_steps)
    extra = run.algorithm.checkpoint_state().get("critic")
    digest = params_digest(run.policy, *([accelerator.unwrap_model(extra)] if extra is not None else []))
    (run.run_dir / f"final-params-rank{accelerator.process_index}.sha256").write_text(digest)
    k = min(5, max(len(history) // 2, 1))
    summary = {
        "steps": t.max_steps,
        "wall_time_s": round(wall_time, 1),
        "reward_first": mean(history[:k]),
        "reward_last": mean(history[-k:]),
        "window": k,
        "checkpoint": str(final),
        "precision": run.precision,
        "commit": git_label(),  # the code that trained, "+dirty" if edited (a card names it: record-run)
    }
    if run.watch.warned:
        summary["hack_watch"] = ", ".join(sorted(run.watch.warned))
    if 0 in evals and t.max_steps in evals:  # before and after training, on the same test examples
        before, after = evals[0], evals[t.max_steps]
        summary["eval"] = {k: {"before": before[k], "after": after[k], "gain": after[k] - before[k]} for k in before}
    sync = run.tracker.finish(summary)
    if sync:
        summary["wandb_sync"] = sync
    return RunResult(run.run_dir, t.max_steps, history, summary, accelerator.is_main_process)
