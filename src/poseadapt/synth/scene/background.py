"""Procedural backgrounds (gradients, cloudy textures, tiles, stripes, clutter shapes) or user images.

Backgrounds are drawn at the output size with a handful of cv2 calls, so they cost a fraction of a millisecond.
User images are read once, kept in memory and randomly cropped, flipped and resized per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from poseadapt.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _color(rng: np.random.Generator, lo: float = 20, hi: float = 235) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)


def _two_tone(c0: np.ndarray, c1: np.ndarray, t: np.ndarray, out: np.ndarray) -> None:
    """out = c0 + (c1 - c0) * t, per channel (cv2 per-channel scalars: no length-3 numpy broadcasting)."""
    d = c1 - c0
    cv2.merge([t, t, t], dst=out)
    cv2.multiply(out, (float(d[0]), float(d[1]), float(d[2]), 0.0), dst=out)
    cv2.add(out, (float(c0[0]), float(c0[1]), float(c0[2]), 0.0), dst=out)


def _ramp(h: int, w: int, ax: float, ay: float, plane: np.ndarray) -> np.ndarray:
    """plane = ax * x + ay * y over pixel centres, in place."""
    xx = (np.arange(w, dtype=np.float32) + 0.5) * np.float32(ax)
    yy = (np.arange(h, dtype=np.float32) + 0.5) * np.float32(ay)
    np.add(yy[:, None], xx[None, :], out=plane)
    return plane


def _gradient(rng: np.random.Generator, out: np.ndarray, plane: np.ndarray) -> None:
    h, w = plane.shape
    c0, c1 = _color(rng), _color(rng)
    ang = rng.uniform(0, 2 * np.pi)
    t = _ramp(h, w, float(np.cos(ang)) / w, float(np.sin(ang)) / h, plane)
    t -= float(t.min())
    t /= max(float(t.max()), 1e-6)
    _two_tone(c0, c1, t, out)


def _clouds(rng: np.random.Generator, out: np.ndarray, plane: np.ndarray) -> None:
    h, w = plane.shape
    cells = int(rng.integers(3, 12))
    small = rng.uniform(0, 1, (cells, cells)).astype(np.float32)
    cv2.resize(small, (w, h), dst=plane, interpolation=cv2.INTER_CUBIC)
    np.clip(plane, 0, 1, out=plane)
    _two_tone(_color(rng), _color(rng), plane, out)


def _tiles(rng: np.random.Generator, out: np.ndarray, plane: np.ndarray) -> None:
    h, w = plane.shape
    size = int(rng.integers(max(h // 16, 4), max(h // 4, 6)))
    rows, cols = (np.arange(h) // size) % 2, (np.arange(w) // size) % 2
    np.bitwise_xor(rows[:, None], cols[None, :], out=plane, casting="unsafe")
    plane *= float(rng.uniform(0.15, 1.0))
    plane[::size] -= 0.3  # grout lines
    plane[:, ::size] -= 0.3
    _two_tone(_color(rng), _color(rng), plane, out)


def _stripes(rng: np.random.Generator, out: np.ndarray, plane: np.ndarray) -> None:
    h, w = plane.shape
    period = rng.uniform(6, 40)
    ang = rng.uniform(0, np.pi)
    k = 2.0 / period  # half-periods per pixel: a band flips where floor(phase) changes parity
    phase = _ramp(h, w, float(np.cos(ang)) * k, float(np.sin(ang)) * k, plane)
    np.floor(phase, out=phase)
    np.remainder(phase, 2.0, out=phase)
    phase *= float(rng.uniform(0.2, 0.8))
    _two_tone(_color(rng), _color(rng), phase, out)


_KINDS = (_gradient, _clouds, _tiles, _stripes)


def _clutter(img: np.ndarray, rng: np.random.Generator) -> None:
    """Rectangles, circles and lines: furniture-like edges that are not people."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(0, 7))):
        color = tuple(float(c) for c in _color(rng))
        kind = rng.integers(3)
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(8, w // 2)), y + int(rng.integers(8, h // 2))), color, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), int(rng.integers(4, max(h // 6, 5))), color, -1)
        else:
            end = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, (x, y), end, color, int(rng.integers(1, 6)))


class BackgroundSource:
    """Draws backgrounds: procedural, or crops of user images when `images` is given."""

    def __init__(self, images: Sequence[str | Path] | str | Path | None = None) -> None:
        self._images: list[np.ndarray] = []
        if images is None:
            return
        paths = _image_paths(images)
        for p in paths:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise DataError(f"background image {p} cannot be read as an image")
            self._images.append(img)

    def __len__(self) -> int:
        return len(self._images)

    def draw(self, rng: np.random.Generator, out: np.ndarray, plane: np.ndarray) -> None:
        """Fill `out` (H x W x 3 float32, BGR) with a background; `plane` (H x W float32) is scratch space."""
        if self._images:
            out[...] = self._crop(rng, *plane.shape)
            return
        _KINDS[int(rng.integers(len(_KINDS)))](rng, out, plane)
        if rng.random() < 0.6:
            _clutter(out, rng)

    def _crop(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        src = self._images[int(rng.integers(len(self._images)))]
        sh, sw = src.shape[:2]
        scale = rng.uniform(0.4, 1.0)
        ch, cw = max(int(sh * scale), 2), max(int(sw * scale), 2)
        y, x = int(rng.integers(0, sh - ch + 1)), int(rng.integers(0, sw - cw + 1))
        crop = src[y : y + ch, x : x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)


def _image_paths(images: Sequence[str | Path] | str | Path) -> list[Path]:
    items = [images] if isinstance(images, str | Path) else list(images)
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            paths.append(p)
        else:
            raise DataError(f"background image path {p} does not exist")
    if not paths:
        raise DataError(f"no background images ({', '.join(IMAGE_SUFFIXES)}) found in {', '.join(map(str, items))}")
    return paths
