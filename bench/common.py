"""Shared pieces of the trainer benchmarks: rlhub or TRL training in a child process, one step per turn.

The trainer benchmarks (``trainer_vs_trl``, ``learning_curves``, ``overhead``) start each trainer as a child
process (``python -m bench.common``). A child loads its model, says it is ready, then trains one optimizer
step each time the parent says "go" and reports the step on a pipe (wall time, reward, completion length,
memory). The parent gives two trainers alternate turns (A B B A A B ...): only one computes at a time (two
cores are not enough to share between two trainers), both meet the same machine conditions as load on a
shared machine drifts, and neither always goes first. With a wall-clock budget the parent stops a trainer
mid-step when its time is up.

A turn is timed the same way for both trainers, by the child's clock from "go" to its report: one
optimizer step (generation, reward, update) plus the trainer's own bookkeeping around it (logging,
fetching the next prompts). Model loading, LoRA wrapping and trainer construction come before the first
turn and are not timed.

Hooks: rlhub's loop has no per-step callback, so the child wraps ``Tracker.__init__`` (called once, after
the model is loaded, before the first step) and ``Tracker.log`` (called once per step, after the step's
time is taken) inside its own process. TRL gets a ``TrainerCallback``: the turn starts in
``on_train_begin`` or ``on_step_begin`` and is reported at the next ``on_step_begin`` (when the previous
step's logs are out) or at ``on_train_end``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import resource
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
LOAD_TIMEOUT_S = 600.0
"""How long a child may take to load its model and build its trainer."""
STEP_TIMEOUT_S = 1800.0
"""How long one step may take when no budget limits it (a hung child fails the benchmark, not the suite)."""


class BenchError(RuntimeError):
    """A benchmark could not produce its figures (a child crashed, timed out or disagreed with its input)."""


def default_threads() -> int:
    """torch threads for a trainer: ``OMP_NUM_THREADS`` when set (to share a busy machine), else every usable core."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return int(os.environ["OMP_NUM_THREADS"])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
"""Environment variables that cap the instruction sets torch's kernels, oneDNN and MKL use (to emulate an older CPU)."""


def cpu_info() -> dict[str, Any]:
    """The CPU the figures come from: its model name, its matrix flags (``avx2``, ``avx512f``, ``avx512_bf16``,
    ``amx_bf16``... from ``/proc/cpuinfo``), the kernel level torch picked (``torch.backends.cpu.get_cpu_capability``:
    ``AVX512``, ``AVX2``, ``DEFAULT``) and the :data:`ISA_LIMITS` this process was started with (none: native)."""
    from rlhub.models import cpu_identity

    cpu, isa = cpu_identity()
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        capability = None
    limits = {name: os.environ[name] for name in ISA_LIMITS if os.environ.get(name)}
    return {"cpu": cpu, "cpu_isa": isa, "cpu_capability": capability, "cpu_isa_limits": limits}


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: the CPU (:func:`cpu_info`), cores, memory, versions, commit and load."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {
        **cpu_info(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gb": round(ram / 2**30, 1),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "torch": torch_version,
        "load_average_1m": round(os.getloadavg()[0], 2),
        **git_state(),
    }


def matmul_tflops(threads: int, size: int = 1024, seconds: float = 1.0) -> dict[str, float]:
    """The machine's matmul ceiling: TFLOP/s of a ``size``-cubed matmul in float32 and bfloat16, best of
    the repeats that fit in about ``seconds`` per dtype (at least two, after one warm-up)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    out = {}
    try:
        for dtype in (torch.float32, torch.bfloat16):
            a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
            a @ b
            best, spent, runs = float("inf"), 0.0, 0
            while runs < 2 or spent < seconds:
                t0 = time.perf_counter()
                a @ b
                took = time.perf_counter() - t0
                best, spent, runs = min(best, took), spent + took, runs + 1
            out[str(dtype).removeprefix("torch.")] = round(2 * size**3 / best / 1e12, 4)
    finally:
        torch.set_num_threads(before)
    return out


def work_per_token(recipe, n_prompts: int) -> tuple[int, list[int]]:
    """What useful FLOPs are counted from: M, the weights a token meets in matrix products (every
    ``nn.Linear``, the LM head included, tied or not), and the token counts of the first ``n_prompts``
    prompts in the order rlhub's stream (and TRL's dataset) takes them."""
    import torch

    import rlhub
    from rlhub.generation.rollout import encode_prompt
    from rlhub.models import load_model_and_tokenizer
    from rlhub.trainers.loop import PromptStream

    model, tokenizer = load_model_and_tokenizer(recipe.model.name, device="cpu")
    params = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    env = rlhub.make(recipe.env.id, **recipe.env.config)
    stream = PromptStream(env.examples("train", seed=recipe.training.seed), seed=recipe.training.seed)
    return params, [len(encode_prompt(tokenizer, env, ex)) for ex in stream.take(n_prompts)]


def git_state() -> dict[str, Any]:
    """The checkout's commit and whether it had uncommitted changes (the figures are for that code)."""
    from rlhub.provenance import read_commit

    commit = read_commit(ROOT)
    return {"git_commit": commit.sha if commit else None, "git_dirty": commit.dirty if commit else None}


def fmean(values: list[float | None]) -> float | None:
    """:func:`rlhub.evaluate.mean` with ``empty=None``: a figure a benchmark could not measure is missing, not 0.

    >>> fmean([1.0, None, 2.0]), fmean([None]), fmean([])
    (1.5, None, None)
    """
    from rlhub.evaluate import mean

    return mean(values, empty=None)


def write_json(path: str | Path | None, data: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")


# --- what a trainer child trains -----------------------------------------------------------------------
@dataclass
class TrainerSettings:
    """One training setup, given to both trainers alike. ``None`` keeps the recipe's value."""

    recipe: str = str(QUICKSTART)
    prompts: int | None = None
    """Prompts per step (each gets ``group`` completions)."""
    group: int | None = None
    """G: completions per prompt."""
    max_new_tokens: int | None = None
    learning_rate: float | None = None
    max_steps: int = 1000
    """Steps the trainer is configured for; the parent usually stops it earlier (steps or budget)."""
    threads: int = field(default_factory=default_threads)
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    """Further ``key.sub=value`` recipe overrides (``algorithm.beta=0.04``, ``env.id=codegen-v0``)."""
    micro_batch: int | None = None
    """Completions per forward/backward; None: the whole step in one micro-batch, as TRL's arm does."""
    poll_memory: bool = False
    """Sample the child's resident memory every 20 ms, so a step's peak is seen (not only the process's)."""
    environment: dict[str, str] = field(default_factory=dict)
    """Environment variables for the child (``MALLOC_MMAP_THRESHOLD_`` for the memory benchmark)."""
    trl_bf16: bool = False
    """TRL only: ``GRPOConfig(bf16=True)`` (autocast to bfloat16 over the float32 weights)."""


def resolve_recipe(settings: TrainerSettings, workdir: Path):
    """The recipe both trainers read: one micro-batch per step (unless ``micro_batch``), no checkpoints, no W&B,
    no evaluation."""
    from rlhub.trainers.recipe import EvalSection, load_recipe

    base = load_recipe(settings.recipe, settings.overrides)
    prompts = settings.prompts or base.training.prompts_per_step
    group = settings.group or base.algorithm.group_size
    overrides = [
        *settings.overrides,
        f"training.max_steps={settings.max_steps}",
        f"training.prompts_per_step={prompts}",
        f"algorithm.group_size={group}",
        f"training.micro_batch_size={settings.micro_batch or prompts * group}",
        f"training.num_threads={settings.threads}",
        f"training.seed={settings.seed}",
        "training.save_every=0",
        f"training.output_dir={workdir.as_posix()}/{{run_name}}",
        "logging.wandb=false",
        "logging.completions_every=0",
        "logging.run_name=rlhub",
        "eval.every=0",
    ]
    if "before_after" in EvalSection.model_fields:  # no evaluation inside a timed turn
        overrides.append("eval.before_after=false")
    if settings.max_new_tokens:
        overrides.append(f"training.max_new_tokens={settings.max_new_tokens}")
    if settings.learning_rate:
        overrides.append(f"training.learning_rate={settings.learning_rate}")
    return load_recipe(settings.recipe, overrides)


def describe(recipe) -> dict[str, Any]:
    """The settings a report states, read from the resolved recipe; ``dtype`` is the concrete one (``auto``
    resolved as the trainer resolves it, from the cached probe), since a table's precision column names it."""
    from rlhub.models import resolve_dtype

    t, a = recipe.training, recipe.algorithm
    return {
        "model": recipe.model.name,
        "dtype": resolve_dtype(recipe.model.dtype, "cpu", threads=t.num_threads).dtype,
        "env": recipe.env.id,
        "env_config": recipe.env.config,
        "rewards": recipe.rewards,
        "lora": {"r": recipe.lora.r, "alpha": recipe.lora.alpha, "target_modules": recipe.lora.target_modules},
        "prompts_per_step": t.prompts_per_step,
        "group_size": a.group_size,
        "samples_per_step": t.prompts_per_step * a.group_size,
        "micro_batch_size": t.micro_batch_size,
        "max_new_tokens": t.max_new_tokens,
        "learning_rate": t.learning_rate,
        "temperature": t.temperature,
        "beta": a.beta,
        "loss_type": a.loss_type,
        "torch_threads": t.num_threads,
        "seed": t.seed,
    }


# --- the child: train, one step per turn ------------------------------------------------------------------
def current_rss() -> int:
    """This process's resident memory in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def max_rss() -> int:
    """This process's peak resident memory so far, in bytes (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakPoller:
    """Samples resident memory every ``interval`` seconds; ``take()`` returns the peak since the last call."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = 0
        threading.Thread(target=self._run, daemon=True, name="bench-rss").start()

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, current_rss())
            time.sleep(self.interval)

    def take(self) -> int:
        peak, self.peak = max(self.peak, current_rss()), 0
        return peak


class Turns:
    """The child's side of the turn protocol: JSON lines out, ``go``/``stop`` lines in."""

    def __init__(self, fd_in: int, fd_out: int, poll_memory: bool):
        self._in = os.fdopen(fd_in, "r")
        self._out = os.fdopen(fd_out, "w")
        self._go = 0.0
        self._poller = PeakPoller() if poll_memory else None

    def _send(self, event: str, record: dict[str, Any]) -> None:
        memory = {"rss_mb": current_rss() / 2**20, "max_rss_mb": max_rss() / 2**20}
        if self._poller is not None:
            memory["peak_rss_mb"] = self._poller.take() / 2**20
        self._out.write(json.dumps({"event": event, **record, **memory}) + "\n")
        self._out.flush()

    def _wait(self) -> None:
        if self._in.readline().strip() != "go":
            os._exit(0)  # stop: every step is already reported; skip the trainers' final checkpoints
        self._go = time.perf_counter()

    def ready(self, **info: Any) -> None:
        self._send("ready", info)
        self._wait()

    def step(self, record: dict[str, Any]) -> None:
        self._send("step", {"turn_s": time.perf_counter() - self._go, **record})
        self._wait()

    def end(self) -> None:
        self._send("end", {})


def train_rlhub(settings: TrainerSettings, workdir: Path, turns: Turns) -> None:
    """rlhub's ``train()`` on the resolved recipe, with a turn around each step (see the module docstring)."""
    from rlhub.trainers import tracking
    from rlhub.trainers.loop import train

    recipe = resolve_recipe(settings, workdir)
    samples = recipe.training.prompts_per_step * recipe.algorithm.group_size
    init, log = tracking.Tracker.__init__, tracking.Tracker.log

    def init_then_ready(self, *args, **kwargs):
        init(self, *args, **kwargs)
        turns.ready(settings=describe(recipe))

    def log_then_report(self, metrics: dict[str, Any], step: int) -> None:
        log(self, metrics, step)
        if "charts/step_time" not in metrics:
            return
        turns.step(
            {
                "step": step,
                "samples": samples,
                "reward": metrics["reward"],
                "mean_length": metrics["completions/mean_length"],
                "step_s": metrics["charts/step_time"],
                "generation_s": metrics["charts/generation_time"],
                "reward_s": metrics["charts/reward_time"],
                "zero_advantage_groups": metrics["charts/zero_advantage_groups"],
                "rewards": {k: v for k, v in metrics.items() if k.startswith("rewards/") and k.endswith("/mean")},
            }
        )

    tracking.Tracker.__init__, tracking.Tracker.log = init_then_ready, log_then_report
    train(recipe, recipe_name="bench", overwrite=True, progress=False)


def trl_dataset(recipe, n_prompts: int):
    """TRL's dataset, in exactly the order rlhub's prompt stream takes the examples (TRL's shuffling is off)."""
    import rlhub
    from rlhub.integrations.trl import to_dataset
    from rlhub.trainers.loop import PromptStream

    seed = recipe.training.seed
    env = rlhub.make(recipe.env.id, **recipe.env.config)
    dataset = to_dataset(env, "train", seed=seed)
    examples = env.examples("train", seed=seed)
    if any(dataset[i]["answer"] != examples[i].answer for i in range(min(8, len(examples)))):
        raise BenchError("TRL's dataset and the env's examples disagree; the trainers would see different prompts")
    order = PromptStream(list(range(len(dataset))), seed=seed).take(n_prompts)
    return env, dataset.select(order)


def train_trl(settings: TrainerSettings, workdir: Path, turns: Turns) -> None:
    """TRL's ``GRPOTrainer`` with the same model, LoRA, prompts and hyperparameters as rlhub's run."""
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlhub.integrations.trl import reward_funcs
    from rlhub.models import load_model_and_tokenizer

    recipe = resolve_recipe(settings, workdir)
    t, a, lora = recipe.training, recipe.algorithm, recipe.lora
    samples = t.prompts_per_step * a.group_size
    env, dataset = trl_dataset(recipe, t.prompts_per_step * t.max_steps)
    funcs = reward_funcs(env)
    # The recipe's weight where it names a rubric function, the env's own otherwise (as rlhub's build_rubric).
    weights = [float(recipe.rewards.get(f.__name__, f.weight)) for f in funcs]

    class TurnCallback(TrainerCallback):
        def __init__(self):
            self.pending: dict[str, Any] | None = None
            self.started = 0.0

        def on_train_begin(self, *_, **__):
            turns.ready(settings=describe(recipe), reward_weights=dict(zip([f.__name__ for f in funcs], weights)))

        def on_step_begin(self, *_, **__):
            self.report()
            self.started = time.perf_counter()

        def on_step_end(self, _args, state, *_, **__):
            self.pending = {"step": state.global_step, "samples": samples, "step_s": time.perf_counter() - self.started}

        def on_log(self, _args, _state, _control, logs=None, **__):
            if self.pending is not None and logs and "reward" in logs:
                self.pending["reward"] = float(logs["reward"])
                self.pending["mean_length"] = float(logs.get("completions/mean_length", float("nan")))
                self.pending["rewards"] = {k: float(v) for k, v in logs.items() if k.startswith("rewards/")}

        def on_train_end(self, *_, **__):
            self.report()

        def report(self) -> None:
            if self.pending is not None:
                record, self.pending = self.pending, None
                turns.step(record)

    model, tokenizer = load_model_and_tokenizer(recipe.model.name, dtype=recipe.model.dtype, device="cpu")
    config = GRPOConfig(
        output_dir=str(workdir / "trl"),
        max_steps=t.max_steps,
        per_device_train_batch_size=samples,
        gradient_accumulation_steps=1,
        num_generations=a.group_size,
        max_completion_length=t.max_new_tokens,
        temperature=t.temperature,
        top_p=t.top_p,
        top_k=0,
        learning_rate=t.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
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
        bf16=settings.trl_bf16,
        use_cpu=True,
        seed=t.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        log_completions=False,
    )
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
        callbacks=[TurnCallback()],
    )
    trainer.train()


TRAINERS: dict[str, Callable[[TrainerSettings, Path, Turns], None]] = {"rlhub": train_rlhub, "trl": train_trl}


def child_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one trainer, one step per turn (started by the benchmarks)")
    parser.add_argument("--trainer", required=True, help=f"one of {sorted(TRAINERS)}, or module:function")
    parser.add_argument("--settings", required=True, help="TrainerSettings as JSON")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--control", required=True, help="IN,OUT: the pipe file descriptors from the parent")
    args = parser.parse_args(argv)
    settings = TrainerSettings(**json.loads(args.settings))
    fd_in, fd_out = (int(fd) for fd in args.control.split(","))
    turns = Turns(fd_in, fd_out, settings.poll_memory)
    if args.trainer in TRAINERS:
        import torch

        torch.set_num_threads(settings.threads)
        run = TRAINERS[args.trainer]
    else:  # module:function with TRAINERS' signature (the tests' stand-in trainer)
        module, _, function = args.trainer.partition(":")
        run = getattr(importlib.import_module(module), function)
    run(settings, args.workdir, turns)
    turns.end()


# --- the parent: start trainers, give turns ---------------------------------------------------------------
class TrainerProcess:
    """A trainer child process and its two pipes; its output goes to ``workdir/<name>.log``.

    ``trainer`` is ``rlhub``, ``trl`` or a ``module:function`` taking ``(settings, workdir, turns)``.
    """

    def __init__(self, name: str, trainer: str, settings: TrainerSettings, workdir: Path):
        self.name = name
        self.log_path = workdir / f"{name}.log"
        run_dir = workdir / name
        run_dir.mkdir(parents=True, exist_ok=True)
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = {
            **os.environ,
            "WANDB_MODE": "disabled",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            **settings.environment,
        }
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.common",
                    "--trainer",
                    trainer,
                    "--settings",
                    json.dumps(dataclasses.asdict(settings)),
                    "--workdir",
                    str(run_dir),
                    "--control",
                    f"{to_child_r},{from_child_w}",
                ],
                pass_fds=(to_child_r, from_child_w),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
            )
        os.close(to_child_r)
        os.close(from_child_w)
        self._to_child = os.fdopen(to_child_w, "w")
        self._from_child = from_child_r
        self._buffer = b""

    def log_tail(self, chars: int = 2000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        return text[-chars:]

    def receive(self, timeout: float | None) -> dict[str, Any] | None:
        """The child's next message, or None when ``timeout`` seconds pass first; a dead child raises."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not select.select([self._from_child], [], [], wait)[0]:
                return None
            chunk = os.read(self._from_child, 65536)
            if not chunk:
                code = self.proc.wait()
                raise BenchError(f"{self.name} exited (code {code}) mid-run; its log ends:\n{self.log_tail()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def send(self, word: str) -> None:
        self._to_child.write(word + "\n")
        self._to_child.flush()

    def stop(self) -> None:
        """Let the child exit (it has reported everything); kill it if it does not."""
        if self.proc.poll() is None:
            try:
                self.send("stop")
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        self.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close()

    def close(self) -> None:
        for close in (self._to_child.close, lambda: os.close(self._from_child)):
            try:
                close()
            except OSError:
                pass


@dataclass
class TrainerRun:
    """What the parent learned from one trainer: its settings, its steps, and why it stopped."""

    name: str
    ready: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0
    """The trainer's own time: the sum of its turns (or the budget, when stopped mid-step)."""
    stopped: str = ""


def take_turns(
    trainers: dict[str, tuple[str, TrainerSettings]],
    workdir: Path,
    *,
    steps: int | None = None,
    budget_s: float | None = None,
    keep_going: bool = False,
) -> dict[str, TrainerRun]:
    """Start one child per entry (name -> (trainer, settings)) and alternate steps until each is done.

    A trainer is done after ``steps`` steps, or when its own time reaches ``budget_s`` (a step still
    running at the budget is cut off and not counted), or when it finishes its ``max_steps``. Turns go
    A B B A A B ..., so neither trainer always runs first. A trainer that does not load or exits mid-run
    fails the call, unless ``keep_going``: then it is done, ``stopped`` says why, and the others go on.
    """
    if steps is None and budget_s is None:
        raise BenchError("take_turns needs steps or budget_s, or it never stops")
    procs: dict[str, TrainerProcess] = {}
    try:
        for name, (trainer, settings) in trainers.items():
            procs[name] = TrainerProcess(name, trainer, settings, workdir)
        runs = {}
        for name, proc in procs.items():
            try:
                ready = proc.receive(timeout=LOAD_TIMEOUT_S)
                if ready is None:
                    raise BenchError(
                        f"{name} did not load within {LOAD_TIMEOUT_S:.0f} s; its log ends:\n{proc.log_tail()}"
                    )
            except BenchError as exc:
                if not keep_going:
                    raise
                runs[name] = TrainerRun(name, {}, stopped=f"did not start: {exc}")
                proc.kill()
                continue
            runs[name] = TrainerRun(name, ready)
        names, active, round_ = list(procs), {name for name, run in runs.items() if not run.stopped}, 0
        while active:
            for name in names if round_ % 2 == 0 else names[::-1]:
                if name not in active:
                    continue
                run, proc = runs[name], procs[name]
                remaining = STEP_TIMEOUT_S if budget_s is None else budget_s - run.elapsed_s
                message, died = None, None
                try:
                    proc.send("go")
                    message = proc.receive(timeout=remaining + 0.5)  # the child's clock decides; 0.5 s for the pipe
                except (BenchError, BrokenPipeError) as exc:
                    if not keep_going:
                        raise
                    died = exc
                if died is not None:
                    run.stopped = f"exited during step {len(run.steps) + 1}: {died}"
                elif message is not None and message["event"] == "end":
                    run.stopped = "finished its max_steps"
                elif message is None and budget_s is None:
                    raise BenchError(
                        f"{name}: one step took over {STEP_TIMEOUT_S:.0f} s; its log ends:\n{proc.log_tail()}"
                    )
                elif message is None:
                    run.elapsed_s, run.stopped = budget_s, "budget reached during a step (cut off, not counted)"
                elif budget_s is not None and run.elapsed_s + message["turn_s"] > budget_s:
                    run.elapsed_s, run.stopped = budget_s, "budget reached during a step (it ended late, not counted)"
                else:
                    run.elapsed_s += message["turn_s"]
                    run.steps.append({**message, "elapsed_s": run.elapsed_s})
                    if steps is not None and len(run.steps) >= steps:
                        run.stopped = f"{steps} steps done"
                    elif budget_s is not None and run.elapsed_s >= budget_s:
                        run.stopped = "budget reached"
                if run.stopped:
                    active.discard(name)
                    if message is None:
                        proc.kill()
                    else:
                        proc.stop()
            round_ += 1
        return runs
    finally:
        for proc in procs.values():
            proc.kill()


if __name__ == "__main__":
    child_main()
