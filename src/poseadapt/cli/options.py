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
