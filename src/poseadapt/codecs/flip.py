"""Flip-test helpers: mirror keypoints, and map a prediction on the mirrored image back onto the original.

Coordinate convention (both UDP and MSRA pipelines): mirroring an image of width w sends the pixel centre x to
x' = w - 1 - x, and keypoint k to channel flip_index[k] (left <-> right), with the schema's `flip_index`.

How a mirrored prediction maps back depends on the geometry of the target:
- UDP heatmaps: heatmap pixel j covers input j * (w - 1) / (W - 1), so reversing the columns is exactly the
  mirror; no shift (``shift=False``).
- MSRA heatmaps: pixel j covers input j * w / W; reversing lands (w / W - 1) input pixels too far left, which
  mmpose / HRNet compensate by shifting the flipped maps one heatmap pixel right (``shift=True``).
- SimCC: bin b covers input b / r; reversing lands r - 1 bins too far right. mmpose does not compensate (a
  (r - 1) / (2 r) px bias after averaging); pass ``split_ratio`` to shift the bins back.

All helpers take numpy arrays and also torch tensors (duck-typed; torch is never imported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _is_torch(array: Any) -> bool:
    return type(array).__module__.split(".")[0] == "torch"


def _permutation(flip_index: Sequence[int], num_keypoints: int) -> list[int]:
    index = [int(i) for i in flip_index]
    if sorted(index) != list(range(num_keypoints)):
        raise ValueError(f"flip_index must be a permutation of 0..{num_keypoints - 1}, got {list(flip_index)}")
    return index


def _reverse_last(array: Any) -> Any:
    return array.flip(-1) if _is_torch(array) else array[..., ::-1]


def _copy(array: Any) -> Any:
    return array.clone() if _is_torch(array) else np.array(array, copy=True)


def flip_heatmaps_back(heatmaps: Any, flip_index: Sequence[int], shift: bool = False) -> Any:
    """Heatmaps (N, K, H, W) or (K, H, W) predicted on the mirrored image -> heatmaps aligned with the original.

    Reverses the width axis, swaps left/right channels with `flip_index`, and with ``shift=True`` moves the maps
    one pixel right (MSRA geometry; column 0 keeps its value). UDP heatmaps need ``shift=False``.
    """
    index = _permutation(flip_index, heatmaps.shape[-3])
    out = _copy(_reverse_last(heatmaps)[..., index, :, :])
    if shift:
        out[..., 1:] = _copy(out[..., :-1])
    return out


def flip_simcc_back(
    x_labels: Any, y_labels: Any, flip_index: Sequence[int], split_ratio: float | None = None
) -> tuple[Any, Any]:
    """SimCC vectors x (.., K, Wx) and y (.., K, Wy) predicted on the mirrored image -> aligned with the original.

    Reverses x, swaps left/right keypoints in both. With ``split_ratio`` the reversed x vector is also moved
    round(split_ratio - 1) bins left, which makes the round trip exact for the x' = w - 1 - x mirror (the last
    bins keep their values); without it the result matches mmpose's ``flip_vectors``.
    """
    index = _permutation(flip_index, x_labels.shape[-2])
    x_out = _copy(_reverse_last(x_labels)[..., index, :])
    y_out = _copy(y_labels[..., index, :])
    bins = 0 if split_ratio is None else int(round(split_ratio - 1.0))
    if bins > 0:
        x_out[..., :-bins] = _copy(x_out[..., bins:])
    return x_out, y_out


def flip_keypoints(keypoints: Any, flip_index: Sequence[int], width: float) -> Any:
    """Mirror keypoints (..., K, D >= 2) in an image (or crop) of the given width: x' = width - 1 - x.

    Channels are swapped with `flip_index`; columns after x (y, visibility, score) move with their keypoint.
    The pixel-centre convention makes the mirror an exact involution on the pixel grid.
    """
    index = _permutation(flip_index, keypoints.shape[-2])
    out = _copy(keypoints[..., index, :])
    out[..., 0] = (width - 1) - out[..., 0]
    return out
