"""PCK@alpha, PCKh, AUC of PCK and EPE, overall and per keypoint, for any schema.

Counting rules (one place, so every number in a report means the same thing):

* A keypoint counts when the GT person is not a crowd region and the keypoint is labelled (v > 0).
* Predictions are matched to GT people image by image, greedily in order of descending score (stable, like
  COCO): each prediction takes the still-unmatched GT person with the highest OKS under the schema's sigmas
  (ties: the first GT in file order); a prediction whose best OKS is 0 takes nobody. This is the COCO rule
  without a threshold, so a top-down result with one prediction per GT box matches one-to-one.
* A GT person left without a prediction is a miss: its labelled keypoints count as wrong for PCK / AUC and are
  left out of EPE (an error in pixels has no value for a person never predicted). Unmatched predictions are
  reported but do not change PCK: PCK is not a detection metric; use OKS AP for that.
* A keypoint is correct when its error is <= alpha * normaliser (MPII convention, so alpha = 0 credits exact
  predictions). A person whose normaliser cannot be measured (torso or head keypoints unlabelled, no head box) is
  left out and counted in `people_without_normaliser`.

Averaging (`average`, reported with every result so a number says how it was made):

* `keypoint` (default for PCK and AUC): PCK of each keypoint over the people that label it, then the mean over
  keypoints that anybody labelled (mmpose `PCKAccuracy` / `keypoint_pck_accuracy`). A rarely labelled point
  weighs as much as a common one.
* `pooled`: every counted keypoint of every person once (the mean weighted by each keypoint's count).
* `mpii` (default for PCKh): pooled, leaving out keypoints named `pelvis` and `thorax` (MPII's evaluation and mmpose
  `MpiiPCKAccuracy`: per-joint PCKh weighted by joint counts, pelvis and thorax masked). Per-keypoint values are
  still reported for them.

AUC (`auc_rule`): `mmpose` (default) is mmpose's `keypoint_auc`: PCK (keypoint-averaged, strict `<`) at the
thresholds i / n * alpha * normaliser for i = 0 .. n - 1 (n = 20), averaged (a left Riemann sum, so a perfect
model scores 1 - 1/n = 0.95); mmpose's own call is `normalize` = 30 px with alpha = 1. `trapezoid` integrates the
curve at 101 thresholds on [0, alpha] with `<=` and divides by alpha (a perfect model scores 1).

Normalisers: `bbox` = max(w, h) of the GT box, clipped to the image first when the image size is known (mmpose 1.x
clips each GT box to [0, width - 1] x [0, height - 1] when it loads a COCO-style dataset); `torso` = mean length
of the labelled shoulder-hip diagonals (left_shoulder-right_hip, right_shoulder-left_hip); `head` = 0.6 x the
diagonal of the annotation's `head_bbox` (xywh; the MPII PCKh convention) when it has one, else the
head_top-upper_neck distance; a number = that length in pixels for every person.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from poseadapt.errors import PoseAdaptError, SchemaError
from poseadapt.evaluate.oks import oks_matrix
from poseadapt.schemas import KeypointSchema
from poseadapt.schemas.mapping import spelled_keypoint_name

NORMALISERS: tuple[str, ...] = ("bbox", "torso", "head")
AVERAGES: tuple[str, ...] = ("keypoint", "pooled", "mpii")
AUC_RULES: tuple[str, ...] = ("mmpose", "trapezoid")
MPII_EXCLUDED: tuple[str, ...] = ("pelvis", "thorax")  # left out of MPII's overall PCKh
MMPOSE_AUC_THRESHOLDS = 20
MPII_HEAD_FACTOR = 0.6
_TORSO_DIAGONALS: tuple[tuple[str, str], ...] = (("left_shoulder", "right_hip"), ("right_shoulder", "left_hip"))
_HEAD_SEGMENTS: tuple[tuple[str, str], ...] = (("head_top", "upper_neck"), ("head_top", "neck"))


@dataclass(frozen=True)
class KeypointData:
    """The arrays PCK needs for one GT set and its predictions (e.g. from `poseadapt.data.coco`)."""

    gt_image_ids: np.ndarray  # (N,)
    gt_keypoints: np.ndarray  # (N, K, 3) x, y, v
    gt_boxes: np.ndarray  # (N, 4) xywh
    gt_areas: np.ndarray  # (N,)
    gt_iscrowd: np.ndarray  # (N,) bool
    pred_image_ids: np.ndarray  # (M,)
    pred_keypoints: np.ndarray  # (M, K, >=2)
    pred_scores: np.ndarray  # (M,)
    gt_head_boxes: np.ndarray | None = None  # (N, 4) xywh, NaN rows where an annotation has none
    gt_image_sizes: np.ndarray | None = None  # (N, 2) width, height of each GT's image; 0 where unknown


@dataclass
class PckResult:
    """One metric, overall and per keypoint, with the counts that say what it was computed over."""

    metric: str  # pck | pckh | auc | epe
    value: float
    per_keypoint: dict[str, float]
    alpha: float | None
    normalize: str | None
    gt_people: int
    matched_people: int
    unmatched_predictions: int
    people_without_normaliser: int = 0
    keypoints_counted: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {self.metric.upper(): self.value}
        out.update(self.extra)
        out.update(
            metric=self.metric,
            alpha=self.alpha,
            normalize=self.normalize,
            gt_people=self.gt_people,
            matched_people=self.matched_people,
            unmatched_predictions=self.unmatched_predictions,
            people_without_normaliser=self.people_without_normaliser,
            keypoints_counted=self.keypoints_counted,
        )
        if self.per_keypoint:
            out["per_keypoint"] = self.per_keypoint
        return out


def match_predictions(data: KeypointData, sigmas: Sequence[float]) -> np.ndarray:
    """For each GT person, the index of its matched prediction, or -1 (see the module docstring for the rule)."""
    n_gt = len(data.gt_image_ids)
    match = np.full(n_gt, -1, dtype=np.int64)
    scorable = _scorable(data)
    gt_by_image = _group(np.asarray(data.gt_image_ids))
    pred_by_image = _group(np.asarray(data.pred_image_ids))
    scores = np.asarray(data.pred_scores, dtype=np.float64)
    for image_id, preds in pred_by_image.items():
        gts = gt_by_image.get(image_id)
        if gts is None:
            continue
        gts = gts[scorable[gts]]
        if gts.size == 0:
            continue
        preds = preds[np.argsort(-scores[preds], kind="stable")]
        oks = oks_matrix(
            data.pred_keypoints[preds], data.gt_keypoints[gts], data.gt_areas[gts], data.gt_boxes[gts], sigmas
        )
        taken = np.zeros(gts.size, dtype=bool)
        for row, pred in enumerate(preds):
            candidates = np.where(taken, -1.0, oks[row])
            best = int(np.argmax(candidates))
            if candidates[best] > 0:
                taken[best] = True
                match[gts[best]] = pred
    return match


def _scorable(data: KeypointData) -> np.ndarray:
    """(N,) the GT people PCK counts: not a crowd region, at least one labelled keypoint."""
    labelled = (np.asarray(data.gt_keypoints)[..., 2] > 0).any(axis=1)
    return labelled & ~np.asarray(data.gt_iscrowd, dtype=bool)


def _group(ids: np.ndarray) -> dict[int, np.ndarray]:
    if ids.size == 0:  # np.split of an empty array still yields one (empty) part
        return {}
    order = np.argsort(ids, kind="stable")
    uniq, starts = np.unique(ids[order], return_index=True)
    return {int(u): part for u, part in zip(uniq, np.split(order, starts[1:]), strict=True)}


def keypoint_errors(data: KeypointData, match: np.ndarray) -> np.ndarray:
    """(N, K) pixel error of each labelled GT keypoint; inf for a missed person, NaN where not counted."""
    gt = np.asarray(data.gt_keypoints, dtype=np.float64)
    errors = np.full(gt.shape[:2], np.inf)
    hit = match >= 0
    if hit.any():
        pred = np.asarray(data.pred_keypoints, dtype=np.float64)[match[hit], :, :2]
        errors[hit] = np.linalg.norm(pred - gt[hit, :, :2], axis=-1)
    counted = (gt[..., 2] > 0) & ~np.asarray(data.gt_iscrowd, dtype=bool)[:, None]
    return np.where(counted, errors, np.nan)


def normalisers(data: KeypointData, schema: KeypointSchema, normalize: str | float) -> np.ndarray:
    """(N,) per-person length that alpha multiplies; NaN where it cannot be measured."""
    if not isinstance(normalize, str):
        value = float(normalize)
        if not (np.isfinite(value) and value > 0):
            raise PoseAdaptError(f"PCK normaliser length must be a positive number of pixels, got {normalize}")
        return np.full(len(data.gt_image_ids), value)
    gt = np.asarray(data.gt_keypoints, dtype=np.float64)
    if normalize == "bbox":
        boxes = clip_boxes(np.asarray(data.gt_boxes, dtype=np.float64), data.gt_image_sizes)
        size = np.maximum(boxes[:, 2], boxes[:, 3])
        return np.where(size > 0, size, np.nan)
    if normalize == "torso":
        pairs = _segments(schema, _TORSO_DIAGONALS)
        if not pairs:
            raise SchemaError(
                f"schema '{schema.name}' has no left/right shoulder and hip keypoints for the torso normaliser: "
                "use bbox, head or a length in pixels"
            )
        lengths = np.stack([_segment_length(gt, a, b) for a, b in pairs], axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a person with no labelled diagonal: NaN, by design
            mean = np.nanmean(lengths, axis=1)
        return np.where(mean > 0, mean, np.nan)
    if normalize == "head":
        pairs = _segments(schema, _HEAD_SEGMENTS)
        out = np.full(len(gt), np.nan)
        if pairs:
            out = _segment_length(gt, *pairs[0])
        if data.gt_head_boxes is not None:
            boxes = np.asarray(data.gt_head_boxes, dtype=np.float64)
            diag = MPII_HEAD_FACTOR * np.hypot(boxes[:, 2], boxes[:, 3])
            out = np.where(np.isfinite(diag), diag, out)
        elif not pairs:
            raise SchemaError(
                f"schema '{schema.name}' has no head_top / upper_neck keypoints and the GT has no head_bbox: "
                "the head normaliser (PCKh) cannot be measured"
            )
        return np.where(out > 0, out, np.nan)
    raise PoseAdaptError(f"unknown PCK normaliser '{normalize}' (choose bbox, torso, head or a length in pixels)")


def clip_boxes(boxes: np.ndarray, image_sizes: np.ndarray | None) -> np.ndarray:
    """xywh boxes clipped to [0, W - 1] x [0, H - 1] as mmpose 1.x loads them; rows of unknown size (0) untouched."""
    if image_sizes is None:
        return boxes
    sizes = np.asarray(image_sizes, dtype=np.float64)
    known = (sizes[:, 0] > 0) & (sizes[:, 1] > 0)
    x1 = np.clip(boxes[:, 0], 0, sizes[:, 0] - 1)
    y1 = np.clip(boxes[:, 1], 0, sizes[:, 1] - 1)
    x2 = np.clip(boxes[:, 0] + boxes[:, 2], 0, sizes[:, 0] - 1)
    y2 = np.clip(boxes[:, 1] + boxes[:, 3], 0, sizes[:, 1] - 1)
    clipped = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    return np.where(known[:, None], clipped, boxes)


def _segments(schema: KeypointSchema, pairs: tuple[tuple[str, str], ...]) -> list[tuple[int, int]]:
    names = set(schema.keypoints)
    return [(schema.index(a), schema.index(b)) for a, b in pairs if a in names and b in names]


def _segment_length(gt: np.ndarray, a: int, b: int) -> np.ndarray:
    both = (gt[:, a, 2] > 0) & (gt[:, b, 2] > 0)
    return np.where(both, np.linalg.norm(gt[:, a, :2] - gt[:, b, :2], axis=-1), np.nan)


def pck_curve(
    errors: np.ndarray,
    norms: np.ndarray,
    alphas: np.ndarray,
    *,
    average: str = "pooled",
    keep: np.ndarray | None = None,
    strict: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """PCK at each alpha: overall (A,) and per keypoint (A, K); NaN per keypoint where nothing was counted.

    `average` is `pooled` or `keypoint` (module docstring); `keep` (K,) bool limits the overall value to some
    keypoints (MPII leaves out pelvis and thorax); `strict` counts error < threshold (mmpose) instead of <=.
    """
    counted = ~np.isnan(errors) & ~np.isnan(norms)[:, None]
    scaled = np.where(counted, errors / np.where(np.isnan(norms), 1.0, norms)[:, None], np.inf)
    thresholds = np.asarray(alphas, dtype=np.float64)[:, None, None]
    correct = (scaled[None] < thresholds) if strict else (scaled[None] <= thresholds)  # (A, N, K)
    correct &= counted[None]
    per_kp_count = counted.sum(0)
    hits = correct.sum(1)  # (A, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_keypoint = hits / per_kp_count
    use = per_kp_count > 0
    if keep is not None:
        use &= np.asarray(keep, dtype=bool)
    if average == "keypoint":
        overall = per_keypoint[:, use].mean(axis=1) if use.any() else np.full(len(hits), np.nan)
    elif average == "pooled":
        with np.errstate(invalid="ignore", divide="ignore"):
            overall = hits[:, use].sum(axis=1) / per_kp_count[use].sum()
    else:
        raise PoseAdaptError(f"unknown PCK average '{average}' (choose keypoint or pooled)")
    return overall, per_keypoint


def auc_from_curve(alphas: np.ndarray, pck: np.ndarray) -> np.ndarray:
    """Area under PCK(alpha) on [0, alphas[-1]] divided by alphas[-1] (trapezoid rule); 1 = perfect."""
    alphas = np.asarray(alphas, dtype=np.float64)
    pck = np.asarray(pck, dtype=np.float64)
    widths = np.diff(alphas)
    heights = (pck[1:] + pck[:-1]) / 2.0
    return np.tensordot(widths, heights, axes=(0, 0)) / (alphas[-1] - alphas[0])


def compute_pck_metric(
    data: KeypointData,
    schema: KeypointSchema,
    metric: str,
    *,
    alpha: float | None = None,
    normalize: str | float = "bbox",
    auc_points: int = 101,
    average: str | None = None,
    auc_rule: str = "mmpose",
) -> PckResult:
    """One of pck | pckh | auc | epe, overall and per keypoint (see the module docstring for what is counted).

    `average`: keypoint | pooled | mpii (None: the metric's convention, `mpii` for PCKh, else `keypoint`);
    `auc_rule`: mmpose | trapezoid.
    """
    if metric not in ("pck", "pckh", "auc", "epe"):
        raise PoseAdaptError(f"unknown metric '{metric}' (choose ap, pck, pckh, auc or epe)")
    if average is None:
        average = "mpii" if metric == "pckh" else "keypoint"
    if average not in AVERAGES:
        raise PoseAdaptError(f"unknown PCK average '{average}' (choose {', '.join(AVERAGES)})")
    if auc_rule not in AUC_RULES:
        raise PoseAdaptError(f"unknown AUC rule '{auc_rule}' (choose {', '.join(AUC_RULES)})")
    if metric == "pckh":
        normalize = "head"
    match = match_predictions(data, schema.sigmas)
    errors = keypoint_errors(data, match)
    scorable = _scorable(data)
    matched_preds = set(match[match >= 0].tolist())
    counts = dict(
        gt_people=int(scorable.sum()),
        matched_people=int((match >= 0).sum()),
        unmatched_predictions=len(data.pred_image_ids) - len(matched_preds),
    )
    if metric == "epe":
        finite = np.where(np.isfinite(errors), errors, np.nan)
        n = int(np.isfinite(finite).sum())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a keypoint nobody labelled: NaN, by design
            value = float(np.nanmean(finite)) if n else float("nan")
            per_kp = np.nanmean(finite, axis=0)
        return PckResult("epe", value, _named(schema, per_kp), None, None, **counts, keypoints_counted=n)
    if alpha is None:
        alpha = 0.5 if metric in ("pckh", "auc") else 0.2
    if not (np.isfinite(alpha) and alpha >= 0):
        raise PoseAdaptError(f"--alpha must be a non-negative number, got {alpha}")
    norms = normalisers(data, schema, normalize)
    without = int((np.isnan(norms) & scorable).sum())
    counted = int((~np.isnan(errors) & ~np.isnan(norms)[:, None]).sum())
    norm_label = normalize if isinstance(normalize, str) else f"{float(normalize):g}px"
    keep = None
    if average == "mpii":
        keep = np.array([spelled_keypoint_name(k) not in MPII_EXCLUDED for k in schema.keypoints])
    how = "keypoint" if average == "keypoint" else "pooled"
    extra: dict[str, object] = {"average": average}
    if metric == "auc":
        if alpha <= 0:
            raise PoseAdaptError("AUC needs --alpha > 0 (the largest threshold of the PCK curve)")
        extra["auc_rule"] = auc_rule
        if auc_rule == "mmpose":
            alphas = np.arange(MMPOSE_AUC_THRESHOLDS) / MMPOSE_AUC_THRESHOLDS * alpha
            overall, per_kp = pck_curve(errors, norms, alphas, average=how, keep=keep, strict=True)
            value, per = float(overall.mean()), per_kp.mean(axis=0)
        else:
            alphas = np.linspace(0.0, alpha, auc_points)
            overall, per_kp = pck_curve(errors, norms, alphas, average=how, keep=keep)
            value, per = float(auc_from_curve(alphas, overall)), auc_from_curve(alphas, per_kp)
    else:
        overall, per_kp = pck_curve(errors, norms, np.array([alpha]), average=how, keep=keep)
        value, per = float(overall[0]), per_kp[0]
    return PckResult(
        metric,
        value,
        _named(schema, per),
        float(alpha),
        norm_label,
        **counts,
        people_without_normaliser=without,
        keypoints_counted=counted,
        extra=extra,
    )


def _named(schema: KeypointSchema, values: np.ndarray) -> dict[str, float]:
    return {name: float(v) for name, v in zip(schema.keypoints, values, strict=True)}
