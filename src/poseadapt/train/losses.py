"""Training losses. A loss is a `LossTerm`: a named callable on the step's batch and outputs, with a weight.

The trainer sums every term (and every adaptation method's losses), so an extra
consistency loss is one more term in the list, never a branch in the loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


def keypoint_mse(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    num_keypoints: torch.Tensor | None = None,
) -> torch.Tensor:
    """MMPose 1.x KeypointMSELoss(use_target_weight=True): `mean(w * (p - g)^2)` over batch, joints and pixels.

    pred, target: (B, K, H, W); weight: (B, K). For 0/1 weights this equals ViTPose's MSE of (p * w, g * w); for
    fractional weights (a pseudo-label's confidence) it counts a half-sure label half, where the squared-weight form
    would count it a quarter. The original ViTPose (mmpose 0.x) also halves the loss: a term weight of 0.5.

    `num_keypoints` (B,): a batch mixing skeletons is zero-padded to the largest head; each sample's error is then
    averaged over its own K_b keypoints (not the padded K), so a 14-keypoint sample weighs what it would in a
    batch of its own dataset, whatever else the batch holds (ViTPose++'s per-head losses with the other
    datasets' samples masked, summed over heads). With every K_b = K this is exactly the plain mean.
    """
    err = (pred.float() - target.float()) ** 2
    if weight is not None:
        err = err * weight[:, :, None, None].float()
    if num_keypoints is None:
        return torch.mean(err)
    per_sample = err.sum(dim=1).mean(dim=(-2, -1))  # (B,): sum over keypoints, mean over pixels
    k = num_keypoints.to(per_sample.device, per_sample.dtype).clamp(min=1)
    return torch.mean(per_sample / k)


class LossTerm(nn.Module):
    """One term of the training loss: `forward(batch, outputs)` -> a scalar, scaled by `weight` in the sum.

    `batch` is the device batch dict (`image`, `target`, `target_weight`, `dataset_index`, ...) and `outputs`
    what the model returned. Subclass it (it is an nn.Module, so a term may own parameters, e.g. a feature
    projector; the trainer puts those in the optimizer).
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
        return keypoint_mse(outputs, target, batch["target_weight"], batch.get("num_keypoints"))


def kl_discret_loss(
    pred: tuple[torch.Tensor, torch.Tensor] | list[torch.Tensor],
    target: tuple[torch.Tensor, torch.Tensor] | list[torch.Tensor],
    weight: torch.Tensor | None = None,
    beta: float = 10.0,
    label_beta: float = 10.0,
    label_softmax: bool = True,
) -> torch.Tensor:
    """MMPose 1.x `KLDiscretLoss` (RTMPose: beta=10, label_softmax=True, use_target_weight=True).

    For each axis: KL(q || softmax(beta * logits)) with q = softmax(label_beta * label) (label smoothing of the
    Gaussian labels) or the label itself, averaged over bins, times the keypoint weight; summed over both axes,
    samples and keypoints, divided by K. As in the reference, the loss is summed (not averaged) over the batch.
    pred, target: (x (B, K, Wx), y (B, K, Wy)); weight: (B, K).
    """
    k = pred[0].shape[1]
    total = pred[0].new_zeros((), dtype=torch.float32)
    for p, t in zip(pred, target, strict=True):
        if p.shape != t.shape:
            raise ValueError(f"SimCC output {tuple(p.shape)} does not match the targets {tuple(t.shape)}")
        log_p = torch.log_softmax(p.float() * beta, dim=-1)
        q = torch.softmax(t.float() * label_beta, dim=-1) if label_softmax else t.float()
        kl = torch.nn.functional.kl_div(log_p, q, reduction="none").mean(dim=-1)  # (B, K)
        if weight is not None:
            kl = kl * weight.float()
        total = total + kl.sum()
    return total / k


class SimCCKL(LossTerm):
    """The supervised SimCC loss (`kl_discret_loss`, RTMPose's settings) against the codec's (x, y) labels."""

    name = "kl"

    def __init__(self, weight: float = 1.0, beta: float = 10.0, label_beta: float = 10.0) -> None:
        super().__init__(weight)
        self.beta = float(beta)
        self.label_beta = float(label_beta)

    def forward(self, batch: Mapping[str, Any], outputs: Any) -> torch.Tensor:
        target = batch["target"]
        if not isinstance(outputs, tuple | list) or not isinstance(target, tuple | list):
            raise ValueError("SimCC loss: the model output and the targets must both be (x, y) pairs")
        return kl_discret_loss(outputs, target, batch["target_weight"], self.beta, self.label_beta)


def supervised_loss(codec_type: str | None) -> LossTerm:
    """The supervised loss for a model's codec: KL on SimCC labels, else MSE on heatmaps."""
    return SimCCKL() if codec_type == "SimCC" else HeatmapMSE()
