"""Replay against forgetting, shared by the `rehearsal` and `memory_replay` methods: source samples presented in
the target schema, and a frozen teacher's pseudo-labels for keypoints no label supplies.

A rehearsal sample comes from the source domain (adults, labelled in the source schema, e.g. coco17) and trains
the target-schema head (e.g. infant21). Its target-schema targets are built in two steps:

1. `SourceAsTarget` (per sample, in the DataLoader): the source labels are carried to the target schema by name
   (`SchemaMap.transfer`) and encoded with the target codec; target keypoints without a source label are marked in
   `pseudo_mask`: those the source schema lacks (no name match, no midpoint rule) and, with `fill_unlabelled`,
   also those a sample leaves unlabelled.
2. `RehearsalTargets` (per batch, on the device, before the forward pass): the frozen source model (the teacher)
   runs on the same crops; for every masked keypoint the teacher also predicts (matched by name), its decoded peak
   becomes a Gaussian target weighted by the teacher's confidence (0 below `score_threshold`, and 0 where the
   decoded peak falls outside the crop: DARK refinement can push a border maximum out, and a border maximum
   mostly means the keypoint is not in the crop).

This is DeepLabCut's memory replay (SuperAnimal fine-tuning keeps unannotated keypoints alive with the pretrained
model's predictions), for any pair of schemas. The teacher must be a heatmap model with the student's crop and
heatmap size; it stays frozen, in eval mode, under no_grad.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from poseadapt.errors import PoseAdaptError
from poseadapt.schemas import KeypointSchema, get_schema
from poseadapt.schemas.mapping import SchemaMap


class MappedDataset:
    """A top-down dataset whose items pass through `transform` (the wrapped dataset keeps its seed and epochs).

    The one wrapper every method that re-labels or tags a data stream builds on (`SourceAsTarget`, domain tags).
    """

    dataset: Any

    @property
    def seed(self) -> int:
        return self.dataset.seed

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.transform(self.dataset[index])

    def get(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        return self.transform(self.dataset.get(index, rng))

    def transform(self, item: dict[str, Any]) -> dict[str, Any]:
        return item


class SourceAsTarget(MappedDataset):
    """A top-down dataset of source-schema samples presented in the target schema (see the module docstring).

    Items keep the wrapped dataset's keys; `target`, `target_weight` and `keypoints` are in the target schema and
    `extra['pseudo_mask']` (K,) float32 is 1 for target keypoints left to the teacher: unlabelled ones the source schema
    cannot supply, and with `fill_unlabelled` every unlabelled one. (The `rehearsal` method passes its
    `fill_unlabelled` option, default off.)
    """

    def __init__(
        self, dataset: Any, target_schema: str | KeypointSchema, codec: Any, *, fill_unlabelled: bool = True
    ) -> None:
        self.dataset = dataset
        self.mapping = SchemaMap(dataset.schema, target_schema)
        self.schema = self.mapping.dst
        self.codec = codec
        self.fill_unlabelled = bool(fill_unlabelled)
        self.schema_gaps = np.asarray([k == "unmatched" for k in self.mapping.kinds])  # no source can label these

    def transform(self, item: dict[str, Any]) -> dict[str, Any]:
        return self.to_target(item)

    def to_target(self, item: dict[str, Any]) -> dict[str, Any]:
        keypoints = self.mapping.transfer(np.asarray(item["keypoints"], dtype=np.float32))
        labelled = keypoints[:, 2] > 0
        target, weight = self.codec.encode(keypoints[:, :2], labelled.astype(np.float32))
        return {
            **item,
            "target": target,
            "target_weight": (np.asarray(weight, np.float32) * labelled).astype(np.float32),
            "keypoints": keypoints.astype(np.float32),
            "extra": {
                **item.get("extra", {}),
                "pseudo_mask": (~labelled & (self.fill_unlabelled | self.schema_gaps)).astype(np.float32),
            },
        }


def frozen_teacher(source: nn.Module | str | Path) -> nn.Module:
    """The frozen source model: a copy of `source` (or the checkpoint at that path), no grad, eval mode."""
    if isinstance(source, str | Path):
        from poseadapt.interop.checkpoint import load_checkpoint

        teacher = load_checkpoint(source)
    else:
        teacher = copy.deepcopy(source)
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher.eval()


def teacher_fingerprint(teacher: nn.Module) -> str:
    """A digest of the teacher's weights: a resumed run checks it rebuilt the teacher it started with."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in teacher.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def crops_to_pixels(images: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Crops as the batch carries them (uint8 (B, H, W, 3) RGB, or float (B, 3, H, W)) -> `model`'s input."""
    if images.dtype == torch.uint8 and images.shape[-1] == 3:
        return model.normalize(images.permute(0, 3, 1, 2))
    return images.float()


class RehearsalTargets:
    """Fills the masked keypoints of a batch with the teacher's pseudo-labels (see the module docstring).

    Args:
        teacher: the source model (frozen here); its first head (or `teacher_head`) supplies the heatmaps.
        target_schema: the student's schema; teacher keypoints are matched to it by name.
        codec: the student's heatmap codec (decodes the teacher's heatmaps and encodes the pseudo targets).
        score_threshold: teacher confidence (heatmap maximum) below which a keypoint stays unsupervised.
        weight_by_confidence: weight a pseudo-label by the teacher's confidence (else by 1).
    """

    def __init__(
        self,
        teacher: nn.Module,
        target_schema: str | KeypointSchema,
        codec: Any,
        *,
        score_threshold: float = 0.3,
        weight_by_confidence: bool = True,
        teacher_head: str | None = None,
    ) -> None:
        self.teacher = frozen_teacher(teacher) if any(p.requires_grad for p in teacher.parameters()) else teacher
        self.teacher.eval()
        head = teacher_head or self.teacher.head_names[0]
        self.head_index = self.teacher.head_index(head)
        self.schema = get_schema(target_schema)
        self.codec = codec
        self.score_threshold = float(score_threshold)
        self.weight_by_confidence = bool(weight_by_confidence)
        mapping = SchemaMap(self.teacher.schemas[self.head_index], self.schema)
        if not mapping.matched:
            raise PoseAdaptError(f"the rehearsal teacher ({mapping.src.name}) predicts no {self.schema.name} keypoint")
        self.teacher_channels = [s for s, _ in mapping.matched]
        self.target_channels = [d for _, d in mapping.matched]
        if tuple(self.teacher.input_size) != tuple(codec.input_size):
            raise PoseAdaptError(
                f"the rehearsal teacher takes {self.teacher.input_size} crops, the student {tuple(codec.input_size)}"
            )

    @torch.no_grad()
    def teacher_heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's heatmaps (B, K_teacher, h, w) on the batch's crops."""
        device = images.device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        self.teacher.eval()
        out = self.teacher(crops_to_pixels(images, self.teacher), self.head_index)
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            raise PoseAdaptError("the rehearsal teacher must be a heatmap model")
        return out.float()

    @torch.no_grad()
    def __call__(self, batch: dict[str, Any], mask: torch.Tensor | None = None) -> dict[str, float]:
        """Fill the keypoints `mask` (B, K; default the batch's `pseudo_mask`) selects with the teacher's labels.

        Updates `batch['target']` / `batch['target_weight']` in place; returns counts for the logs.
        """
        mask = batch.get("pseudo_mask") if mask is None else mask
        if mask is None:
            return {}
        needed = mask[:, self.target_channels] > 0
        rows = torch.nonzero(needed.any(dim=1)).flatten()
        if rows.numel() == 0:
            return {"pseudo_labels": 0.0}
        heatmaps = self.teacher_heatmaps(batch["image"][rows])[:, self.teacher_channels]
        w, h = self.codec.heatmap_size
        if tuple(heatmaps.shape[-2:]) != (h, w):
            raise PoseAdaptError(f"the rehearsal teacher's heatmaps are {tuple(heatmaps.shape[-2:])}, not ({h}, {w})")
        points, scores = self.codec.decode(heatmaps.cpu().numpy())
        pseudo, _ = self.codec.encode(points, np.ones(scores.shape, np.float32))
        iw, ih = self.codec.input_size
        # a decoded peak outside the crop (DARK can push a border maximum out) mostly means "not in this crop"
        inside = (points[..., 0] >= 0) & (points[..., 0] <= iw - 1) & (points[..., 1] >= 0) & (points[..., 1] <= ih - 1)
        confident = torch.from_numpy((scores >= max(self.score_threshold, 1e-12)) & inside).to(mask.device)
        use = needed[rows] & confident  # (R, M)
        conf = np.clip(scores, 0.0, 1.0).astype(np.float32)
        weights = torch.from_numpy(conf if self.weight_by_confidence else np.ones_like(conf)).to(mask.device)

        target, weight = batch["target"], batch["target_weight"]
        r_idx, m_idx = torch.nonzero(use, as_tuple=True)
        d_idx = torch.as_tensor(self.target_channels, device=mask.device)[m_idx]
        b_idx = rows[r_idx]
        target[b_idx, d_idx] = torch.from_numpy(pseudo).to(target)[r_idx, m_idx]
        weight[b_idx, d_idx] = weights[r_idx, m_idx].to(weight)
        n = int(use.sum())
        return {"pseudo_labels": float(n), "pseudo_confidence": float(weights[use].mean()) if n else 0.0}
