"""Bootstrap confidence intervals for COCO keypoint AP/AR over images, and AP on a subset of images.

AP is not a mean over people (matching and the precision curve couple them), so its uncertainty comes from
resampling whole images with replacement and scoring each resample as a test set of its own: a drawn image
appears as many times as it was drawn, each copy under a fresh image id. The draws come from one seeded
generator and are shared by every model on a test set, so the difference between two models (forgetting) is
a paired bootstrap. 1-2 AP points on a few hundred images are usually inside the interval.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from poseadapt.evaluate.oks import coco_keypoint_stats

DEFAULT_SAMPLES = 1000
DEFAULT_SEED = 0
LEVEL = 0.95


def draws(image_ids: Sequence[int], samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(samples, n) image ids drawn with replacement from `image_ids` (sorted first: file order is no input)."""
    ids = np.sort(np.asarray(list(image_ids), dtype=np.int64))
    rng = np.random.default_rng(seed)
    return ids[rng.integers(0, len(ids), size=(int(samples), len(ids)))]


@dataclass
class ImageIndexed:
    """A COCO GT dataset dict and a results list grouped by image, ready to be re-assembled from any image list."""

    dataset: dict
    results: list[dict]
    sigmas: Sequence[float]
    cat_ids: Sequence[int] | None = None

    def __post_init__(self) -> None:
        self.anns: dict[int, list[dict]] = defaultdict(list)
        self.dets: dict[int, list[dict]] = defaultdict(list)
        self.images = {int(im["id"]): im for im in self.dataset["images"]}
        for a in self.dataset["annotations"]:
            self.anns[int(a["image_id"])].append(a)
        for r in self.results:
            self.dets[int(r["image_id"])].append(r)

    def subset(self, image_ids: Sequence[int]) -> tuple[dict, list[dict]]:
        """The dataset and results of these images; the k-th entry becomes image k + 1 (repeats are new images)."""
        images, anns, dets = [], [], []
        for new_id, old in enumerate(image_ids, start=1):
            images.append({**self.images[int(old)], "id": new_id})
            for a in self.anns.get(int(old), ()):
                anns.append({**a, "id": len(anns) + 1, "image_id": new_id})
            for r in self.dets.get(int(old), ()):
                dets.append({**r, "image_id": new_id})
        return {**self.dataset, "images": images, "annotations": anns}, dets

    def stats(self, image_ids: Sequence[int], engine: str = "hotcoco") -> dict[str, float]:
        """AP / AR (AP, AP50, ..., AR_L) on these images (0 where there is no prediction at all)."""
        dataset, dets = self.subset(image_ids)
        if not dets:
            from poseadapt.evaluate.oks import AP_KEYS

            return {k: 0.0 for k in AP_KEYS}
        return coco_keypoint_stats(dataset, dets, self.sigmas, cat_ids=self.cat_ids, engine=engine)


@dataclass
class Interval:
    value: float
    low: float
    high: float

    def to_list(self) -> list[float]:
        return [self.low, self.high]

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0


def percentile_interval(value: float, samples: np.ndarray, level: float = LEVEL) -> Interval:
    """The percentile bootstrap interval around `value`: the (1 - level) / 2 and (1 + level) / 2 quantiles."""
    s = np.asarray(samples, dtype=np.float64)
    low, high = np.quantile(s, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Interval(float(value), float(low), float(high))


def bootstrap_stats(
    indexed: Mapping[str, ImageIndexed],
    image_draws: np.ndarray,
    keys: Sequence[str] = ("AP", "AR"),
    engine: str = "hotcoco",
) -> dict[str, dict[str, np.ndarray]]:
    """{model: {key: (samples,) values}}: every model scored on the same resamples (paired)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, data in indexed.items():
        rows = [data.stats(draw, engine) for draw in image_draws]
        out[name] = {k: np.array([r[k] for r in rows]) for k in keys}
    return out


def to_index_dicts(gt: Any, preds: Any, sigmas: Sequence[float] | None = None) -> ImageIndexed:
    """`ImageIndexed` from a loaded GT (`CocoKeypoints`) and predictions in the GT's schema."""
    from poseadapt.evaluate.score import coco_dicts

    dataset, results = coco_dicts(gt, preds)
    return ImageIndexed(dataset, results, gt.schema.sigmas if sigmas is None else sigmas, gt.keypoint_category_ids)
