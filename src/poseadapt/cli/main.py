"""`poseadapt` entry point.

Every command body imports what it needs inside the function: `poseadapt --help`, `schemas` and `score` must
never import torch. User errors (`PoseAdaptError`) become one line on stderr and exit code 2; click's own usage
errors keep click's message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="poseadapt",
    help="Adapt pre-trained pose-estimation models to new populations and keypoint sets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

schemas_app = typer.Typer(help="List, show and map keypoint schemas.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")


def _print_json(obj: object) -> None:
    import json

    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------- schemas
@schemas_app.command("list")
def schemas_list(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the built-in keypoint schemas."""
    from poseadapt.cli import schemas_cmd

    schemas_cmd.list_cmd(json_out)


@schemas_app.command("show")
def schemas_show(
    name: Annotated[str, typer.Argument(help="Built-in name or schema YAML file.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a schema's keypoints, sigmas, flip pairs, skeleton and groups."""
    from poseadapt.cli import schemas_cmd

    schemas_cmd.show_cmd(name, json_out)


@schemas_app.command("map")
def schemas_map(
    src: Annotated[str, typer.Argument(help="Source schema (name or YAML file).")],
    dst: Annotated[str, typer.Argument(help="Destination schema (name or YAML file).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Match keypoints of SRC to DST by name (with aliases) and print matched / approximate / unmatched."""
    from poseadapt.cli import schemas_cmd

    schemas_cmd.map_cmd(src, dst, json_out)


# ---------------------------------------------------------------------------------------------- score
@app.command("score")
def score(
    gt: Annotated[Path, typer.Option("--gt", help="Ground-truth COCO keypoint JSON.")],
    pred: Annotated[Path, typer.Option("--pred", help="Predictions in COCO results JSON.")],
    schema: Annotated[
        str | None, typer.Option("--schema", help="Schema name or YAML (default: inferred from GT categories).")
    ] = None,
    metric: Annotated[str, typer.Option("--metric", help="ap | pck | pckh | auc | epe")] = "ap",
    alpha: Annotated[float, typer.Option("--alpha", help="PCK threshold as a fraction of the normaliser.")] = 0.2,
    normalize: Annotated[
        str, typer.Option("--normalize", help="PCK normaliser: bbox | torso | head | a length in pixels.")
    ] = "bbox",
    per_keypoint: Annotated[bool, typer.Option("--per-keypoint", help="Add per-keypoint breakdown.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score predictions against ground truth: OKS AP/AR (COCO), PCK, PCKh, AUC or EPE."""
    from poseadapt.cli import score_cmd

    score_cmd.run(gt, pred, schema, metric, alpha, normalize, per_keypoint, json_out)


# ---------------------------------------------------------------------------------------------- synth
# (synthetic populations: commands go here)


# ---------------------------------------------------------------------------------------------- models
# (import / export / predict / eval commands go here)


def main(argv: list[str] | None = None) -> None:
    from poseadapt.errors import PoseAdaptError

    command = typer.main.get_command(app)
    try:
        rc = command.main(args=argv, prog_name="poseadapt", standalone_mode=False)
    except PoseAdaptError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
