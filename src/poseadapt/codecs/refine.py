"""Heatmap maxima and sub-pixel refinement (quarter offset, DARK, DARK-UDP), vectorised over all heatmaps.

Every function takes a stack of M heatmaps (M, H, W) and M integer maxima (M, 2) in heatmap pixels, so a batch of
N images with K keypoints is refined in one pass with no Python loop over keypoints.

- quarter: SimpleBaseline's +-0.25 px step towards the larger neighbour.
- dark: DARK (Zhang et al. 2020): blur, log, one Newton step with central differences of step 1 (gradient) and
  step 2 (Hessian), only where the +-2 neighbourhood is inside the map.
- dark_udp: the UDP variant (Huang et al. 2020): blur, clip to [1e-3, 50], log, edge-pad 1, first and second
  differences of step 1, offset = -(H + eps I)^-1 grad, applied everywhere including borders.

The blur follows mmpose: zero padding outside the map, OpenCV's Gaussian kernel (kernel 11 -> sigma 2 when no sigma
is given), then each map is rescaled so its maximum equals the unblurred maximum.
"""

from __future__ import annotations

import cv2
import numpy as np

REFINE_METHODS = ("none", "quarter", "dark", "dark_udp")

# mmpose applies the Newton step unbounded. On noisy maps it stays within ~1.5 px; a near-singular Hessian (a flat or
# saddle-shaped neighbourhood) can throw a keypoint arbitrarily far, so steps are clipped to the 3 px that a 3x3
# (DARK: 5x5) quadratic fit can support at all. Ordinary maps never reach the clip.
_MAX_STEP = 3.0


def heatmap_argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer location (M, 2) as float64 (x, y) and value (M,) of each heatmap's maximum (first one on ties)."""
    m, height, width = heatmaps.shape
    flat = heatmaps.reshape(m, height * width)
    index = np.argmax(flat, axis=1)
    values = np.take_along_axis(flat, index[:, None], axis=1)[:, 0]
    locs = np.stack([index % width, index // width], axis=1).astype(np.float64)
    return locs, values


def blur_heatmaps(heatmaps: np.ndarray, kernel_size: int = 11, sigma: float | None = None) -> np.ndarray:
    """Gaussian-blur every map (zero outside the map) and rescale it to keep its maximum; float32 (M, H, W).

    sigma None lets OpenCV derive it from the kernel size (0.3 * ((k - 1) / 2 - 1) + 0.8: 2.0 for k = 11).
    All maps are stacked into one tall image with kernel_size // 2 zero rows between them and blurred by one
    OpenCV call; the gap keeps maps from bleeding into each other, so the result equals blurring each map alone.
    """
    blurred, ratio = _blur_keeping_ratio(heatmaps, kernel_size, sigma)
    return blurred * ratio[:, None, None]


def _blur_keeping_ratio(heatmaps: np.ndarray, kernel_size: int, sigma: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Blurred maps before rescaling, and the per-map factor old max / new max (1 for an all-zero map)."""
    if kernel_size % 2 != 1 or kernel_size < 1:
        raise ValueError(f"blur kernel size must be odd and positive, got {kernel_size}")
    m, height, width = heatmaps.shape
    gap = kernel_size // 2
    stacked = np.zeros((m, height + gap, width), dtype=np.float32)
    stacked[:, :height] = heatmaps
    sigma = 0.0 if sigma is None else float(sigma)
    blurred = cv2.GaussianBlur(
        stacked.reshape(m * (height + gap), width), (kernel_size, kernel_size), sigma, borderType=cv2.BORDER_CONSTANT
    )
    blurred = blurred.reshape(m, height + gap, width)[:, :height]
    old_max = stacked[:, :height].max(axis=(1, 2))
    new_max = blurred.max(axis=(1, 2))
    ratio = np.divide(old_max, new_max, out=np.ones_like(old_max), where=new_max > 0)
    return blurred, ratio


def _blurred_sampler(heatmaps: np.ndarray, locs: np.ndarray, kernel_size: int, sigma: float | None):
    """at(dx, dy) -> blurred[i, y_i + dy, x_i + dx] (rescaled as in `blur_heatmaps`) for every map i.

    Indices are clamped to the map, which is edge padding; only the sampled values are rescaled.
    """
    maps, ratio = _blur_keeping_ratio(heatmaps, kernel_size, sigma)
    ratio = ratio.astype(np.float64)
    m, height, width = maps.shape
    rows = np.arange(m)
    x = locs[:, 0].astype(np.int64)
    y = locs[:, 1].astype(np.int64)

    def at(dx: int, dy: int) -> np.ndarray:
        return maps[rows, np.clip(y + dy, 0, height - 1), np.clip(x + dx, 0, width - 1)] * ratio

    return at


def refine_quarter(locs: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """Move each integer maximum 0.25 px towards its larger neighbour, per axis, where both neighbours exist."""
    m, height, width = heatmaps.shape
    x = locs[:, 0].astype(np.int64)
    y = locs[:, 1].astype(np.int64)
    rows = np.arange(m)
    has_x = (x > 0) & (x < width - 1)
    has_y = (y > 0) & (y < height - 1)
    xc, yc = np.clip(x, 1, width - 2), np.clip(y, 1, height - 2)
    dx = np.where(has_x, heatmaps[rows, y, xc + 1] - heatmaps[rows, y, xc - 1], 0.0)
    dy = np.where(has_y, heatmaps[rows, yc + 1, x] - heatmaps[rows, yc - 1, x], 0.0)
    return locs + 0.25 * np.stack([np.sign(dx), np.sign(dy)], axis=1)


def refine_dark(
    locs: np.ndarray, heatmaps: np.ndarray, kernel_size: int = 11, blur_sigma: float | None = None
) -> np.ndarray:
    """Classic DARK: Taylor step on log(max(blurred, 1e-10)) for maxima with 1 < x < W - 2 and 1 < y < H - 2."""
    _, height, width = heatmaps.shape
    sample = _blurred_sampler(heatmaps, locs, kernel_size, blur_sigma)

    def at(dx: int, dy: int) -> np.ndarray:
        return np.log(np.maximum(sample(dx, dy), 1e-10))

    x, y = locs[:, 0], locs[:, 1]
    interior = (x > 1) & (x < width - 2) & (y > 1) & (y < height - 2)
    centre = at(0, 0)
    dx = 0.5 * (at(1, 0) - at(-1, 0))
    dy = 0.5 * (at(0, 1) - at(0, -1))
    dxx = 0.25 * (at(2, 0) - 2.0 * centre + at(-2, 0))
    dyy = 0.25 * (at(0, 2) - 2.0 * centre + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    offset = _newton_step(dx, dy, dxx, dxy, dyy, eps=0.0)
    return locs + np.where(interior[:, None], offset, 0.0)


def refine_dark_udp(
    locs: np.ndarray, heatmaps: np.ndarray, kernel_size: int = 11, blur_sigma: float | None = None
) -> np.ndarray:
    """DARK-UDP: offset = -(H + eps I)^-1 grad on log(clip(blurred, 1e-3, 50)) with edge padding, at every maximum.

    Only the 3x3 neighbourhood of each maximum is clipped and logged; clamping the neighbour indices to the map
    is the edge padding.
    """
    sample = _blurred_sampler(heatmaps, locs, kernel_size, blur_sigma)

    def at(dx: int, dy: int) -> np.ndarray:
        return np.log(np.clip(sample(dx, dy), 1e-3, 50.0))

    centre, right, left, down, up = at(0, 0), at(1, 0), at(-1, 0), at(0, 1), at(0, -1)
    dx = 0.5 * (right - left)
    dy = 0.5 * (down - up)
    dxx = right - 2.0 * centre + left
    dyy = down - 2.0 * centre + up
    dxy = 0.5 * (at(1, 1) - right - down + 2.0 * centre - left - up + at(-1, -1))
    return locs + _newton_step(dx, dy, dxx, dxy, dyy, eps=float(np.finfo(np.float32).eps))


def _newton_step(
    dx: np.ndarray, dy: np.ndarray, dxx: np.ndarray, dxy: np.ndarray, dyy: np.ndarray, eps: float
) -> np.ndarray:
    """-(H + eps I)^-1 g for a batch of 2x2 Hessians; 0 where singular, clipped to _MAX_STEP px per axis."""
    a, d = dxx + eps, dyy + eps
    det = a * d - dxy * dxy
    safe = det != 0
    det = np.where(safe, det, 1.0)
    off_x = -(d * dx - dxy * dy) / det
    off_y = -(a * dy - dxy * dx) / det
    offset = np.stack([off_x, off_y], axis=1)
    offset = np.where(safe[:, None] & np.isfinite(offset), offset, 0.0)
    return np.clip(offset, -_MAX_STEP, _MAX_STEP)


def refine_keypoints(
    locs: np.ndarray, heatmaps: np.ndarray, method: str, kernel_size: int = 11, blur_sigma: float | None = None
) -> np.ndarray:
    """Dispatch to one refinement method by name (see REFINE_METHODS); returns new (M, 2) float64 locations."""
    if method == "none" or len(locs) == 0:
        return locs.copy()
    if method == "quarter":
        return refine_quarter(locs, heatmaps)
    if method == "dark":
        return refine_dark(locs, heatmaps, kernel_size, blur_sigma)
    if method == "dark_udp":
        return refine_dark_udp(locs, heatmaps, kernel_size, blur_sigma)
    raise ValueError(f"unknown refinement {method!r}; expected one of {', '.join(REFINE_METHODS)}")
