"""The trainable model: a base checkpoint with the recipe's LoRA adapter and gradient checkpointing.

The policy and PPO's separate critic are both built here, so they get the same adapter settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlhub.trainers.recipe import Recipe

if TYPE_CHECKING:
    from rlhub.models import DtypeChoice


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
