"""Training losses. A loss is a `LossTerm`: a named callable on the step's batch and outputs, with a weight.

The trainer sums every term the recipe (or a fine-tuning strategy) adds, so a prior, a distillation or a
consistency loss is one more term in the list, never a branch in the loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


def keypoint_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """ViTPose's KeypointMSELoss(use_target_weight=True): MSE of (pred * w, gt * w) per joint, mean over joints.

    pred, target: (B, K, H, W); weight: (B, K). Each joint's loss is the mean over batch and pixels, and the joints
    are averaged, which equals one mean over all elements of the weighted maps. This is mmpose 1.x's scale; the
    original ViTPose (mmpose 0.x) also halves it, which a term weight of 0.5 reproduces.
    """
    if weight is not None:
        w = weight[:, :, None, None].to(pred.dtype)
        pred, target = pred * w, target * w
    return torch.mean((pred.float() - target.float()) ** 2)


class LossTerm(nn.Module):
    """One term of the training loss: `forward(batch, outputs)` -> a scalar, scaled by `weight` in the sum.

    `batch` is the device batch dict (`image`, `target`, `target_weight`, `dataset_index`, ...) and `outputs`
    what the model returned. Subclass it (it is an nn.Module, so a term may own parameters, e.g. a feature
    projector for distillation; the trainer puts those in the optimizer).
    """

    name: str = "loss"

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def forward(self, batch: Mapping[str, Any], outputs: Any) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class HeatmapMSE(LossTerm):
    """The supervised heatmap loss (`keypoint_mse`) against the codec's targets and per-keypoint weights."""

    name = "mse"

    def forward(self, batch: Mapping[str, Any], outputs: Any) -> torch.Tensor:
        target = batch["target"]
        if outputs.shape != target.shape:
            raise ValueError(f"model output {tuple(outputs.shape)} does not match the targets {tuple(target.shape)}")
        return keypoint_mse(outputs, target, batch["target_weight"])
