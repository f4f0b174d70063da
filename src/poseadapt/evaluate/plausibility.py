"""The implausible-pose rate: the share of predicted poses a population's pose prior (`poseadapt.priors`) puts
beyond the 99th percentile of its own training poses' energies (so ~1% of real poses of that population count as
implausible; a model whose rate is far above that predicts anatomically odd poses).

numpy only (`poseadapt score` must not import torch). Predictions of another schema are scored on the prior's
keypoints, matched by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from poseadapt.priors import PosePrior


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k / n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def implausible_rate(prior: PosePrior | str | Path, keypoints: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Rate of implausible poses among `keypoints` (N, K, 2|3) whose columns are the keypoints `names`.

    Returns {"implausible_rate", "implausible_interval" (95% Wilson), "implausible_poses", "poses",
    "prior"}; the rate is NaN without poses.
    """
    if not isinstance(prior, PosePrior):
        prior = PosePrior.load(prior)
    kp = np.asarray(keypoints, dtype=np.float64)
    cols = prior.columns_for(list(names))
    poses = kp[:, cols, :2] if len(kp) else np.zeros((0, len(prior), 2))
    finite = np.isfinite(poses).all(axis=(1, 2))
    poses = poses[finite]
    flags = prior.implausible(poses) if len(poses) else np.zeros(0, dtype=bool)
    k, n = int(flags.sum()), len(poses)
    lo, hi = wilson_interval(k, n)
    return {
        "implausible_rate": k / n if n else math.nan,
        "implausible_interval": [lo, hi],
        "implausible_poses": k,
        "poses": n,
        "prior": prior.schema_name,
    }


def implausible_rate_of_files(
    prior: str | Path, gt: str | Path, pred: str | Path, schema: Any = None
) -> dict[str, Any]:
    """The rate over every pose of a COCO results file (read against its ground truth for the schema)."""
    from poseadapt.data.coco import load_coco_keypoints, load_predictions

    gt_data = load_coco_keypoints(gt, schema)
    preds = load_predictions(pred, gt_data)
    return implausible_rate(prior, preds.keypoints, gt_data.schema.keypoints)
