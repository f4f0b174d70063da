"""Command-line options several commands share, defined once so their flags and help read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# `--decode-prior` of eval, predict and pseudo-label (compare has its own wording)
DecodePrior = Annotated[
    Path | None,
    typer.Option(
        "--decode-prior",
        help="Pose prior to decode with: an implausible pose's keypoints may move to other heatmap peaks.",
    ),
]

UprightTest = Annotated[
    bool,
    typer.Option(
        "--upright-test",
        help="Also read each crop turned by 90, 180 and 270 degrees and keep, per person, the most confident and "
        "upright reading: for people lying at any angle (4x the inference time).",
    ),
]

# `--invert-images` of eval, predict and pseudo-label
InvertImages = Annotated[
    bool,
    typer.Option(
        "--invert-images",
        help="Invert every image (255 - value) before the model reads it: e.g. a white-hot thermal camera read by "
        "colour-trained weights (the recipe key model.invert_input builds it into a model).",
    ),
]

KeepShare = Annotated[
    float | None,
    typer.Option(
        "--keep-share",
        help="Also cap each keypoint type at this share of people, keeping its most confident readings (0-1; "
        "class-balanced self-training): a type read confidently everywhere, right or wrong, is not labelled on "
        "everyone. Default: no cap.",
    ),
]
