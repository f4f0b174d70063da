"""Crop geometry shared by the codecs: input-crop pixels <-> original-image pixels for an unrotated box.

Two conventions exist and a codec must use the one its crop was made with:

- UDP (Huang et al. 2020): the box [c - s/2, c + s/2] maps onto pixel *centres* 0 .. in - 1, so
  ``image = u * s / (in - 1) + c - s / 2``. Mirroring and resizing are exact in this convention.
- MSRA (SimpleBaseline / HRNet, RTMPose): the box maps onto 0 .. in, ``image = u * s / in + c - s / 2``.
"""

from __future__ import annotations

import numpy as np


def _box_arrays(keypoints: np.ndarray, center: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast box centre / size (N, 2) or (2,) against keypoints (N, K, D) or (K, D)."""
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    if keypoints.ndim == 3:
        center = center.reshape(-1, 1, 2)
        scale = scale.reshape(-1, 1, 2)
    elif keypoints.ndim == 2:
        center = center.reshape(2)
        scale = scale.reshape(2)
    else:
        raise ValueError(f"keypoints must be (K, D) or (N, K, D), got shape {keypoints.shape}")
    return center, scale


def _pixel_span(input_size: tuple[int, int], udp: bool) -> np.ndarray:
    size = np.asarray(input_size, dtype=np.float64)
    return size - 1.0 if udp else size


def input_to_image(
    keypoints: np.ndarray, center: np.ndarray, scale: np.ndarray, input_size: tuple[int, int], udp: bool
) -> np.ndarray:
    """Map keypoints (..., K, D>=2) from input-crop pixels to image pixels; columns past 2 are kept as they are."""
    keypoints = np.asarray(keypoints)
    center, scale = _box_arrays(keypoints, center, scale)
    out = keypoints.astype(np.float64, copy=True)
    out[..., :2] = out[..., :2] * (scale / _pixel_span(input_size, udp)) + center - scale / 2.0
    return out


def image_to_input(
    keypoints: np.ndarray, center: np.ndarray, scale: np.ndarray, input_size: tuple[int, int], udp: bool
) -> np.ndarray:
    """Inverse of `input_to_image` (image pixels -> input-crop pixels) for an unrotated box."""
    keypoints = np.asarray(keypoints)
    center, scale = _box_arrays(keypoints, center, scale)
    out = keypoints.astype(np.float64, copy=True)
    out[..., :2] = (out[..., :2] - center + scale / 2.0) * (_pixel_span(input_size, udp) / scale)
    return out
