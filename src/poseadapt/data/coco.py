"""COCO keypoint ground truth and COCO results (predictions), loaded into numpy arrays and validated up front.

Every later stage (top-down crops, training, OKS / PCK scoring) reads these arrays, so this is the one place
where a bad file is caught: all of its problems are reported at once, in one line (the first 20, each naming the
annotation and image, and how many more), before anything is half-loaded.

Conventions follow pycocotools, because scores must match it: `area` comes from the annotation (bbox w*h when
absent), and annotations with `num_keypoints == 0` or `iscrowd` are kept but marked `ignore`, as keypoint
evaluation ignores them. COCO-WholeBody annotations (`keypoints` + `foot_kpts` + `face_kpts` + `lefthand_kpts`
+ `righthand_kpts`, each with a `*_valid` flag) are flattened in that order to the 133-point schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from poseadapt.data.validate import (
    Label,
    Problems,
    areas_column,
    boxes_column,
    check_image_file,
    check_visibility,
    duplicates,
    flag_column,
    float_column,
    gc_paused,
    int_column,
    keypoint_block,
    num_keypoints_column,
    read_json,
)
from poseadapt.errors import DataError, SchemaError
from poseadapt.schemas import KeypointSchema, find_builtin_by_keypoints, get_schema, list_schemas
from poseadapt.schemas.mapping import keypoint_names_disagree

# (field, validity flag, number of keypoints), in the order COCO-WholeBody's 133 keypoints are numbered.
WHOLEBODY_PARTS: tuple[tuple[str, str | None, int], ...] = (
    ("keypoints", None, 17),
    ("foot_kpts", "foot_valid", 6),
    ("face_kpts", "face_valid", 68),
    ("lefthand_kpts", "lefthand_valid", 21),
    ("righthand_kpts", "righthand_valid", 21),
)
WHOLEBODY_NUM_KEYPOINTS = sum(k for _, _, k in WHOLEBODY_PARTS)
_NUMBER = (int, float)


@dataclass(slots=True)
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int


@dataclass
class CocoKeypoints:
    """One validated ground-truth file as arrays over its N keypoint annotations (rows in file order)."""

    path: Path
    schema: KeypointSchema
    images: dict[int, CocoImage]
    categories: list[dict]
    category_id: int  # the person/animal category whose keypoints follow the schema (the most used one)
    ann_ids: np.ndarray  # (N,) int64
    image_ids: np.ndarray  # (N,) int64
    keypoints: np.ndarray  # (N, K, 3) float64: x, y, v with v in {0, 1, 2}
    boxes: np.ndarray  # (N, 4) float64 xywh (derived from the keypoints where the file has none)
    areas: np.ndarray  # (N,) float64
    iscrowd: np.ndarray  # (N,) bool
    num_keypoints: np.ndarray  # (N,) int64: the annotation's field when present (pycocotools reads it), else v > 0
    annotations: list[dict]  # the raw dicts, same order (segmentation etc. for later users)
    category_ids: np.ndarray  # (N,) int64: several categories may share one skeleton (AP-10K species)
    keypoint_category_ids: tuple[int, ...] = ()  # every category whose keypoints follow the schema
    wholebody: bool = False  # flattened from the COCO-WholeBody layout

    def __len__(self) -> int:
        return len(self.ann_ids)

    @property
    def ignore(self) -> np.ndarray:
        """(N,) bool: rows COCO keypoint evaluation ignores (crowd, or no labelled keypoints)."""
        return self.iscrowd | (self.num_keypoints == 0)

    def image_path(self, image_id: int, image_root: Path) -> Path:
        image = self.images.get(int(image_id))
        if image is None:
            raise DataError(f"{self.path}: no image with id {image_id}")
        return Path(image_root) / image.file_name


@dataclass
class CocoPredictions:
    """One validated COCO results file: M detections, each with K keypoints (x, y, score) and a score."""

    image_ids: np.ndarray  # (M,) int64
    category_ids: np.ndarray  # (M,) int64 (the GT's keypoint category where a detection omits it)
    keypoints: np.ndarray  # (M, K, 3) float64: x, y, per-keypoint score
    scores: np.ndarray  # (M,) float64

    def __len__(self) -> int:
        return len(self.image_ids)


# ------------------------------------------------------------------------------------------------ ground truth
def load_coco_keypoints(
    path: str | Path,
    schema: str | Path | KeypointSchema | None = None,
    *,
    image_root: Path | None = None,
    check_images: bool = False,
    decode_images: bool = False,
    wholebody: bool | None = None,
    derive_boxes: bool | None = None,
) -> CocoKeypoints:
    """Load and validate a COCO keypoint file; raise one `DataError` / `SchemaError` line listing its problems.

    schema: a built-in name, a YAML path or a schema; None infers it from the category's keypoint names (a
        built-in must match exactly: a wrong sigma set would silently change every OKS score).
    image_root: where `file_name`s are relative to (default: the annotation file's folder); used by the checks.
    check_images: every listed image must exist and carry an image header; `decode_images` also decodes each.
    wholebody: read the COCO-WholeBody layout; None detects it from the part fields, unless a schema of another
        size is given (then the body keypoints alone are read, e.g. coco17 on a WholeBody file).
    derive_boxes: replace zero-size boxes by the box of the labelled keypoints; default on for WholeBody. A box
        missing from the file is always derived; only a box that cannot be derived is an error.
    """
    path = Path(path)
    with gc_paused():
        return coco_keypoints_from_dict(
            read_json(path, "annotation file"),
            schema,
            source=path,
            image_root=image_root if image_root is not None else path.parent,
            check_images=check_images or decode_images,
            decode_images=decode_images,
            wholebody=wholebody,
            derive_boxes=derive_boxes,
        )


def coco_keypoints_from_dict(
    data: Any,
    schema: str | Path | KeypointSchema | None = None,
    *,
    source: str | Path = "<memory>",
    image_root: Path | None = None,
    check_images: bool = False,
    decode_images: bool = False,
    wholebody: bool | None = None,
    derive_boxes: bool | None = None,
) -> CocoKeypoints:
    """`load_coco_keypoints` on an already parsed COCO dict (writers validate what they are about to save)."""
    images_raw, anns_raw, categories = _top_level(data, source)
    has_parts = any(
        type(a) is dict and ("foot_kpts" in a or "face_kpts" in a or "lefthand_kpts" in a) for a in anns_raw
    )
    kschema, wholebody, kp_cat_ids = _resolve_schema(schema, categories, wholebody, has_parts, source)
    problems = Problems(str(source))

    images = _parse_images(images_raw, problems)
    if check_images:
        _check_image_files(images, Path(image_root or "."), decode_images, problems)

    anns = _keypoint_annotations(anns_raw, categories, kp_cat_ids, problems)
    if not wholebody:
        anns = _sized_keypoints(anns, len(kschema))
    n = len(anns)
    ids, bad = int_column([a.get("id") for a in anns])
    image_ids_raw = [a.get("image_id") for a in anns]
    image_ids, bad_image = int_column(image_ids_raw)

    def label(i: int) -> str:
        who = f"annotation {ids[i]}" if not bad[i] else f"annotation #{i} (no valid id)"
        return f"{who} (image {image_ids_raw[i]})"

    problems.add_rows(np.flatnonzero(bad), lambda i: f"{label(i)}: 'id' is missing or not an integer")
    problems.add_rows(np.flatnonzero(bad_image), lambda i: f"{label(i)}: 'image_id' is missing or not an integer")
    for dup in duplicates(ids[~bad]):
        rows = np.flatnonzero(ids == dup)
        problems.add(f"annotation id {dup} is used {len(rows)} times (images {_join(image_ids[rows])})")
    known = np.fromiter(images, np.int64, count=len(images))
    unknown = np.flatnonzero(~bad_image & ~np.isin(image_ids, known))
    problems.add_rows(unknown, lambda i: f"{label(i)}: image_id {image_ids[i]} is not in 'images'")

    iscrowd = flag_column([a.get("iscrowd", 0) for a in anns], "iscrowd", label, problems)
    num_kp_field = [a.get("num_keypoints") for a in anns]
    field_zero = np.fromiter((v == 0 for v in num_kp_field), bool, count=n)
    may_be_empty = iscrowd | field_zero  # crowd regions and "no keypoints" people may omit the keypoint list

    keypoints = _read_keypoints(anns, kschema, wholebody, may_be_empty, label, problems)
    labelled = (keypoints[..., 2] > 0).sum(axis=1)
    num_keypoints = labelled if wholebody else num_keypoints_column(num_kp_field, labelled, label, problems)
    if derive_boxes is None:
        derive_boxes = wholebody
    boxes = boxes_column([a.get("bbox") for a in anns], keypoints, derive_boxes, label, problems)
    areas = areas_column([a.get("area") for a in anns], boxes, iscrowd, labelled, label, problems)
    problems.raise_if_any()

    category_ids = np.array([a["category_id"] for a in anns], dtype=np.int64).reshape(n)
    counts = [int((category_ids == c).sum()) for c in kp_cat_ids]
    category_id = kp_cat_ids[int(np.argmax(counts))]
    return CocoKeypoints(
        path=Path(source),
        schema=kschema,
        images=images,
        categories=categories,
        category_id=category_id,
        ann_ids=ids,
        image_ids=image_ids,
        keypoints=keypoints,
        boxes=boxes,
        areas=areas,
        iscrowd=iscrowd,
        num_keypoints=num_keypoints.astype(np.int64),
        annotations=anns,
        category_ids=category_ids,
        keypoint_category_ids=tuple(kp_cat_ids),
        wholebody=wholebody,
    )


def _top_level(data: Any, source: str | Path) -> tuple[list, list, list[dict]]:
    if isinstance(data, list):
        raise DataError(
            f"{source}: expected a COCO object with 'images', 'annotations' and 'categories', got a list "
            "(is this a predictions file?)"
        )
    if not isinstance(data, dict):
        raise DataError(f"{source}: expected a COCO object with 'images', 'annotations' and 'categories'")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise DataError(f"{source}: no '{key}' list (a COCO keypoint file has images, annotations, categories)")
        if not isinstance(data[key], list):
            raise DataError(f"{source}: '{key}' must be a list, got {type(data[key]).__name__}")
    categories = data["categories"]
    if not categories:
        raise DataError(f"{source}: 'categories' is empty (need the person/animal category with its keypoints)")
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or type(cat.get("id")) is not int:
            raise DataError(f"{source}: categories[{i}] must be an object with an integer 'id'")
        kps = cat.get("keypoints")
        if kps is not None and (not isinstance(kps, list) or not all(isinstance(k, str) for k in kps)):
            raise DataError(f"{source}: category {cat['id']}: 'keypoints' must be a list of names")
    return data["images"], data["annotations"], categories


def _resolve_schema(
    schema: str | Path | KeypointSchema | None,
    categories: list[dict],
    wholebody: bool | None,
    has_parts: bool,
    source: str | Path,
) -> tuple[KeypointSchema, bool, list[int]]:
    """The schema (given, or inferred from category names), whether to read WholeBody, the keypoint categories."""
    kp_cats = [c for c in categories if c.get("keypoints")]
    for cat in kp_cats[1:]:  # several categories may share one skeleton (AP-10K species); two skeletons may not
        if cat["keypoints"] != kp_cats[0]["keypoints"]:
            raise SchemaError(
                f"{source}: categories {kp_cats[0]['id']} and {cat['id']} list different keypoint names; "
                "one file must follow one schema"
            )
    first = kp_cats[0] if kp_cats else None
    names: list[str] | None = list(first["keypoints"]) if first else None
    given = get_schema(schema) if schema is not None else None
    if wholebody is None:
        wholebody = has_parts and (given is None or len(given) == WHOLEBODY_NUM_KEYPOINTS)
    if wholebody and given is not None and len(given) != WHOLEBODY_NUM_KEYPOINTS:
        raise SchemaError(
            f"{source}: the COCO-WholeBody layout has {WHOLEBODY_NUM_KEYPOINTS} keypoints but schema "
            f"'{given.name}' has {len(given)}"
        )
    kp_cat_ids = [c["id"] for c in kp_cats] or [c["id"] for c in categories]
    if given is None:
        hint = "pass --schema NAME|FILE (a built-in name or a schema YAML)"
        if names is None:
            raise SchemaError(f"{source}: no category lists keypoint names, so the schema cannot be inferred; {hint}")
        inferred = _wholebody_builtin(names) if wholebody else find_builtin_by_keypoints(names)
        if inferred is None:
            layout = "COCO-WholeBody file (133 keypoints)" if wholebody else f"{len(names)} keypoint names"
            raise SchemaError(
                f"{source}: no built-in schema matches the {layout} of category {first['id']} "  # type: ignore[index]
                f"'{first.get('name', '')}' ({', '.join(names[:3])}, ...); {hint}"  # type: ignore[union-attr]
            )
        return inferred, wholebody, kp_cat_ids
    if first is not None:
        target = given.keypoints[: WHOLEBODY_PARTS[0][2]] if wholebody else given.keypoints
        cat = f"category {first['id']} '{first.get('name', '')}'"
        if len(names) != len(target):  # type: ignore[arg-type]
            raise SchemaError(
                f"{source}: {cat} lists {len(names)} keypoint names but schema '{given.name}' has "  # type: ignore[arg-type]
                f"{len(target)}{' body keypoints' if wholebody else ''}"
            )
        i = keypoint_names_disagree(names, given, target)  # type: ignore[arg-type]
        if i is not None:
            raise SchemaError(
                f"{source}: keypoint {i} is '{names[i]}' in {cat} but '{target[i]}' in schema '{given.name}'"  # type: ignore[index]
            )
    return given, wholebody, kp_cat_ids


def _wholebody_builtin(body_names: list[str]) -> KeypointSchema | None:
    matches = [
        s
        for s in list_schemas()
        if len(s) == WHOLEBODY_NUM_KEYPOINTS and list(s.keypoints[: len(body_names)]) == body_names
    ]
    matches.sort(key=lambda s: s.name != "coco_wholebody133")
    return matches[0] if matches else None


def _parse_images(images_raw: list, problems: Problems) -> dict[int, CocoImage]:
    images: dict[int, CocoImage] = {}
    repeated: dict[int, int] = {}
    for i, im in enumerate(images_raw):
        if type(im) is not dict:
            problems.add(f"images[{i}] is not an object")
            continue
        image_id = im.get("id")
        if type(image_id) is not int:
            problems.add(f"images[{i}]: 'id' is missing or not an integer")
            continue
        if image_id in images:
            repeated[image_id] = repeated.get(image_id, 1) + 1
            continue
        file_name, width, height = im.get("file_name", ""), im.get("width", 0), im.get("height", 0)
        if type(file_name) is not str:
            problems.add(f"image {image_id}: 'file_name' must be a string")
            file_name = ""
        if type(width) not in _NUMBER or type(height) not in _NUMBER or width < 0 or height < 0:
            problems.add(f"image {image_id}: 'width' and 'height' must be numbers >= 0, got {width!r}, {height!r}")
            width = height = 0
        images[image_id] = CocoImage(image_id, file_name, int(width), int(height))
    for image_id, count in repeated.items():
        problems.add(f"image id {image_id} appears {count} times in 'images'")
    return images


def _check_image_files(images: dict[int, CocoImage], root: Path, decode: bool, problems: Problems) -> None:
    for image in images.values():
        if not image.file_name:
            problems.add(f"image {image.id}: no 'file_name'")
            continue
        why = check_image_file(root / image.file_name, decode)
        if why is not None:
            problems.add(f"image {image.id}: {why}")


def _keypoint_annotations(anns_raw: list, categories: list[dict], kp_cat_ids: list[int], problems: Problems) -> list:
    """The annotations of the keypoint categories (others, e.g. objects in a mixed file, are left out)."""
    not_dict = [i for i, a in enumerate(anns_raw) if type(a) is not dict]
    problems.add_rows(not_dict, lambda i: f"annotations[{i}] is not an object")
    anns = [a for a in anns_raw if type(a) is dict] if not_dict else anns_raw
    cat_raw = [a.get("category_id") for a in anns]
    cat_ids, bad = int_column(cat_raw)
    bad |= ~np.isin(cat_ids, [c["id"] for c in categories])
    problems.add_rows(
        np.flatnonzero(bad),
        lambda i: (
            f"annotation {anns[i].get('id', '?')} (image {anns[i].get('image_id')}): "
            f"category_id {cat_raw[i]!r} is not in 'categories'"
        ),
    )
    keep = ~bad & np.isin(cat_ids, kp_cat_ids)
    return anns if keep.all() else [anns[i] for i in np.flatnonzero(keep)]


def _sized_keypoints(anns: list[dict], k: int) -> list[dict]:
    """Read `keypoints_K` where an annotation has it for the schema's K (Human-Art keeps COCO's 17 in `keypoints`
    and its 21 in `keypoints_21`, `num_keypoints_21`): the raw dicts are not changed, copies are returned."""
    field, count = f"keypoints_{k}", f"num_keypoints_{k}"
    if not any(field in a for a in anns):
        return anns
    return [
        {**a, "keypoints": a[field], "num_keypoints": a.get(count, a.get("num_keypoints"))} if field in a else a
        for a in anns
    ]


def _read_keypoints(
    anns: list[dict],
    schema: KeypointSchema,
    wholebody: bool,
    may_be_empty: np.ndarray,
    label: Label,
    problems: Problems,
) -> np.ndarray:
    """(N, K, 3) keypoints with v in {0, 1, 2}: the `keypoints` field, or the WholeBody parts side by side."""
    names = schema.keypoints
    if not wholebody:
        rows = [a.get("keypoints") for a in anns]
        keypoints = keypoint_block(rows, names, "keypoints", may_be_empty, schema.name, label, problems)
        check_visibility(keypoints, names, label, problems)
        return keypoints
    blocks, start = [], 0
    for field, flag, k in WHOLEBODY_PARTS:
        rows = [a.get(field) for a in anns]
        if flag is not None:  # an invalid part is unlabelled whatever its numbers say
            rows = [r if a.get(flag, True) else None for r, a in zip(rows, anns, strict=True)]
        empty_ok = may_be_empty if flag is None else np.ones(len(anns), bool)  # a part may be absent
        block = keypoint_block(rows, names[start : start + k], field, empty_ok, schema.name, label, problems)
        if flag is None:
            check_visibility(block, names, label, problems)
        else:  # parts carry confidences in (0, 1] (hands, feet) or flags up to 2 (face): > 0 means labelled
            v = block[..., 2]
            negative = np.flatnonzero((v < 0).any(axis=1))
            problems.add_rows(negative, lambda i, f=field: f"{label(i)}: '{f}' has a negative visibility flag")
            block[..., 2] = np.where(v > 0, np.minimum(2.0, np.ceil(v)), 0.0)
        blocks.append(block)
        start += k
    return np.concatenate(blocks, axis=1)


# ------------------------------------------------------------------------------------------------ predictions
def load_predictions(path: str | Path, gt: CocoKeypoints) -> CocoPredictions:
    """Load and validate a COCO results JSON (`[{image_id, category_id, keypoints, score}, ...]`) against `gt`."""
    path = Path(path)
    with gc_paused():
        return predictions_from_list(read_json(path, "predictions file"), gt, source=path)


def predictions_from_list(data: Any, gt: CocoKeypoints, *, source: str | Path = "<memory>") -> CocoPredictions:
    """`load_predictions` on an already parsed results list."""
    expected = "a COCO results list [{image_id, category_id, keypoints, score}, ...]"
    if isinstance(data, dict):
        hint = " (is this a ground-truth file?)" if "annotations" in data else ""
        raise DataError(f"{source}: expected {expected}, got an object{hint}")
    if not isinstance(data, list):
        raise DataError(f"{source}: expected {expected}, got {type(data).__name__}")
    if not data:
        raise DataError(f"{source}: no predictions (the list is empty)")
    problems = Problems(str(source))
    not_dict = [i for i, d in enumerate(data) if type(d) is not dict]
    for i in not_dict[: problems.limit]:
        problems.add(f"prediction [{i}] is not an object")
    problems.count += max(0, len(not_dict) - problems.limit)
    problems.raise_if_any()

    m = len(data)
    image_ids_raw = [d.get("image_id") for d in data]
    image_ids, bad_image = int_column(image_ids_raw)

    def label(i: int) -> str:
        return f"prediction [{i}] (image {image_ids_raw[i]})"

    problems.add_rows(np.flatnonzero(bad_image), lambda i: f"{label(i)}: 'image_id' is missing or not an integer")
    known = np.fromiter(gt.images, np.int64, count=len(gt.images))
    unknown = np.flatnonzero(~bad_image & ~np.isin(image_ids, known))
    problems.add_rows(unknown, lambda i: f"{label(i)}: image_id {image_ids[i]} is not in the ground truth")

    cats_raw = [d.get("category_id", gt.category_id) for d in data]
    category_ids, bad_cat = int_column(cats_raw)
    allowed = list(gt.keypoint_category_ids) or [gt.category_id]
    bad_cat |= ~np.isin(category_ids, allowed)
    problems.add_rows(
        np.flatnonzero(bad_cat),
        lambda i: (
            f"{label(i)}: category_id {cats_raw[i]!r} is not a keypoint category of the ground truth ({_join(allowed)})"
        ),
    )
    names = gt.schema.keypoints
    keypoints = keypoint_block(
        [d.get("keypoints") for d in data], names, "keypoints", np.zeros(m, bool), gt.schema.name, label, problems
    )
    scores_raw = [d.get("score") for d in data]
    scores, missing, non_numeric = float_column(scores_raw)
    problems.add_rows(np.flatnonzero(missing), lambda i: f"{label(i)}: has no 'score'")
    bad_score = non_numeric | (~missing & ~np.isfinite(scores))
    problems.add_rows(
        np.flatnonzero(bad_score), lambda i: f"{label(i)}: 'score' must be a finite number, got {scores_raw[i]!r}"
    )
    problems.raise_if_any()
    return CocoPredictions(image_ids=image_ids, category_ids=category_ids, keypoints=keypoints, scores=scores)


# ------------------------------------------------------------------------------------------------ wording
def _join(values: Any, limit: int = 5) -> str:
    values = [int(v) for v in values]
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return ", ".join(str(v) for v in values[:limit]) + more
