"""Drawing poses: the one renderer behind `predict` overlays, `compare` grids, `synth --preview` and
`check --preview` (keypoints in left / right / centre colours, skeleton, boxes, a label), plus contact sheets.

Torch-free (numpy and OpenCV only), so `check` and `synth` can draw without loading a model stack.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from poseadapt.schemas import KeypointSchema

__all__ = [
    "BOX_COLOUR",
    "CENTRE_COLOUR",
    "DEFAULT_MIN_SCORE",
    "LEFT_COLOUR",
    "RIGHT_COLOUR",
    "annotation_tile",
    "contact_sheet",
    "draw_annotations",
    "draw_pose",
    "side_colours",
]

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
    visibility: bool = False,
) -> np.ndarray:
    """Overlay keypoints (N, K, 3) and the schema's skeleton on an RGB image (returns a new image).

    A keypoint is drawn when its score (or visibility) is at least `threshold`, a limb when both ends are; left
    keypoints (first of each flip pair) in blue, right ones in orange, the rest green. `boxes` (N, 4+) xywh are
    drawn in yellow; `label` is written in the top-left corner. With `visibility` the third column is a COCO
    visibility flag: v=2 a filled dot, v=1 (labelled, occluded) a ring, v=0 nothing (`threshold` is then 1).
    """
    canvas = image.copy()
    if visibility:
        threshold = 1
    radius = max(2, round(max(image.shape[:2]) / 200))
    thick = max(1, radius // 2)
    colours = side_colours(schema)
    if boxes is not None:
        for box in np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1):
            x, y, w, h = (int(round(v)) for v in box[:4])
            cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), BOX_COLOUR, thick)
    for person in keypoints:
        for a, b in schema.skeleton_index:
            if person[a, 2] >= threshold and person[b, 2] >= threshold:
                p, q = (tuple(int(round(v)) for v in person[i, :2]) for i in (a, b))
                colour = colours[a] if colours[a] == colours[b] else CENTRE_COLOUR
                cv2.line(canvas, p, q, colour, thick, cv2.LINE_AA)
        for k, (x, y, s) in enumerate(person):
            if s >= threshold:
                fill = thick if visibility and s < 2 else -1
                cv2.circle(canvas, (int(round(x)), int(round(y))), radius, colours[k], fill, cv2.LINE_AA)
    if label:
        scale = max(0.35, max(image.shape[:2]) / 800)
        cv2.putText(canvas, label, (4, int(16 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1)
    return canvas


def draw_annotations(image: np.ndarray, annotations: Sequence[dict], schema: KeypointSchema) -> np.ndarray:
    """A copy of a BGR `image` with COCO annotation dicts (keypoints by visibility, bbox) drawn by `draw_pose`."""
    if not annotations:
        return image.copy()
    keypoints = np.stack([np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3) for a in annotations])
    boxes = np.asarray([a["bbox"] for a in annotations], dtype=np.float64)
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return cv2.cvtColor(draw_pose(rgb, keypoints, schema, boxes=boxes, visibility=True), cv2.COLOR_RGB2BGR)


def annotation_tile(
    image: np.ndarray,
    keypoints: np.ndarray,
    boxes: np.ndarray,
    schema: KeypointSchema,
    size: int,
    label: str | None = None,
) -> np.ndarray:
    """An RGB image fitted into a `size` x `size` square (aspect kept, black margins right and bottom), then its
    ground truth (keypoints (N, K, 3) x, y, v; boxes (N, 4) xywh) drawn at that scale, so dots stay crisp.

    A keypoint at (x, y) in the image lands at (round(x * s), round(y * s)), s = size / max(w, h)."""
    h, w = image.shape[:2]
    s = size / max(h, w)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    tile = np.zeros((size, size, 3), np.uint8)
    tile[: small.shape[0], : small.shape[1]] = small
    kp = np.asarray(keypoints, dtype=np.float64).reshape(len(keypoints), -1, 3).copy()
    kp[..., :2] *= s
    return draw_pose(tile, kp, schema, boxes=np.asarray(boxes, np.float64) * s, label=label, visibility=True)


def contact_sheet(tiles: Sequence[np.ndarray], columns: int = 4, tile_size: int | None = None) -> np.ndarray:
    """Tiles (any sizes) resized to `tile_size` squares and laid out in a grid with 2-pixel white gutters:
    (rows * (size + 2) - 2, columns * (size + 2) - 2, 3), columns = min(columns, len(tiles))."""
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
