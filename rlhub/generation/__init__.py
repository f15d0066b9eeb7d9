"""Generation engines: where training and evaluation get their completions.

- ``hf`` (default): :class:`rlhub.generation.rollout.HFRolloutEngine` samples with the policy itself (CPU or GPU).
- ``vllm``: :mod:`rlhub.generation.vllm`, a vLLM engine colocated in the trainer's process or an
  external ``vllm serve``, synced with the policy after each update (``pip install 'rlhub[vllm]'``).
- :mod:`rlhub.generation.openai`: any OpenAI-compatible chat endpoint, for ``rlhub eval --base-url``.

The first two implement :class:`rlhub.generation.rollout.RolloutEngine`; a trainer builds one with
:func:`make_engine` and calls ``engine.sync_weights(policy)`` whenever the policy has changed. Every sampler
takes its settings (token budget, temperature, top-p) as one :class:`Sampling`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from rlhub.errors import ConfigError
from rlhub.resolve import resolve

ENGINES = {
    "hf": "rlhub.generation.rollout:hf_engine",
    "vllm": "rlhub.generation.vllm:vllm_engine",
}
"""Rollout engine factories by name, resolved by :func:`rlhub.resolve.resolve`; ``generation.backend`` also takes a
``package.module:factory`` path. A factory is called as ``factory(config, policy, tokenizer, generator, seed=...,
dtype=...)`` with the :class:`GenerationConfig` and returns an engine (see :func:`make_engine`)."""
VLLM_MODES = ("colocate", "server")
SYNC_MODES = ("auto", "adapter", "merged")


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How completions are sampled: what ``rollout``, ``run_episodes`` and every engine's ``generate`` take.

    Like vLLM's ``SamplingParams`` (without ``n``: how many completions a prompt gets is the caller's).

    >>> Sampling(max_new_tokens=64, temperature=0.0)
    Sampling(max_new_tokens=64, temperature=0.0, top_p=1.0)
    """

    max_new_tokens: int
    """The most tokens a completion has (a multi-turn episode: the model's tokens over all its turns)."""
    temperature: float = 1.0
    """Logits are divided by it before sampling; 0 samples greedily (evaluation)."""
    top_p: float = 1.0
    """Nucleus sampling: only the most likely tokens whose probabilities add up to ``top_p`` are drawn."""


class GenerationConfig(BaseModel):
    """How a trainer samples completions (a recipe's ``generation`` section).

    Types and unknown keys are checked on construction, as in every recipe section; :meth:`validate` checks
    the values together (a recipe calls it once all its sections are read, :meth:`parse` before returning).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)

    backend: str = "hf"
    """hf: the policy samples itself; vllm: a vLLM engine does (GPU, rlhub[vllm])."""
    vllm_mode: str = "colocate"
    """colocate: vLLM runs in the trainer's process on its GPU; server: an external `vllm serve`."""
    base_url: str | None = None
    """server: the endpoint, e.g. http://localhost:8000."""
    served_model_name: str | None = None
    """server: the base model's name on the server (default: the first of /v1/models)."""
    api_key_env: str = "VLLM_API_KEY"
    """server: the environment variable holding the key the server was started with (--api-key), if any."""
    sync: str = "auto"
    """How the policy reaches vLLM after each update: adapter (LoRA, a few MB), merged (every weight,
    colocate only), or auto (adapter for LoRA policies, merged otherwise)."""
    gpu_memory_utilization: float = 0.3
    """colocate: the share of GPU memory vLLM takes (weights and KV cache); training needs the rest."""
    max_model_len: int | None = None
    """colocate: the longest prompt + completion vLLM plans for (default: the model's)."""
    timeout: float = 300.0
    """server: seconds to wait for one answer before failing."""
    adapter_dir: str | None = None
    """Where synced adapters are written (default: a temporary folder); a server must be able to read it."""

    def validate(self) -> None:
        """Check the values together; raises :class:`~rlhub.errors.ConfigError` naming the setting and the fix."""
        if self.backend not in ENGINES and not _is_path(self.backend):
            raise ConfigError(
                f"generation.backend must be one of {tuple(ENGINES)} or a 'package.module:factory' path, "
                f"got {self.backend!r}"
            )
        if self.vllm_mode not in VLLM_MODES:
            raise ConfigError(f"generation.vllm_mode must be one of {VLLM_MODES}, got {self.vllm_mode!r}")
        if self.sync not in SYNC_MODES:
            raise ConfigError(f"generation.sync must be one of {SYNC_MODES}, got {self.sync!r}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"generation.gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.timeout <= 0:
            raise ConfigError(f"generation.timeout must be > 0 seconds, got {self.timeout}")
        if self.backend == "vllm" and self.vllm_mode == "server":
            if not self.base_url:
                raise ConfigError("generation.vllm_mode=server needs generation.base_url (e.g. http://localhost:8000)")
            if self.sync == "merged":
                raise ConfigError(
                    "generation.sync=merged works only with vllm_mode=colocate; a server follows LoRA adapters"
                )

    @classmethod
    def parse(cls, value: Any = None) -> GenerationConfig:
        """From None (defaults), a mapping, this model, or any object with a ``model_dump()`` (pydantic).

        Raises:
            ConfigError: One line naming the unknown or invalid setting and how to fix it.
        """
        if isinstance(value, cls):
            value.validate()
            return value
        if value is None:
            value = {}
        elif hasattr(value, "model_dump"):
            value = value.model_dump()
        if not isinstance(value, dict):
            raise ConfigError(f"generation settings must be a mapping, got {type(value).__name__}")
        try:
            config = cls.model_validate(value)
        except ValidationError as exc:
            raise ConfigError(_error_line(exc)) from None
        config.validate()
        return config


def _error_line(exc: ValidationError) -> str:
    """A :class:`GenerationConfig` validation error as one line, as a recipe's are written."""
    errors = exc.errors()
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        known = ", ".join(sorted(GenerationConfig.model_fields))
        return f"unknown generation setting {unknown[0]!r}; known: {known}"
    err = errors[0]
    if err["type"] == "value_error":
        return err["msg"].removeprefix("Value error, ")
    where = ".".join(str(p) for p in err["loc"])
    return f"generation.{where}: {err['msg']} (got {err.get('input')!r})"


def make_engine(settings: Any, policy, tokenizer, generator=None, *, seed: int = 0, dtype: str = "auto"):
    """The rollout engine a recipe's ``generation`` section asks for.

    Args:
        settings: A :class:`GenerationConfig`, a mapping of its fields, a pydantic section, or None.
        policy: The policy being trained (unwrapped from DDP/FSDP; a peft model for LoRA).
        tokenizer: Its tokenizer.
        generator: Seeded torch generator of the ``hf`` engine.
        seed: vLLM's sampling seed (give each training process its own).
        dtype: vLLM's weights dtype (``auto``: the checkpoint's; the recipe's ``model.dtype`` fits).

    Returns:
        An engine with ``generate``, ``tokenizer``, ``pad_id`` and ``sync_weights(policy)``: what the factory that
        :data:`ENGINES` names for ``generation.backend`` (or the backend's own path) builds.
    """
    config = GenerationConfig.parse(settings)
    factory = resolve(ENGINES.get(config.backend, config.backend), what="generation.backend")
    return factory(config, policy, tokenizer, generator, seed=seed, dtype=dtype)


def _is_path(name: str) -> bool:
    """Whether ``name`` reads as a ``package.module:attr`` (or dotted) path rather than a table name."""
    return ":" in name or "." in name
