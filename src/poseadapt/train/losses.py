"""Training losses. A loss is a `LossTerm`: a named callable on the step's batch and outputs, with a weight.

The trainer sums every term (and every adaptation method's losses), so an extra
consistency loss is one more term in the list, never a branch in the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    err = _weighted_squared_error(pred, target, weight)
    if num_keypoints is None:
        return torch.mean(err)
    return torch.mean(_per_sample_mse(err, num_keypoints))


def _weighted_squared_error(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    err = (pred.float() - target.float()) ** 2
    return err if weight is None else err * weight[:, :, None, None].float()


def _per_sample_mse(err: torch.Tensor, num_keypoints: torch.Tensor | None) -> torch.Tensor:
    """(B,) from weighted squared errors (B, K, H, W): each sample's mean over its own K_b keypoints and the pixels."""
    if num_keypoints is None:
        return err.mean(dim=(1, 2, 3))
    per_sample = err.sum(dim=1).mean(dim=(-2, -1))  # (B,): sum over keypoints, mean over pixels
    k = num_keypoints.to(per_sample.device, per_sample.dtype).clamp(min=1)
    return per_sample / k


def keypoint_mse_per_sample(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    num_keypoints: torch.Tensor | None = None,
) -> torch.Tensor:
    """`keypoint_mse` before the batch mean: (B,), whose mean is `keypoint_mse`."""
    return _per_sample_mse(_weighted_squared_error(pred, target, weight), num_keypoints)


def mirrored_labels(
    target: torch.Tensor | Sequence[torch.Tensor], weight: torch.Tensor, batch: Mapping[str, Any]
) -> tuple[torch.Tensor | tuple[torch.Tensor, ...], torch.Tensor]:
    """Each sample's targets and weights with left and right exchanged (channel k takes `mirror_partner[b, k]`).

    Positions past a sample's own keypoint count (a zero-padded mixed batch) and samples without a partner map
    (zeros) keep their own channels."""
    partner = batch["mirror_partner"].to(weight.device).long()
    b, k = weight.shape
    own = torch.arange(k, device=weight.device).expand(b, k)
    valid = batch["left_right_either"].to(weight.device)[:, None] > 0
    if "num_keypoints" in batch:
        valid = valid & (own < batch["num_keypoints"].to(weight.device)[:, None])
    index = torch.where(valid, partner, own)

    def take(t: torch.Tensor) -> torch.Tensor:
        return torch.gather(t, 1, index.view(b, k, *([1] * (t.dim() - 2))).expand_as(t))

    swapped = tuple(take(t) for t in target) if isinstance(target, tuple | list) else take(target)
    return swapped, torch.gather(weight, 1, index)


def nearer_of_mirror(per_sample: Callable[[Any, torch.Tensor], torch.Tensor], batch: Mapping[str, Any]) -> torch.Tensor:
    """(B,) losses: `per_sample(target, weight)`, or for samples whose labels' left/right is unsure (a data source's
    `left_right: either`, e.g. pseudo-labels of people whose facing the teacher may have missed) a mix in which the
    share `left_right_either[b]` takes the smaller of it and the same loss against the mirrored labels, as pose
    losses for symmetric objects take the nearest symmetric pose (PoseCNN's ShapeMatch loss). The model then keeps
    its own left/right decision, learnt from the labels it can trust, instead of copying a coin flip; the rest
    (`left_right_anchor`) stays on the labels as given, so the population's convention follows their majority."""
    plain = per_sample(batch["target"], batch["target_weight"])
    if "left_right_either" not in batch:
        return plain
    target, weight = mirrored_labels(batch["target"], batch["target_weight"], batch)
    share = batch["left_right_either"].to(plain.device, plain.dtype)
    return share * torch.minimum(plain, per_sample(target, weight)) + (1 - share) * plain


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
        if "left_right_either" not in batch:
            return keypoint_mse(outputs, target, batch["target_weight"], batch.get("num_keypoints"))
        count = batch.get("num_keypoints")
        return nearer_of_mirror(lambda t, w: keypoint_mse_per_sample(outputs, t, w, count), batch).mean()


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
    return kl_discret_per_sample(pred, target, weight, beta, label_beta, label_softmax).sum()


def kl_discret_per_sample(
    pred: tuple[torch.Tensor, torch.Tensor] | list[torch.Tensor],
    target: tuple[torch.Tensor, torch.Tensor] | list[torch.Tensor],
    weight: torch.Tensor | None = None,
    beta: float = 10.0,
    label_beta: float = 10.0,
    label_softmax: bool = True,
) -> torch.Tensor:
    """`kl_discret_loss` before the batch sum: (B,), whose sum is `kl_discret_loss`."""
    k = pred[0].shape[1]
    total = pred[0].new_zeros((pred[0].shape[0],), dtype=torch.float32)
    for p, t in zip(pred, target, strict=True):
        if p.shape != t.shape:
            raise ValueError(f"SimCC output {tuple(p.shape)} does not match the targets {tuple(t.shape)}")
        log_p = torch.log_softmax(p.float() * beta, dim=-1)
        q = torch.softmax(t.float() * label_beta, dim=-1) if label_softmax else t.float()
        kl = torch.nn.functional.kl_div(log_p, q, reduction="none").mean(dim=-1)  # (B, K)
        if weight is not None:
            kl = kl * weight.float()
        total = total + kl.sum(dim=1)
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
        if "left_right_either" not in batch:
            return kl_discret_loss(outputs, target, batch["target_weight"], self.beta, self.label_beta)
        return nearer_of_mirror(
            lambda t, w: kl_discret_per_sample(outputs, t, w, self.beta, self.label_beta), batch
        ).sum()


def supervised_loss(codec_type: str | None) -> LossTerm:
    """The supervised loss for a model's codec: KL on SimCC labels, else MSE on heatmaps."""
    return SimCCKL() if codec_type == "SimCC" else HeatmapMSE()
