"""The trainable model: a base checkpoint with the recipe's LoRA adapter and gradient checkpointing, and
(:func:`build_policy`) the optimizer, schedule and training forward module that train it.

The policy and PPO's separate critic are both built here, so they get the same adapter settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from rlhub.trainers.forward import CompletionLogits
from rlhub.trainers.recipe import Recipe

if TYPE_CHECKING:
    from rlhub.models import DtypeChoice
    from rlhub.trainers.algorithm import Algorithm


def with_concrete_dtype(recipe: Recipe, device) -> tuple[Recipe, DtypeChoice]:
    """The recipe with ``model.dtype`` resolved for ``device`` (``auto``: see :func:`rlhub.models.resolve_dtype`),
    so the model load, the rollout engine and the async worker all get the same concrete dtype; and the choice,
    for the run's config and summary."""
    from rlhub.models import resolve_dtype

    choice = resolve_dtype(recipe.model.dtype, device)
    return recipe.model_copy(update={"model": recipe.model.model_copy(update={"dtype": choice.dtype})}), choice


def load_trainable(name: str, recipe: Recipe):
    """Load ``name`` in ``model.dtype``, wrap it in a LoRA adapter when ``lora.enabled``, and turn on
    gradient checkpointing when asked. Returns (model, tokenizer)."""
    from rlhub.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(name, dtype=recipe.model.dtype)
    if recipe.lora.enabled:
        from peft import LoraConfig, get_peft_model

        lora = recipe.lora
        model = get_peft_model(
            model,
            LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
                task_type="CAUSAL_LM",
            ),
        )
    if recipe.model.gradient_checkpointing:
        # transformers 5.2x renamed it (the old name warns); older versions have only the old one.
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
        if recipe.lora.enabled:
            model.enable_input_require_grads()  # the frozen embeddings' output must carry grad for the adapter
    return model, tokenizer


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


@dataclass(frozen=True)
class Policy:
    """The policy, set up for training by :func:`build_policy`."""

    model: Any
    """The (peft) model being trained, unwrapped from DDP/FSDP: what the engine samples with and checkpoints save."""
    tokenizer: Any
    trainable: list[torch.nn.Parameter]
    """The parameters the optimizer updates (the LoRA adapter's, or all of them)."""
    forward: Any
    """The training forward module (:class:`~rlhub.trainers.forward.CompletionLogits`), as accelerate prepared it."""
    optimizer: Any
    """AdamW over ``trainable``, as accelerate prepared it."""
    scheduler: Any
    """The learning-rate schedule (:func:`make_scheduler`)."""


def build_policy(recipe: Recipe, algorithm: Algorithm, accelerator) -> Policy:
    """The trainable model (LoRA), its optimizer and schedule, and its training forward module, prepared."""
    t = recipe.training
    model, tokenizer = load_trainable(recipe.model.name, recipe)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=t.learning_rate, weight_decay=t.weight_decay)
    scheduler = make_scheduler(optimizer, recipe, frozen_steps=algorithm.frozen_steps(recipe))
    # Both model calls of the training forward (shared prompt, then completions) sit in one module, so
    # DDP/FSDP see one forward per backward. An algorithm may add a head computed in the same pass.
    head = algorithm.build(recipe, accelerator, model, tokenizer)
    module = CompletionLogits(model, share_prefix=not recipe.model.gradient_checkpointing, value_head=head)
    forward, optimizer = accelerator.prepare(module, optimizer)
    algorithm.prepare(recipe, accelerator, forward, model, tokenizer)
    return Policy(
        model=accelerator.unwrap_model(forward).model,
        tokenizer=tokenizer,
        trainable=trainable,
        forward=forward,
        optimizer=optimizer,
        scheduler=scheduler,
    )
