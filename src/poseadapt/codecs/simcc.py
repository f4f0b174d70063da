"""SimCC labels (Li et al. 2022), the RTMPose / DWPose target: one 1-D classification vector per axis.

Each axis of the input is split into `split_ratio` bins per pixel (384 x-bins and 512 y-bins at 192x256 with ratio
2). A keypoint at input u is labelled at bin round(u * ratio) with a Gaussian of sigma (4.9, 5.66) bins over the
whole vector. Decoding takes the argmax of each axis divided by the ratio; the score is the smaller of the two maxima.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from poseadapt.codecs.flip import flip_simcc_back
from poseadapt.codecs.geometry import input_to_image
from poseadapt.codecs.heatmap_base import as_instances, check_size
from poseadapt.errors import PoseAdaptError


class SimCC:
    """SimCC codec: keypoints <-> (x, y) label vectors.

    Args:
        input_size: (w, h) of the network input crop.
        split_ratio: bins per input pixel.
        sigma: Gaussian sigma in bins, one value or (sigma_x, sigma_y).
        normalize: divide labels by sigma * sqrt(2 pi) (unit area) instead of peak 1.
        udp: kept for configs that set it; every crop is cut with UDP geometry, so `to_image` always maps back
            with the UDP formula u * s / (in - 1) (the MSRA formula u * s / in put keypoints up to 1.8 px off).
        refine: 'none' (argmax, as RTMPose decodes) or 'gaussian': a parabola through the log of the three bins
            around the maximum, exact for a Gaussian label, so sub-bin positions survive decoding.
    """

    def __init__(
        self,
        input_size: tuple[int, int] = (192, 256),
        split_ratio: float = 2.0,
        sigma: float | tuple[float, float] = (4.9, 5.66),
        normalize: bool = False,
        udp: bool = False,
        refine: str = "none",
    ) -> None:
        self.input_size = check_size("input_size", input_size, 2)
        if not split_ratio > 0:
            raise PoseAdaptError(f"SimCC split_ratio must be positive, got {split_ratio!r}")
        sigmas = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (2,)).copy()
        if not (sigmas > 0).all():
            raise PoseAdaptError(f"SimCC sigma must be positive, got {sigma!r}")
        self.split_ratio = float(split_ratio)
        self.sigma = sigmas
        self.normalize = bool(normalize)
        self.udp = bool(udp)
        if refine not in ("none", "gaussian"):
            raise PoseAdaptError(f"SimCC refine must be 'none' or 'gaussian', got {refine!r}")
        self.refine = refine
        self.num_bins = (
            int(round(self.input_size[0] * self.split_ratio)),
            int(round(self.input_size[1] * self.split_ratio)),
        )

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keypoints (K, 2) or (N, K, 2) in input pixels -> x labels (.., K, Wx), y labels (.., K, Wy), weights (.., K).

        A keypoint gets weight 1 when it is labelled (visible > 0) and the 3-sigma span of each label overlaps
        its axis; otherwise weight 0 and zero labels.
        """
        keypoints, visible, single = as_instances(keypoints, visible)
        finite = np.isfinite(keypoints).all(axis=-1)
        centre = np.floor(np.where(finite[..., None], keypoints, 0.0) * self.split_ratio + 0.5)
        radius = 3.0 * self.sigma
        bins = np.asarray(self.num_bins, dtype=np.float64)
        overlaps = ((centre + radius >= 0) & (centre - radius <= bins - 1)).all(axis=-1)
        keep = (visible > 0) & finite & overlaps
        labels = []
        for axis in range(2):
            grid = np.arange(self.num_bins[axis], dtype=np.float64)
            offset = grid - centre[..., axis, None]
            label = np.exp(offset * offset * (-0.5 / self.sigma[axis] ** 2))
            if self.normalize:
                label /= self.sigma[axis] * np.sqrt(2.0 * np.pi)
            labels.append(np.where(keep[..., None], label, 0.0).astype(np.float32))
        weights = keep.astype(np.float32)
        if single:
            return labels[0][0], labels[1][0], weights[0]
        return labels[0], labels[1], weights

    def decode(self, x_logits: np.ndarray, y_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (K, Wx) or (N, K, Wx) and y (.., K, Wy) -> keypoints (N, K, 2) in input pixels and scores (N, K).

        Position = argmax / split_ratio per axis; score = min(max x, max y).
        """
        x_logits = np.asarray(x_logits, dtype=np.float32)
        y_logits = np.asarray(y_logits, dtype=np.float32)
        if x_logits.ndim == 2:
            x_logits, y_logits = x_logits[None], y_logits[None]
        if x_logits.ndim != 3 or y_logits.ndim != 3 or x_logits.shape[:2] != y_logits.shape[:2]:
            raise ValueError(f"SimCC logits must be (N, K, W) and (N, K, H), got {x_logits.shape}, {y_logits.shape}")
        x_index = np.argmax(x_logits, axis=-1)
        y_index = np.argmax(y_logits, axis=-1)
        x_max = np.take_along_axis(x_logits, x_index[..., None], axis=-1)[..., 0]
        y_max = np.take_along_axis(y_logits, y_index[..., None], axis=-1)[..., 0]
        bins = np.stack([x_index, y_index], axis=-1).astype(np.float64)
        if self.refine == "gaussian":
            bins[..., 0] += _log_parabola_offset(x_logits, x_index)
            bins[..., 1] += _log_parabola_offset(y_logits, y_index)
        return bins / self.split_ratio, np.minimum(x_max, y_max)

    def to_image(self, keypoints_input: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Input-crop pixels -> image pixels for unrotated boxes with centre (N, 2) and size (N, 2) (w, h).

        Crops are cut with UDP geometry, so this is the UDP formula whatever `udp` says.
        """
        return input_to_image(keypoints_input, center, scale, self.input_size, udp=True)

    # ------------------------------------------------------------------ flip test
    @property
    def _flip_bins(self) -> int:
        return int(round(self.split_ratio - 1.0))

    @property
    def flip_offset(self) -> float:
        """x offset (input pixels) that averaging with `flip_back`'s output leaves: 0 for a whole split ratio.

        The reversed x vector of the mirrored crop lands (r - 1) bins right of the truth; `flip_back` moves it
        round(r - 1) bins back, and half the rest remains after averaging.
        """
        return (self.split_ratio - 1.0 - self._flip_bins) / (2.0 * self.split_ratio)

    def flip_back(self, outputs: tuple[np.ndarray, np.ndarray], flip_index: Sequence[int]) -> tuple[Any, Any]:
        """(x, y) vectors predicted on the mirrored crop -> aligned with the original (x moved round(r - 1) bins)."""
        return flip_simcc_back(outputs[0], outputs[1], flip_index, split_ratio=self.split_ratio)

    def __repr__(self) -> str:
        return (
            f"SimCC(input_size={self.input_size}, split_ratio={self.split_ratio}, "
            f"sigma={tuple(self.sigma.tolist())}, normalize={self.normalize}, refine={self.refine!r})"
        )


def _log_parabola_offset(logits: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Sub-bin offset of the maximum: the vertex of the parabola through log(max(v, 1e-10)) at index - 1, +0, +1.

    Exact for a Gaussian label; 0 at the ends of the vector and where the three values are not a peak.
    """
    n = logits.shape[-1]
    i = np.clip(index, 1, n - 2)[..., None]
    left, mid, right = (
        np.log(np.maximum(np.take_along_axis(logits, i + d, axis=-1)[..., 0], 1e-10)) for d in (-1, 0, 1)
    )
    curvature = left - 2.0 * mid + right
    ok = (curvature < 0) & (index > 0) & (index < n - 1)
    offset = np.where(ok, 0.5 * (left - right) / np.where(ok, curvature, -1.0), 0.0)
    return np.clip(offset, -0.5, 0.5)
