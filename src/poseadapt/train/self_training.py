"""Offline self-training rounds: a model labels unlabelled person boxes, a fresh copy of the start model trains on
those labels plus the recipe's own labelled data, and the model it makes labels the next round.

This is the zero-label pipeline that measured best on rendered infants (docs/ADAPTATION_RESULTS.md, sessions 6-19),
ahead of the online mean teacher, whose teacher drifts with its student. Each round's labels are fixed, so a
round cannot chase its own errors. Every round trains from the start checkpoint, not from the round before, so a
model's errors reach the next round only through its labels (continuing from the round before measured level on
visible infants). Labels and weights of each round are kept under the output folder, so an interrupted or
repeated run continues where it stopped. With a labelled validation set in the recipe (`data.val`), each round's
final validation AP is recorded and the best round named: rounds gain for two or three rounds, then drift. The
start model's own AP (round 0) takes part: self-training from a model fine-tuned on a few labels measured below
that model (docs/ADAPTATION_RESULTS.md, session 21), so the rounds must be seen to beat their start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poseadapt.errors import PoseAdaptError

# (checkpoint that labels, round number) -> (COCO keypoint file, summary); the caller decides how it reads
Labeller = Callable[[str | Path, int], tuple[dict[str, Any], dict[str, Any]]]
# labels file -> the recipe of that round (a `poseadapt.train.recipe.Recipe`)
RoundRecipe = Callable[[Path], Any]
# (recipe, run folder) -> final checkpoint
Trainer = Callable[[Any, Path], Path]


@dataclass
class RoundResult:
    round: int
    labels: Path
    checkpoint: Path
    labelled_by: str
    summary: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    val_ap: float | None = None  # the round's final weights on the recipe's data.val (None without one)


def _val_ap_at(run_dir: Path, iteration: object, last: bool = True) -> float | None:
    """The `val/AP` of a run's `val_log.csv` row at `iteration` (the last such row, else the first); None without."""
    import csv

    log = run_dir / "val_log.csv"
    if not log.is_file():
        return None
    with log.open(newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("val/AP") and row.get("iteration") == str(iteration)]
    return float(rows[-1 if last else 0]["val/AP"]) if rows else None


def final_val_ap(run_dir: Path) -> float | None:
    """The validation AP of a run's final weights: its `val_log.csv` row at the iteration `final.safetensors` was
    written at (validation runs after the last epoch); None when that row is missing (no `data.val`, or a run
    that `train.max_iters` stopped inside an epoch)."""
    from poseadapt.interop.checkpoint import read_header

    final = run_dir / "final.safetensors"
    if not final.is_file():
        return None
    return _val_ap_at(run_dir, read_header(final).get("provenance", {}).get("training", {}).get("iteration"))


def start_val_ap(run_dir: Path) -> float | None:
    """The validation AP of the weights a run started from: its `val_log.csv` row at iteration 0 (written with
    `train.val_at_start`); None without one."""
    return _val_ap_at(run_dir, 0, last=False)


def best_round(results: list[RoundResult], start: RoundResult | None = None) -> RoundResult | None:
    """The round with the highest validation AP (the earliest on a tie); None unless every round validated.
    `start` (round 0: the start model, its AP before any training) takes part when it validated, so a run whose
    rounds never beat the model they started from names that model."""
    if not results or any(r.val_ap is None for r in results):
        return None
    candidates = [start, *results] if start is not None and start.val_ap is not None else results
    return max(candidates, key=lambda r: (r.val_ap, -r.round))


def start_result(start: str | Path, results: list[RoundResult]) -> RoundResult | None:
    """Round 0, the start model, with its validation AP as round 1's run measured it before its first step (every
    round trains a fresh copy of the start model); None when round 1 did not validate at its start."""
    ap = start_val_ap(results[0].checkpoint.parent) if results else None
    return None if ap is None else RoundResult(0, Path(), Path(str(start)), "", val_ap=ap)


def pseudo_source(
    labels: Path, images: Path, left_right: str | None = None, anchor: float | None = None, head: str | None = None
) -> dict[str, Any]:
    """The recipe entry of a round's pseudo-labelled images; `left_right` / `anchor` / `head` (the head that
    labelled them, which they train) only when given."""
    entry: dict[str, Any] = {"ann": str(labels), "images": str(images)}
    if head is not None:
        entry["head"] = head
    if left_right is not None:
        entry["left_right"] = left_right
    if anchor is not None:
        entry["left_right_anchor"] = anchor
    return entry


def with_pseudo_labels(
    recipe: dict[str, Any], source: dict[str, Any], unlabelled: Path | None = None
) -> dict[str, Any]:
    """A copy of a recipe's plain data training on `source` (`pseudo_source`): in place of the `data.train` entry
    whose `ann` is the `unlabelled` boxes file, keeping that entry's other keys (its augmentation, `left_right`),
    else first in `data.train`. `data.train` may be written as one mapping or a list."""
    import copy

    out = copy.deepcopy(recipe)
    data = out.get("data") or {}
    out["data"] = data
    train = data.get("train")
    train = [] if train is None else list(train) if isinstance(train, list) else [train]

    def names_unlabelled(entry: Any) -> bool:
        ann = entry.get("ann") if isinstance(entry, dict) else None
        return unlabelled is not None and isinstance(ann, str | Path) and Path(ann).resolve() == unlabelled.resolve()

    match = next((i for i, entry in enumerate(train) if names_unlabelled(entry)), None)
    if match is None:
        data["train"] = [source, *train]
    else:
        train[match] = {**train[match], **source, "images": train[match].get("images") or source["images"]}
        data["train"] = train
    return out


def train_or_resume(recipe: Any, run_dir: Path) -> Path:
    """Train a round into `run_dir`, continuing from its `last.pt` when an earlier call was stopped part way."""
    from poseadapt.train.build import run_recipe

    result = run_recipe(recipe, run_dir, resume=(run_dir / "last.pt").is_file())
    if result.status != "completed" or result.final_checkpoint is None:
        raise SelfTrainingStopped(run_dir, result.iteration)
    return Path(result.final_checkpoint)


class SelfTrainingStopped(PoseAdaptError):
    """A round's training stopped before its end (Ctrl-C); its state is in the round's folder."""

    def __init__(self, run_dir: Path, iteration: int) -> None:
        super().__init__(f"round stopped at iteration {iteration}; its state is in {run_dir / 'last.pt'}")
        self.run_dir = run_dir


def self_training_rounds(
    start: str | Path,
    rounds: int,
    out: Path,
    label: Labeller,
    recipe_for: RoundRecipe,
    *,
    train: Trainer = train_or_resume,
    report: Callable[[RoundResult], None] | None = None,
    labelling: dict[str, Any] | None = None,
    stop_when_worse: bool = False,
) -> list[RoundResult]:
    """Run `rounds` rounds into `out`: OUT/round{r}_labels.json (by `start` in round 1, else round r-1's model) and
    OUT/round{r}/ (the run trained on them). A round whose labels and weights are already there is kept, as long as
    every round before it was kept too; a round whose training was stopped continues from its `last.pt`.
    `labelling` (how `label` reads: its options) is recorded in the summary. With `stop_when_worse`, no round is run
    after one whose validation AP is below the best before it, the start model's among them when round 1's run
    validated it at iteration 0 (the rounds have started to drift, or do not help)."""
    import shutil

    from poseadapt.synth.coco_writer import write_json_atomic

    if rounds < 1:
        raise PoseAdaptError(f"rounds must be 1 or more, got {rounds}")
    out.mkdir(parents=True, exist_ok=True)
    results: list[RoundResult] = []
    labeller: str | Path = start
    stale = False  # an earlier round was (re)made in this call: later labels and weights are out of date
    stopped = False
    for r in range(1, rounds + 1):
        labels_path, run_dir = out / f"round{r}_labels.json", out / f"round{r}"
        final = run_dir / "final.safetensors"
        cached = not stale and labels_path.is_file() and final.is_file()
        summary: dict[str, Any] = {}
        if not cached:
            if stale or not labels_path.is_file():
                labels, summary = label(labeller, r)
                write_json_atomic(labels_path, labels)
            if stale and (run_dir / "recipe.yaml").is_file():  # a run this command made from older labels
                shutil.rmtree(run_dir)
            final = train(recipe_for(labels_path), run_dir)
            stale = True
        result = RoundResult(r, labels_path, final, str(labeller), summary, cached, final_val_ap(run_dir))
        results.append(result)
        if report is not None:
            report(result)
        labeller = final
        stopped = stop_when_worse and r < rounds and _worse_than_before(results, start_result(start, results))
        if stopped:
            break
    _write_summary(out, start, results, labelling, stopped)
    return results


def _worse_than_before(results: list[RoundResult], start: RoundResult | None = None) -> bool:
    """Whether the last round's validation AP is below the best of the rounds before it (the start model, round 0,
    among them when it validated)."""
    earlier = ([start] if start is not None else []) + results[:-1]
    before = [r.val_ap for r in earlier if r.val_ap is not None]
    last = results[-1].val_ap
    return last is not None and bool(before) and last < max(before)


def _write_summary(
    out: Path,
    start: str | Path,
    results: list[RoundResult],
    labelling: dict[str, Any] | None = None,
    stopped: bool = False,
) -> None:
    from poseadapt.synth.coco_writer import write_json_atomic

    rounds = [{"round": r.round, "labels": str(r.labels), "labelled_by": r.labelled_by, "checkpoint": str(r.checkpoint),
               "cached": r.cached, **({"labelling": r.summary} if r.summary else {}),
               **({"val_AP": r.val_ap} if r.val_ap is not None else {})} for r in results]  # fmt: skip
    doc: dict[str, Any] = {"start": str(start), "final_checkpoint": str(results[-1].checkpoint), "rounds": rounds}
    if labelling is not None:
        doc["labelling"] = labelling
    if stopped:  # `stop_when_worse`: the last round's validation AP fell below an earlier round's
        doc["stopped_when_worse"] = True
    zero = start_result(start, results)
    if zero is not None:
        doc["start_val_AP"] = zero.val_ap
    best = best_round(results, zero)
    if best is not None:  # round 0: no round beat the start model
        doc.update(best_round=best.round, best_checkpoint=str(best.checkpoint), best_val_AP=best.val_ap)
    write_json_atomic(out / "self_training.json", doc)
