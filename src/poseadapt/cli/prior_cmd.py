"""`poseadapt prior fit`: learn a population's pose prior from a COCO keypoint file (registered in `cli/main.py`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from poseadapt.errors import PoseAdaptError

prior_app = typer.Typer(help="Pose priors of a population (bone ratios, joint limits, a pose density).")


@prior_app.command("fit")
def fit(
    ann: Annotated[Path, typer.Argument(metavar="ANN.json", help="COCO keypoint file of the population's poses.")],
    out: Annotated[Path, typer.Option("--out", help="Prior file to write (.safetensors).")],
    schema: Annotated[
        str | None, typer.Option("--schema", help="Schema name or YAML (default: from the file's keypoint names).")
    ] = None,
    components: Annotated[int, typer.Option("--components", help="Gaussian mixture components (at most).")] = 8,
    dims: Annotated[int, typer.Option("--dims", help="PCA dimensions of the pose density.")] = 12,
    flip: Annotated[
        bool, typer.Option("--flip/--no-flip", help="Also fit each pose mirrored, left and right swapped.")
    ] = True,
    min_poses: Annotated[int, typer.Option("--min-poses", help="Fewest fully labelled poses to fit on.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the mixture's initialisation.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Fit a pose prior (safetensors + JSON metadata) to the fully labelled poses of ANN.json."""
    from poseadapt.cli.io import check_output, print_json
    from poseadapt.priors import fit_prior_from_coco

    if components < 1 or dims < 1 or min_poses < 1:
        raise PoseAdaptError("--components, --dims and --min-poses must be positive")
    if out.suffix != ".safetensors":
        raise PoseAdaptError(f"--out must be a .safetensors file, got {out}")
    check_output(out, "--out")
    prior = fit_prior_from_coco(
        ann, schema, components=components, dims=dims, flip=flip, seed=seed, min_poses=min_poses
    )
    prior.save(out)
    summary = {"out": str(out), "schema": prior.schema_name, **prior.info, "reference": prior.reference,
               "threshold": prior.threshold}  # fmt: skip
    if json_out:
        print_json(summary)
        return
    sys.stdout.write(
        f"pose prior of {prior.info['poses']} {prior.schema_name} poses ({prior.info['components']} components, "
        f"{prior.info['dims']} dims) -> {out}\n"
    )
