"""Scoring a model on a test set, also when its keypoints are not the test labels' keypoints.

The adult model predicts coco17, the fine-tuned models infant21. To compare them on the same points, a model
predicts on the test images with the person boxes of the ground truth (as ViTPose validates: flip test, DARK-UDP
decoding; `poseadapt.train.validate.predict_topdown`, the function training validation uses), then its
predictions are carried to the labels' schema by keypoint name (`SchemaMap`) and scored with that schema's OKS
sigmas. The boxes, images and annotation ids of a rendered set are the same in every schema it is written in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from poseadapt.data.coco import CocoKeypoints, CocoPredictions, load_coco_keypoints
from poseadapt.demo.data import RenderedSet
from poseadapt.errors import PoseAdaptError


@dataclass
class TestSet:
    """A rendered test set loaded in every schema it was written in."""

    name: str
    images: Path
    labels: dict[str, CocoKeypoints]  # schema name -> ground truth


def load_test_set(rs: RenderedSet) -> TestSet:
    labels = {schema: load_coco_keypoints(path, schema) for schema, path in rs.annotations.items()}
    return TestSet(rs.spec.population, rs.images, labels)


def predict(model: Any, test: TestSet, *, batch_size: int = 64, flip_test: bool = True) -> CocoPredictions:
    """The model's predictions (its own schema, image pixels) for every person of the test set."""
    from poseadapt.data.dataset import TopDownDataset
    from poseadapt.train.validate import predict_topdown

    schema = model.schemas[0].name
    if schema not in test.labels:
        raise PoseAdaptError(f"test set '{test.name}' has no labels in '{schema}' (has: {', '.join(test.labels)})")
    data = test.labels[schema]
    dataset = TopDownDataset(data, test.images, model.codec, model.input_size, [], train=False)
    return predict_topdown(model, dataset, head=0, batch_size=batch_size, device="cpu", flip_test=flip_test)


def to_schema(preds: CocoPredictions, src: str, dst: str) -> CocoPredictions:
    """Predictions carried from schema `src` to `dst` by keypoint name; `dst` must be covered by `src`."""
    from poseadapt.schemas.mapping import SchemaMap

    if src == dst:
        return preds
    mapping = SchemaMap(src, dst)
    missing = [mapping.dst.keypoints[d] for d in mapping.unmatched_dst + [d for d, _ in mapping.approximate]]
    if missing:
        raise PoseAdaptError(f"a {src} model cannot be scored on {dst}: it does not predict {', '.join(missing)}")
    return replace(preds, keypoints=mapping.transfer(preds.keypoints))


@dataclass
class Score:
    ap: float
    per_keypoint: dict[str, float]


def score(preds: CocoPredictions, pred_schema: str, test: TestSet, label_schema: str, per_keypoint: bool) -> Score:
    """COCO OKS AP (0.50:0.95) of predictions against the test labels in `label_schema`."""
    from poseadapt.evaluate.oks import coco_keypoint_stats
    from poseadapt.evaluate.score import coco_dicts, per_keypoint_ap

    gt = test.labels[label_schema]
    mapped = to_schema(preds, pred_schema, label_schema)
    dataset, results = coco_dicts(gt, mapped)
    stats = coco_keypoint_stats(dataset, results, gt.schema.sigmas, cat_ids=gt.keypoint_category_ids)
    per = per_keypoint_ap(gt, mapped) if per_keypoint else {}
    return Score(stats["AP"], per)


def finite(values: list[float]) -> bool:
    return bool(np.all(np.isfinite(np.asarray(values, dtype=np.float64))))
