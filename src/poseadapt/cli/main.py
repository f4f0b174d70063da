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

from poseadapt.cli.options import DecodePrior, InvertImages, KeepShare, UprightTest

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
    alpha: Annotated[
        float | None,
        typer.Option("--alpha", help="PCK threshold, a fraction of the normaliser [pck 0.2, pckh 0.5; auc: max 0.5]."),
    ] = None,
    normalize: Annotated[
        str, typer.Option("--normalize", help="PCK normaliser: bbox | torso | head | a length in pixels.")
    ] = "bbox",
    per_keypoint: Annotated[bool, typer.Option("--per-keypoint", help="Add per-keypoint breakdown.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    engine: Annotated[str, typer.Option("--engine", hidden=True, help="OKS AP engine: hotcoco | pycocotools")] = (
        "hotcoco"
    ),
    average: Annotated[
        str | None,
        typer.Option("--average", help="PCK/AUC overall value: keypoint (mean of per-keypoint) | pooled | mpii."),
    ] = None,
    auc_rule: Annotated[str, typer.Option("--auc-rule", help="AUC: mmpose (20 thresholds) | trapezoid.")] = "mmpose",
    prior: Annotated[
        Path | None, typer.Option("--prior", help="Pose prior (poseadapt prior fit): add the implausible-pose rate.")
    ] = None,
) -> None:
    """Score predictions against ground truth: OKS AP/AR (COCO), PCK, PCKh, AUC or EPE."""
    from poseadapt.cli import score_cmd

    score_cmd.run(
        gt, pred, schema, metric, alpha, normalize, per_keypoint, json_out, engine, average=average, auc_rule=auc_rule,
        prior=prior,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- check (data)
@app.command("check")
def check(
    ann: Annotated[Path, typer.Option("--ann", help="COCO keypoint JSON to validate.")],
    images: Annotated[
        Path | None, typer.Option("--images", help="Image folder: check that every listed image exists and is one.")
    ] = None,
    schema: Annotated[
        str | None, typer.Option("--schema", help="Schema name or YAML (default: inferred from the categories).")
    ] = None,
    decode: Annotated[bool, typer.Option("--decode", help="Also decode every image (slower).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    preview: Annotated[
        Path | None,
        typer.Option(
            "--preview",
            help="Write this PNG: a grid of up to 16 labelled images (left/right/centre colours, skeleton, boxes, "
            "occluded points as rings). Needs --images.",
        ),
    ] = None,
) -> None:
    """Validate a dataset up front: annotations against the schema, boxes, ids, and image files."""
    from poseadapt.cli import check_cmd

    check_cmd.run(ann, images, schema, decode, json_out, preview)


# ---------------------------------------------------------------------------------------------- synth
# (synthetic populations: commands go here)
@app.command("synth")
def synth(
    population: Annotated[str, typer.Option("--population", help="adult | infant | elderly | wheelchair")] = "adult",
    view: Annotated[str, typer.Option("--view", help="top | diagonal | side | front | random")] = "random",
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 100,
    size: Annotated[int, typer.Option("--size", help="Image width and height in pixels.")] = 256,
    out: Annotated[Path, typer.Option("--out", help="Output folder (images/, annotations/, preview.png).")] = Path(
        "synth_out"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same dataset (byte-identical JSON).")] = 0,
    schema: Annotated[
        list[str] | None,
        typer.Option("--schema", help="Schema(s) to write (repeatable; default: coco17 and the population's own)."),
    ] = None,
    people: Annotated[str, typer.Option("--people", help="People per image: N or a range LO-HI.")] = "1",
    backgrounds: Annotated[
        Path | None, typer.Option("--backgrounds", help="Folder of background images (default: procedural).")
    ] = None,
    image_format: Annotated[str, typer.Option("--format", help="jpg | png")] = "jpg",
    workers: Annotated[int, typer.Option("--workers", help="Render processes (output is identical).")] = 1,
    preview: Annotated[
        bool, typer.Option("--preview", help="Write preview.png, a contact sheet with skeletons.")
    ] = False,
    look: Annotated[
        str,
        typer.Option("--look", help="visible (a colour camera) | thermal (long-wave infrared: bodies by their heat)."),
    ] = "visible",
    json_out: Annotated[bool, typer.Option("--json", help="Print the written paths as JSON.")] = False,
) -> None:
    """Render a synthetic population to images + COCO keypoint JSON (coco17 and the population's schema)."""
    from poseadapt.cli import synth_cmd

    synth_cmd.run(
        population, view, n, size, out, seed, schema, people, backgrounds, image_format, workers, preview, json_out,
        look,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- models
# (import / export / predict / eval commands go here)
@app.command("import")
def import_checkpoint(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="hf | vitpose | mmpose | sapiens | timm")],
    src: Annotated[str, typer.Argument(help="Checkpoint file (.pth / .safetensors), HF directory or hub id.")],
    out: Annotated[Path, typer.Option("--out", help="poseadapt checkpoint to write (.safetensors).")],
    schema: Annotated[
        str | None, typer.Option("--schema", help="Keypoint schema of the (first) head; timm: of the new head.")
    ] = None,
    num_heads: Annotated[
        int | None, typer.Option("--num-heads", help="Attention heads, when the width does not tell (tiny/custom).")
    ] = None,
    img_size: Annotated[
        str | None,
        typer.Option(
            "--img-size",
            help="Input crop WIDTHxHEIGHT, width first like a recipe's [w, h] (timm: target crop, default 192x256).",
        ),
    ] = None,
    head: Annotated[str, typer.Option("--head", help="timm: kind of the new head (classic|simple|simcc).")] = "classic",
    json_out: Annotated[bool, typer.Option("--json", help="Print the import report as JSON.")] = False,
) -> None:
    """Convert a ViTPose / ViTPose++ / Sapiens / timm ViT checkpoint into a poseadapt checkpoint, exactly."""
    from poseadapt.cli import models_cmd

    models_cmd.import_cmd(fmt, src, out, schema, num_heads, img_size, head, json_out)


export_app = typer.Typer(help="Export a poseadapt checkpoint to another runtime.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("onnx")
def export_onnx(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="poseadapt checkpoint (.safetensors).")],
    out: Annotated[Path, typer.Option("--out", help="ONNX file to write.")],
    head: Annotated[str | None, typer.Option("--head", help="Head (dataset) to export; default the first.")] = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Compare with PyTorch in onnxruntime.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Export to ONNX (dynamic batch) and check the graph against PyTorch with onnxruntime."""
    from poseadapt.cli import models_cmd

    models_cmd.export_onnx_cmd(checkpoint, out, head, check, json_out)


@app.command("predict")
def predict(
    inputs: Annotated[list[Path], typer.Argument(metavar="IMAGE_OR_DIR...", help="Images or folders of images.")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="poseadapt checkpoint (.safetensors).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for results.json and overlays/.")],
    boxes: Annotated[
        Path | None,
        typer.Option("--boxes", help="JSON person boxes: {file_name: [[x,y,w,h(,score)],...]} (default: whole image)."),
    ] = None,
    head: Annotated[str | None, typer.Option("--head", help="Head (dataset) to use; default the first.")] = None,
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Flip test (average with the mirrored crop).")] = True,
    ann: Annotated[
        Path | None,
        typer.Option(
            "--ann",
            help="COCO file listing these images: results use its image_ids (default: 1..N by sorted file name).",
        ),
    ] = None,
    min_score: Annotated[
        float,
        typer.Option(
            "--min-score",
            help="Overlays draw keypoints (and limbs) scoring at least this; results.json keeps every keypoint.",
        ),
    ] = 0.3,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    decode_prior: DecodePrior = None,
    upright: UprightTest = False,
    invert_images: InvertImages = False,
) -> None:
    """Top-down keypoints for person boxes: COCO results JSON plus overlay PNGs with the schema's skeleton.

    Overlays: left keypoints (first of each flip pair) blue, right orange, the rest green; the --boxes in yellow;
    with --ann the ground truth drawn beside the prediction. Without --ann, image_id numbers the images 1..N in
    sorted file-name order; score results.json against a ground-truth file only with --ann (or use `poseadapt eval`).
    """
    from poseadapt.cli import inference_cmd

    inference_cmd.predict_cmd(
        checkpoint, inputs, boxes, out, head, flip, json_out, ann=ann, min_score=min_score, decode_prior=decode_prior,
        upright_test=upright, invert_images=invert_images,
    )  # fmt: skip


@app.command("eval")
def evaluate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="poseadapt checkpoint (.safetensors).")],
    ann: Annotated[Path, typer.Option("--ann", help="COCO keypoint annotations (ground truth).")],
    images: Annotated[Path, typer.Option("--images", help="Folder the annotations' file_names are relative to.")],
    boxes: Annotated[
        Path | None, typer.Option("--boxes", help="COCO detection results for person boxes (default: GT boxes).")
    ] = None,
    head: Annotated[str | None, typer.Option("--head", help="Head (dataset) to use; default the first.")] = None,
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Flip test.")] = True,
    out: Annotated[Path | None, typer.Option("--out", help="Also keep the predictions (COCO results JSON).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    prior: Annotated[
        Path | None, typer.Option("--prior", help="Pose prior (poseadapt prior fit): add the implausible-pose rate.")
    ] = None,
    decode_prior: DecodePrior = None,
    upright: UprightTest = False,
    invert_images: InvertImages = False,
) -> None:
    """Predict on a COCO keypoint dataset (GT boxes or a detection file) and score OKS AP/AR."""
    from poseadapt.cli import inference_cmd

    inference_cmd.eval_cmd(
        checkpoint, ann, images, boxes, head, flip, out, json_out, prior=prior, decode_prior=decode_prior,
        upright_test=upright, invert_images=invert_images,
    )  # fmt: skip


@app.command("pseudo-label")
def pseudo_label(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="poseadapt checkpoint (.safetensors) that labels.")],
    ann: Annotated[Path, typer.Option("--ann", help="COCO file with person boxes (its keypoints are ignored).")],
    images: Annotated[Path, typer.Option("--images", help="Folder the file's file_names are relative to.")],
    out: Annotated[Path, typer.Option("--out", help="COCO keypoint file to write (train on it with data.train.ann).")],
    min_score: Annotated[
        float, typer.Option("--min-score", help="Keypoints scoring below this are written as unlabelled.")
    ] = 0.4,
    head: Annotated[str | None, typer.Option("--head", help="Head (dataset) to use; default the first.")] = None,
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Flip test.")] = True,
    decode_prior: DecodePrior = None,
    upright: UprightTest = False,
    invert_images: InvertImages = False,
    debias_source: Annotated[
        Path | None,
        typer.Option(
            "--debias-source",
            help="COCO file of labelled poses of the population the model learned from (e.g. its adults). With "
            "--debias-target: where the labels' axial proportions (midpoints of shoulders, hips, knees, ...) sit "
            "between the two populations', move them to the target's.",
        ),
    ] = None,
    debias_target: Annotated[
        Path | None,
        typer.Option(
            "--debias-target",
            help="COCO file of labelled poses of the target population (e.g. the one its pose prior was fit on).",
        ),
    ] = None,
    keep_share: KeepShare = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Label unlabelled person boxes with a model: a COCO keypoint file for self-training rounds."""
    from poseadapt.cli import inference_cmd

    inference_cmd.pseudo_label_cmd(
        checkpoint, ann, images, out, min_score, head, flip, decode_prior, json_out, upright_test=upright,
        invert_images=invert_images, debias=(debias_source, debias_target), keep_share=keep_share,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- train
@app.command("train")
def train(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML file, or the name of a built-in recipe.")],
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="Override a recipe key, e.g. --set optim.lr=1e-4 (repeatable)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder (default: the recipe's 'out', else runs/NAME).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the run folder from last.pt.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="No progress bar; print a JSON summary.")] = False,
) -> None:
    """Train or fine-tune a pose model from a recipe (checked before training; Ctrl-C saves, --resume continues)."""
    from poseadapt.cli import train_cmd

    train_cmd.run(recipe, overrides or [], out, resume, json_out)


# ---------------------------------------------------------------------------------------------- methods
@app.command("methods")
def methods(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the adaptation methods a recipe's `adapt:` list can compose, with their options and defaults."""
    from poseadapt.cli import methods_cmd

    methods_cmd.run(json_out)


# ---------------------------------------------------------------------------------------------- demo
@app.command("demo")
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="A small run (about 2 minutes on 2 CPU cores).")] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Output folder: report.html, report.md, plots, summary.json, data/, runs/.")
    ] = Path("demo_out"),
    from_scratch: Annotated[
        bool,
        typer.Option(
            "--from-scratch", help="Pre-train a small model on rendered adults first, instead of the built-in."
        ),
    ] = False,
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            help="labelled: adapt with the infants' labels four ways; unlabelled: a mean teacher and self-training "
            "without them.",
        ),
    ] = "labelled",
) -> None:
    """Adapt the built-in foundation model to infants; compare every model on three test sets."""
    from poseadapt.cli import demo_cmd

    demo_cmd.run(quick, out, from_scratch, scenario)


# ---------------------------------------------------------------------------------------------- compare, sigmas
# Each module owns its options and its body; importing them is light (typer only).
from poseadapt.cli import compare_cmd, prior_cmd, recipe_cmd, self_train_cmd, sigmas_cmd, split_cmd  # noqa: E402

app.command("self-train")(self_train_cmd.self_train)
app.command("compare")(compare_cmd.compare)
app.command("sigmas")(sigmas_cmd.sigmas)
app.add_typer(prior_cmd.prior_app, name="prior")
app.command("split")(split_cmd.split)
app.add_typer(recipe_cmd.recipe_app, name="recipe")
app.command("recipes")(recipe_cmd.recipes)


def _app_for(args: list[str]) -> typer.Typer:
    """An app holding only the command being run, when it is a plain command (not a group such as `schemas`).

    typer builds click objects for every registered command, about 30 ms for all of them on each call of any
    command; with one command the usage line, options and errors are the same. The callback keeps it a group, so
    the command is still addressed by its name. (`score` with plain options skips typer altogether: cli/entry.py.)
    """
    name = args[0] if args else None
    commands = [c for c in app.registered_commands if (c.name or c.callback.__name__) == name]  # type: ignore[union-attr]
    if len(commands) != 1:
        return app
    light = typer.Typer(name=app.info.name, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    light.registered_commands = commands
    light.callback()(_no_options)
    return light


def _no_options() -> None:
    """The group callback of `_app_for`'s one-command app."""


def main(argv: list[str] | None = None) -> None:
    from poseadapt.cli.entry import reported_errors

    command = typer.main.get_command(_app_for(sys.argv[1:] if argv is None else argv))
    with reported_errors():
        try:
            rc = command.main(args=argv, prog_name="poseadapt", standalone_mode=False)
        except typer.Exit as exc:
            sys.exit(exc.exit_code)
        except typer.TyperException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            sys.stderr.write("aborted\n")
            sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
