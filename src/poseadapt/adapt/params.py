"""Which parameters train: names, stages and the frozen-module rule shared by every parameter-choosing method.

Trainability is a pure function of a parameter's name and the epoch, so applying it is idempotent and a resumed
run reaches the same state by re-applying the choice of its epoch.

Frozen modules are put in eval mode after every `model.train()` (`apply_train_mode`): a frozen block must not
drop paths (stochastic depth would only add noise to features nothing learns from) and a frozen BatchNorm must not
drift its running statistics, which is what ViTPose's `frozen_stages` does too.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from poseadapt.errors import PoseAdaptError
from poseadapt.models.vit import layer_id

HEAD_PREFIX = "heads."
BACKBONE_PREFIX = "backbone."
LORA_MARKERS = (".lora_A.", ".lora_B.", ".lora_embedding_A.", ".lora_embedding_B.", ".lora_magnitude_vector.")


def backbone_depth(model: nn.Module) -> int:
    """Number of transformer blocks of `model.backbone` (0 without a ViT backbone)."""
    blocks = getattr(getattr(model, "backbone", None), "blocks", None)
    return 0 if blocks is None else len(blocks)


def require_vit(model: nn.Module, who: str) -> int:
    depth = backbone_depth(model)
    if depth == 0:
        raise PoseAdaptError(f"{who} needs a model with a ViT backbone (model.backbone.blocks)")
    return depth


def in_backbone(name: str) -> bool:
    return name.startswith(BACKBONE_PREFIX)


def backbone_layer(name: str, depth: int) -> int:
    """Layer id of a model parameter: 0 embeddings, b + 1 block b, depth + 1 final norm and everything else."""
    return layer_id(name[len(BACKBONE_PREFIX) :], depth) if in_backbone(name) else depth + 1


def is_lora_param(name: str) -> bool:
    return any(m in name for m in LORA_MARKERS)


def apply_trainable(model: nn.Module, trainable: Callable[[str], bool]) -> bool:
    """Set `requires_grad` of every parameter from `trainable(name)`; True when any parameter changed."""
    changed = False
    for name, param in model.named_parameters():
        want = bool(trainable(name))
        if param.requires_grad != want:
            param.requires_grad_(want)
            changed = True
    apply_train_mode(model)
    return changed


def apply_train_mode(model: nn.Module) -> None:
    """If `model` is training, put every fully frozen submodule in eval mode (see the module docstring)."""
    if not model.training:
        return
    model.train()  # a module frozen in an earlier stage may train now
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()


def trainable_names(model: nn.Module) -> tuple[str, ...]:
    return tuple(n for n, p in model.named_parameters() if p.requires_grad)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
