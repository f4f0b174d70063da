"""Codec speed: UDP encode of 17 keypoints at 64x48, and DARK-UDP decode of a batch of 64 x 17 heatmaps.

Comparators, measured in the same run:
- encode: a per-keypoint loop writing each Gaussian only inside its (6 sigma + 1)^2 window (mmpose's approach),
  and a full-map 2-D exp for every keypoint at once;
- decode: MMPose 1.x's own vectorised `refine_keypoints_dark_udp` with its `gaussian_blur` and
  `get_heatmap_maximum`, ported in benchmarks/mmpose_dark_udp.py (mmpose itself needs mmcv/torchvision), run
  once per instance as MMPose's heads call `UDPHeatmap.decode`, and once over the whole batch in one call.
  Every timing is interleaved (ours, theirs, ours, ...) and the figure is the median of the repeats.

Run: .venv/bin/python benchmarks/bench_codecs.py   (prints medians of several repeats)
"""

from __future__ import annotations

import statistics
import sys
import timeit
from pathlib import Path

import numpy as np

from poseadapt.codecs import UDPHeatmap

sys.path.insert(0, str(Path(__file__).parent))
import mmpose_dark_udp  # noqa: E402  (the comparator port)

WIDTH, HEIGHT, SIGMA, RADIUS = 48, 64, 2.0, 6
REPEATS = 9


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


def interleaved(calls: dict[str, tuple], repeats: int = REPEATS) -> dict[str, list[float]]:
    """Seconds per call of each (fn, number) pair, the pairs taking turns: one warm-up, then `repeats` rounds."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(repeats + 1):
        for name, (fn, number) in calls.items():
            seconds = timeit.timeit(fn, number=number) / number
            if round_:
                times[name].append(seconds)
    return times


def report(times: dict[str, list[float]], ours: str, unit: float) -> None:
    base = statistics.median(times[ours])
    for name, t in times.items():
        line = f"  {name:28s}: {statistics.median(t) * unit:8.2f} {'us' if unit == 1e6 else 'ms'}"
        if name != ours:
            pairs = statistics.median(a / b for a, b in zip(t, times[ours], strict=True))
            line += f"   ratio {statistics.median(t) / base:5.2f}x (per round {pairs:.2f}x)"
        print(line)


def main() -> None:
    rng = np.random.default_rng(0)
    codec = UDPHeatmap()
    keypoints = rng.uniform(0, [191, 255], size=(17, 2))
    visible = np.ones(17)
    mu = keypoints / codec.stride
    ours_maps = codec.encode(keypoints, visible)[0]
    assert np.abs(encode_window_loop(mu) - ours_maps).max() < 1e-6
    assert np.abs(encode_full_map(mu) - ours_maps).max() < 1e-6

    times = interleaved(
        {
            "poseadapt separable windows": (lambda: codec.encode(keypoints, visible), 1000),
            "per-keypoint window loop": (lambda: encode_window_loop(mu), 250),
            "full-map 2-D exp": (lambda: encode_full_map(mu), 250),
        }
    )
    print(f"UDP encode, 17 keypoints, 64x48, medians of {REPEATS} interleaved repeats")
    report(times, "poseadapt separable windows", 1e6)

    batch = rng.uniform(0, [191, 255], size=(64, 17, 2))
    heatmaps = codec.encode(batch, np.ones((64, 17)))[0]
    heatmaps += rng.uniform(0, 0.02, size=heatmaps.shape).astype(np.float32)
    size = tuple(codec.input_size)
    # compared in heatmap pixels: MMPose scales its UDP decode by input / (heatmap - 1), poseadapt (like its UDP
    # encode) by (input - 1) / (heatmap - 1); the refinement itself must agree
    decoded = codec.decode(heatmaps)[0] / codec.stride
    theirs_scale = np.asarray(size) / (np.asarray(codec.heatmap_size) - 1)
    for fn in (mmpose_dark_udp.decode_batch, mmpose_dark_udp.decode_one_call):
        error = np.abs(fn(heatmaps, size) / theirs_scale - decoded).max()
        assert error < 1e-3, error
    times = interleaved(
        {
            "poseadapt vectorised": (lambda: codec.decode(heatmaps), 3),
            "mmpose per instance": (lambda: mmpose_dark_udp.decode_batch(heatmaps, size), 1),
            "mmpose one call": (lambda: mmpose_dark_udp.decode_one_call(heatmaps, size), 1),
        }
    )
    ours = statistics.median(times["poseadapt vectorised"])
    print(f"DARK-UDP decode, 64 x 17 heatmaps 64x48, medians of {REPEATS} interleaved repeats")
    print(f"  (MMPose's refinement and ours agree to {error:.1e} heatmap pixels; ours {ours / 1088 * 1e6:.1f} us/map)")
    report(times, "poseadapt vectorised", 1e3)


if __name__ == "__main__":
    main()
