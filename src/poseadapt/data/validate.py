"""Up-front validation for the COCO loaders: JSON reading, problem collection, column checks, image files.

Validation runs on whole numpy columns; Python loops run only over the rows already known to be bad, to word
their messages. That keeps a clean 15 000-annotation file at a few milliseconds of checking on top of parsing.
Each column check takes `label(row) -> "annotation 12 (image 5)"` so messages name the record they are about.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from poseadapt.errors import DataError

# msgspec (already the scorer's dependency) parses a COCO file as fast as orjson and 3x faster than the stdlib
# (benchmarks/bench_coco_load.py); the stdlib stays the fallback that explains malformed files.
_fast_decode = msgspec.json.Decoder().decode
_FastDecodeError = msgspec.DecodeError

MAX_REPORTED = 20
Label = Callable[[int], str]


class Problems:
    """Collects every problem of one file, keeps the first `MAX_REPORTED` messages and counts the rest.

    Raised as one `DataError` line: `FILE: N problems: msg; msg; ...; and M more`.
    """

    def __init__(self, source: str, limit: int = MAX_REPORTED) -> None:
        self.source = source
        self.limit = limit
        self.messages: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.messages) < self.limit:
            self.messages.append(message)

    def add_rows(self, rows: Sequence[int] | np.ndarray, describe: Callable[[int], str]) -> None:
        """Count every bad row; word messages only for as many as will be shown."""
        rows = np.asarray(rows).ravel()
        room = max(0, self.limit - len(self.messages))
        for row in rows[:room]:
            self.messages.append(describe(int(row)))
        self.count += len(rows)

    def __bool__(self) -> bool:
        return self.count > 0

    def raise_if_any(self) -> None:
        if not self.count:
            return
        more = f"; and {self.count - len(self.messages)} more" if self.count > len(self.messages) else ""
        noun = "problem" if self.count == 1 else "problems"
        raise DataError(f"{self.source}: {self.count} {noun}: " + "; ".join(self.messages) + more)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a file is parsed into arrays, then file what was parsed as old.

    A parsed COCO file is ~50 000 containers holding ~1M numbers and no cycles. Collections during parsing, and
    the young-generation collection that follows it, traverse every number for nothing (~50 ms for 15 000
    people). `freeze` + `unfreeze` moves the survivors straight to the oldest generation instead, where they
    wait for the next full collection like any long-lived data.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file, turning every way it can fail into one `DataError` line (with line/column if malformed).

    JSON has no NaN/Infinity, but Python's `json.dump` writes them; such a file is accepted here so that the
    row checks can name the annotation holding the NaN instead of calling the whole file malformed.
    """
    if not path.exists():
        raise DataError(f"{what} not found: {path}")
    if path.is_dir():
        raise DataError(f"{what} {path} is a directory, expected a JSON file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not raw.strip():
        raise DataError(f"{what} {path} is empty")
    try:
        return _fast_decode(raw)
    except _FastDecodeError:
        pass  # malformed, or NaN/Infinity, or a number too large: let the stdlib decide and explain
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except UnicodeDecodeError:
        raise DataError(f"{what} {path} is not valid JSON: not UTF-8 text") from None
    except RecursionError:
        raise DataError(f"{what} {path} is not valid JSON: nested too deeply") from None


def int_column(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """`values` as int64 and a mask of entries that are not integers (None, floats, strings, bools count as bad)."""
    n = len(values)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    try:
        arr = np.array(values)
    except (ValueError, OverflowError):
        arr = np.array(values, dtype=object)
    if arr.ndim == 1 and arr.dtype.kind in "iu":  # (a true/false among ints reads as 1/0: not worth a scan)
        return arr.astype(np.int64, copy=False), np.zeros(n, bool)
    bad = np.array([not (type(v) is int and -(2**63) <= v < 2**63) for v in values], dtype=bool)
    out = np.zeros(n, np.int64)
    good = np.flatnonzero(~bad)
    out[good] = [values[i] for i in good]
    return out, bad


def float_rows(rows: list[Any], width: int, *, shape_checked: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rows that are lists of `width` numbers as an (n, width) float64 array, and a mask of rows that are not.

    A null inside a row becomes NaN (reported by the finiteness check). Non-numeric rows are zero-filled.
    `shape_checked`: the caller has already seen that every row is a list of `width` values.
    """
    n = len(rows)
    if n == 0:
        return np.zeros((0, width)), np.zeros(0, bool)
    try:  # fromiter over the chained rows is the fastest list -> array path
        if shape_checked or all(type(r) is list and len(r) == width for r in rows):
            flat = np.fromiter(chain.from_iterable(rows), np.float64, count=n * width)
            return flat.reshape(n, width), np.zeros(n, bool)
    except (TypeError, ValueError):
        pass
    out = np.zeros((n, width))
    bad = np.zeros(n, bool)
    for i, row in enumerate(rows):
        try:
            values = np.array(row, dtype=np.float64)
        except (TypeError, ValueError):
            bad[i] = True
            continue
        if values.shape != (width,):
            bad[i] = True
        else:
            out[i] = values
    return out, bad


def float_column(values: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`values` as float64, a mask of missing (None) entries and a mask of non-numeric ones."""
    n = len(values)
    missing = np.fromiter((v is None for v in values), bool, count=n)
    try:
        arr = np.array(values, dtype=np.float64)
        if arr.shape == (n,):
            return arr, missing, np.zeros(n, bool)
    except (TypeError, ValueError):
        pass
    arr = np.full(n, np.nan)
    bad = np.zeros(n, bool)
    for i, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, int | float) and not isinstance(v, bool):
            arr[i] = float(v)
        else:
            bad[i] = True
    return arr, missing, bad


def duplicates(ids: np.ndarray) -> np.ndarray:
    """The values that occur more than once, sorted."""
    if len(ids) < 2:
        return np.zeros(0, ids.dtype)
    s = np.sort(ids)
    repeated = s[1:][s[1:] == s[:-1]]  # np.unique would import numpy.ma (~15 ms of a CLI's start-up)
    return repeated[np.r_[True, repeated[1:] != repeated[:-1]]] if len(repeated) else repeated


def decode_image_file(path: Path) -> np.ndarray | None:
    """The decoded pixels of an image file, or None where OpenCV cannot decode it; OpenCV's own warning about a
    cut-off file (a second stderr line, "PNG input buffer is incomplete") is held back: the caller words it."""
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    log = getattr(cv2.utils, "logging", None)
    if log is None:  # pragma: no cover - every OpenCV 4+ build has cv2.utils.logging
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_ERROR)
    try:
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    finally:
        log.setLogLevel(level)


def check_image_file(path: Path, decode: bool) -> str | None:
    """None if the image file exists and looks like an image (decodes, if `decode`), else why not."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        return f"image file not found: {path}"
    except IsADirectoryError:
        return f"image path is a directory: {path}"
    except OSError as exc:
        return f"cannot read image {path}: {exc.strerror or exc}"
    if not head:
        return f"image file is empty: {path}"
    import cv2

    # OpenCV itself says whether one of its decoders recognises the file's signature (every format this build
    # reads, and only those), rather than a header table of our own
    if not cv2.haveImageReader(str(path)):
        return f"not a readable image (no OpenCV decoder recognises its header): {path}"
    kind = path.suffix.lstrip(".").upper() or "image"
    if decode and decode_image_file(path) is None:
        return f"corrupt {kind} image (cannot be decoded): {path}"
    return None


# ------------------------------------------------------------------------------------------------ COCO columns
def keypoint_block(
    rows: list[Any],
    names: Sequence[str],
    field: str,
    may_be_empty: np.ndarray,
    schema_name: str,
    label: Label,
    problems: Problems,
) -> np.ndarray:
    """(N, k, 3) from lists of 3k numbers; missing or empty rows allowed by `may_be_empty` become zeros."""
    n, k = len(rows), len(names)
    width = 3 * k
    lengths = np.fromiter((len(r) if type(r) is list else (-1 if r is None else -2) for r in rows), np.int64, n)
    empty = (lengths == 0) | (lengths == -1)
    full = lengths == width
    problems.add_rows(np.flatnonzero(lengths == -2), lambda i: f"{label(i)}: '{field}' must be a list of numbers")
    wrong = np.flatnonzero(~full & (lengths >= -1) & ~(empty & may_be_empty))
    problems.add_rows(
        wrong,
        lambda i: (
            f"{label(i)}: has no '{field}'"
            if lengths[i] == -1
            else f"{label(i)}: '{field}' has {lengths[i]} values, expected {width} (3 x {k} keypoints of schema "
            f"'{schema_name}')"
        ),
    )
    if full.all():
        values, non_numeric = float_rows(rows, width, shape_checked=True)
        out = values.reshape(n, k, 3)
        full_rows = np.arange(n)
    else:
        out = np.zeros((n, k, 3))
        full_rows = np.flatnonzero(full)
        values, non_numeric = float_rows([rows[i] for i in full_rows], width, shape_checked=True)
        out[full_rows] = values.reshape(-1, k, 3)
    problems.add_rows(full_rows[non_numeric], lambda i: f"{label(i)}: '{field}' holds a non-numeric value")
    finite = np.isfinite(out)
    bad = np.flatnonzero(~finite.all(axis=(1, 2)))

    def describe(i: int) -> str:
        j = int(np.flatnonzero(~finite[i].all(axis=1))[0])
        return f"{label(i)}: keypoint '{names[j]}' in '{field}' is NaN, inf or null ({fmt_values(out[i, j])})"

    problems.add_rows(bad, describe)
    out[~finite] = 0.0
    return out


def check_visibility(keypoints: np.ndarray, names: Sequence[str], label: Label, problems: Problems) -> None:
    """COCO flags: 0 unlabelled, 1 labelled but occluded, 2 visible. Anything else is a typo or another format."""
    v = keypoints[..., 2]
    wrong = (v != 0) & (v != 1) & (v != 2)
    bad = np.flatnonzero(wrong.any(axis=1))

    def describe(i: int) -> str:
        j = int(np.flatnonzero(wrong[i])[0])
        return f"{label(i)}: keypoint '{names[j]}' has visibility {v[i, j]:g}, expected 0, 1 or 2"

    problems.add_rows(bad, describe)


def flag_column(values: list[Any], field: str, label: Label, problems: Problems) -> np.ndarray:
    """A 0/1 (or false/true) field such as `iscrowd` as bool."""
    arr = np.array(values)
    if arr.ndim == 1 and arr.dtype.kind in "iub" and np.isin(arr, (0, 1)).all():
        return arr.astype(bool)
    ok = np.fromiter((v in (0, 1) and isinstance(v, int) for v in values), bool, count=len(values))
    problems.add_rows(np.flatnonzero(~ok), lambda i: f"{label(i)}: '{field}' must be 0 or 1, got {values[i]!r}")
    return np.fromiter((v == 1 and o for v, o in zip(values, ok, strict=True)), bool, count=len(values))


def num_keypoints_column(field: list[Any], labelled: np.ndarray, label: Label, problems: Problems) -> np.ndarray:
    """The `num_keypoints` field where present (pycocotools ignores a person by it), else the labelled count."""
    present = np.fromiter((v is not None for v in field), bool, count=len(field))
    if not present.any():
        return labelled
    values, bad = int_column([v if v is not None else 0 for v in field])
    bad |= values < 0
    problems.add_rows(
        np.flatnonzero(bad), lambda i: f"{label(i)}: 'num_keypoints' must be an integer >= 0, got {field[i]!r}"
    )
    return np.where(present & ~bad, values, labelled)


def boxes_column(
    raw: list[Any], keypoints: np.ndarray, derive_zero_size: bool, label: Label, problems: Problems
) -> np.ndarray:
    """xywh boxes; missing (and, where derivation is the convention, zero-size) boxes come from the keypoints."""
    n = len(raw)
    present = np.fromiter((b is not None for b in raw), bool, count=n)
    rows = np.flatnonzero(present)
    values, malformed = float_rows(raw if len(rows) == n else [raw[i] for i in rows], 4)
    problems.add_rows(rows[malformed], lambda i: f"{label(i)}: 'bbox' must be [x, y, width, height], got {raw[i]!r}")
    boxes = np.zeros((n, 4))
    boxes[rows] = values
    finite = np.isfinite(boxes).all(axis=1)
    problems.add_rows(np.flatnonzero(~finite), lambda i: f"{label(i)}: 'bbox' has NaN, inf or null ({raw[i]!r})")
    boxes[~finite] = 0.0
    zero_size = present & finite & ((boxes[:, 2] <= 0) | (boxes[:, 3] <= 0))
    zero_size[rows[malformed]] = False
    if not derive_zero_size:
        problems.add_rows(
            np.flatnonzero(zero_size),
            lambda i: f"{label(i)}: bbox width and height must be > 0, got {fmt_values(boxes[i])}",
        )
    derive = ~present | (zero_size & derive_zero_size)
    if derive.any():
        derived, ok = boxes_from_keypoints(keypoints[derive])
        idx = np.flatnonzero(derive)
        boxes[idx] = derived
        problems.add_rows(
            idx[~ok],
            lambda i: (
                f"{label(i)}: "
                + ("has no 'bbox'" if not present[i] else f"bbox {fmt_values(np.asarray(raw[i], float))} has zero size")
                + " and its labelled keypoints span no area to derive one from"
            ),
        )
    return boxes


def boxes_from_keypoints(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tight xywh boxes around the labelled (v > 0) keypoints of (N, K, 3) rows, and which have non-zero size."""
    labelled = keypoints[..., 2] > 0
    x = keypoints[..., 0]
    y = keypoints[..., 1]
    with np.errstate(invalid="ignore"):
        x0 = np.where(labelled, x, np.inf).min(axis=1)
        y0 = np.where(labelled, y, np.inf).min(axis=1)
        x1 = np.where(labelled, x, -np.inf).max(axis=1)
        y1 = np.where(labelled, y, -np.inf).max(axis=1)
        boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    ok = labelled.any(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    boxes[~ok] = 0.0
    return boxes, ok


def areas_column(
    raw: list[Any], boxes: np.ndarray, iscrowd: np.ndarray, labelled: np.ndarray, label: Label, problems: Problems
) -> np.ndarray:
    """`area` as given (the OKS scale, as in pycocotools), else box w*h; 0 is an error where OKS would divide by it."""
    values, missing, non_numeric = float_column(raw)
    problems.add_rows(np.flatnonzero(non_numeric), lambda i: f"{label(i)}: 'area' must be a number, got {raw[i]!r}")
    given = ~missing & ~non_numeric
    bad = given & ~(np.isfinite(values) & (values >= 0))
    problems.add_rows(np.flatnonzero(bad), lambda i: f"{label(i)}: 'area' must be finite and >= 0, got {raw[i]!r}")
    areas = np.where(given & ~bad, values, boxes[:, 2] * boxes[:, 3])
    zero = given & ~bad & (values == 0) & ~iscrowd & (labelled > 0)
    problems.add_rows(
        np.flatnonzero(zero), lambda i: f"{label(i)}: 'area' is 0, which makes OKS undefined for its keypoints"
    )
    return areas


def fmt_values(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in np.asarray(values, dtype=float).ravel()) + "]"


# ------------------------------------------------------------------------------------------------ annotation mistakes
def keypoint_count_mistakes(data: Any, problems: Problems) -> None:
    """Schema-free: each annotation's `keypoints` is a list of numbers, 3 per keypoint name its category lists.

    Works on the raw parsed file (no schema needed, so `poseadapt split` can check any COCO file). Annotations
    without `keypoints` are not checked, nor the length of those of a category that lists no keypoint names.
    """
    if not isinstance(data, dict):
        return
    names = {c["id"]: c for c in data.get("categories") or []
             if isinstance(c, dict) and type(c.get("id")) is int and isinstance(c.get("keypoints"), list)
             and c["keypoints"]}  # fmt: skip
    for ann in data.get("annotations") or []:
        if not isinstance(ann, dict) or ann.get("keypoints") is None:
            continue
        where = f"annotation {ann.get('id')} (image {ann.get('image_id')})"
        values = ann["keypoints"]
        if type(values) is not list:
            problems.add(f"{where}: 'keypoints' must be a list of numbers, got {type(values).__name__}")
            continue
        bad = [v for v in values if type(v) not in (int, float) or not math.isfinite(v)]  # bool is not a number
        if bad:
            problems.add(f"{where}: 'keypoints' must hold finite numbers, got {bad[0]!r}")
            continue
        category = names.get(ann.get("category_id")) if type(ann.get("category_id")) is int else None
        if category is None or len(values) == 3 * len(category["keypoints"]):
            continue
        k = len(category["keypoints"])
        problems.add(
            f"{where}: 'keypoints' has {len(values)} values, expected {3 * k} (3 x {k} keypoints of category "
            f"{category['id']} '{category.get('name')}')"
        )


def annotation_mistakes(data: Any, problems: Problems, *, tolerance: float = 0.02) -> None:
    """Mistakes a file can make while being valid COCO (what `poseadapt check` looks for on top of the loader):

    - a labelled keypoint far outside its image (more than `tolerance` of the image size past an edge);
    - a keypoint flagged labelled (v = 1 or 2) at exactly (0, 0), the placeholder of an unlabelled point;
    - a box that lies mostly outside its image.
    Images without a size (width or height 0) are not checked against it.
    """
    kp = data.keypoints
    if len(kp) == 0:
        return
    names = data.schema.keypoints
    sizes = np.array([[data.images[int(i)].width, data.images[int(i)].height] if int(i) in data.images else [0, 0]
                      for i in data.image_ids], dtype=np.float64)  # fmt: skip
    labelled = kp[..., 2] > 0

    def label(i: int) -> str:
        return f"annotation {int(data.ann_ids[i])} (image {int(data.image_ids[i])})"

    at_origin = labelled & (kp[..., 0] == 0) & (kp[..., 1] == 0)

    def origin(i: int) -> str:
        j = np.flatnonzero(at_origin[i])
        more = f" and {len(j) - 1} more" if len(j) > 1 else ""
        return (
            f"{label(i)}: keypoint '{names[j[0]]}'{more} labelled (v={kp[i, j[0], 2]:g}) at (0, 0); unlabelled is v=0"
        )

    problems.add_rows(np.flatnonzero(at_origin.any(axis=1)), origin)
    w, h = sizes[:, :1], sizes[:, 1:]
    has_size = (sizes > 0).all(axis=1)[:, None]
    mx, my = tolerance * w, tolerance * h
    x, y = kp[..., 0], kp[..., 1]
    outside = labelled & ~at_origin & has_size & ((x < -mx) | (y < -my) | (x > w + mx) | (y > h + my))

    def out_of_image(i: int) -> str:
        j = np.flatnonzero(outside[i])
        more = f" and {len(j) - 1} more" if len(j) > 1 else ""
        return (
            f"{label(i)}: keypoint '{names[j[0]]}'{more} at ({x[i, j[0]]:g}, {y[i, j[0]]:g}) is outside the "
            f"{sizes[i, 0]:g}x{sizes[i, 1]:g} image"
        )

    problems.add_rows(np.flatnonzero(outside.any(axis=1)), out_of_image)
    b = data.boxes
    bw, bh = np.maximum(b[:, 2], 1e-9), np.maximum(b[:, 3], 1e-9)
    ix = np.clip(b[:, 0] + b[:, 2], 0, sizes[:, 0]) - np.clip(b[:, 0], 0, sizes[:, 0])
    iy = np.clip(b[:, 1] + b[:, 3], 0, sizes[:, 1]) - np.clip(b[:, 1], 0, sizes[:, 1])
    inside = ix * iy / (bw * bh)
    box_out = has_size[:, 0] & (b[:, 2] > 0) & (b[:, 3] > 0) & (inside < 0.5) & ~data.iscrowd
    problems.add_rows(
        np.flatnonzero(box_out),
        lambda i: f"{label(i)}: bbox {fmt_values(b[i])} lies mostly outside the {sizes[i, 0]:g}x{sizes[i, 1]:g} image",
    )


def image_size_mistakes(data: Any, root: Path, problems: Problems) -> None:
    """Decode every image and compare its size with the file's `width` / `height` (annotations made for resized
    images, or the wrong folder of a dataset's several resolutions)."""
    wrong: list[str] = []
    for image in data.images.values():
        path = Path(root) / image.file_name
        pixels = decode_image_file(path) if path.is_file() else None
        if pixels is None:
            problems.add(f"image {image.id}: cannot decode {path}")
            continue
        h, w = pixels.shape[:2]
        if (image.width, image.height) != (w, h) and image.width and image.height:
            wrong.append(f"image {image.id} ({image.file_name}) is {w}x{h} but listed as {image.width}x{image.height}")
    for message in wrong:
        problems.add(message)


def keypoint_label_stats(data: Any) -> dict[str, dict[str, float]]:
    """Per keypoint: how many people have it labelled, and the visible (v=2) share of those (non-crowd people)."""
    kp = data.keypoints[~data.iscrowd] if len(data) else data.keypoints
    v = kp[..., 2] if len(kp) else np.zeros((0, len(data.schema)))
    out = {}
    for j, name in enumerate(data.schema.keypoints):
        labelled = int((v[:, j] > 0).sum())
        visible = int((v[:, j] == 2).sum())
        out[name] = {"labelled": labelled, "visible_share": round(visible / labelled, 4) if labelled else 0.0}
    return out


def image_folder_summary(data: Any, root: Path, image_ids: Iterable[int] | None = None) -> str | None:
    """One line when images are missing from `root` ("0 of 64 found in DIR ..."), else None.

    image_ids: only these of the file's images (those a run will read), default all."""
    if image_ids is None:
        images = list(data.images.values())
    else:
        images = [data.images[i] for i in sorted({int(i) for i in image_ids}) if i in data.images]
    missing = [im for im in images if not im.file_name or not (Path(root) / im.file_name).is_file()]
    if not missing:
        return None
    hint = " (is --images the folder the file_names are relative to?)" if len(missing) == len(images) else ""
    return (
        f"{len(images) - len(missing)} of {len(images)} images found in {root}{hint}; "
        f"first missing: {missing[0].file_name or f'image {missing[0].id} (no file_name)'}"
    )
