"""Asynchronous off-policy rollouts: a generation worker samples ahead while the trainer updates.

With k = ``training.max_off_policy_steps`` >= 1 the loop stops waiting for each batch to be sampled with
the newest weights. A worker process (its own copy of the policy and its own torch threads; or a client of
a ``vllm serve`` endpoint) samples the next batches while the trainer runs its update:

- the trainer keeps k + 1 batches of prompts queued ahead of the one it trains on, and after each
  optimizer step sends the new trainable weights (policy version s + 1) down the same FIFO queue, so the
  worker samples batch b with version max(0, b - k) exactly. Staleness is min(step, k), never more, and
  the schedule does not depend on timing: with a sampling seed per batch, a run is reproducible;
- each batch comes back tagged with the version that sampled it; one older than k versions (which this
  schedule never produces, but a lagging engine could) is dropped, counted, and replaced by fresh prompts;
- the loss clips the ratio against the policy before this step's update and weights each token by
  truncated importance sampling, min(pi_before / pi_sampler, C) with C = ``training.tis_cap``
  (Yao et al. 2025, "Your efficient RL framework secretly brings you off-policy RL training"; AReaL's
  decoupled PPO objective);
- the data position the checkpoint stores counts only batches trained on (or dropped): batches in flight
  when a run stops are sampled again when it resumes, none lost and none twice.

What the loop calls: :func:`check_supported` and :class:`AsyncRollout` once before the first step,
:meth:`~AsyncRollout.next_batch` at the rollout step, :meth:`~AsyncRollout.correction` in the loss,
:meth:`~AsyncRollout.push` after the optimizer step, :meth:`~AsyncRollout.metrics` when logging and
:meth:`~AsyncRollout.close` at the end. The worker holds a second copy of the model (CPU: give each process
half the cores with ``training.num_threads``).
"""

from __future__ import annotations

import copy
import inspect
import logging
import multiprocessing
import queue
import signal
import sys
import time
import traceback
from collections import deque

import torch

from rlhub.errors import ConfigError, RLHubError
from rlhub.generation import Sampling
from rlhub.resolve import resolve
from rlhub.trainers.forward import MicroBatch
from rlhub.trainers.recipe import Recipe

log = logging.getLogger(__name__)

# What the worker samples with: ``module:function`` taking the recipe and returning (engine, policy copy).
# A module-level name (not an argument of the loop) so a test can slow the worker down with a scripted engine.
WORKER_ENGINE = "rlhub.trainers.async_rollout:policy_engine"


def policy_engine(recipe: Recipe):
    """The worker's sampler: its own copy of the policy, sampled by the recipe's generation backend.

    Returns:
        ``(engine, policy)``: the worker copies each pushed version into ``policy``'s trainable weights,
        then calls ``engine.sync_weights(policy)`` (a no-op for ``hf``, an adapter load for ``vllm serve``).
    """
    from rlhub.generation import make_engine
    from rlhub.trainers.model import load_trainable

    policy, tokenizer = load_trainable(recipe.model.name, recipe)
    t = recipe.training
    engine = make_engine(recipe.generation, policy, tokenizer, torch.Generator(), seed=t.seed, dtype=recipe.model.dtype)
    return engine, policy


def _worker(recipe: Recipe, sampling: Sampling, engine_target: str, commands, results) -> None:
    """The generation process: applies weight versions and samples batches, strictly in queue order."""
    # close() terminates the worker: exit like a normal interpreter (locks that libraries such as tqdm made
    # are released), without waiting for the trainer to read batches nobody will train on.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    results.cancel_join_thread()
    try:
        t = recipe.training
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        engine, policy = resolve(engine_target, what="generation worker engine")(recipe)
        params = dict(policy.named_parameters())
        version = -1
        while True:
            command = commands.get()
            if command[0] == "stop":
                return
            if command[0] == "weights":
                _, version, state = command
                with torch.no_grad():
                    for name, value in state.items():
                        params[name].copy_(value)
                engine.sync_weights(policy)
                continue
            _, batch_id, seed, prompt_ids = command
            generator = getattr(engine, "generator", None)
            if generator is not None:  # one seed per batch: the samples do not depend on what ran before
                generator.manual_seed(seed)
            start = time.monotonic()
            completions = engine.generate(prompt_ids, recipe.algorithm.group_size, sampling)
            results.put(("batch", batch_id, version, start, time.monotonic(), completions))
    except SystemExit:
        return
    except BaseException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        results.put(("error", f"{type(exc).__name__}: {first}", traceback.format_exc()))


def check_supported(recipe: Recipe, algorithm, multi_turn: bool, world: int) -> None:
    """Refuse, in one line each, the set-ups asynchronous rollouts do not cover yet."""
    if multi_turn:
        raise ConfigError(
            f"training.max_off_policy_steps >= 1 does not run multi-turn tool envs ({recipe.env.id}): their "
            "episodes need the env inside generation; set training.max_off_policy_steps=0"
        )
    if world > 1:
        raise ConfigError(
            f"training.max_off_policy_steps >= 1 runs with one training process (got {world}); "
            "launch one process or set training.max_off_policy_steps=0"
        )
    if "is_weight" not in inspect.signature(algorithm.loss).parameters:
        raise ConfigError(
            f"algorithm {recipe.algorithm.name!r}'s loss takes no is_weight (the importance weights of stale "
            "samples); add an is_weight=None argument to it or set training.max_off_policy_steps=0"
        )


def _overlap(span: tuple[float, float], others) -> float:
    """Seconds of ``span`` that fall inside the (disjoint) intervals ``others``."""
    return sum(max(0.0, min(span[1], b) - max(span[0], a)) for a, b in others)


class AsyncRollout:
    """Batches sampled ahead by a generation worker, at most ``k`` policy versions old.

    Args:
        recipe: The run's recipe (the worker rebuilds the policy and its engine from it).
        policy: The trained policy (unwrapped); its trainable weights are pushed to the worker.
        stream: The loop's prompt stream. Its ``position`` advances only as batches are consumed, so the
            checkpoint's position counts what was trained on; the worker's prompts come from a copy.
        encode: Example -> prompt token ids (the loop's cached encoder).
        sampling: How the worker samples (the run's ``training`` settings).
        version: The policy version the run starts at (the step it resumes from, 0 for a new run).
        lookahead: Batches queued ahead of the trainer; k + 1 (default) is the most that keeps every
            sample within k versions. A larger value makes batches stale, to be dropped.
    """

    def __init__(
        self,
        recipe: Recipe,
        policy,
        stream,
        encode,
        *,
        sampling: Sampling,
        version: int = 0,
        lookahead: int | None = None,
    ):
        t = recipe.training
        self.k = t.max_off_policy_steps
        self.cap = t.tis_cap
        self.prompts_per_step = t.prompts_per_step
        self.seed = t.seed
        self.lookahead = lookahead or self.k + 1
        self.stream = stream
        self.ahead = copy.copy(stream)
        self.encode = encode
        self.version = version
        self.inflight: deque[tuple[int, list[str]]] = deque()
        self.submitted = 0
        self.busy: deque[tuple[float, float]] = deque(maxlen=self.lookahead + 2)
        self.trained_since = time.monotonic()
        self._step: dict[str, float] = {}
        self._weights: list[torch.Tensor] = []
        context = multiprocessing.get_context("spawn")  # fork would copy the trainer's torch threads state
        self.commands, self.results = context.Queue(), context.Queue()
        self.process = context.Process(
            target=_worker,
            args=(recipe, sampling, WORKER_ENGINE, self.commands, self.results),
            name="rlhub-generation",
            daemon=True,  # ends with the trainer, also when the trainer fails
        )
        self.process.start()
        self._send_weights(policy)
        for _ in range(self.lookahead):
            self._submit()

    def _send_weights(self, policy) -> None:
        state = {n: p.detach().to("cpu", copy=True) for n, p in policy.named_parameters() if p.requires_grad}
        self.commands.put(("weights", self.version, state))

    def _submit(self) -> None:
        start = self.ahead.position
        examples = self.ahead.take(self.prompts_per_step)
        batch_id = self.submitted
        self.submitted += 1
        self.inflight.append((batch_id, [ex.id for ex in examples]))
        # The seed follows the batch's place in the prompt stream: a resumed run samples it the same way.
        seed = (self.seed * 1_000_003 + start) % 2**63
        self.commands.put(("generate", batch_id, seed, [self.encode(ex) for ex in examples]))

    def _receive(self):
        while True:
            try:
                message = self.results.get(timeout=1.0)
            except queue.Empty:
                if not self.process.is_alive():
                    raise RLHubError(
                        f"the generation worker exited (code {self.process.exitcode}); see its output above (a script "
                        "that calls train() must do so under `if __name__ == '__main__':`, which the worker re-imports)"
                    ) from None
                continue
            if message[0] == "error":
                log.error("generation worker:\n%s", message[2])
                raise RLHubError(f"the generation worker failed: {message[1]}")
            return message[1:]

    def next_batch(self):
        """This step's rollout: ``(examples, prompt_ids, completions)``, sampled at most k versions ago."""
        wait_start = time.monotonic()
        dropped = overlap = 0.0
        while True:
            batch_id, version, gen_start, gen_end, completions = self._receive()
            expected_id, ids = self.inflight.popleft()
            examples = self.stream.take(self.prompts_per_step)  # the submitted prompts, in submission order
            if batch_id != expected_id or [ex.id for ex in examples] != ids:
                raise RLHubError("the generation worker answered out of order; its queue is corrupt")
            overlap += _overlap((gen_start, gen_end), self.busy)
            staleness = self.version - version
            if staleness <= self.k:
                break
            dropped += len(completions)  # too old to learn from; fresh prompts take its place
            self._submit()
        self.trained_since = time.monotonic()
        self._step = {
            "async/staleness_mean": float(staleness),
            "async/staleness_max": float(staleness),
            "async/dropped": dropped,
            "async/overlap_s": overlap,
            "async/wait_s": self.trained_since - wait_start,
            "async/generation_s": gen_end - gen_start,
        }
        self._weights = []
        return examples, [self.encode(ex) for ex in examples], completions

    def correction(self, batch: MicroBatch, logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The "old" log-probs to clip against and the per-token importance weights of a micro-batch.

        The clip is taken against the policy before this step's update (recorded at the first pass over
        the micro-batch), and the gap between that policy and the stale sampler is corrected by
        truncated importance sampling: weight = min(pi_before / pi_sampler, tis_cap), without gradient.
        """
        if batch.before_logp is None:
            batch.before_logp = logp.detach()
        weight = torch.exp(batch.before_logp - batch.old_logp).clamp(max=self.cap)
        self._weights.append(weight[batch.loss_mask > 0])
        return batch.before_logp, weight

    def push(self, policy) -> None:
        """After the optimizer step: send the new version to the worker and queue one more batch behind it."""
        self.version += 1
        self._send_weights(policy)
        self._submit()
        self.busy.append((self.trained_since, time.monotonic()))

    def metrics(self) -> dict[str, float]:
        """This step's ``async/*`` metrics: staleness, drops, overlap, waits and importance weights."""
        out = dict(self._step)
        if self._weights:
            weights = torch.cat(self._weights)
            if weights.numel():
                out["async/is_weight_mean"] = float(weights.mean())
                out["async/is_truncated"] = float((weights >= self.cap).float().mean())
        return out

    def close(self) -> None:
        """Stop the worker (batches it sampled ahead and nobody will train on are discarded)."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=30)
        if self.process.is_alive():  # stuck in native code that never returns to Python
            self.process.kill()
            self.process.join()
        for q in (self.commands, self.results):
            q.cancel_join_thread()
            q.close()
