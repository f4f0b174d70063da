"""`poseadapt sigmas`: its options and its body (registered in `cli/main.py`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def sigmas(
    annotations: Annotated[
        list[Path],
        typer.Argument(
            metavar="ANN.json...",
            help="COCO keypoint files annotating the same people (or one file with repeated annotations).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Schema YAML to write (the schema with the estimated sigmas).")],
    schema: Annotated[
        str | None, typer.Option("--schema", help="Schema name or YAML (default: from the files' keypoint names).")
    ] = None,
    min_repeats: Annotated[
        int, typer.Option("--min-repeats", help="Warn for keypoints with fewer repeated people than this.")
    ] = 30,
    json_out: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False,
) -> None:
    """Per-keypoint OKS sigmas from repeated annotations, as COCO derived its own (annotator spread / scale)."""
    from poseadapt.cli.io import check_output, print_json, write_atomic
    from poseadapt.evaluate.sigmas import estimate_sigmas, schema_yaml

    check_output(out, "--out")
    estimate = estimate_sigmas(annotations, schema=schema, min_repeats=min_repeats)
    write_atomic(out, schema_yaml(estimate))
    for line in estimate.warnings:
        sys.stderr.write(f"warning: {line}\n")
    if json_out:
        print_json({**estimate.to_dict(), "out": str(out)})
        return
    width = max(len(n) for n in estimate.schema.keypoints)
    lines = [f"{n:<{width}}  sigma {s:.4f}  from {c} people" for n, s, c in estimate.rows()]
    sys.stdout.write("\n".join(lines) + f"\nwrote {out}\n")
