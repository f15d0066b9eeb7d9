"""PPO's critic: a value head on the policy's trunk, or a separate value model, with its own optimizer.

``shared``: a linear head reads the policy's last hidden state. The trunk (the LoRA adapter) gets
gradients from both losses; the head has its own optimizer, so value warm-up can train the head
alone and leave the policy untouched.
``separate``: a second copy of a base model (its own LoRA adapter when ``lora.enabled``) with a head.
It doubles the trunk's memory, and its values do not interfere with the policy's features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rlhub.errors import ConfigError
from rlhub.trainers.forward import CompletionLogits
from rlhub.trainers.model import load_trainable
from rlhub.trainers.recipe import Recipe


class ValueHead(nn.Module):
    """hidden [..., H] -> value [..., 1]; zero-initialized, so every value starts at 0."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.float())


def hidden_size(model: nn.Module) -> int:
    config = model.config
    return getattr(config, "hidden_size", None) or config.get_text_config().hidden_size


@dataclass
class Critic:
    """What the loop needs: the module that computes values, and the optimizer of the critic's own weights.

    ``module`` is the policy's forward module when ``shared`` (values come out of the same pass as logits).
    """

    shared: bool
    module: nn.Module
    optimizer: torch.optim.Optimizer
    params: list[nn.Parameter]
    warmup_steps: int


def build_critic(recipe: Recipe, policy: nn.Module, tokenizer) -> tuple[nn.Module, list[nn.Parameter]]:
    """The (unprepared) critic module and its trainable parameters.

    shared: the ValueHead only (the loop puts it inside the policy's CompletionLogits);
    separate: a CompletionLogits over a new trunk, with a ValueHead.
    """
    c = recipe.critic
    if c.kind == "shared":
        head = ValueHead(hidden_size(policy))
        return head, list(head.parameters())
    name = c.model or recipe.model.name
    trunk, critic_tokenizer = load_trainable(name, recipe)
    if critic_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(f"critic.model {name!r} has another tokenizer than the policy; pick one from its family")
    module = CompletionLogits(
        trunk, share_prefix=not recipe.model.gradient_checkpointing, value_head=ValueHead(hidden_size(trunk))
    )
    return module, [p for p in module.parameters() if p.requires_grad]
