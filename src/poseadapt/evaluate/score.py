"""Score a COCO results file against a COCO keypoint GT file: the library side of `poseadapt score`.

OKS AP/AR takes the fast path when `cocofiles.check_plain_coco` accepts both files (the engine parses them
natively), else the full loader (`poseadapt.data.coco`), which fills what COCO allows to be missing and rejects
bad files with one clear line; both paths give the same numbers on a plain file. PCK / PCKh / AUC / EPE always
use the loader's arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from poseadapt.errors import DataError, PoseAdaptError
from poseadapt.evaluate.oks import coco_keypoint_stats
from poseadapt.schemas import KeypointSchema

METRICS: tuple[str, ...] = ("ap", "pck", "pckh", "auc", "epe")
NO_KEYPOINTS_WARNING = "the ground truth has no keypoint annotations; "


@dataclass
class ScoreResult:
    """What `poseadapt score` prints: the headline numbers, an optional per-keypoint column and context."""

    metric: str
    schema: str
    values: dict[str, float]  # AP..AR_L for ap; {"PCK": ...} etc. otherwise
    per_keypoint: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # `poseadapt score` prints each as a `warning:` line

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.values)
        out.update(metric=self.metric, schema=self.schema, **self.info)
        if self.per_keypoint:
            out["per_keypoint"] = dict(self.per_keypoint)
        return out


def score_files(
    gt: str | Path,
    pred: str | Path,
    *,
    schema: str | KeypointSchema | None = None,
    metric: str = "ap",
    alpha: float | None = None,
    normalize: str | float = "bbox",
    per_keypoint: bool = False,
    engine: str = "hotcoco",
    average: str | None = None,
    auc_rule: str = "mmpose",
) -> ScoreResult:
    """Score `pred` against `gt` with one metric (ap | pck | pckh | auc | epe); see the module docstring."""
    metric = metric.lower()
    if metric not in METRICS:
        raise PoseAdaptError(f"unknown metric '{metric}' (choose {', '.join(METRICS)})")
    if metric == "ap":
        result = _score_ap(Path(gt), Path(pred), schema, per_keypoint, engine)
        # pycocotools' -1: no GT person counts (none non-crowd with a labelled keypoint), so nothing is defined
        if result.values.get("AP") == -1 and result.values.get("AR") == -1:
            result.warnings.append(NO_KEYPOINTS_WARNING + "every metric is undefined")
        return result
    from poseadapt.data.coco import load_coco_keypoints, load_predictions
    from poseadapt.evaluate.pck import compute_pck_metric

    gt_data = load_coco_keypoints(gt, schema)
    preds = load_predictions(pred, gt_data)
    result = compute_pck_metric(
        keypoint_data(gt_data, preds),
        gt_data.schema,
        metric,
        alpha=alpha,
        normalize=normalize,
        average=average,
        auc_rule=auc_rule,
    )
    info = result.to_dict()
    values = {metric.upper(): info.pop(metric.upper())}
    per = info.pop("per_keypoint", {})
    info.pop("metric")
    out = ScoreResult(metric, gt_data.schema.name, values, per if per_keypoint else {}, info)
    if info.get("gt_people") == 0:
        out.warnings.append(NO_KEYPOINTS_WARNING + f"{metric.upper()} is undefined")
    return out


def _score_ap(
    gt: Path, pred: Path, schema: str | KeypointSchema | None, per_keypoint: bool, engine: str
) -> ScoreResult:
    from poseadapt.evaluate.cocofiles import check_plain_coco

    plain = None if per_keypoint else check_plain_coco(gt, pred, schema)
    if plain is not None:
        try:
            stats = coco_keypoint_stats(gt, pred, plain.schema.sigmas, cat_ids=plain.category_ids, engine=engine)
        except DataError:
            plain = None  # a value the gate cannot see (a string among the numbers): let the loader word it
        else:
            info = {"engine": engine, "gt_annotations": plain.num_annotations, "predictions": plain.num_predictions}
            return ScoreResult("ap", plain.schema.name, stats, {}, info)
    from poseadapt.data.coco import load_coco_keypoints, load_predictions

    gt_data = load_coco_keypoints(gt, schema)
    preds = load_predictions(pred, gt_data)
    dataset, results = coco_dicts(gt_data, preds)
    cats = gt_data.keypoint_category_ids
    stats = coco_keypoint_stats(dataset, results, gt_data.schema.sigmas, cat_ids=cats, engine=engine)
    per = per_keypoint_ap(gt_data, preds, engine=engine) if per_keypoint else {}
    info = {"engine": engine, "gt_annotations": len(gt_data), "predictions": len(preds)}
    return ScoreResult("ap", gt_data.schema.name, stats, per, info)


def coco_dicts(gt: Any, preds: Any, keypoints: Sequence[int] | None = None) -> tuple[dict, list[dict]]:
    """COCO GT dataset and results list from loaded arrays (`CocoKeypoints`, `CocoPredictions`).

    `keypoints` keeps only those keypoint columns; `num_keypoints` is then recounted from them, so a person with
    none of them labelled is ignored, as COCO ignores a person with no labelled keypoint.
    """
    cols = slice(None) if keypoints is None else list(keypoints)
    gt_kp = gt.keypoints[:, cols]
    pred_kp = preds.keypoints[:, cols]
    num = gt.num_keypoints if keypoints is None else (gt_kp[..., 2] > 0).sum(axis=1)
    annotations = [
        {
            "id": int(ann_id),
            "image_id": int(image_id),
            "category_id": int(cat),
            "keypoints": kp.ravel().tolist(),
            "bbox": box.tolist(),
            "area": float(area),
            "iscrowd": int(crowd),
            "num_keypoints": int(n),
        }
        for ann_id, image_id, cat, kp, box, area, crowd, n in zip(
            gt.ann_ids, gt.image_ids, gt.category_ids, gt_kp, gt.boxes, gt.areas, gt.iscrowd, num, strict=True
        )
    ]
    images = [{"id": int(i), "width": im.width, "height": im.height} for i, im in gt.images.items()]
    dataset = {"images": images, "annotations": annotations, "categories": gt.categories}
    results = [
        {"image_id": int(i), "category_id": int(c), "keypoints": kp.ravel().tolist(), "score": float(s)}
        for i, c, kp, s in zip(preds.image_ids, preds.category_ids, pred_kp, preds.scores, strict=True)
    ]
    return dataset, results


def per_keypoint_ap(gt: Any, preds: Any, *, engine: str = "hotcoco") -> dict[str, float]:
    """COCO AP (0.50:0.95) of each keypoint alone: OKS over that one keypoint, people who have it labelled.

    The same matching and 101-point precision as the overall AP, so a keypoint's AP says how often that joint
    alone would pass each OKS threshold; a keypoint nobody labelled is -1.
    """
    out: dict[str, float] = {}
    for k, name in enumerate(gt.schema.keypoints):
        dataset, results = coco_dicts(gt, preds, [k])
        dataset["categories"] = [{**c, "keypoints": [name]} if c.get("keypoints") else c for c in gt.categories]
        stats = coco_keypoint_stats(
            dataset, results, [gt.schema.sigmas[k]], cat_ids=gt.keypoint_category_ids, engine=engine
        )
        out[name] = stats["AP"]
    return out


def keypoint_data(gt: Any, preds: Any) -> Any:
    """`pck.KeypointData` from loaded arrays, with each annotation's `head_bbox` (xywh) where it has one."""
    from poseadapt.evaluate.pck import KeypointData

    head = np.full((len(gt), 4), np.nan)
    for i, ann in enumerate(gt.annotations):
        box = ann.get("head_bbox")
        if box is not None:
            if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box)):
                raise DataError(f"{gt.path}: annotation {ann.get('id')}: 'head_bbox' must be [x, y, width, height]")
            head[i] = box
    return KeypointData(
        gt_image_ids=gt.image_ids,
        gt_keypoints=gt.keypoints,
        gt_boxes=gt.boxes,
        gt_areas=gt.areas,
        gt_iscrowd=gt.iscrowd,
        pred_image_ids=preds.image_ids,
        pred_keypoints=preds.keypoints,
        pred_scores=preds.scores,
        gt_head_boxes=head if np.isfinite(head).any() else None,
        gt_image_sizes=np.array([_image_size(gt.images.get(int(i))) for i in gt.image_ids], dtype=np.float64).reshape(
            -1, 2
        ),
    )


def _image_size(image: Any) -> tuple[int, int]:
    """(width, height) of a GT image, (0, 0) when the file does not say (then no box is clipped)."""
    return (image.width, image.height) if image is not None else (0, 0)
