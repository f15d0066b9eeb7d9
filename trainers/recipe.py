"""Recipes: one flat YAML per training run, validated with pydantic.

Sections: model, env, rewards, algorithm, lora, sft, training, logging, eval. Unknown keys and wrong types
fail at once with one line naming the key. ``--set training.max_steps=50`` (or, from Python,
``load_recipe(path, {"training.max_steps": 50})``) overrides any value.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rlhub.errors import ConfigError
from rlhub.generation import GenerationConfig


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class ModelSection(Section):
    name: str = "smollm2-135m-instruct"
    """An embedded model name, an HF hub id (online) or a local checkpoint folder."""
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    """Weights and activations dtype. auto: bfloat16 on a GPU; on a CPU, bfloat16 only where a short probe
    (run once per CPU and torch version, cached) measures the step faster in it, else float32 (on an AVX2-only
    CPU bf16 runs several times slower); the run logs the choice and the rates. LoRA weights, their optimizer
    state and the loss's log-probs stay float32 either way; generation runs in this dtype."""
    gradient_checkpointing: bool = False
    """Trade compute for memory in the training forward pass."""


class EnvSection(Section):
    id: str = "arithmetic-v1"
    """A registered env id (rlhub envs list)."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the env's default config."""
    url: str | None = None
    """Train on the env served at this URL (rlhub serve; http://HOST:PORT/ENV_ID) instead of in-process."""
    container: bool = False
    """Serve the env from its Docker image (rlhub env build) for the run, and stop it at the end."""

    @model_validator(mode="after")
    def _served_env_is_configured_where_served(self) -> EnvSection:
        if self.url and self.container:
            raise ValueError("set env.url or env.container, not both")
        if (self.url or self.container) and self.config:
            raise ValueError("a served env keeps the config it is served with: leave env.config empty")
        return self


class DynamicSamplingSection(Section):
    """Draw more prompts while a step's groups tie (trainers/sampling.py)."""

    max_draws: int = Field(4, ge=1)
    """The most batches of prompts_per_step prompts a step draws; still short after them, it pads with tied groups."""


class AlgorithmSection(Section):
    name: str = "grpo"
    """The algorithm: grpo, ppo, rloo, reinforce_pp, or a dotted path (pkg.module:Class) to your own."""
    group_size: int = Field(8, ge=1)
    """G: completions sampled per prompt; advantages are normalized within each group (>= 2 except for ppo)."""
    scale_rewards: Literal["group", "none"] = "group"
    """Divide group-centred rewards by the group std ("group", GRPO) or not ("none", Dr. GRPO)."""
    loss_type: Literal["grpo", "dr_grpo", "dapo"] = "dapo"
    """grpo: mean over each sequence's tokens; dr_grpo: sum / (n * max_new_tokens); dapo: token-level mean."""
    epsilon: float = Field(0.2, gt=0)
    """Lower clip range of the importance ratio."""
    epsilon_high: float | None = Field(None, gt=0)
    """Upper clip range (DAPO clip-higher, e.g. 0.28); defaults to epsilon."""
    beta: float = Field(0.0, ge=0)
    """KL coefficient to the reference policy (the base model, adapter disabled); 0 skips it. A k3 loss term,
    except for ppo, which subtracts beta * (log pi - log ref) from each token's reward."""
    num_iterations: int = Field(1, ge=1)
    """Optimizer passes over each generation batch (old log-probs kept from generation)."""
    gamma: float = Field(1.0, ge=0, le=1)
    """ppo: discount per token (1.0: the final reward reaches every token undiminished)."""
    lam: float = Field(0.95, ge=0, le=1)
    """ppo: GAE lambda (1.0: Monte Carlo returns minus values; lower leans on the critic)."""
    whiten_advantages: bool = True
    """ppo: normalize the step's token advantages to zero mean and unit variance."""
    dynamic_sampling: DynamicSamplingSection | None = None
    """Keep only groups whose rewards differ, drawing up to max_draws batches per step (DAPO); None: off."""
    credit: Literal["episode", "turn"] = "episode"
    """Which reward a multi-turn episode's tokens are credited with. episode: the final reward, through the
    algorithm's advantages. turn: each turn's return-to-go (the env's turn_reward for each intermediate turn,
    the rubric's score for the last) minus a leave-one-out baseline per turn index, so every token of turn t
    gets that turn's advantage (trainers/turn_credit.py); unscaled, for grpo, rloo and reinforce_pp."""


class CriticSection(Section):
    """The value model of ppo (other algorithms have none)."""

    kind: Literal["shared", "separate"] = "shared"
    """shared: a value head on the policy's last hidden state (the LoRA trunk is shared);
    separate: its own model (with its own LoRA adapter when lora.enabled) and value head."""
    model: str | None = None
    """separate: the critic's base model (default: model.name); it must share the policy's tokenizer."""
    learning_rate: float | None = Field(None, gt=0)
    """The critic's learning rate (default: training.learning_rate)."""
    value_coef: float = Field(0.5, ge=0)
    """Weight of the value loss in the total loss."""
    value_clip: float | None = Field(0.2, gt=0)
    """Clip range of the value update around the rollout's values (None: plain squared error)."""
    warmup_steps: int = Field(0, ge=0)
    """Steps that train only the critic (the policy stays fixed) before PPO updates begin."""


class LoraSection(Section):
    enabled: bool = True
    """Train a LoRA adapter (peft); false trains every weight."""
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


class SftSection(Section):
    """A supervised stage that fine-tunes the policy before RL (trainers/sft.py): a cold start."""

    source: Literal["gold", "rejection"] = "gold"
    """gold: the env's gold completions; rejection: the model's own samples that earn full correctness."""
    examples: int = Field(64, ge=1)
    """Training prompts the stage draws its completions from (the first of the train split, seeded)."""
    samples: int = Field(8, ge=1)
    """rejection: completions sampled per prompt; only those its correctness reward scores 1.0 are kept."""
    epochs: float = Field(1.0, gt=0)
    """Passes over the kept completions."""
    learning_rate: float = Field(1e-4, gt=0)
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps, before the epochs end (None: no cap)."""
    batch_size: int = Field(8, ge=1)
    """Completions per optimizer step."""

    @model_validator(mode="after")
    def _samples_only_for_rejection(self) -> SftSection:
        if self.source == "gold" and "samples" in self.model_fields_set:
            raise ValueError("sft.samples applies only to sft.source=rejection (gold has one completion per prompt)")
        return self


class CurriculumSection(Section):
    """Sample an env's difficulty levels by their running pass rates (trainers/curriculum.py)."""

    band: tuple[float, float] = (0.1, 0.9)
    """Train on levels whose running pass rate lies in [low, high]; when none does, on the nearest one."""
    ema_weight: float = Field(0.2, gt=0, le=1)
    """Weight of each draw's pass rate in a level's running rate (1: the last draw only)."""
    explore: float = Field(0.05, ge=0, le=1)
    """Share of prompts drawn from all levels, so levels outside the band are measured again."""

    @model_validator(mode="after")
    def _band_is_an_interval(self) -> CurriculumSection:
        low, high = self.band
        if not 0 <= low <= high <= 1:
            raise ValueError(f"training.curriculum.band must be [low, high] within [0, 1], got {list(self.band)}")
        return self


class TrainingSection(Section):
    seed: int = 0
    max_steps: int = Field(50, ge=1)
    """Optimizer steps (each on one generation batch when num_iterations=1)."""
    prompts_per_step: int = Field(4, ge=1)
    """Prompts per step per process; each gets group_size completions."""
    micro_batch_size: int = Field(8, ge=1)
    """Sequences per forward/backward pass (gradient accumulation covers the rest)."""
    learning_rate: float = Field(1e-5, gt=0)
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(128, ge=1)
    """Completion length budget in tokens."""
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    save_every: int = Field(10, ge=0)
    """Checkpoint every N steps (0: only at the end)."""
    output_dir: str = "runs/{run_name}"
    """Run folder; {run_name} is filled in."""
    num_threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    max_off_policy_steps: int = Field(0, ge=0)
    """k: how many policy versions a sample may lag behind the trainer. 0: sample, then train, in turn.
    k >= 1: a worker process samples the next batches while the trainer updates (trainers/async_rollout.py);
    batches older than k versions are dropped, the rest are reweighted by truncated importance sampling."""
    tis_cap: float = Field(2.0, ge=1)
    """max_off_policy_steps >= 1: cap C of the per-token importance weight min(pi_train / pi_sampler, C)."""
    curriculum: CurriculumSection | None = None
    """Draw prompts from the env's difficulty levels whose running pass rate is inside a band; None: off."""


class LoggingSection(Section):
    wandb: bool = True
    """Log to Weights & Biases (offline mode when no API key is set)."""
    project: str = "rlhub"
    run_name: str | None = None
    """Defaults to <recipe>-<env>-<time>."""
    completions_every: int = Field(10, ge=0)
    """Log a completions table every N steps (0: never)."""


class EvalSection(Section):
    every: int = Field(0, ge=0)
    """Evaluate on the test split every N steps, and before the first and after the last (0: never)."""
    before_after: bool = False
    """Evaluate before the first step and after the last one (also when every=0); the run summary shows the gain."""
    n: int = Field(32, ge=1)
    """Test examples per evaluation (greedy; the same examples each time)."""


class MonitorSection(Section):
    """Hack watch (trainers/monitor.py): signals that precede a reward-hacked run, warned once each."""

    enabled: bool = True
    window: int = Field(5, ge=1)
    """Steps per window: the run's first window is compared with its last."""
    format_saturated: float = Field(0.95, gt=0, le=1)
    """format_only: the format reward's last-window mean at or above this..."""
    flat: float = Field(0.02, ge=0)
    """...having risen by more than this, while correctness moved by no more than this."""
    length_collapse: float = Field(0.3, gt=0, lt=1)
    """length_collapse: mean completion length below this share of the first window's."""
    clipped: float = Field(0.9, gt=0, le=1)
    """length_at_limit: this share of the last window's completions hit max_new_tokens."""
    repeated: float = Field(0.5, gt=0, le=1)
    """repeated_completion: one completion text for this share of a step's prompts (and at least 3)."""
    eval_drop: float = Field(0.05, ge=0)
    """reward_up_eval_down: in-loop eval pass@1 fell by more than this while the training reward rose."""
    rescore: int = Field(2, ge=0)
    """rescore_mismatch: the step's highest-reward completions scored again and checked against env probes."""


class Recipe(Section):
    model: ModelSection = Field(default_factory=ModelSection)
    env: EnvSection = Field(default_factory=EnvSection)
    rewards: dict[str, float] = Field(default_factory=dict)
    """Reward weights by name: rubric names override weights; other names add reward functions."""
    algorithm: AlgorithmSection = Field(default_factory=AlgorithmSection)
    critic: CriticSection = Field(default_factory=CriticSection)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    """Who samples completions: hf (the policy itself) or vllm (see rlhub.generation.GenerationConfig)."""
    lora: LoraSection = Field(default_factory=LoraSection)
    sft: SftSection | None = None
    """Fine-tune the policy on gold or rejection-sampled completions before RL; None: off."""
    training: TrainingSection = Field(default_factory=TrainingSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    monitor: MonitorSection = Field(default_factory=MonitorSection)

    @model_validator(mode="after")
    def _check(self) -> Recipe:
        self.generation.validate()
        a = self.algorithm
        if a.name != "ppo":
            stray = [f"critic.{k}" for k in sorted(self.critic.model_fields_set)]
            stray += [f"algorithm.{k}" for k in ("gamma", "lam", "whiten_advantages") if k in a.model_fields_set]
            if stray and "." not in a.name and ":" not in a.name:
                raise ValueError(f"{stray[0]} applies only to algorithm.name=ppo (got {a.name!r}); remove it")
            if a.group_size < 2 and a.name in ("grpo", "rloo"):
                raise ValueError(
                    f"algorithm.group_size must be >= 2 for {a.name} (advantages compare completions of a prompt)"
                )
        if a.credit == "turn":
            _check_turn_credit(a)
        if self.training.max_off_policy_steps:
            if a.name == "ppo":
                raise ValueError(
                    "training.max_off_policy_steps >= 1 does not apply to ppo (its critic's values and GAE assume "
                    "on-policy samples); set training.max_off_policy_steps=0 or use grpo, rloo or reinforce_pp"
                )
            if self.generation.backend == "vllm" and self.generation.vllm_mode == "colocate":
                raise ValueError(
                    "training.max_off_policy_steps >= 1 samples in a process of its own; colocated vLLM lives in "
                    "the trainer's: use generation.vllm_mode=server or generation.backend=hf"
                )
        n = self.training.prompts_per_step * self.algorithm.group_size
        if n % self.training.micro_batch_size:
            raise ValueError(
                f"training.micro_batch_size ({self.training.micro_batch_size}) must divide prompts_per_step x "
                f"group_size ({n}); set training.micro_batch_size to a divisor of {n}"
            )
        return self


def _check_turn_credit(a: AlgorithmSection) -> None:
    """Refuse, in one line each, what would bias per-turn advantages or has no use for them."""
    if a.name == "ppo":
        raise ValueError(
            "algorithm.credit=turn does not apply to ppo (its critic already gives each token an advantage); "
            "use grpo, rloo or reinforce_pp, or algorithm.credit=episode"
        )
    if "scale_rewards" in a.model_fields_set:
        raise ValueError(
            "algorithm.scale_rewards does not apply with algorithm.credit=turn (per-turn advantages stay unscaled "
            "so that they stay unbiased); remove algorithm.scale_rewards"
        )
    if a.loss_type == "grpo":
        raise ValueError(
            "algorithm.loss_type=grpo divides each episode's loss by its length, which biases per-turn credit "
            "when the policy decides how long episodes last; set algorithm.loss_type to dr_grpo or dapo"
        )


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {key!r} is not a section")
    node[keys[-1]] = value


def _error_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"unknown recipe key {where!r}; check its spelling (see recipes/quickstart.yaml for every key)"
    if err["type"] == "value_error":
        return err["msg"].removeprefix("Value error, ")
    return f"recipe key {where!r}: {err['msg']} (got {err.get('input')!r})"


def packaged_recipes_dir() -> Path:
    """The recipes that ship with rlhub: ``rlhub/_data/recipes`` in a wheel, ``recipes/`` in a source checkout."""
    import rlhub

    package = Path(rlhub.__file__).resolve().parent
    packaged = package / "_data" / "recipes"
    return packaged if packaged.is_dir() else package.parent / "recipes"


def load_recipe(path: str | Path | None = None, overrides: Mapping[str, Any] | Sequence[str] = ()) -> Recipe:
    """Read a recipe YAML (or defaults when ``path`` is None) and apply overrides.

    Args:
        path: The recipe file. A ``path`` that is no file is looked up by its name among the recipes rlhub ships
            (``quickstart.yaml``).
        overrides: Either ``key.sub=value`` strings, as ``--set`` takes them (each value is parsed as YAML), or a
            dict of the same dotted keys to values, used as given. Both are applied in order and validated alike:

            >>> a = load_recipe(None, {"training.max_steps": 3, "env.config": {"difficulty": 2}})
            >>> b = load_recipe(None, ["training.max_steps=3", "env.config={difficulty: 2}"])
            >>> a == b, a.training.max_steps, a.env.config
            (True, 3, {'difficulty': 2})

    Returns:
        The validated recipe.

    Raises:
        ConfigError: The file is missing or not a mapping, an override is malformed, or a key or value is invalid;
            the message names the key and how to fix it.
    """
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            packaged = packaged_recipes_dir() / p.name
            if not packaged.is_file():
                raise ConfigError(f"recipe {p} not found; pass a path such as recipes/quickstart.yaml")
            p = packaged
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({getattr(exc, 'problem', exc)})")
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: a recipe is a mapping of sections (model, env, training, ...)")
    for key, value in _override_items(overrides):
        _set_dotted(data, key, value)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_error_line(exc)) from None


def _override_items(overrides: Mapping[str, Any] | Sequence[str]) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` pairs from either form of :func:`load_recipe`'s overrides."""
    if isinstance(overrides, str):
        raise ConfigError(f"recipe overrides are key.sub=value strings or a dict; wrap {overrides!r} in a list")
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            if not isinstance(key, str) or not key.strip():
                raise ConfigError(f"recipe override keys are dotted names such as training.max_steps, got {key!r}")
            yield key.strip(), copy.deepcopy(value)  # later keys may write into it: the caller's dict stays as it is
        return
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key.sub=value, got {item!r}")
        yield key.strip(), yaml.safe_load(raw)
