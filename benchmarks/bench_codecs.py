"""Codec speed: UDP encode of 17 keypoints at 64x48, and DARK-UDP decode of a batch of 64 x 17 heatmaps.

Comparators, measured in the same run:
- encode: a per-keypoint loop writing each Gaussian only inside its (6 sigma + 1)^2 window (mmpose's approach),
  and a full-map 2-D exp for every keypoint at once;
- decode: a per-keypoint loop (per-map OpenCV blur, per-keypoint DARK-UDP with np.linalg.inv), as mmpose does.

Run: .venv/bin/python benchmarks/bench_codecs.py   (prints medians of several repeats)
"""

from __future__ import annotations

import timeit

import cv2
import numpy as np

from poseadapt.codecs import UDPHeatmap

WIDTH, HEIGHT, SIGMA, RADIUS = 48, 64, 2.0, 6


def encode_window_loop(mu: np.ndarray) -> np.ndarray:
    """One keypoint at a time: a 13x13 Gaussian pasted into the map (mmpose's generate_udp_gaussian_heatmaps)."""
    heatmaps = np.zeros((len(mu), HEIGHT, WIDTH), dtype=np.float32)
    grid = np.arange(2 * RADIUS + 1, dtype=np.float32)
    for k, (mx, my) in enumerate(mu):
        cx, cy = int(mx + 0.5), int(my + 0.5)
        left, top = cx - RADIUS, cy - RADIUS
        if left >= WIDTH or top >= HEIGHT or cx + RADIUS < 0 or cy + RADIUS < 0:
            continue
        gaussian = np.exp(-((grid[None] + left - mx) ** 2 + (grid[:, None] + top - my) ** 2) / (2 * SIGMA**2))
        x1, x2, y1, y2 = max(0, left), min(WIDTH, cx + RADIUS + 1), max(0, top), min(HEIGHT, cy + RADIUS + 1)
        region = heatmaps[k, y1:y2, x1:x2]
        np.maximum(region, gaussian[y1 - top : y2 - top, x1 - left : x2 - left], out=region)
    return heatmaps


def encode_full_map(mu: np.ndarray) -> np.ndarray:
    """Every keypoint's Gaussian over the whole map in one vectorised 2-D exp, then cut to its window."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    mx, my = mu[:, 0, None, None], mu[:, 1, None, None]
    gaussian = np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / (2 * SIGMA**2))
    cx, cy = np.floor(mx + 0.5), np.floor(my + 0.5)
    window = (np.abs(xs - cx) <= RADIUS) & (np.abs(ys - cy) <= RADIUS)
    return np.where(window, gaussian, 0).astype(np.float32)


def decode_loop(heatmaps: np.ndarray) -> np.ndarray:
    """Per-map blur and per-keypoint DARK-UDP (mmpose's refine_keypoints_dark_udp structure)."""
    n, k, height, width = heatmaps.shape
    out = np.zeros((n, k, 2))
    eps = np.finfo(np.float32).eps * np.eye(2)
    for i in range(n):
        for j in range(k):
            heatmap = heatmaps[i, j]
            y, x = np.unravel_index(np.argmax(heatmap), heatmap.shape)
            blurred = cv2.GaussianBlur(np.pad(heatmap, 5), (11, 11), 0)[5:-5, 5:-5]
            blurred *= heatmap.max() / blurred.max()
            p = np.pad(np.log(np.clip(blurred, 1e-3, 50)), 1, mode="edge")
            a, b = y + 1, x + 1
            grad = np.array([0.5 * (p[a, b + 1] - p[a, b - 1]), 0.5 * (p[a + 1, b] - p[a - 1, b])])
            dxx = p[a, b + 1] - 2 * p[a, b] + p[a, b - 1]
            dyy = p[a + 1, b] - 2 * p[a, b] + p[a - 1, b]
            dxy = 0.5 * (
                p[a + 1, b + 1] - p[a, b + 1] - p[a + 1, b] + 2 * p[a, b] - p[a, b - 1] - p[a - 1, b] + p[a - 1, b - 1]
            )
            out[i, j] = np.array([x, y]) - np.linalg.inv(np.array([[dxx, dxy], [dxy, dyy]]) + eps) @ grad
    return out


def median_seconds(fn, number: int, repeat: int = 7) -> float:
    return float(np.median(timeit.repeat(fn, number=number, repeat=repeat)) / number)


def main() -> None:
    rng = np.random.default_rng(0)
    codec = UDPHeatmap()
    keypoints = rng.uniform(0, [191, 255], size=(17, 2))
    visible = np.ones(17)
    mu = keypoints / codec.stride
    ours_maps = codec.encode(keypoints, visible)[0]
    assert np.abs(encode_window_loop(mu) - ours_maps).max() < 1e-6
    assert np.abs(encode_full_map(mu) - ours_maps).max() < 1e-6

    ours = median_seconds(lambda: codec.encode(keypoints, visible), 2000)
    loop = median_seconds(lambda: encode_window_loop(mu), 500)
    full = median_seconds(lambda: encode_full_map(mu), 500)
    print("UDP encode, 17 keypoints, 64x48 (median of 7 repeats, 2-core CPU, noisy)")
    print(f"  poseadapt separable windows : {ours * 1e6:8.1f} us")
    print(f"  per-keypoint window loop    : {loop * 1e6:8.1f} us   ratio {loop / ours:5.2f}x")
    print(f"  full-map 2-D exp            : {full * 1e6:8.1f} us   ratio {full / ours:5.2f}x")

    batch = rng.uniform(0, [191, 255], size=(64, 17, 2))
    heatmaps = codec.encode(batch, np.ones((64, 17)))[0]
    heatmaps += rng.uniform(0, 0.02, size=heatmaps.shape).astype(np.float32)
    decoded = codec.decode(heatmaps)[0] / codec.stride
    assert np.abs(decode_loop(heatmaps) - decoded).max() < 1e-3
    ours = median_seconds(lambda: codec.decode(heatmaps), 5)
    loop = median_seconds(lambda: decode_loop(heatmaps), 1)
    print("DARK-UDP decode, 64 x 17 heatmaps 64x48")
    print(f"  poseadapt vectorised        : {ours * 1e3:8.2f} ms ({ours / (64 * 17) * 1e6:.1f} us per map)")
    print(f"  per-keypoint loop           : {loop * 1e3:8.2f} ms   ratio {loop / ours:5.2f}x")


if __name__ == "__main__":
    main()
