"""Fourier domain adaptation (FDA, Yang & Soatto, CVPR 2020): give a source crop a target camera's global look.

An image's low-frequency amplitude spectrum holds its global look (mean brightness, contrast, colour cast, large
smooth gradients); its phase holds where edges are, so the body and the labels stay put. FDA swaps the low
frequencies' amplitude (a centred square of side ~2 x `beta` x the shorter side) of a labelled source crop for
that of an unlabelled target frame. Zero target labels: the target frames are any folder of the target camera's
images. Used by the `FourierStyle` augmentation (`poseadapt.data.augment`). Written with numpy's FFT: the
reference code is a CUDA-era PyTorch script, and the operation is a few lines.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from poseadapt.errors import DataError

STYLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
STYLE_MAX_SIDE = 256  # frames are stored this small: their low frequencies hardly change, and memory stays bounded


def low_frequency_half_width(height: int, width: int, beta: float) -> int:
    """Half the side of the swapped square, in frequency bins (at least 1: the mean alone is not a look)."""
    return max(1, int(np.floor(min(height, width) * beta)))


def fourier_style(image: np.ndarray, style_amplitude: np.ndarray, beta: float) -> np.ndarray:
    """`image` (H, W, C) uint8 with the centred low-frequency amplitude of `style_amplitude` (H, W, C, the
    fftshift-ed |FFT| of a target frame resized to (W, H)); phase and high frequencies are the image's own."""
    h, w = image.shape[:2]
    spectrum = np.fft.fftshift(np.fft.fft2(image.astype(np.float32), axes=(0, 1)), axes=(0, 1))
    amplitude, phase = np.abs(spectrum), np.angle(spectrum)
    b, cy, cx = low_frequency_half_width(h, w, beta), h // 2, w // 2
    window = (slice(max(cy - b, 0), cy + b + 1), slice(max(cx - b, 0), cx + b + 1))
    amplitude[window] = style_amplitude[window]
    mixed = np.fft.ifft2(np.fft.ifftshift(amplitude * np.exp(1j * phase), axes=(0, 1)), axes=(0, 1)).real
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def style_amplitude(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A target frame (RGB uint8) resized to `size` (w, h) -> its centred amplitude spectrum (h, w, 3) float32."""
    resized = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return np.abs(np.fft.fftshift(np.fft.fft2(resized.astype(np.float32), axes=(0, 1)), axes=(0, 1)))


def load_style_frames(folder: str | Path, limit: int, seed: int = 0) -> list[np.ndarray]:
    """Up to `limit` RGB frames from `folder` (a seeded random choice when it holds more), each scaled so its longer
    side is at most STYLE_MAX_SIDE. One line (DataError) for a missing folder, no images, or an unreadable one."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"FourierStyle: image folder not found: {root}")
    paths = sorted(p for p in root.iterdir() if p.suffix.lower() in STYLE_SUFFIXES)
    if not paths:
        raise DataError(f"FourierStyle: no images ({', '.join(STYLE_SUFFIXES)}) in {root}")
    if len(paths) > limit:
        chosen = np.random.default_rng(seed).choice(len(paths), size=limit, replace=False)
        paths = [paths[i] for i in sorted(chosen)]
    frames = []
    for path in paths:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise DataError(f"FourierStyle: cannot read image {path}")
        scale = STYLE_MAX_SIDE / max(frame.shape[:2])
        if scale < 1:
            frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return frames
