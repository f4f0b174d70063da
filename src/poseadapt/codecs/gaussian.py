"""Render windowed Gaussian heatmap targets for many keypoints at once.

A 2-D Gaussian is separable, exp(-(dx^2 + dy^2) / 2s^2) = exp(-dx^2 / 2s^2) * exp(-dy^2 / 2s^2), and so is the
square window it is cut to. Each target is therefore the outer product of two masked 1-D profiles: M * (W + H)
exponentials instead of M * W * H, and one broadcast multiply with no Python loop over keypoints
(benchmarks/bench_codecs.py compares it with a per-keypoint window loop and a full-map exp).
"""

from __future__ import annotations

import math

import numpy as np


def window_radius(sigma: float) -> int:
    """Half-width of the (2r + 1)^2 target window: the 3-sigma rule, r = ceil(3 sigma) (6 for sigma 2)."""
    return int(math.ceil(3.0 * sigma - 1e-9))


def render_gaussian_heatmaps(
    mu: np.ndarray, labelled: np.ndarray, heatmap_size: tuple[int, int], sigma: float, integer_centre: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Windowed unnormalised Gaussians (peak 1) for M keypoints given in heatmap pixels.

    Args:
        mu: (M, 2) keypoint positions (x, y) in heatmap pixels.
        labelled: (M,) bool, False renders an all-zero map.
        heatmap_size: (W, H).
        sigma: Gaussian standard deviation in heatmap pixels.
        integer_centre: centre the Gaussian on the window centre round(mu) (MSRA) instead of at mu (UDP / DARK).

    Returns:
        heatmaps (M, H, W) float32, and keep (M,) bool: labelled and its window overlaps the map. The window is the
        (2r + 1)^2 square around round(mu) = floor(mu + 0.5); a point whose window misses the map gets no target.
    """
    width, height = heatmap_size
    mu = np.asarray(mu, dtype=np.float64).reshape(-1, 2)
    finite = np.isfinite(mu).all(axis=1)
    mu = np.where(finite[:, None], mu, 0.0)
    centre = np.floor(mu + 0.5)
    if integer_centre:
        mu = centre
    radius = window_radius(sigma)
    keep = (
        np.asarray(labelled, dtype=bool).reshape(-1)
        & finite
        & (centre[:, 0] - radius <= width - 1)
        & (centre[:, 0] + radius >= 0)
        & (centre[:, 1] - radius <= height - 1)
        & (centre[:, 1] + radius >= 0)
    )
    profile_x = _masked_profile(np.arange(width), mu[:, 0], centre[:, 0], radius, sigma, keep)
    profile_y = _masked_profile(np.arange(height), mu[:, 1], centre[:, 1], radius, sigma, keep)
    heatmaps = profile_y[:, :, None] * profile_x[:, None, :]
    return heatmaps, keep


def _masked_profile(
    grid: np.ndarray, mu: np.ndarray, centre: np.ndarray, radius: int, sigma: float, keep: np.ndarray
) -> np.ndarray:
    """exp(-(grid - mu)^2 / 2 sigma^2) inside |grid - centre| <= radius for kept points, else 0; float32 (M, len)."""
    offset = grid[None, :] - mu[:, None]
    profile = np.exp(offset * offset * (-0.5 / (sigma * sigma)))
    inside = (np.abs(grid[None, :] - centre[:, None]) <= radius) & keep[:, None]
    return np.where(inside, profile, 0.0).astype(np.float32)
