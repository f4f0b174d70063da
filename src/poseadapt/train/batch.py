"""Collating top-down samples into batches and moving them to the device.

Images travel as uint8 (B, H, W, 3), a quarter of the bytes of normalised float32, and are normalised on the
device by the model's own mean / std. Targets of datasets with different keypoint counts (a mixed batch) are
zero-padded to the largest count with zero weights, which is what a multi-head model's zero-padded output expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

TRAIN_KEYS = ("image", "target", "target_weight", "dataset_index")


def _pad_stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Stack arrays whose first axis (keypoints) may differ, zero-padding it to the largest."""
    k = max(a.shape[0] for a in arrays)
    if all(a.shape[0] == k for a in arrays):
        return np.stack(arrays)
    out = np.zeros((len(arrays), k, *arrays[0].shape[1:]), dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return out


def _stack_targets(targets: Sequence[Any]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Per-sample targets -> one float32 tensor, or a tuple of them when each target is a tuple (SimCC x, y)."""
    if isinstance(targets[0], tuple | list):
        parts = zip(*targets, strict=True)
        return tuple(torch.from_numpy(_pad_stack([np.asarray(t, dtype=np.float32) for t in p])) for p in parts)
    return torch.from_numpy(_pad_stack([np.asarray(t, dtype=np.float32) for t in targets]))


def collate(samples: Sequence[dict[str, Any]], keep_meta: bool = False) -> dict[str, Any]:
    """Samples -> a batch of tensors (`image` uint8 or float as produced, `target` (a tuple for SimCC), `target_weight`,
    `dataset_index`); `keep_meta` also keeps each sample's `meta` dict in a list (validation needs it)."""
    images = [s["image"] for s in samples]
    image = torch.stack(images) if isinstance(images[0], torch.Tensor) else torch.from_numpy(np.stack(images))
    batch: dict[str, Any] = {
        "image": image,
        "target": _stack_targets([s["target"] for s in samples]),
        "target_weight": torch.from_numpy(_pad_stack([np.asarray(s["target_weight"], np.float32) for s in samples])),
        "dataset_index": torch.tensor([int(s.get("dataset_index", 0)) for s in samples], dtype=torch.long),
    }
    counts = [len(s["target_weight"]) for s in samples]
    if len(set(counts)) > 1:  # mixed skeletons, padded: the loss averages each sample over its own keypoints
        batch["num_keypoints"] = torch.tensor(counts, dtype=torch.long)
    # per-keypoint arrays a dataset adds under `extra` (an adaptation method's, e.g. which keypoints it
    # should label): stacked and zero-padded like the targets, zeros for samples of datasets that have none
    extra_keys = sorted({k for s in samples for k in s.get("extra", {})})
    for key in extra_keys:
        first = next(np.asarray(s["extra"][key]) for s in samples if key in s.get("extra", {}))
        rows = [
            np.asarray(s["extra"][key], first.dtype)
            if key in s.get("extra", {})
            else np.zeros((len(s["target_weight"]), *first.shape[1:]), first.dtype)
            for s in samples
        ]
        batch[key] = torch.from_numpy(_pad_stack(rows))
    # whole-sample arrays a dataset adds under `sample_extra` (a second view of the crop, a mask): stacked as they
    # are, zeros of the same shape for samples of datasets that have none
    sample_keys = sorted({k for s in samples for k in s.get("sample_extra", {})})
    for key in sample_keys:
        given = [s.get("sample_extra", {}).get(key) for s in samples]
        first = np.asarray(next(g for g in given if g is not None))
        stacked = np.stack([np.zeros_like(first) if g is None else np.asarray(g, first.dtype) for g in given])
        batch[key] = torch.from_numpy(stacked)
    if keep_meta:
        batch["meta"] = [s["meta"] for s in samples]
    return batch


def collate_eval(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return collate(samples, keep_meta=True)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors (and tuples of tensors: SimCC targets) to `device`, non-blocking from pinned memory; others as is."""

    def move(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.to(device, non_blocking=True)
        if isinstance(v, tuple) and v and all(isinstance(t, torch.Tensor) for t in v):
            return tuple(t.to(device, non_blocking=True) for t in v)
        return v

    return {k: move(v) for k, v in batch.items()}


def model_input(images: torch.Tensor, model: Any) -> torch.Tensor:
    """uint8 (B, H, W, 3) RGB crops -> the model's normalised (B, 3, H, W) float input; CHW floats pass through."""
    if images.dtype == torch.uint8 and images.shape[-1] == 3:
        return model.normalize(images.permute(0, 3, 1, 2))
    return images.float()
