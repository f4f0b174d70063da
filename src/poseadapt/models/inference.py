"""Drawing poses on images. Top-down inference itself lives in `poseadapt.evaluate.topdown` (one path for
validation, `eval`, `predict` and `compare`); `read_image` and `IMAGE_SUFFIXES` are re-exported from there.
"""

from __future__ import annotations

import cv2
import numpy as np

from poseadapt.evaluate.topdown import IMAGE_SUFFIXES, read_image
from poseadapt.schemas import KeypointSchema

__all__ = ["IMAGE_SUFFIXES", "draw_pose", "read_image"]


def draw_pose(image: np.ndarray, keypoints: np.ndarray, schema: KeypointSchema, threshold: float = 0.3) -> np.ndarray:
    """Overlay keypoints (N, K, 3) and the schema's skeleton on an RGB image (returns a new image)."""
    canvas = image.copy()
    radius = max(2, round(max(image.shape[:2]) / 200))
    for person in keypoints:
        for a, b in schema.skeleton_index:
            if person[a, 2] > threshold and person[b, 2] > threshold:
                p, q = (tuple(int(round(v)) for v in person[i, :2]) for i in (a, b))
                cv2.line(canvas, p, q, (255, 128, 0), max(1, radius // 2), cv2.LINE_AA)
        for x, y, s in person:
            if s > threshold:
                cv2.circle(canvas, (int(round(x)), int(round(y))), radius, (0, 255, 0), -1, cv2.LINE_AA)
    return canvas
