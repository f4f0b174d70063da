"""Drawing poses on images. Top-down inference itself lives in `poseadapt.evaluate.topdown` (one path for
validation, `eval`, `predict` and `compare`); `read_image` and `IMAGE_SUFFIXES` are re-exported from there.
"""

from __future__ import annotations

import cv2
import numpy as np

from poseadapt.evaluate.topdown import IMAGE_SUFFIXES, read_image
from poseadapt.schemas import KeypointSchema

__all__ = ["DEFAULT_MIN_SCORE", "IMAGE_SUFFIXES", "draw_pose", "read_image", "side_colours"]


# RGB. The first keypoint of each flip pair (left, by the schema's naming) and the second (right) get their own
# colour; keypoints without a pair (nose, neck, mid hip) and limbs joining two sides are the centre colour.
LEFT_COLOUR = (0, 128, 255)
RIGHT_COLOUR = (255, 96, 0)
CENTRE_COLOUR = (0, 220, 0)
BOX_COLOUR = (255, 255, 0)
DEFAULT_MIN_SCORE = 0.3


def side_colours(schema: KeypointSchema) -> list[tuple[int, int, int]]:
    """One RGB colour per keypoint: left of a flip pair, right of a flip pair, or centre."""
    index = {name: i for i, name in enumerate(schema.keypoints)}
    colours = [CENTRE_COLOUR] * len(schema.keypoints)
    for left, right in schema.flip_pairs:
        colours[index[left]], colours[index[right]] = LEFT_COLOUR, RIGHT_COLOUR
    return colours


def draw_pose(
    image: np.ndarray,
    keypoints: np.ndarray,
    schema: KeypointSchema,
    threshold: float = DEFAULT_MIN_SCORE,
    *,
    boxes: np.ndarray | None = None,
    label: str | None = None,
) -> np.ndarray:
    """Overlay keypoints (N, K, 3) and the schema's skeleton on an RGB image (returns a new image).

    A keypoint is drawn when its score (or visibility) is at least `threshold`, a limb when both ends are; left
    keypoints (first of each flip pair) in blue, right ones in orange, the rest green. `boxes` (N, 4+) xywh are
    drawn in yellow; `label` is written in the top-left corner.
    """
    canvas = image.copy()
    radius = max(2, round(max(image.shape[:2]) / 200))
    colours = side_colours(schema)
    if boxes is not None:
        for box in np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1):
            x, y, w, h = (int(round(v)) for v in box[:4])
            cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), BOX_COLOUR, max(1, radius // 2))
    for person in keypoints:
        for a, b in schema.skeleton_index:
            if person[a, 2] >= threshold and person[b, 2] >= threshold:
                p, q = (tuple(int(round(v)) for v in person[i, :2]) for i in (a, b))
                colour = colours[a] if colours[a] == colours[b] else CENTRE_COLOUR
                cv2.line(canvas, p, q, colour, max(1, radius // 2), cv2.LINE_AA)
        for k, (x, y, s) in enumerate(person):
            if s >= threshold:
                cv2.circle(canvas, (int(round(x)), int(round(y))), radius, colours[k], -1, cv2.LINE_AA)
    if label:
        scale = max(0.35, max(image.shape[:2]) / 800)
        cv2.putText(canvas, label, (4, int(16 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1)
    return canvas
