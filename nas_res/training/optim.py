"""The optimiser and learning-rate schedule a `Recipe` describes, built for a model's parameters."""

from __future__ import annotations

import torch
from torch import nn

from .recipe import Recipe, lr_factor


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum or AdamW; weight decay only on conv and linear weights (decaying BN
    weights and biases hurts accuracy, and the papers' code exempts them)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)  # BN weights/biases and all biases
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)
    return torch.optim.AdamW(groups, lr=recipe.lr)


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int):
    """Stepped once per batch: the recipe's warmup and decay (`lr_factor`) times the peak lr."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(recipe, steps_per_epoch))
