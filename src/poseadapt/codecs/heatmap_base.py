"""What the UDP and MSRA heatmap codecs share: argument checks, batching, encode / decode / to_image.

The two differ only in geometry (how input pixels map to heatmap pixels and back to the image) and in where the
Gaussian is centred; the subclasses set those and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from poseadapt.codecs.flip import flip_heatmaps_back
from poseadapt.codecs.gaussian import render_gaussian_heatmaps
from poseadapt.codecs.geometry import input_to_image
from poseadapt.codecs.refine import REFINE_METHODS, heatmap_argmax, refine_keypoints
from poseadapt.errors import PoseAdaptError


def check_size(name: str, size: tuple[int, int], minimum: int) -> tuple[int, int]:
    """Validate a (w, h) size from a recipe: two whole numbers >= minimum, else a one-line user error."""
    try:
        width, height = size
        valid = all(float(v).is_integer() and v >= minimum for v in (width, height))
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise PoseAdaptError(f"codec {name} must be two integers >= {minimum} (w, h), got {size!r}")
    return int(width), int(height)


def as_instances(keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Return keypoints (N, K, 2) float64, visible (N, K) and whether the caller passed a single instance."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    visible = np.asarray(visible)
    single = keypoints.ndim == 2
    if single:
        keypoints, visible = keypoints[None], visible[None]
    if keypoints.ndim != 3 or keypoints.shape[-1] < 2:
        raise ValueError(f"keypoints must be (K, 2) or (N, K, 2), got shape {np.shape(keypoints)}")
    if visible.shape != keypoints.shape[:2]:
        raise ValueError(f"visible must have shape {keypoints.shape[:2]} to match the keypoints, got {visible.shape}")
    return keypoints[..., :2], visible, single


class HeatmapCodec:
    """Keypoints <-> Gaussian heatmaps; subclasses fix the geometry (`udp`) and the Gaussian centring."""

    udp: bool = True
    default_refine: str = "dark_udp"

    def __init__(
        self,
        input_size: tuple[int, int] = (192, 256),
        heatmap_size: tuple[int, int] = (48, 64),
        sigma: float = 2.0,
        blur_kernel_size: int = 11,
        refine: str | None = None,
        blur_sigma: float | None = None,
    ) -> None:
        self.input_size = check_size("input_size", input_size, 2)
        self.heatmap_size = check_size("heatmap_size", heatmap_size, 2)
        if not sigma > 0:
            raise PoseAdaptError(f"codec sigma must be positive, got {sigma!r}")
        if blur_kernel_size < 1 or blur_kernel_size % 2 != 1:
            raise PoseAdaptError(f"codec blur_kernel_size must be an odd positive integer, got {blur_kernel_size!r}")
        refine = self.default_refine if refine is None else refine
        if refine not in REFINE_METHODS:
            raise PoseAdaptError(f"codec refine must be one of {', '.join(REFINE_METHODS)}, got {refine!r}")
        if blur_sigma is not None and not blur_sigma > 0:
            raise PoseAdaptError(f"codec blur_sigma must be positive, got {blur_sigma!r}")
        self.sigma = float(sigma)
        self.blur_kernel_size = int(blur_kernel_size)
        self.blur_sigma = blur_sigma
        self.refine = refine

    @property
    def stride(self) -> np.ndarray:
        """Input pixels per heatmap pixel (x, y): (in - 1) / (hm - 1) for UDP, in / hm for MSRA."""
        size_in = np.asarray(self.input_size, dtype=np.float64)
        size_hm = np.asarray(self.heatmap_size, dtype=np.float64)
        return (size_in - 1.0) / (size_hm - 1.0) if self.udp else size_in / size_hm

    def _integer_centre(self) -> bool:
        return False

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (K, 2) or (N, K, 2) in input pixels -> heatmaps (K|N,K, H, W) and weights (K|N,K) float32.

        A keypoint gets weight 1 when it is labelled (visible > 0) and its target window overlaps the heatmap;
        otherwise weight 0 and an all-zero map.
        """
        keypoints, visible, single = as_instances(keypoints, visible)
        n, k = visible.shape
        width, height = self.heatmap_size
        mu = (keypoints / self.stride).reshape(n * k, 2)
        heatmaps, keep = render_gaussian_heatmaps(
            mu, visible.reshape(-1) > 0, self.heatmap_size, self.sigma, self._integer_centre()
        )
        heatmaps = heatmaps.reshape(n, k, height, width)
        weights = keep.reshape(n, k).astype(np.float32)
        return (heatmaps[0], weights[0]) if single else (heatmaps, weights)

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps (K, H, W) or (N, K, H, W) -> keypoints (N, K, 2) in input pixels and scores (N, K) (map maxima).

        The maximum is refined with `self.refine`; all N * K maps are processed in one vectorised pass.
        """
        heatmaps = np.asarray(heatmaps, dtype=np.float32)
        if heatmaps.ndim == 3:
            heatmaps = heatmaps[None]
        if heatmaps.ndim != 4:
            raise ValueError(f"heatmaps must be (K, H, W) or (N, K, H, W), got shape {heatmaps.shape}")
        n, k, height, width = heatmaps.shape
        if (width, height) != self.heatmap_size:
            expected = f"{self.heatmap_size[0]}x{self.heatmap_size[1]}"
            raise ValueError(f"heatmaps are {width}x{height} (w x h), the codec expects {expected}")
        flat = heatmaps.reshape(n * k, height, width)
        locs, scores = heatmap_argmax(flat)
        locs = refine_keypoints(locs, flat, self.refine, self.blur_kernel_size, self.blur_sigma)
        keypoints = locs * self.stride
        return keypoints.reshape(n, k, 2), scores.reshape(n, k).astype(np.float32)

    def to_image(self, keypoints_input: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Input-crop pixels -> image pixels for unrotated boxes with centre (N, 2) and size (N, 2) (w, h).

        Every crop is cut with UDP geometry (`poseadapt.data.topdown`), whatever the codec, so the way back is the
        UDP formula for every codec; the codec's own geometry (`udp`) only concerns input <-> heatmap pixels.
        """
        return input_to_image(keypoints_input, center, scale, self.input_size, udp=True)

    # ------------------------------------------------------------------ flip test
    @property
    def flip_offset(self) -> float:
        """x offset (input pixels) that averaging with `flip_back`'s output leaves in the decoded keypoints.

        UDP: 0 (reversing the columns is the exact mirror). MSRA: the mirrored crop's map, reversed, lands
        (stride - 1) input px left of the truth; the one-pixel shift (mmpose / HRNet) moves it to +1 px, so the
        average of two equal peaks sits +0.5 px off, which the decoder subtracts.
        """
        return 0.0 if self.udp else 0.5

    def flip_back(self, heatmaps: np.ndarray, flip_index: Sequence[int]) -> np.ndarray:
        """Heatmaps predicted on the mirrored crop -> aligned with the original (MSRA: shifted one pixel right)."""
        return flip_heatmaps_back(heatmaps, flip_index, shift=not self.udp)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"sigma={self.sigma}, blur_kernel_size={self.blur_kernel_size}, refine={self.refine!r})"
        )
