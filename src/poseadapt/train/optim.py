"""AdamW parameter groups with layer-wise lr decay, and the warm-up + step / cosine lr schedule.

Layer-wise decay (BEiT / ViTPose): a backbone parameter gets layer id 0 (patch / position embedding), i + 1 (block
i) or depth + 1 (final norm); everything outside the backbone (heads, loss-term parameters) is depth + 1. Its lr is
`lr * layer_decay ** (depth + 1 - id)`, so the heads train at the full rate and early blocks barely move. Biases,
all 1-D parameters (norms, LayerScale) and the position embedding get no weight decay.

The schedule is one function of the global iteration (warm-up factor times the epoch-wise step or cosine factor,
as mmpose chains LinearLR and MultiStepLR / CosineAnnealingLR), driven by a LambdaLR stepped every iteration, so
its whole state is one integer and resuming mid-epoch is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from poseadapt.models.vit import layer_id


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, 1-D parameters and position embeddings are not decayed."""
    return param.ndim <= 1 or name.endswith(".bias") or "pos_embed" in name


def backbone_depth(model: nn.Module) -> int:
    """Number of transformer blocks of the model's backbone (0 when it has none: no layer decay then)."""
    backbone = getattr(model, "backbone", None)
    blocks = getattr(backbone, "blocks", None)
    return len(blocks) if blocks is not None else 0


def param_layer_id(name: str, depth: int) -> int:
    """Layer id of a model parameter by name (see the module docstring)."""
    if name.startswith("backbone."):
        return layer_id(name[len("backbone.") :], depth)
    return depth + 1


def param_groups(
    named_params: Iterable[tuple[str, torch.Tensor]],
    lr: float,
    weight_decay: float,
    layer_decay: float = 1.0,
    depth: int = 0,
    lr_scale: Callable[[str], float] | None = None,
) -> list[dict[str, Any]]:
    """Optimizer groups keyed by (layer id, decay / no decay); every parameter is included, trainable or not.

    Frozen parameters (requires_grad False) have no gradient, so AdamW skips them; including them means a strategy
    that unfreezes a stage later needs no new optimizer. Each group records `layer_id` and `lr_scale` for logs.
    `lr_scale(name)` (an adaptation method's, e.g. layer decay) multiplies the scale; it must depend on the layer
    id only, since parameters are grouped by it.
    """
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in named_params:
        lid = param_layer_id(name, depth) if layer_decay != 1.0 or lr_scale is not None else depth + 1
        decay = not no_weight_decay(name, param)
        key = (lid, decay)
        if key not in groups:
            scale = layer_decay ** (depth + 1 - lid) * (1.0 if lr_scale is None else lr_scale(name))
            groups[key] = {
                "params": [],
                "names": [],
                "lr": lr * scale,
                "lr_scale": scale,
                "weight_decay": weight_decay if decay else 0.0,
                "layer_id": lid,
            }
        groups[key]["params"].append(param)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    layer_decay: float = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    extra: Iterable[tuple[str, torch.Tensor]] = (),
) -> torch.optim.AdamW:
    """AdamW over `model` (plus `extra` named parameters, e.g. of loss terms) with layer decay and no-decay groups."""
    named = list(model.named_parameters()) + list(extra)
    groups = param_groups(named, lr, weight_decay, layer_decay, backbone_depth(model))
    for g in groups:
        del g["names"]  # names are for inspection; the optimizer state dict should hold only numbers
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def lr_factor(
    iteration: int,
    iters_per_epoch: int,
    *,
    warmup_iters: int = 0,
    warmup_ratio: float = 1e-3,
    policy: str = "step",
    milestones: Iterable[int] = (),
    gamma: float = 0.1,
    epochs: int = 1,
    min_lr_ratio: float = 0.0,
) -> float:
    """lr multiplier at `iteration` (0-based, counted over the whole run).

    warm-up: linear from `warmup_ratio` to 1 over `warmup_iters` iterations; step: x gamma at each milestone epoch;
    cosine: from 1 to `min_lr_ratio` over `epochs`, per iteration.
    """
    warm = 1.0
    if warmup_iters > 0 and iteration < warmup_iters:
        warm = warmup_ratio + (1.0 - warmup_ratio) * iteration / warmup_iters
    if policy == "step":
        epoch = iteration // max(iters_per_epoch, 1)
        main = gamma ** sum(1 for m in milestones if epoch >= m)
    elif policy == "cosine":
        total = max(epochs * iters_per_epoch, 1)
        progress = min(iteration / total, 1.0)
        main = min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    elif policy == "constant":
        main = 1.0
    else:
        raise ValueError(f"unknown lr policy '{policy}'")
    return warm * main


def build_scheduler(
    optimizer: torch.optim.Optimizer, factor: Callable[[int], float]
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying `factor(iteration)` to each group's initial lr; call `.step()` once per iteration."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
