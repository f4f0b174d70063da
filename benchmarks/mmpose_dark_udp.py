"""The comparator of the DARK-UDP decode benchmark: MMPose 1.x's UDP heatmap decode, ported to stand alone.

Not product code. mmpose cannot be installed here (it needs mmcv and torchvision), so this file re-implements,
operation for operation, the functions MMPose runs to decode one instance's UDP heatmaps:

- `refine_keypoints_dark_udp` from mmpose/codecs/utils/refinement.py (the vectorised version: one flat index
  per keypoint into the edge-padded log-heatmaps, gradients and Hessians gathered for all K keypoints at once,
  one batched `np.linalg.inv` and an einsum per instance),
- its helpers `gaussian_blur` and `get_heatmap_maximum` from mmpose/codecs/utils/post_processing.py (the blur is
  a per-map loop: zero-pad, `cv2.GaussianBlur`, crop, rescale to the unblurred maximum),
- `UDPHeatmap.decode` (mmpose/codecs/udp_heatmap.py, `heatmap_type='gaussian'`): copy, argmax, refine with the
  instance axis added, scale by input_size / (heatmap_size - 1).

Origin: https://github.com/open-mmlab/mmpose, commit 0b9a7cfc46dc9354caff604c7fe465fe590ece54 (Apache-2.0), read
for the order and the constants of every operation; the code below is written for this benchmark. MMPose's head
decodes a batch one instance at a time (`[codec.decode(h) for h in batch_heatmaps]`), which `decode_batch`
mirrors; `decode_one_call` is the most favourable use of the same function (every map of the batch in one call).
"""

from __future__ import annotations

import cv2
import numpy as np


def gaussian_blur(heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """In place, map by map: blur with zero padding outside the map, then restore each map's maximum."""
    border = (kernel - 1) // 2
    k_maps, height, width = heatmaps.shape
    for k in range(k_maps):
        peak = np.max(heatmaps[k])
        padded = np.zeros((height + 2 * border, width + 2 * border), dtype=np.float32)
        padded[border:-border, border:-border] = heatmaps[k].copy()
        padded = cv2.GaussianBlur(padded, (kernel, kernel), 0)
        heatmaps[k] = padded[border:-border, border:-border].copy()
        heatmaps[k] *= peak / np.max(heatmaps[k])
    return heatmaps


def get_heatmap_maximum(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) float32 (x, y) of each map's argmax and (K,) its value; -1 where the maximum is <= 0."""
    k_maps, height, width = heatmaps.shape
    flat = heatmaps.reshape(k_maps, -1)
    y_locs, x_locs = np.unravel_index(np.argmax(flat, axis=1), shape=(height, width))
    locs = np.stack((x_locs, y_locs), axis=-1).astype(np.float32)
    vals = np.amax(flat, axis=1)
    locs[vals <= 0.0] = -1
    return locs, vals


def refine_keypoints_dark_udp(keypoints: np.ndarray, heatmaps: np.ndarray, blur_kernel_size: int) -> np.ndarray:
    """In place on keypoints (N, K, 2): one Newton step on the blurred, clipped, log heatmaps (K, H, W)."""
    n_inst, k_pts = keypoints.shape[:2]
    height, width = heatmaps.shape[1:]
    heatmaps = gaussian_blur(heatmaps, blur_kernel_size)
    np.clip(heatmaps, 1e-3, 50.0, heatmaps)
    np.log(heatmaps, heatmaps)
    flat = np.pad(heatmaps, ((0, 0), (1, 1), (1, 1)), mode="edge").flatten()
    row = width + 2
    for n in range(n_inst):
        index = keypoints[n, :, 0] + 1 + (keypoints[n, :, 1] + 1) * row
        index += row * (height + 2) * np.arange(0, k_pts)
        index = index.astype(int).reshape(-1, 1)
        i_ = flat[index]
        ix1 = flat[index + 1]
        iy1 = flat[index + row]
        ix1y1 = flat[index + row + 1]
        ix1_y1_ = flat[index - row - 1]
        ix1_ = flat[index - 1]
        iy1_ = flat[index - row]
        dx = 0.5 * (ix1 - ix1_)
        dy = 0.5 * (iy1 - iy1_)
        derivative = np.concatenate([dx, dy], axis=1).reshape(k_pts, 2, 1)
        dxx = ix1 - 2 * i_ + ix1_
        dyy = iy1 - 2 * i_ + iy1_
        dxy = 0.5 * (ix1y1 - ix1 - iy1 + i_ + i_ - ix1_ - iy1_ + ix1_y1_)
        hessian = np.concatenate([dxx, dxy, dxy, dyy], axis=1).reshape(k_pts, 2, 2)
        hessian = np.linalg.inv(hessian + np.finfo(np.float32).eps * np.eye(2))
        keypoints[n] -= np.einsum("imn,ink->imk", hessian, derivative).squeeze()
    return keypoints


def decode(heatmaps: np.ndarray, input_size: tuple[int, int], blur_kernel_size: int = 11) -> np.ndarray:
    """One instance: heatmaps (K, H, W) -> keypoints (1, K, 2) in input pixels (UDPHeatmap.decode, gaussian)."""
    heatmaps = heatmaps.copy()
    keypoints, _ = get_heatmap_maximum(heatmaps)
    keypoints = refine_keypoints_dark_udp(keypoints[None], heatmaps, blur_kernel_size)
    height, width = heatmaps.shape[1:]
    return keypoints / [width - 1, height - 1] * np.asarray(input_size)


def decode_batch(batch: np.ndarray, input_size: tuple[int, int], blur_kernel_size: int = 11) -> np.ndarray:
    """(B, K, H, W) -> (B, K, 2): one `decode` per instance, as MMPose's heatmap heads call the codec."""
    return np.concatenate([decode(h, input_size, blur_kernel_size) for h in batch])


def decode_one_call(batch: np.ndarray, input_size: tuple[int, int], blur_kernel_size: int = 11) -> np.ndarray:
    """(B, K, H, W) -> (B, K, 2) with every map in one `refine_keypoints_dark_udp` call (B*K keypoints)."""
    b, k, height, width = batch.shape
    return decode(batch.reshape(b * k, height, width), input_size, blur_kernel_size).reshape(b, k, 2)
