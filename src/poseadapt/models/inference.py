"""Drawing poses on images. Top-down inference itself lives in `poseadapt.evaluate.topdown` (one path for
validation, `eval`, `predict` and `compare`); `read_image` and `IMAGE_SUFFIXES` are re-exported from there, the
drawing from `poseadapt.draw` (the one renderer, torch-free).
"""

from __future__ import annotations

from poseadapt.draw import (
    BOX_COLOUR,
    CENTRE_COLOUR,
    DEFAULT_MIN_SCORE,
    LEFT_COLOUR,
    RIGHT_COLOUR,
    draw_pose,
    side_colours,
)
from poseadapt.evaluate.topdown import IMAGE_SUFFIXES, read_image

__all__ = [
    "BOX_COLOUR",
    "CENTRE_COLOUR",
    "DEFAULT_MIN_SCORE",
    "IMAGE_SUFFIXES",
    "LEFT_COLOUR",
    "RIGHT_COLOUR",
    "draw_pose",
    "read_image",
    "side_colours",
]
