"""Which parameters train under each strategy, in which stage, and at which learning rate.

Trainability is a pure function of a parameter's name, the strategy and the stage, so applying a stage is
idempotent and a resumed run reaches the same state by re-applying the stage of its epoch.

Frozen modules are also put in eval mode after every `model.train()` (`apply_train_mode`): a frozen block must
not drop paths (stochastic depth would only add noise to features nothing learns from) and a frozen BatchNorm
must not drift its running statistics, which is what ViTPose's `frozen_stages` does too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from poseadapt.adapt.finetune.config import FinetuneConfig
from poseadapt.errors import PoseAdaptError
from poseadapt.models.vit import layer_id

HEAD_PREFIX = "heads."
BACKBONE_PREFIX = "backbone."
LORA_MARKERS = (".lora_A.", ".lora_B.", ".lora_embedding_A.", ".lora_embedding_B.", ".lora_magnitude_vector.")


def backbone_depth(model: nn.Module) -> int:
    """Number of transformer blocks of `model.backbone`."""
    blocks = getattr(getattr(model, "backbone", None), "blocks", None)
    if blocks is None:
        raise PoseAdaptError("fine-tuning strategies need a model with a ViT backbone (model.backbone.blocks)")
    return len(blocks)


def stages(cfg: FinetuneConfig) -> tuple[str, ...]:
    """The strategy's stages in order; every strategy but head_then_full has one."""
    return ("head", "full") if cfg.strategy == "head_then_full" else (cfg.strategy,)


def stage_for_epoch(cfg: FinetuneConfig, epoch: int) -> str:
    """The stage that trains epoch `epoch` (0-based)."""
    if cfg.strategy == "head_then_full":
        return "head" if epoch < (cfg.head_epochs or 1) else "full"
    return cfg.strategy


def is_lora_param(name: str) -> bool:
    return any(m in name for m in LORA_MARKERS)


def is_trainable(name: str, cfg: FinetuneConfig, stage: str, depth: int) -> bool:
    """Whether parameter `name` (a PoseModel name) trains in `stage` of `cfg`'s strategy."""
    in_backbone = name.startswith(BACKBONE_PREFIX)
    if stage in ("full", "layer_decay"):
        return True
    if stage in ("head_only", "head"):
        return not in_backbone
    if stage == "freeze_blocks":
        if not in_backbone:
            return True
        return layer_id(name[len(BACKBONE_PREFIX) :], depth) > (cfg.freeze_blocks or 0)
    if stage == "lora":
        if is_lora_param(name):
            return True
        if in_backbone:
            return False
        head = cfg.lora.head if cfg.lora is not None else "final"
        if name.startswith(HEAD_PREFIX):
            return head == "all" or (head == "final" and ".final_layer." in name)
        return True  # parameters outside backbone and heads (none today) train
    raise PoseAdaptError(f"unknown fine-tuning stage '{stage}'")


def apply_stage(model: nn.Module, cfg: FinetuneConfig, stage: str) -> int:
    """Set `requires_grad` of every parameter for `stage`; returns how many parameter tensors changed."""
    depth = backbone_depth(model)
    changed = 0
    for name, param in model.named_parameters():
        want = is_trainable(name, cfg, stage, depth)
        if param.requires_grad != want:
            param.requires_grad_(want)
            changed += 1
    apply_train_mode(model)
    return changed


def apply_train_mode(model: nn.Module) -> None:
    """If `model` is training, put every fully frozen submodule in eval mode (see the module docstring).

    Call it after each `model.train()` (the engine's switch back from validation); a no-op in eval mode.
    """
    if not model.training:
        return
    model.train()  # a module frozen in an earlier stage may train now
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()


def will_train(name: str, cfg: FinetuneConfig, depth: int) -> bool:
    """Whether `name` trains in any stage: the parameters an optimizer must hold from the start."""
    return any(is_trainable(name, cfg, stage, depth) for stage in stages(cfg))


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, 1-D parameters (norms, LayerScale) and the position embedding are not decayed (ViTPose / BEiT)."""
    return param.ndim <= 1 or name.endswith(".bias") or "pos_embed" in name


def effective_layer_decay(cfg: FinetuneConfig, layer_decay: float | None) -> float:
    """The strategy's own rate for `layer_decay`, else the optimizer section's (1.0: none)."""
    if cfg.strategy == "layer_decay":
        if layer_decay not in (None, 1.0) and layer_decay != cfg.layer_decay:
            raise PoseAdaptError(
                f"layer decay is set twice: finetune.layer_decay {cfg.layer_decay} and optim.layer_decay {layer_decay}"
            )
        return float(cfg.layer_decay or 0.75)
    return 1.0 if layer_decay is None else float(layer_decay)


def trainable_parameter_groups(
    model: nn.Module,
    cfg: FinetuneConfig,
    base_lr: float,
    weight_decay: float,
    layer_decay: float | None = None,
) -> list[dict[str, Any]]:
    """AdamW groups of the parameters the strategy ever trains, keyed by (layer id, decayed or not).

    A backbone parameter of layer id `i` (0 embeddings, b + 1 block b, depth + 1 final norm; LoRA adapters take
    the id of the block they sit in) gets `lr = base_lr * rate ** (depth + 1 - i)`; heads get `base_lr`. Groups
    carry `names`, `layer_id` and `lr_scale` for inspection (drop `names` before handing them to torch if the
    optimizer state should hold numbers only). head_then_full includes the backbone from the start: frozen
    parameters have no gradient so AdamW skips them, and stage 2 needs no new optimizer.
    """
    depth = backbone_depth(model)
    rate = effective_layer_decay(cfg, layer_decay)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not will_train(name, cfg, depth):
            continue
        lid = layer_id(name[len(BACKBONE_PREFIX) :], depth) if name.startswith(BACKBONE_PREFIX) else depth + 1
        decay = not no_weight_decay(name, param)
        group = groups.get((lid, decay))
        if group is None:
            scale = rate ** (depth + 1 - lid)
            group = groups[(lid, decay)] = {
                "params": [],
                "names": [],
                "lr": base_lr * scale,
                "lr_scale": scale,
                "weight_decay": weight_decay if decay else 0.0,
                "layer_id": lid,
            }
        group["params"].append(param)
        group["names"].append(name)
    return [groups[k] for k in sorted(groups)]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
