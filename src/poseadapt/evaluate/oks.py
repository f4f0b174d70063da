"""COCO keypoint AP/AR with per-schema OKS sigmas, and a vectorised OKS matrix.

The AP/AR engine is `hotcoco` (a Rust port of pycocotools) with pycocotools kept as a selectable fallback and as
the test oracle. Why hotcoco, measured on the 5000-image / 21-keypoint benchmark (benchmarks/bench_score.py,
2-core CPU): pycocotools needs about 3.5 s as a whole process; hotcoco parses both JSON files in Rust and
evaluates in about 0.1 s in-process, with bit-identical statistics to pycocotools (also checked by
tests/test_metrics_oks.py on random schemas, crowds, misses and false positives). A vectorised numpy engine of our
own would still have to parse the JSON in Python first, and that alone costs 0.5 s with the stdlib (0.2 s with
msgspec into arrays), which leaves no room for a 10x margin; it would also be a second implementation of the
greedy matching and the 101-point interpolation to keep in parity. hotcoco is one abi3 wheel that needs only
numpy, so the maintenance risk is a single small dependency; if it ever breaks, `engine="pycocotools"` gives the
same numbers, slower.

Both engines return the raw `precision` / `recall` arrays and `summarize_keypoints` turns them into the ten
statistics exactly as pycocotools' `_summarizeKps` does (so neither engine's printing is involved).
Undefined statistics (no GT in an area range) are -1, as in pycocotools.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from poseadapt.errors import DataError

AP_KEYS: tuple[str, ...] = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")
ENGINES: tuple[str, ...] = ("hotcoco", "pycocotools")

# (is_ap, iou_threshold or None for the mean over 0.50:0.95, area-range index into all / medium / large)
_SUMMARY: tuple[tuple[bool, float | None, int], ...] = (
    (True, None, 0),
    (True, 0.5, 0),
    (True, 0.75, 0),
    (True, None, 1),
    (True, None, 2),
    (False, None, 0),
    (False, 0.5, 0),
    (False, 0.75, 0),
    (False, None, 1),
    (False, None, 2),
)

GtSource = str | Path | Mapping[str, Any]
PredSource = str | Path | Sequence[Mapping[str, Any]]


def summarize_keypoints(precision: np.ndarray, recall: np.ndarray, iou_thrs: np.ndarray) -> dict[str, float]:
    """The ten COCO keypoint statistics from accumulated arrays, as pycocotools' `_summarizeKps` computes them.

    precision: (T, R, C, A, M); recall: (T, C, A, M); A indexes the area ranges all / medium / large and M the
    max-detection settings (keypoints use one: 20).
    """
    out: dict[str, float] = {}
    for key, (is_ap, thr, area) in zip(AP_KEYS, _SUMMARY, strict=True):
        values = precision[..., area, -1] if is_ap else recall[..., area, -1]
        if thr is not None:
            values = values[np.where(thr == iou_thrs)[0]]
        values = values[values > -1]
        out[key] = float(np.mean(values)) if values.size else -1.0
    return out


def coco_keypoint_stats(
    gt: GtSource,
    pred: PredSource,
    sigmas: Sequence[float],
    *,
    cat_ids: Sequence[int] | None = None,
    engine: str = "hotcoco",
) -> dict[str, float]:
    """COCO keypoint AP/AR (AP, AP50, ..., AR_L) of `pred` against `gt` with OKS `sigmas`.

    `gt` is a COCO keypoint JSON path or an in-memory dataset dict; `pred` a results JSON path or a list of
    result dicts. Files are parsed by the engine itself (in Rust for hotcoco), so validate them first
    (`poseadapt.evaluate.cocofiles`); this function trusts its input.
    """
    if engine not in ENGINES:
        raise DataError(f"unknown scoring engine '{engine}' (choose from {', '.join(ENGINES)})")
    run = _accumulate_hotcoco if engine == "hotcoco" else _accumulate_pycocotools
    precision, recall, iou_thrs = run(gt, pred, [float(s) for s in sigmas], list(cat_ids) if cat_ids else None)
    return summarize_keypoints(precision, recall, iou_thrs)


HOTCOCO_SIGMA_WARNING = r"hotcoco: kpt_oks_sigmas differ from the COCO defaults"


def _accumulate_hotcoco(
    gt: GtSource, pred: PredSource, sigmas: list[float], cat_ids: list[int] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import hotcoco

    with warnings.catch_warnings():
        # hotcoco warns that non-COCO sigmas are "no longer COCO keypoint AP": per-schema sigmas are the point here.
        # Only that warning is silenced; any other hotcoco warning reaches the user.
        warnings.filterwarnings("ignore", message=HOTCOCO_SIGMA_WARNING, category=UserWarning)
        try:
            coco_gt = hotcoco.COCO(str(gt) if isinstance(gt, str | Path) else dict(gt))
            coco_dt = coco_gt.load_res(str(pred) if isinstance(pred, str | Path) else list(pred))
        except ValueError as exc:  # hotcoco's typed parse: "load_res[3]: field 'keypoints': must be real number"
            raise DataError(f"invalid COCO data: {exc}") from None
        ev = hotcoco.COCOeval(coco_gt, coco_dt, "keypoints")
        params = ev.params
        params.kpt_oks_sigmas = sigmas
        if cat_ids:
            params.cat_ids = cat_ids
        ev.params = params
        ev.evaluate()
        ev.accumulate()
    result = ev.eval
    assert result is not None
    return result["precision"], result["recall"], np.asarray(ev.params.iou_thrs, dtype=np.float64)


def _accumulate_pycocotools(
    gt: GtSource, pred: PredSource, sigmas: list[float], cat_ids: list[int] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress on stdout
        if isinstance(gt, str | Path):
            coco_gt = COCO(str(gt))
        else:
            coco_gt = COCO()
            coco_gt.dataset = copy.deepcopy(dict(gt))
            coco_gt.createIndex()
        results = str(pred) if isinstance(pred, str | Path) else copy.deepcopy(list(pred))  # loadRes mutates dicts
        if isinstance(results, list) and not results:  # loadRes cannot take an empty list
            coco_dt = COCO()
            coco_dt.dataset = {"images": coco_gt.dataset["images"], "categories": coco_gt.dataset["categories"]}
            coco_dt.dataset["annotations"] = []
            coco_dt.createIndex()
        else:
            coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        if cat_ids:
            ev.params.catIds = cat_ids
        ev.evaluate()
        ev.accumulate()
    return ev.eval["precision"], ev.eval["recall"], np.asarray(ev.params.iouThrs, dtype=np.float64)


def oks_matrix(
    pred_xy: np.ndarray,
    gt_keypoints: np.ndarray,
    gt_areas: np.ndarray,
    gt_boxes: np.ndarray,
    sigmas: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Object keypoint similarity (P, G) between P predictions (P, K, >=2) and G ground truths (G, K, 3).

    Same formula as pycocotools' `computeOks`: mean over the GT's labelled keypoints (v > 0) of
    exp(-d^2 / (2 * area * (2 sigma)^2)); a GT with no labelled keypoint measures each predicted point's distance
    outside its box grown by the box size on every side.
    """
    pred_xy = np.asarray(pred_xy, dtype=np.float64)[..., :2]
    gt_keypoints = np.asarray(gt_keypoints, dtype=np.float64)
    variances = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    if pred_xy.shape[0] == 0 or gt_keypoints.shape[0] == 0:
        return np.zeros((pred_xy.shape[0], gt_keypoints.shape[0]))
    labelled = gt_keypoints[..., 2] > 0  # (G, K)
    delta = pred_xy[:, None] - gt_keypoints[None, :, :, :2]  # (P, G, K, 2)
    boxes = np.asarray(gt_boxes, dtype=np.float64)
    lo = boxes[:, None, :2] - boxes[:, None, 2:]  # (G, 1, 2)
    hi = boxes[:, None, :2] + 2.0 * boxes[:, None, 2:]
    outside = np.maximum(0.0, lo[None] - pred_xy[:, None]) + np.maximum(0.0, pred_xy[:, None] - hi[None])
    none_labelled = ~labelled.any(axis=1)  # (G,)
    delta = np.where(none_labelled[None, :, None, None], outside, delta)
    areas = np.asarray(gt_areas, dtype=np.float64)[None, :, None] + np.spacing(1)
    e = (delta**2).sum(-1) / variances / areas / 2.0  # (P, G, K)
    weight = np.where(none_labelled[:, None], True, labelled)[None]  # all K count when none is labelled
    return (np.exp(-e) * weight).sum(-1) / weight.sum(-1)
