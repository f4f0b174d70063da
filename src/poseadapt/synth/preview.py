"""Contact sheets: a grid of rendered images with skeleton overlays, to see at a glance what a dataset holds.

Visible keypoints (v=2) are filled dots, occluded ones (v=1) hollow rings; limbs are drawn between two labelled
points; each person's box is outlined.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from poseadapt.schemas import KeypointSchema

_LIMB = (80, 230, 80)
_VISIBLE = (0, 255, 255)
_OCCLUDED = (60, 60, 255)
_BOX = (255, 200, 0)


def draw_annotations(image: np.ndarray, annotations: Sequence[dict], schema: KeypointSchema) -> np.ndarray:
    """A copy of `image` (BGR) with COCO annotations (keypoints, bbox) drawn on it."""
    out = image.copy()
    scale = max(out.shape[0] / 256.0, 0.5)
    radius, thick = max(int(round(2 * scale)), 1), max(int(round(scale)), 1)
    for ann in annotations:
        kp = np.asarray(ann["keypoints"], dtype=float).reshape(-1, 3)
        for a, b in schema.skeleton_index:
            if kp[a, 2] > 0 and kp[b, 2] > 0:
                cv2.line(out, _pt(kp[a]), _pt(kp[b]), _LIMB, thick, cv2.LINE_AA)
        for x, y, v in kp:
            if v == 2:
                cv2.circle(out, _pt((x, y)), radius, _VISIBLE, -1, cv2.LINE_AA)
            elif v == 1:
                cv2.circle(out, _pt((x, y)), radius, _OCCLUDED, thick, cv2.LINE_AA)
        x, y, w, h = ann["bbox"]
        cv2.rectangle(out, _pt((x, y)), _pt((x + w, y + h)), _BOX, 1)
    return out


def _pt(xy: Sequence[float]) -> tuple[int, int]:
    return int(round(xy[0] - 0.5)), int(round(xy[1] - 0.5))


def contact_sheet(tiles: Sequence[np.ndarray], columns: int = 4, tile_size: int | None = None) -> np.ndarray:
    """Tiles (BGR, any sizes) resized to `tile_size` squares and laid out in a grid with 2-pixel gutters."""
    if not tiles:
        raise ValueError("contact_sheet needs at least one image")
    size = tile_size or tiles[0].shape[0]
    columns = max(1, min(columns, len(tiles)))
    rows = (len(tiles) + columns - 1) // columns
    gap = 2
    sheet = np.full((rows * (size + gap) - gap, columns * (size + gap) - gap, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        if tile.shape[:2] != (size, size):
            tile = cv2.resize(tile, (size, size), interpolation=cv2.INTER_AREA)
        sheet[r * (size + gap) : r * (size + gap) + size, c * (size + gap) : c * (size + gap) + size] = tile
    return sheet
