"""`poseadapt score`: score a COCO results file against COCO keypoint ground truth and print a table or JSON.

Kept light on purpose: the whole process is timed against pycocotools (benchmarks/bench_score.py), so nothing
here imports more than numpy, msgspec and the scoring engine.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from poseadapt.errors import PoseAdaptError

if TYPE_CHECKING:
    from poseadapt.evaluate.score import ScoreResult


def parse_normalize(text: str) -> str | float:
    """`bbox`, `torso`, `head`, or a positive length in pixels."""
    key = text.strip().lower()
    if key in ("bbox", "torso", "head"):
        return key
    try:
        value = float(key)
    except ValueError:
        raise PoseAdaptError(f"--normalize must be bbox, torso, head or a length in pixels, got '{text}'") from None
    if not (math.isfinite(value) and value > 0):
        raise PoseAdaptError(f"--normalize length must be a positive number of pixels, got '{text}'")
    return value


def run(
    gt: Path,
    pred: Path,
    schema: str | None,
    metric: str,
    alpha: float | None,
    normalize: str,
    per_keypoint: bool,
    json_out: bool,
    engine: str = "hotcoco",
    *,
    average: str | None = None,
    auc_rule: str = "mmpose",
    prior: Path | None = None,
) -> None:
    """Score and print: one JSON object with `--json`, else an aligned table (plus per-keypoint rows if asked)."""
    from poseadapt.evaluate.score import score_files

    pose_prior = None
    if prior is not None:  # loaded first: a wrong file fails before the scoring work
        from poseadapt.priors import PosePrior

        pose_prior = PosePrior.load(prior)
    result = score_files(
        gt,
        pred,
        schema=schema,
        metric=metric,
        alpha=alpha,
        normalize=parse_normalize(normalize),
        per_keypoint=per_keypoint,
        engine=engine,
        average=average,
        auc_rule=auc_rule,
    )
    if pose_prior is not None:
        from poseadapt.evaluate.plausibility import implausible_rate_of_files

        rate = implausible_rate_of_files(pose_prior, gt, pred, schema)
        result.values["implausible_rate"] = rate.pop("implausible_rate")
        result.info.update(rate)
    for line in result.warnings:  # stderr: the numbers stay (-1 / "-") and the exit code 0, as pycocotools has it
        sys.stderr.write(f"warning: {line}\n")
    if json_out:
        sys.stdout.write(json.dumps(_json_safe(result.to_dict()), indent=2) + "\n")
        return
    sys.stdout.write(render(result) + "\n")


def render(result: ScoreResult) -> str:
    """The human-readable report of a `ScoreResult`."""
    from poseadapt.evaluate.report import format_table

    info = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.info.items() if v is not None)
    lines = [f"schema {result.schema} | {info}", ""]
    lines.append(format_table(["metric", "value"], list(result.values.items())))
    if result.per_keypoint:
        label = "AP" if result.metric == "ap" else result.metric.upper()
        lines += ["", format_table(["keypoint", label], list(result.per_keypoint.items()))]
    return "\n".join(lines)


def _json_safe(value: object) -> object:
    """NaN (a keypoint nobody labelled) becomes null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value
