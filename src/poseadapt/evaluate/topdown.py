"""Top-down inference and evaluation, in memory: the one path behind validation, `eval`, `predict` and `compare`.

people (GT boxes, or detector boxes with scores) -> UDP crops (`poseadapt.data.topdown`, the geometry training
cuts with) -> model (+ flip test: the codec flips its own output back and knows the offset its geometry leaves;
+ upright test: each crop also turned by a quarter, half and three-quarter turn, the most confident and upright
reading kept) -> codec.decode -> codec.to_image (UDP crop geometry) -> instance score (box score x mean keypoint
score above 0.2, MMPose's rescoring) -> OKS-NMS at 0.9 for detector boxes (MMPose / ViTPose) -> COCO results ->
OKS AP/AR against the ground truth, through a `SchemaMap` when the model predicts another keypoint set than the
labels (scored on the keypoints the two share by name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from poseadapt.data.topdown import DEFAULT_PADDING, box_to_center_scale, crop, input_to_image
from poseadapt.errors import DataError, PoseAdaptError

if TYPE_CHECKING:
    from poseadapt.data.coco import CocoKeypoints, CocoPredictions
    from poseadapt.schemas import KeypointSchema

KEYPOINT_SCORE_THRESHOLD = 0.2
QUARTER_TURNS = (0.0, 90.0, 180.0, 270.0)
UPRIGHT_WEIGHT = 0.5  # score = mean keypoint score + this x cos(body axis vs the crop's up); set on one model, docs/
OKS_NMS_THRESHOLD = 0.9
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# image_id -> RGB (H, W, 3) array; or a folder the GT's file_names are relative to; or a mapping id -> array
ImageSource = Path | str | Callable[[int], np.ndarray] | Mapping[int, np.ndarray]


@dataclass
class People:
    """The persons to predict: one row each, image id, COCO box (x, y, w, h) and box score (1 for GT boxes)."""

    image_ids: np.ndarray  # (N,) int64
    boxes: np.ndarray  # (N, 4) float64
    box_scores: np.ndarray  # (N,) float64
    detected: bool = False  # detector boxes: OKS-NMS applies

    def __len__(self) -> int:
        return len(self.image_ids)


def gt_people(gt: CocoKeypoints) -> People:
    """Every non-crowd ground-truth person (as ViTPose validates), boxes grown to at least 1 px."""
    rows = np.flatnonzero(~np.asarray(gt.iscrowd, dtype=bool))
    boxes = np.asarray(gt.boxes, dtype=np.float64)[rows].reshape(-1, 4).copy()
    boxes[:, 2:] = np.maximum(boxes[:, 2:], 1.0)
    return People(np.asarray(gt.image_ids)[rows].astype(np.int64), boxes, np.ones(len(rows)))


def detection_people(detections: str | Path | list, valid_image_ids: Iterable[int] | None = None) -> People:
    """Detector boxes from a COCO detection results file or list [{image_id, bbox, score?}, ...], validated."""
    source = str(detections) if isinstance(detections, str | Path) else "<detections>"
    if isinstance(detections, str | Path):
        from poseadapt.data.validate import read_json

        detections = read_json(Path(detections), "detections file")
    if not isinstance(detections, list):
        raise DataError(f"{source}: expected a COCO detection results list [{{image_id, bbox, score}}, ...]")
    valid = None if valid_image_ids is None else set(int(i) for i in valid_image_ids)
    ids, boxes, scores = [], [], []
    for i, det in enumerate(detections):
        if not isinstance(det, dict) or "image_id" not in det or "bbox" not in det:
            raise DataError(f"{source}: detection {i} needs 'image_id' and 'bbox'")
        if valid is not None and det["image_id"] not in valid:
            raise DataError(f"{source}: detection {i} refers to image_id {det['image_id']}, which the annotations lack")
        box = check_box(list(det["bbox"]) + [det.get("score", 1.0)], f"{source} detection {i}")
        ids.append(int(det["image_id"]))
        boxes.append(box[:4])
        scores.append(box[4])
    return People(
        np.asarray(ids, dtype=np.int64), np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores), True
    )


def check_box(box: Any, where: str) -> list[float]:
    """[x, y, w, h(, score)] -> five floats (score 1 if absent); finite numbers and a positive size, else DataError."""
    import math

    if not isinstance(box, list | tuple) or len(box) not in (4, 5):
        raise DataError(f"{where}: a box must be [x, y, w, h] or [x, y, w, h, score], got {box!r}")
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
        raise DataError(f"{where}: box {box!r} needs finite numbers and a positive width and height")
    return [float(v) for v in box] + ([1.0] if len(box) == 4 else [])


# ---------------------------------------------------------------------------------------------- images
def image_reader(
    source: ImageSource, gt: CocoKeypoints | None = None, image_ids: Iterable[int] | None = None
) -> Callable[[int], np.ndarray]:
    """image_id -> RGB array, from a folder (with the GT's file_names), a mapping or a callable.

    With a folder, the files of `image_ids` (the images a run will read) must all be there: one line up front
    ("0 of 64 images found in DIR"), rather than a failure at the first missing one, part way through."""
    if callable(source):
        return source
    if isinstance(source, Mapping):
        return lambda image_id: source[image_id]
    root = Path(source)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    if gt is None:
        raise PoseAdaptError("an image folder needs the annotations that name its files")
    if image_ids is not None:
        from poseadapt.data.validate import image_folder_summary

        missing = image_folder_summary(gt, root, image_ids)
        if missing is not None:
            raise DataError(f"{gt.path}: {missing}")
    return lambda image_id: read_image(gt.image_path(image_id, root))


def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3); DataError if it is missing or cannot be decoded."""
    import cv2

    if not Path(path).is_file():  # before OpenCV, which would warn on stderr too
        raise DataError(f"cannot read image {path} (no such file)")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class Predictor:
    """One head of a PoseModel, run on person boxes; the stages are separate so tests can drive each."""

    model: Any
    head: str | int | None = None
    flip_test: bool = True
    batch_size: int = 32
    padding: float = DEFAULT_PADDING
    device: Any = None
    autocast: bool = False
    decoder: Callable[[np.ndarray], np.ndarray] | None = None  # heatmaps -> heatmaps (e.g. a PriorDecoder)
    # people lying at any angle (infants, patients in bed, cameras not level): read each crop at the four quarter
    # turns and keep, per person, the reading with the highest mean keypoint score plus UPRIGHT_WEIGHT x how
    # upright its body axis (lower-body to upper-body keypoints) stands in that crop. 4x the inference cost.
    upright_test: bool = False
    head_index: int = field(init=False)
    _halves: tuple[np.ndarray, np.ndarray] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        import torch

        if isinstance(self.head, str):
            self.head_index = self.model.head_index(self.head)
        else:
            self.head_index = int(self.head or 0)
        if self.device is None:
            try:
                self.device = next(self.model.parameters()).device
            except (StopIteration, AttributeError):
                self.device = torch.device("cpu")
        self.device = torch.device(self.device)

    @property
    def schema(self) -> KeypointSchema:
        return self.model.schemas[self.head_index]

    @property
    def codec(self) -> Any:
        return self.model.codec

    def crops(self, image: np.ndarray, boxes_xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pixels (N, h, w, 3) float32, centres (N, 2), scales (N, 2)): UDP crops at the model's input size.

        With `upright_test`: pixels (N, 4, h, w, 3) and scales (N, 4, 2), one per quarter turn; a quarter-turned
        crop is cut from the box with its sides swapped, so the whole person stays inside the turned crop.
        """
        w_in, h_in = self.model.input_size
        boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
        centers, scales = box_to_center_scale(boxes, w_in / h_in, self.padding)
        image = np.asarray(image).astype(np.float32, copy=False)
        if not self.upright_test:
            pixels = [crop(image, c, s, 0.0, (w_in, h_in)) for c, s in zip(centers, scales, strict=True)]
            pixels = np.stack(pixels) if pixels else np.zeros((0, h_in, w_in, 3), np.float32)
            return pixels.reshape(len(boxes), h_in, w_in, 3), centers.reshape(-1, 2), scales.reshape(-1, 2)
        _, turned = box_to_center_scale(boxes[:, [0, 1, 3, 2]], w_in / h_in, self.padding)  # w and h swapped
        scales = np.stack([scales if a % 180 == 0 else turned for a in QUARTER_TURNS], axis=1)  # (N, 4, 2)
        pixels = [
            crop(image, c, s, a, (w_in, h_in))
            for c, per_turn in zip(centers, scales, strict=True)
            for a, s in zip(QUARTER_TURNS, per_turn, strict=True)
        ]
        pixels = np.stack(pixels) if pixels else np.zeros((0, h_in, w_in, 3), np.float32)
        return pixels.reshape(len(boxes), len(QUARTER_TURNS), h_in, w_in, 3), centers.reshape(-1, 2), scales

    def forward(self, pixels: np.ndarray) -> Any:
        """Crops (N, h, w, 3) 0..255 RGB -> numpy outputs (heatmaps, or a SimCC (x, y) pair), flip test merged."""
        import torch

        model, codec = self.model, self.codec
        single = len(getattr(model, "heads", ())) <= 1 and not getattr(model.config.backbone, "num_experts", 0)
        index = None if single else self.head_index
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device).permute(0, 3, 1, 2)
            x = model.normalize(x)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                out = _numpy(model(x, index))
                if not self.flip_test:
                    return out
                flipped = codec.flip_back(_numpy(model(x.flip(-1), index)), self.schema.flip_index)
        if isinstance(out, tuple):
            return tuple(0.5 * (a + b) for a, b in zip(out, flipped, strict=True))
        return 0.5 * (out + flipped)

    def decode(self, outputs: Any, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Model outputs -> (N, K, 3) keypoints (x, y, score) in image pixels, with the codec's own geometry."""
        keypoints, scores = self._decode_input(outputs)
        image_xy = self.codec.to_image(keypoints, centers, scales)
        return np.concatenate([image_xy[..., :2], scores[..., None]], axis=-1)

    def _decode_input(self, outputs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Model outputs -> (keypoints (N, K, 2) in input-crop pixels, scores (N, K)): decoder, codec, flip offset."""
        if self.decoder is not None and not isinstance(outputs, tuple):
            outputs = self.decoder(outputs)
        keypoints, scores = self.codec.decode(*outputs) if isinstance(outputs, tuple) else self.codec.decode(outputs)
        keypoints = np.asarray(keypoints, np.float64)
        if self.flip_test:  # what averaging with the flipped-back output leaves, in input pixels (0 for UDP)
            keypoints = keypoints.copy()
            keypoints[..., 0] -= self.codec.flip_offset
        return keypoints, np.asarray(scores, np.float64)

    def predict(self, image: np.ndarray, boxes_xywh: np.ndarray) -> np.ndarray:
        """RGB image (H, W, 3) and boxes (N, 4) -> keypoints (N, K, 3) (x, y, score) in image pixels."""
        boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, len(self.schema), 3))
        pixels, centers, scales = self.crops(image, boxes)
        b = self.batch_size
        parts = [
            self._decode_batch(pixels[i : i + b], centers[i : i + b], scales[i : i + b])
            for i in range(0, len(boxes), b)
        ]
        return np.concatenate(parts)

    def _decode_batch(self, pixels: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        if not self.upright_test:
            return self.decode(self.forward(pixels), centers, scales)
        readings, preference = self.turned_readings(pixels, centers, scales)
        return readings[np.arange(len(readings)), np.argmax(preference, axis=1)]

    def turned_readings(
        self, pixels: np.ndarray, centers: np.ndarray, scales: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The upright test's crops (`crops`) -> (keypoints (N, 4, K, 3) in image pixels, one reading per quarter
        turn; preference (N, 4): mean keypoint score + UPRIGHT_WEIGHT x uprightness, the highest is kept)."""
        n, turns = len(pixels), len(QUARTER_TURNS)
        flat = pixels.reshape(n * turns, *pixels.shape[2:])
        b = self.batch_size  # the model's batch stays the plain test's: 4x larger batches run slower per crop on CPU
        parts = [self.forward(flat[i : i + b]) for i in range(0, len(flat), b)]
        if parts and isinstance(parts[0], tuple):
            outputs: Any = tuple(np.concatenate(p) for p in zip(*parts, strict=True))
        else:
            outputs = np.concatenate(parts) if parts else self.forward(flat)
        keypoints, scores = self._decode_input(outputs)
        keypoints, scores = keypoints.reshape(n, turns, -1, 2), scores.reshape(n, turns, -1)
        preference = scores.mean(-1) + UPRIGHT_WEIGHT * self._uprightness(keypoints, scores)
        size = self.model.input_size
        image_xy = np.zeros_like(keypoints)
        for i in range(n):
            for t, turn in enumerate(QUARTER_TURNS):
                image_xy[i, t] = input_to_image(keypoints[i, t], centers[i], scales[i, t], turn, size)
        return np.concatenate([image_xy, scores[..., None]], axis=-1), preference

    def _uprightness(self, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """cos of the angle between the crop's up and the body axis (score-weighted lower-body mean to upper-body
        mean, `body_halves`) in crop pixels: (..., K, 2) -> (...); 0 where the schema has no two halves."""
        if self._halves is None:
            from poseadapt.data.augment import body_halves

            self._halves = body_halves(self.schema)
        upper, lower = self._halves
        if len(upper) == 0 or len(lower) == 0:
            return np.zeros(keypoints.shape[:-2])

        def centre(idx: np.ndarray) -> np.ndarray:
            w = np.maximum(scores[..., idx], 1e-6)[..., None]
            return (keypoints[..., idx, :] * w).sum(-2) / w.sum(-2)

        axis = centre(upper) - centre(lower)
        return -axis[..., 1] / np.maximum(np.linalg.norm(axis, axis=-1), 1e-6)  # image y points down


def _numpy(out: Any) -> Any:
    if isinstance(out, tuple | list):
        return tuple(o.float().cpu().numpy() for o in out)
    return out.float().cpu().numpy()


def instance_scores(
    keypoint_scores: np.ndarray, box_scores: np.ndarray | float = 1.0, threshold: float = KEYPOINT_SCORE_THRESHOLD
) -> np.ndarray:
    """MMPose's top-down rescoring: box score x mean of the keypoint scores above `threshold` (0 if none)."""
    s = np.asarray(keypoint_scores, dtype=np.float64).reshape(-1, np.shape(keypoint_scores)[-1])
    good = s > threshold
    count = good.sum(axis=1)
    mean = np.where(count > 0, (s * good).sum(axis=1) / np.maximum(count, 1), 0.0)
    return np.asarray(box_scores, dtype=np.float64) * mean


def predict_people(
    model: Any,
    people: People,
    images: ImageSource,
    *,
    gt: CocoKeypoints | None = None,
    head: str | int | None = None,
    flip_test: bool = True,
    batch_size: int = 32,
    device: Any = None,
    autocast: bool = False,
    nms_threshold: float | None = OKS_NMS_THRESHOLD,
    progress: Callable[[int, int], None] | None = None,
    category_id: int = 1,
    decoder: Callable[[np.ndarray], np.ndarray] | None = None,
    upright_test: bool = False,
) -> CocoPredictions:
    """Predictions in image pixels for every person, in the order of `people` (less any OKS-NMS removed).

    Images are read once each; crops from several images share a batch. With detector boxes
    (`people.detected`) OKS-NMS at `nms_threshold` drops duplicates of a person (the model's sigmas).
    """
    from poseadapt.data.coco import CocoPredictions

    predictor = Predictor(
        model, head, flip_test, batch_size, device=device, autocast=autocast, decoder=decoder, upright_test=upright_test
    )
    read = image_reader(images, gt, people.image_ids)
    k = len(predictor.schema)
    keypoints = np.zeros((len(people), k, 3))
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

        def flush(everything: bool) -> None:
            """Run the model on full batches of the queued crops (and on the rest when `everything`)."""
            if not pending:
                return
            rows, pixels, centers, scales = (np.concatenate([p[i] for p in pending]) for i in range(4))
            pending.clear()
            end = len(rows) if everything else len(rows) - len(rows) % batch_size
            for i in range(0, end, batch_size):
                j = min(i + batch_size, end)
                keypoints[rows[i:j]] = predictor._decode_batch(pixels[i:j], centers[i:j], scales[i:j])
            if end < len(rows):
                pending.append((rows[end:], pixels[end:], centers[end:], scales[end:]))

        order = sorted(set(people.image_ids.tolist()))
        for n, image_id in enumerate(order):
            rows = np.flatnonzero(people.image_ids == image_id)
            pending.append((rows, *predictor.crops(read(image_id), people.boxes[rows])))
            if sum(len(p[0]) for p in pending) >= batch_size:
                flush(everything=False)
            if progress is not None:
                progress(n + 1, len(order))
        flush(everything=True)
    finally:
        model.train(was_training)
    scores = instance_scores(keypoints[..., 2], people.box_scores)
    preds = CocoPredictions(
        image_ids=people.image_ids.astype(np.int64),
        category_ids=np.full(len(people), category_id, dtype=np.int64),
        keypoints=keypoints,
        scores=scores,
    )
    if people.detected and nms_threshold is not None and len(preds):
        areas = people.boxes[:, 2] * people.boxes[:, 3]
        keep = oks_nms(preds, areas, predictor.schema.sigmas, nms_threshold)
        preds = select(preds, keep)
    return preds


def select(preds: CocoPredictions, rows: Sequence[int] | np.ndarray) -> CocoPredictions:
    rows = np.asarray(rows, dtype=np.int64)
    return replace(
        preds,
        image_ids=preds.image_ids[rows],
        category_ids=preds.category_ids[rows],
        keypoints=preds.keypoints[rows],
        scores=preds.scores[rows],
    )


def oks_nms(preds: CocoPredictions, areas: np.ndarray, sigmas: Sequence[float], threshold: float) -> np.ndarray:
    """Greedy OKS-NMS per image, MMPose's `oks_nms`: keep the best-scored pose, drop others with OKS > threshold.

    OKS between two predictions uses their boxes' areas (mean of the pair) and every keypoint; returns kept rows
    in their original order.
    """
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    keep: list[int] = []
    for image_id in np.unique(preds.image_ids):
        rows = np.flatnonzero(preds.image_ids == image_id)
        order = rows[np.argsort(-preds.scores[rows], kind="stable")]
        while order.size:
            i, rest = order[0], order[1:]
            keep.append(int(i))
            d2 = ((preds.keypoints[rest, :, :2] - preds.keypoints[i, :, :2]) ** 2).sum(-1)
            e = d2 / var / ((areas[i] + areas[rest])[:, None] / 2.0 + np.spacing(1)) / 2.0
            oks = np.exp(-e).mean(axis=1)
            order = rest[oks <= threshold]
    return np.sort(np.asarray(keep, dtype=np.int64))


# ---------------------------------------------------------------------------------------------- scoring
@dataclass
class ScoringView:
    """The ground truth as scored for one prediction schema: keypoints the predictions lack are unlabelled."""

    gt: CocoKeypoints  # labels restricted to the shared keypoints (others v = 0, num_keypoints recounted)
    shared: list[int]  # GT keypoint indices that are scored
    mapping: Any = None  # SchemaMap from the prediction schema to the GT schema (None: same schema)

    @property
    def shared_names(self) -> list[str]:
        return [self.gt.schema.keypoints[i] for i in self.shared]

    def to_gt_schema(self, preds: CocoPredictions) -> CocoPredictions:
        """Predictions carried to the GT schema by keypoint name (unshared keypoints are zeros)."""
        if self.mapping is None:
            return preds
        return replace(preds, keypoints=self.mapping.transfer(preds.keypoints))


def scoring_view(gt: CocoKeypoints, pred_schema: KeypointSchema | str | None) -> ScoringView:
    """How predictions in `pred_schema` are scored against `gt`: by name, on the keypoints both have."""
    from poseadapt.schemas import get_schema
    from poseadapt.schemas.mapping import SchemaMap

    schema = gt.schema if pred_schema is None else get_schema(pred_schema)
    if schema.keypoints == gt.schema.keypoints:
        return ScoringView(gt, list(range(len(gt.schema))))
    mapping = SchemaMap(schema, gt.schema)
    shared = sorted(d for _, d in mapping.matched)
    if not shared:
        raise PoseAdaptError(
            f"schemas '{schema.name}' (model) and '{gt.schema.name}' (labels) share no keypoint by name"
        )
    keypoints = np.asarray(gt.keypoints, dtype=np.float64).copy()
    unshared = [i for i in range(len(gt.schema)) if i not in set(shared)]
    keypoints[:, unshared] = 0.0
    view = replace(gt, keypoints=keypoints, num_keypoints=(keypoints[..., 2] > 0).sum(axis=1).astype(np.int64))
    return ScoringView(view, shared, mapping)


def score_ap(view: ScoringView, preds: CocoPredictions, engine: str = "hotcoco") -> dict[str, float]:
    """COCO OKS AP/AR (AP, AP50, ..., AR_L) of predictions (prediction schema) on the view's keypoints."""
    from poseadapt.evaluate.oks import coco_keypoint_stats
    from poseadapt.evaluate.score import coco_dicts

    gt = view.gt
    dataset, results = coco_dicts(gt, view.to_gt_schema(preds))
    if not results:
        return {key: 0.0 for key in _ap_keys()}
    return coco_keypoint_stats(dataset, results, gt.schema.sigmas, cat_ids=gt.keypoint_category_ids, engine=engine)


def _ap_keys() -> tuple[str, ...]:
    from poseadapt.evaluate.oks import AP_KEYS

    return AP_KEYS


@dataclass
class Evaluation:
    """What one model scored on one test set, and the predictions behind it."""

    stats: dict[str, float]  # AP, AP50, ..., AR_L
    predictions: CocoPredictions  # prediction schema, image pixels
    view: ScoringView
    pred_schema: str
    boxes: str  # "ground truth" | "detections"

    def results(self, gt_schema: bool = False, file_names: Mapping[int, str] | None = None) -> list[dict]:
        """COCO results list (the model's own schema unless `gt_schema`)."""
        return coco_results(self.view.to_gt_schema(self.predictions) if gt_schema else self.predictions, file_names)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.stats,
            "instances": len(self.predictions),
            "boxes": self.boxes,
            "schema": self.view.gt.schema.name,
            "model_schema": self.pred_schema,
            "scored_keypoints": len(self.view.shared),
        }


def coco_results(preds: CocoPredictions, file_names: Mapping[int, str] | None = None) -> list[dict[str, Any]]:
    """CocoPredictions -> a COCO results list (rounded to 1/1000 px, scores to 1e-5)."""
    out = []
    rows = zip(preds.image_ids, preds.category_ids, preds.keypoints, preds.scores, strict=True)
    for image_id, cat, kp, score in rows:
        row: dict[str, Any] = {"image_id": int(image_id), "category_id": int(cat)}
        if file_names is not None:
            row["file_name"] = file_names[int(image_id)]
        row["keypoints"] = [round(float(v), 3) for v in kp.reshape(-1)]
        row["score"] = round(float(score), 5)
        out.append(row)
    return out


def load_ground_truth(ann: str | Path, schema: KeypointSchema | str | None = None) -> CocoKeypoints:
    """A COCO keypoint file, parsed once: in `schema` when its keypoints are that schema's, else inferred."""
    from poseadapt.data.validate import read_json

    path = Path(ann)
    return ground_truth_from_dict(read_json(path, "annotation file"), path, schema)


def ground_truth_from_dict(data: Any, path: str | Path, schema: KeypointSchema | str | None = None) -> CocoKeypoints:
    """`load_ground_truth` on a parsed file: the model's schema when the names are its names, else the built-in."""
    from poseadapt.data.coco import coco_keypoints_from_dict
    from poseadapt.schemas import get_schema

    path = Path(path)
    if schema is not None:
        try:
            return coco_keypoints_from_dict(data, schema, source=path, image_root=path.parent)
        except PoseAdaptError:
            pass
        sub = _subset_schema(data, get_schema(schema))
        if sub is not None:  # a test set labelling some of the model's keypoints (e.g. only the face)
            return coco_keypoints_from_dict(data, sub, source=path, image_root=path.parent)
    return coco_keypoints_from_dict(data, None, source=path, image_root=path.parent)


def _subset_schema(data: Any, schema: KeypointSchema) -> KeypointSchema | None:
    """The model's schema cut to the file's keypoint names, when every name is one of the model's."""
    try:
        names = [str(n) for n in data["categories"][0]["keypoints"]]
    except (KeyError, IndexError, TypeError):
        return None
    if not names or len(set(names)) != len(names) or not set(names) <= set(schema.keypoints):
        return None
    from poseadapt.schemas import KeypointSchema

    keep = set(names)
    return KeypointSchema(
        name=f"{schema.name}:{len(names)}",
        keypoints=tuple(names),
        sigmas=tuple(schema.sigmas[schema.keypoints.index(n)] for n in names),
        flip_pairs=tuple(p for p in schema.flip_pairs if p[0] in keep and p[1] in keep),
        skeleton=tuple(e for e in schema.skeleton if e[0] in keep and e[1] in keep),
    )


def evaluate_model(
    model: Any,
    gt: CocoKeypoints,
    images: ImageSource,
    *,
    detections: People | None = None,
    head: str | int | None = None,
    flip_test: bool = True,
    batch_size: int = 32,
    device: Any = None,
    autocast: bool = False,
    nms_threshold: float | None = OKS_NMS_THRESHOLD,
    progress: Callable[[int, int], None] | None = None,
    engine: str = "hotcoco",
    decoder: Callable[[np.ndarray], np.ndarray] | None = None,
    upright_test: bool = False,
) -> Evaluation:
    """Predict every person of `gt` (its boxes, or `detections`) and score OKS AP/AR on the shared keypoints.

    The entry point for training validation, `poseadapt eval`, `compare` and the demo.
    """
    index = model.head_index(head) if isinstance(head, str) else int(head or 0)
    pred_schema = model.schemas[index]
    view = scoring_view(gt, pred_schema)  # fail on disjoint schemas before any prediction
    people = detections if detections is not None else gt_people(gt)
    if len(people) == 0:
        raise PoseAdaptError(f"no person boxes to evaluate in {gt.path}")
    preds = predict_people(
        model, people, images, gt=gt, head=index, flip_test=flip_test, batch_size=batch_size, device=device,
        autocast=autocast, nms_threshold=nms_threshold, progress=progress, category_id=gt.category_id,
        decoder=decoder, upright_test=upright_test,
    )  # fmt: skip
    stats = score_ap(view, preds, engine=engine)
    boxes = "detections" if people.detected else "ground truth"
    return Evaluation(stats, preds, view, pred_schema.name, boxes)
