"""`poseadapt compare`: its options and its body (registered in `cli/main.py`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from poseadapt.cli.options import UprightTest
from poseadapt.errors import PoseAdaptError


def compare(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            metavar="NAME=CKPT",
            help="A model: NAME=CHECKPOINT.safetensors, NAME=builtin:NAME, or COCO results per test set "
            "(NAME=RESULTS.json with one test set, NAME=TEST:RES.json,TEST2:RES2.json otherwise). Repeatable.",
        ),
    ],
    test: Annotated[
        list[str],
        typer.Option(
            "--test",
            metavar="NAME=ANN.json[:IMAGES]",
            help="A test set: COCO keypoint file and its image folder (default: next to the file, or ../images).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for report.html, report.md, plots and summary.json.")],
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Model or seed group to measure forgetting against (AP change, interval)."),
    ] = None,
    seeds: Annotated[
        list[str] | None,
        typer.Option(
            "--seeds",
            metavar="NAME=MODEL,MODEL,...",
            help="Runs of one recipe with different training seeds (models named with --model), reported as one "
            "row: mean AP, interval over images and runs. Repeatable.",
        ),
    ] = None,
    group_by: Annotated[
        list[str] | None,
        typer.Option("--group-by", metavar="KEY", help="Image field to report subgroups by (repeatable)."),
    ] = None,
    samples: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples of the images.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap draws.")] = 0,
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Flip test for checkpoints.")] = True,
    upright: UprightTest = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print summary.json.")] = False,
    prior: Annotated[
        Path | None, typer.Option("--prior", help="Pose prior (poseadapt prior fit): add the implausible-pose rate.")
    ] = None,
    decode_prior: Annotated[
        Path | None,
        typer.Option("--decode-prior", help="Pose prior to decode every checkpoint with (prior-guided decoding)."),
    ] = None,
    invert_images: Annotated[
        list[str] | None,
        typer.Option(
            "--invert-images",
            metavar="MODEL",
            help="This checkpoint model reads every image inverted (255 - value): e.g. colour-trained weights on a "
            "white-hot thermal test set (models trained with model.invert_input need no flag). Repeatable.",
        ),
    ] = None,
) -> None:
    """Every model on every test set: AP/AR with bootstrap intervals, PCK, per keypoint, per subgroup, forgetting."""
    from poseadapt.cli.io import check_output, print_json
    from poseadapt.evaluate.compare import compare_report

    if samples < 10:
        raise PoseAdaptError(f"--bootstrap needs at least 10 resamples, got {samples}")
    check_output(out, "--out", folder=True)
    say = None if json_out or not sys.stderr.isatty() else (lambda msg: sys.stderr.write(f"scoring {msg}\n"))
    summary = compare_report(
        model, test, out, baseline=baseline, group_by=group_by or [], samples=samples, seed=seed, flip_test=flip,
        upright_test=upright, progress=say, prior=prior, decode_prior=decode_prior, seed_groups=seeds or [],
        invert_images=invert_images or [],
    )  # fmt: skip
    if json_out:
        print_json(summary)
        return
    from poseadapt.evaluate.report import format_table

    rows = [[r["model"], r["test"], r["AP"], f"[{r['AP_ci'][0]:.3f}, {r['AP_ci'][1]:.3f}]", r["AR"], r["PCK"]]
            + ([r["implausible_rate"]] if prior is not None else []) for r in summary["results"]]  # fmt: skip
    head = ["model", "test", "AP", "95% CI", "AR", "PCK"] + (["implausible"] if prior is not None else [])
    sys.stdout.write(format_table(head, rows) + "\n")
    for r in summary["results"]:
        if r["forgetting"] is not None:
            sys.stdout.write(
                f"{r['model']} vs {r['forgetting']['baseline']} on {r['test']}: {_change(r['forgetting'])}\n"
            )
    for g in summary["seed_groups"]:
        runs = ", ".join(f"{v:.3f}" for v in g["AP_runs"])
        ci = f"[{g['AP_ci'][0]:.3f}, {g['AP_ci'][1]:.3f}]"
        line = f"{g['group']} on {g['test']}: mean AP {g['AP']:.3f} {ci} over {len(g['AP_runs'])} runs ({runs})"
        if g["vs_baseline"] is not None:
            line += f"; vs {g['vs_baseline']['baseline']} {_change(g['vs_baseline'])}"
        sys.stdout.write(line + "\n")
    sys.stdout.write(f"report: {out / 'report.html'}\n")


def _change(d: dict) -> str:
    """'ΔAP +0.012 [-0.003, +0.027] (within noise)' from a summary's change entry."""
    verdict = "real" if d["excludes_zero"] else "within noise"
    return f"ΔAP {d['delta_AP']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] ({verdict})"
