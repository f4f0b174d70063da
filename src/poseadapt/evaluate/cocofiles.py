"""A fast gate that says whether a GT file and a results file are plain, complete COCO keypoint files.

`poseadapt score --metric ap` wants to hand both files to the Rust engine (hotcoco) to parse, because parsing
18 MB of keypoints in Python (`poseadapt.data.coco`: msgspec + numpy) costs ~0.2 s, more than the whole score
should. hotcoco checks that numbers are numbers, but accepts keypoint lists of the wrong length and predictions
without a score, and scores them silently. This gate closes that gap at C speed: msgspec decodes both files into
typed records (ids, bbox, area, score) and keeps each keypoint list as raw JSON bytes whose length is checked by
counting separators (about 0.08 s for both benchmark files).

It is a gate, not a loader: anything it does not accept (a missing area or num_keypoints, a WholeBody layout, a
bad value) sends the caller to `poseadapt.data.coco`, which fills what COCO allows to be filled and words every
problem of a bad file. So the fast path only ever sees files both would read the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec

from poseadapt.errors import PoseAdaptError
from poseadapt.schemas import KeypointSchema, find_builtin_by_keypoints, get_schema


class _Image(msgspec.Struct):
    id: int


class _Category(msgspec.Struct):
    id: int
    keypoints: list[str] | None = None


class _GtAnnotation(msgspec.Struct):
    id: int
    image_id: int
    category_id: int
    keypoints: msgspec.Raw
    bbox: tuple[float, float, float, float]
    area: float
    num_keypoints: int
    iscrowd: int = 0


class _GtFile(msgspec.Struct):
    images: list[_Image]
    annotations: list[_GtAnnotation]
    categories: list[_Category]


class _Prediction(msgspec.Struct):
    image_id: int
    category_id: int
    keypoints: msgspec.Raw
    score: float


@dataclass(frozen=True)
class PlainCocoFiles:
    """A GT / results pair the engine may parse directly, with the schema and the categories to score."""

    schema: KeypointSchema
    category_ids: tuple[int, ...]
    num_annotations: int
    num_predictions: int


def check_plain_coco(
    gt_path: str | Path, pred_path: str | Path, schema: str | KeypointSchema | None
) -> PlainCocoFiles | None:
    """The checked pair, or None when either file needs the full loader (to be filled in, or to be rejected)."""
    try:
        gt = msgspec.json.decode(Path(gt_path).read_bytes(), type=_GtFile)
        preds = msgspec.json.decode(Path(pred_path).read_bytes(), type=list[_Prediction])
    except (OSError, msgspec.DecodeError):  # ValidationError is a DecodeError
        return None
    kp_cats = [c for c in gt.categories if c.keypoints]
    if not kp_cats or not preds or any(c.keypoints != kp_cats[0].keypoints for c in kp_cats):
        return None
    names = tuple(kp_cats[0].keypoints or ())
    try:
        resolved = get_schema(schema) if schema is not None else find_builtin_by_keypoints(list(names))
    except PoseAdaptError:
        return None
    if resolved is None or resolved.keypoints != names:
        return None
    width = 3 * len(resolved)
    image_ids = {im.id for im in gt.images}
    cat_ids = {c.id for c in kp_cats}
    if len(image_ids) != len(gt.images) or len({a.id for a in gt.annotations}) != len(gt.annotations):
        return None
    if {a.category_id for a in gt.annotations} - {c.id for c in gt.categories}:
        return None
    anns = [a for a in gt.annotations if a.category_id in cat_ids]  # other categories: neither path scores them
    if (
        not {a.image_id for a in anns} <= image_ids
        or not {a.iscrowd for a in anns} <= {0, 1}
        or min((a.area for a in anns), default=1.0) <= 0
        or min((min(a.bbox[2], a.bbox[3]) for a in anns), default=1.0) <= 0
        or min((a.num_keypoints for a in anns), default=0) < 0
        or not {d.image_id for d in preds} <= image_ids
        or not {d.category_id for d in preds} <= cat_ids
    ):
        return None
    gt_lists, pred_lists = _NumberLists([a.keypoints for a in anns]), _NumberLists([d.keypoints for d in preds])
    if not (gt_lists.all_of_length(width) and pred_lists.all_of_length(width) and gt_lists.flags_are_visibility()):
        return None
    return PlainCocoFiles(resolved, tuple(c.id for c in kp_cats), len(gt.annotations), len(preds))


class _NumberLists:
    """Many raw JSON lists of numbers (msgspec checked the syntax), inspected as one byte array with numpy.

    No float is parsed: values are located by their separators, which makes these checks ~10 ms for 1 M values
    where per-list Python calls cost ~40 ms. A False only sends the file to the full loader, which gives the exact
    verdict, so an unusual spelling (nested lists, spaces inside a list, `2.00`) merely costs time.
    """

    def __init__(self, raws: list[msgspec.Raw]) -> None:
        import numpy as np

        parts = [bytes(r) for r in raws]
        self.chars = np.frombuffer(b"".join(parts), dtype=np.uint8)
        self.offsets = np.cumsum([0, *map(len, parts)])[:-1]
        self.num_lists = len(parts)

    def all_of_length(self, n: int) -> bool:
        """Every list is flat and holds exactly n values."""
        import numpy as np

        if self.num_lists == 0:
            return True
        chars, offsets = self.chars, self.offsets
        if not (chars[offsets] == ord("[")).all() or np.count_nonzero(chars == ord("[")) != self.num_lists:
            return False
        commas_before = np.searchsorted(np.flatnonzero(chars == ord(",")), np.append(offsets, chars.size))
        return bool((np.diff(commas_before) == n - 1).all())

    def flags_are_visibility(self) -> bool:
        """Every third value (after all_of_length(3K)) is written 0, 1, 2, 0.0, 1.0 or 2.0."""
        import numpy as np

        chars = self.chars
        if chars.size == 0:
            return True
        opens = (chars == ord("[")) | (chars == ord(","))
        closes = (chars == ord(",")) | (chars == ord("]"))
        starts = np.flatnonzero(opens)[2::3] + 1  # value 3j+2 of each list
        ends = np.flatnonzero(closes)[2::3]
        if starts.size != ends.size:
            return False
        starts += chars[starts] == ord(" ")  # json.dumps writes ", "
        lengths = ends - starts
        if not np.isin(lengths, (1, 3)).all():
            return False
        first = chars[starts]
        if not ((first >= ord("0")) & (first <= ord("2"))).all():
            return False
        s3 = starts[lengths == 3]
        return bool(((chars[s3 + 1] == ord(".")) & (chars[s3 + 2] == ord("0"))).all())
