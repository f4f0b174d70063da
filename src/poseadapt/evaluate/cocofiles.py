"""A fast gate that says whether a GT file and a results file are plain, complete COCO keypoint files.

`poseadapt score --metric ap` wants to hand both files to the Rust engine (hotcoco) to parse, because parsing
18 MB of keypoints in Python (`poseadapt.data.coco`: msgspec + numpy) costs ~0.2 s, more than the whole score
should. hotcoco checks that numbers are numbers, but accepts keypoint lists of the wrong length and predictions
without a score, and scores them silently. This gate closes that gap at C speed: msgspec decodes both files into
typed records (ids, bbox, area, score) and keeps each keypoint list as raw JSON bytes, which are checked all at
once by numpy: the separators of every list must spell `[` + (3K - 1) commas + `]`, and every visibility flag
must be written 0, 1 or 2 (about 0.06 s of CPU for both benchmark files in a fresh process, loaded machine).

It is a gate, not a loader: anything it does not accept (a missing area or num_keypoints, a WholeBody layout, a
bad value) sends the caller to `poseadapt.data.coco`, which fills what COCO allows to be filled and words every
problem of a bad file. So the fast path only ever sees files both would read the same way.
"""

from __future__ import annotations

import gc
import mmap
import os
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

import msgspec
import numpy as np

from poseadapt.errors import PoseAdaptError
from poseadapt.schemas import KeypointSchema, find_builtin_by_keypoints, get_schema


class _Image(msgspec.Struct, gc=False):
    id: int


class _Category(msgspec.Struct, gc=False):
    id: int
    keypoints: list[str] | None = None


class _GtAnnotation(msgspec.Struct, gc=False):
    id: int
    image_id: int
    category_id: int
    keypoints: msgspec.Raw
    bbox: tuple[float, float, float, float]
    area: float
    num_keypoints: int
    iscrowd: int = 0


class _GtFile(msgspec.Struct, gc=False):
    images: list[_Image]
    annotations: list[_GtAnnotation]
    categories: list[_Category]


class _Prediction(msgspec.Struct, gc=False):
    image_id: int
    category_id: int
    keypoints: msgspec.Raw
    score: float


_GT_DECODER = msgspec.json.Decoder(_GtFile)
_PRED_DECODER = msgspec.json.Decoder(list[_Prediction])


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
    gc_enabled = gc.isenabled()
    gc.disable()  # ~50k records, none of them cyclic: collections would only cost time
    try:
        gt = _GT_DECODER.decode(_file_bytes(gt_path))
        preds = _PRED_DECODER.decode(_file_bytes(pred_path))
    except (OSError, ValueError, msgspec.DecodeError):  # ValidationError is a DecodeError; ValueError: empty mmap
        return None
    finally:
        if gc_enabled:
            gc.enable()
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
    num_kp = len(resolved)
    try:
        image_ids = _column(gt.images, "id", np.int64)
        cat_ids = np.array([c.id for c in kp_cats], np.int64)
        all_cat_ids = np.array([c.id for c in gt.categories], np.int64)
        ann_ids = _column(gt.annotations, "id", np.int64)
        ann_cats = _column(gt.annotations, "category_id", np.int64)
        if not (_distinct(image_ids) and _distinct(ann_ids) and _within(ann_cats, all_cat_ids)):
            return None
        scored = _member(ann_cats, cat_ids)  # other categories: neither path scores them
        anns = gt.annotations if scored.all() else [gt.annotations[i] for i in np.flatnonzero(scored).tolist()]
        boxes = np.array([a.bbox for a in anns], np.float64).reshape(-1, 4)
        ann_images = _column(anns, "image_id", np.int64)
        crowd = _column(anns, "iscrowd", np.int64)
        counts = _column(anns, "num_keypoints", np.int64)
        areas = _column(anns, "area", np.float64)
        pred_images = _column(preds, "image_id", np.int64)
        pred_cats = _column(preds, "category_id", np.int64)
    except OverflowError:  # an id beyond 64 bits: the loader words it
        return None
    if (
        not _within(ann_images, image_ids)
        or not ((crowd == 0) | (crowd == 1)).all()
        or not ((areas > 0).all() and (boxes[:, 2:] > 0).all())
        or (counts < 0).any()
        or not _within(pred_images, image_ids)
        or not _within(pred_cats, cat_ids)
    ):
        return None
    if not (
        _flat_lists_ok([a.keypoints for a in anns], num_kp, flags=True)
        and _flat_lists_ok([d.keypoints for d in preds], num_kp, flags=False)
    ):
        return None
    return PlainCocoFiles(resolved, tuple(c.id for c in kp_cats), len(gt.annotations), len(preds))


# Set logic by sorting: np.unique (and np.isin on wide integer ranges, which calls it) imports numpy.ma, ~10 ms
# of a ~0.25 s process.
def _distinct(values: np.ndarray) -> bool:
    ordered = np.sort(values)
    return bool((ordered[1:] != ordered[:-1]).all())


def _member(values: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Per value: is it one of `allowed`."""
    if allowed.size == 0:
        return np.zeros(values.shape, dtype=bool)
    ordered = np.sort(allowed)
    return ordered[np.searchsorted(ordered, values).clip(max=ordered.size - 1)] == values


def _within(values: np.ndarray, allowed: np.ndarray) -> bool:
    return bool(_member(values, allowed).all())


def _column(records: list, name: str, dtype: type) -> np.ndarray:
    """One field of every record as an array (`attrgetter` keeps the loop in C)."""
    return np.fromiter(map(attrgetter(name), records), dtype, len(records))


def _file_bytes(path: str | Path) -> mmap.mmap | bytes:
    """The file's bytes, mapped rather than copied (the decoded records point into them)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _flat_lists_ok(raws: list[msgspec.Raw], num_keypoints: int, *, flags: bool) -> bool:
    """Every raw JSON value is a flat list of exactly 3K values; with `flags`, every third is written 0, 1 or 2.

    No float is parsed: all lists are joined into one byte array and checked with a few whole-array numpy passes
    (no per-list Python call). Each value must start with `[` and end with `]`, and there must be no other
    bracket, quote or brace anywhere, so each is a flat list of scalars (a `true` or `null` among them is refused
    by the engine's typed parse); then each list's commas are counted. A False only sends the file to the full
    loader, which gives the exact verdict, so an unusual spelling (`2.00`, a space before a comma) merely costs
    time.
    """
    if not raws:
        return True
    width = 3 * num_keypoints
    chars = np.frombuffer(b"".join(raws), dtype=np.uint8)  # msgspec.Raw is a buffer: no copy per list
    lengths = np.fromiter(map(len, raws), np.int64, len(raws))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    if (lengths < 2).any() or not ((chars[starts] == ord("[")).all() and (chars[ends - 1] == ord("]")).all()):
        return False
    found = np.empty(chars.shape, dtype=bool)  # one scratch array: fresh 9 MB temporaries cost page faults
    for byte, count in ((b"[", len(raws)), (b"]", len(raws)), (b'"', 0), (b"{", 0)):
        if np.count_nonzero(np.equal(chars, ord(byte), out=found)) != count:
            return False
    commas = np.equal(chars, ord(","), out=found)
    counts = np.add.reduceat(commas.view(np.uint8), starts, dtype=np.uint16)  # uint16: ~10x faster than int64
    if width > 60_000 or not (counts == width - 1).all():
        return False
    if not flags:
        return True
    at = np.flatnonzero(commas).reshape(len(raws), width - 1)  # the commas of list r, in order
    first = (at[:, 1::3] + 1).ravel()  # flag j (value 3j+2) starts after comma 3j+1 ...
    last = np.concatenate([at[:, 2::3], (ends - 1)[:, None]], axis=1).ravel()  # ... and ends at comma 3j+2 or `]`
    first += chars[first] == ord(" ")  # json.dumps writes ", "
    size = last - first
    if not ((size == 1) | (size == 3)).all():
        return False
    head = chars[first]
    if not ((head >= ord("0")) & (head <= ord("2"))).all():
        return False
    long = first[size == 3]
    return bool(((chars[long + 1] == ord(".")) & (chars[long + 2] == ord("0"))).all())
