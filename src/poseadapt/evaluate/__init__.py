"""Evaluation for any keypoint schema: COCO OKS AP/AR (`oks`), PCK / PCKh / AUC / EPE (`pck`), file scoring
(`score`) and plain-text tables (`report`).

The package namespace resolves names lazily, so `import poseadapt.evaluate.oks` (what `poseadapt score` needs)
does not pay for the other modules.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "AP_KEYS": "oks",
    "coco_keypoint_stats": "oks",
    "oks_matrix": "oks",
    "summarize_keypoints": "oks",
    "KeypointData": "pck",
    "PckResult": "pck",
    "compute_pck_metric": "pck",
    "match_predictions": "pck",
    "METRICS": "score",
    "ScoreResult": "score",
    "score_files": "score",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'poseadapt.evaluate' has no attribute '{name}'")
    return getattr(importlib.import_module(f"poseadapt.evaluate.{module}"), name)
