"""`poseadapt self-train RECIPE --unlabelled ANN --images DIR --out DIR`: zero-label adaptation in one command.

Rounds of `poseadapt pseudo-label` and `poseadapt train` (train/self_training.py): the recipe's `model.checkpoint`
labels the unlabelled boxes, a fresh copy of it trains on those labels plus the recipe's own data, and that model
labels the next round. The labels take the place of the recipe's `data.train` entry whose `ann` is the
`--unlabelled` file, with that entry's augmentation and `left_right`; without one they go first in `data.train`
(`--set data.train.0.augment=[...]` then reaches them). A model with several heads labels with `--head` (or the
head that entry names), and the labels train that head. Registered in `cli/main.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from poseadapt.cli.options import DecodePrior, KeepShare, UprightTest
from poseadapt.errors import PoseAdaptError


def self_train(
    recipe: Annotated[
        str,
        typer.Argument(
            metavar="RECIPE", help="Recipe (YAML file or built-in name) with model.checkpoint: the model to adapt."
        ),
    ],
    unlabelled: Annotated[
        Path, typer.Option("--unlabelled", help="COCO file of the unlabelled person boxes (its keypoints are ignored).")
    ],
    images: Annotated[Path, typer.Option("--images", help="Folder the unlabelled file's file_names are relative to.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for each round's labels and run, and the summary.")],
    rounds: Annotated[int, typer.Option("--rounds", help="Rounds of labelling and training.")] = 3,
    min_score: Annotated[
        float, typer.Option("--min-score", help="Keypoints scoring below this are left unlabelled.")
    ] = 0.4,
    keep_share: KeepShare = None,
    decode_prior: DecodePrior = None,
    debias_source: Annotated[
        Path | None,
        typer.Option(
            "--debias-source",
            help="COCO file of labelled poses of the population the start model learned from; with --debias-target, "
            "every round's labels lose the body proportions carried over from it (see `pseudo-label`).",
        ),
    ] = None,
    debias_target: Annotated[
        Path | None, typer.Option("--debias-target", help="COCO file of labelled poses of the target population.")
    ] = None,
    left_right: Annotated[
        str | None,
        typer.Option(
            "--left-right",
            help="as_labelled, or either: the labels' left and right may be swapped as a whole (the loss takes the "
            "nearer of a label and its mirror); for targets the start model often reads mirrored. Default: as "
            "the recipe's entry of the unlabelled file says, else as_labelled.",
        ),
    ] = None,
    left_right_anchor: Annotated[
        float | None,
        typer.Option(
            "--left-right-anchor", help="With --left-right either: share of the loss kept on the labels (0.1)."
        ),
    ] = None,
    invert_first: Annotated[
        bool,
        typer.Option(
            "--invert-first",
            help="Round 1: the start model reads every image inverted (255 - value), e.g. colour-trained weights on "
            "a white-hot thermal camera; later rounds read as their recipe's model.invert_input says.",
        ),
    ] = False,
    upright: UprightTest = False,
    head: Annotated[
        str | None,
        typer.Option(
            "--head",
            help="Head (dataset) whose keypoints label and train, by name. Default: the `head` of the recipe's entry "
            "of the unlabelled file, else the first.",
        ),
    ] = None,
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Flip test when labelling.")] = True,
    stop_when_worse: Annotated[
        bool,
        typer.Option(
            "--stop-when-worse",
            help="Run no more rounds once a round's validation AP falls below an earlier round's or the start "
            "model's (needs data.val in the recipe: a few labelled images of the target).",
        ),
    ] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override a recipe key of every round (repeatable)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="No progress bars; print the summary as JSON.")] = False,
) -> None:
    """Adapt a model with unlabelled images: rounds of pseudo-labelling and training a fresh copy on the labels."""
    from poseadapt.cli.inference_cmd import check_keep_share, check_min_score
    from poseadapt.cli.io import check_output, print_json
    from poseadapt.evaluate.pseudo_labels import check_box_images, read_boxes_file
    from poseadapt.train.recipe import apply_overrides, recipe_data, recipe_from_dict
    from poseadapt.train.self_training import (
        SelfTrainingStopped,
        best_round,
        pseudo_source,
        self_training_rounds,
        start_result,
        with_pseudo_labels,
    )

    if rounds < 1:
        raise PoseAdaptError(f"--rounds must be 1 or more, got {rounds}")
    check_min_score(min_score)
    check_keep_share(keep_share)
    if left_right not in (None, "as_labelled", "either"):
        raise PoseAdaptError(f"--left-right must be as_labelled or either, got {left_right!r}")
    if not images.is_dir():
        raise PoseAdaptError(f"--images must be a folder, got {images}")
    check_output(out, "--out", folder=True)
    boxes = read_boxes_file(unlabelled)
    if not check_box_images(boxes, images):
        raise PoseAdaptError(f"--unlabelled {unlabelled}: no person box to label (every annotation is crowd, or none)")
    base, source = recipe_data(recipe)

    def recipe_for(labels: Path) -> Any:
        pseudo = pseudo_source(labels.resolve(), images.resolve(), left_right, left_right_anchor, head)
        data = with_pseudo_labels(base, pseudo, unlabelled)
        parsed = recipe_from_dict(apply_overrides(data, overrides or []), f"{source}, round on {labels.name}")
        if json_out:
            parsed.train.progress = False
        if parsed.data.val_sources:  # the start model's AP too (iteration 0), for the rounds to be measured against
            parsed.train.val_at_start = True
        return parsed

    checked = recipe_for(unlabelled)  # every key and value checked before any labelling or training
    if head is None:  # the head the recipe's entry of the unlabelled file trains
        head = next(s.head for s in checked.data.train if s.ann is not None and s.ann.resolve() == unlabelled.resolve())
    if stop_when_worse and not checked.data.val_sources:
        raise PoseAdaptError("--stop-when-worse needs a labelled validation set in the recipe (data.val)")
    if stop_when_worse and not checked.train.val_interval:
        raise PoseAdaptError("--stop-when-worse needs each round validated at its end: train.val_interval is 0")
    start = checked.model.checkpoint
    if start is None:
        raise PoseAdaptError(
            "self-training adapts a trained model: the recipe needs model.checkpoint (e.g. --set "
            "model.checkpoint=builtin:synthpose-vit-tiny)"
        )
    label = _Labeller(boxes, images, min_score, decode_prior, (debias_source, debias_target), invert_first, upright,
                      head, flip, keep_share)  # fmt: skip
    label.check(start)  # the prior and the debias files against the start model's schema, before any work
    report = None if json_out else _print_round
    try:
        results = self_training_rounds(str(start), rounds, out, label, recipe_for, report=report,
                                       labelling=label.options(), stop_when_worse=stop_when_worse)  # fmt: skip
    except SelfTrainingStopped as stop:
        sys.stderr.write(f"{stop}\ncontinue with the same command: finished rounds are kept\n")
        sys.exit(130)
    if json_out:
        import json

        print_json(json.loads((out / "self_training.json").read_text()))
        return
    if len(results) < rounds:
        sys.stdout.write(f"stopped after round {len(results)} of {rounds}: its validation AP fell below an earlier "
                         "round's or the start model's\n")  # fmt: skip
    sys.stdout.write(f"done: {len(results)} rounds; weights in {results[-1].checkpoint}\n")
    zero = start_result(str(start), results)
    best = best_round(results, zero)
    if zero is not None:
        sys.stdout.write(f"start model's validation AP: {zero.val_ap:.4f}\n")
    if best is not None and best.round == 0:
        sys.stdout.write(f"no round beat the start model on validation: keep {best.checkpoint}\n")
    elif best is not None:
        sys.stdout.write(f"best round by validation AP: {best.round} ({best.val_ap:.4f}), {best.checkpoint}\n")


class _Labeller:
    """The labelling step of a round, as `poseadapt pseudo-label` does it with the same options."""

    def __init__(
        self,
        boxes: dict[str, Any],
        images: Path,
        min_score: float,
        decode_prior: Path | None,
        debias: tuple[Path | None, Path | None],
        invert_first: bool,
        upright: bool,
        head: str | None = None,
        flip: bool = True,
        keep_share: float | None = None,
    ) -> None:
        self.boxes, self.images, self.min_score, self.decode_prior = boxes, images, min_score, decode_prior
        self.debias, self.invert_first, self.upright = debias, invert_first, upright
        self.head, self.flip = head, flip  # the labelling head by name (None: the first); the flip test
        self.keep_share = keep_share

    def _reader(self, checkpoint: str | Path, round_: int) -> tuple[Any, Any, Any]:
        from poseadapt.cli.inference_cmd import prior_decoder, proportion_debias, reading_model

        model = reading_model(checkpoint, self.invert_first and round_ == 1)  # type: ignore[arg-type]
        schema = model.schemas[model.head_index(self.head) if self.head else 0]
        return model, prior_decoder(self.decode_prior, schema, model.codec), proportion_debias(*self.debias, schema)

    def check(self, start: str | Path) -> None:
        self._reader(start, 1)

    def options(self) -> dict[str, Any]:
        """How every round labels, for the summary (self_training.json)."""
        source, target = self.debias
        return {"min_score": self.min_score, "decode_prior": _text(self.decode_prior), "debias_source": _text(source),
                "debias_target": _text(target), "invert_first": self.invert_first, "upright_test": self.upright,
                "head": self.head, "flip_test": self.flip, "keep_share": self.keep_share}  # fmt: skip

    def __call__(self, checkpoint: str | Path, round_: int) -> tuple[dict[str, Any], dict[str, Any]]:
        from poseadapt.evaluate.pseudo_labels import pseudo_label_file

        model, decoder, debias = self._reader(checkpoint, round_)
        return pseudo_label_file(model, self.boxes, self.images, min_score=self.min_score, head=self.head,
                                 decoder=decoder, flip_test=self.flip, upright_test=self.upright,
                                 debias=debias, keep_share=self.keep_share)  # fmt: skip


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _print_round(result: Any) -> None:
    val = f"; validation AP {result.val_ap:.4f}" if result.val_ap is not None else ""
    if result.cached:
        sys.stdout.write(f"round {result.round}: kept from an earlier call ({result.checkpoint}){val}\n")
        return
    kept = result.summary.get("share_kept")
    share = f"{kept:.0%} of keypoints labelled by {result.labelled_by}; " if kept is not None else ""
    sys.stdout.write(f"round {result.round}: {share}trained {result.checkpoint}{val}\n")
    from poseadapt.cli.inference_cmd import debias_lines

    sys.stdout.write(debias_lines(result.summary))
