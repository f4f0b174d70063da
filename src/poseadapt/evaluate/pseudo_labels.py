"""Pseudo-labels: a model's keypoints on unlabelled person boxes, written as a COCO keypoint file to train on.

Offline self-training (label, train a fresh student, label again with it) is the round-based cousin of the
online mean teacher: each round's labels are fixed, so the student cannot drift with its own teacher inside a
round. Keypoints scoring below `min_score` are written as unlabelled (0, 0, 0), so the heatmap loss ignores them;
`decoder` (e.g. a `PriorDecoder`) re-picks implausible poses first. `keep_share` caps, per keypoint type, the
share of people labelled (the class-wise portion of class-balanced self-training, Zou et al. 2018): one global
threshold keeps nearly every reading of a type the model reads confidently everywhere, right or wrong, and few of a
type it is unsure of. Measured in docs/ADAPTATION_RESULTS.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from poseadapt.errors import DataError
from poseadapt.evaluate.proportions import ProportionDebias


def read_boxes_file(path: str | Path) -> dict[str, Any]:
    """A COCO file's images and person boxes (its keypoints, if any, are ignored); one line on any problem."""
    from poseadapt.data.validate import read_json
    from poseadapt.evaluate.topdown import check_box

    path = Path(path)
    data = read_json(path, "annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or "annotations" not in data:
        raise DataError(f"{path}: a COCO file needs 'images' and 'annotations' lists")
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or type(im.get("id")) is not int or not isinstance(im.get("file_name"), str):
            raise DataError(f"{path}: images[{i}] needs an integer 'id' and a 'file_name'")
    ids = {im["id"] for im in data["images"]}
    for i, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}]"
        if not isinstance(ann, dict) or ann.get("image_id") not in ids:
            raise DataError(f"{where}: needs the image_id of one of the file's images")
        box = ann.get("bbox")
        check_box(box if isinstance(box, list) and len(box) == 4 else None, where)
    return data


def check_box_images(data: dict[str, Any], images: str | Path) -> int:
    """The number of people to label (non-crowd boxes) in a `read_boxes_file` document; one line when an image
    they are on is missing from `images` (up front, not at the first missing image part way through)."""
    root = Path(images)
    names = {im["id"]: im["file_name"] for im in data["images"]}
    anns = [a for a in data["annotations"] if not a.get("iscrowd")]
    wanted = sorted({a["image_id"] for a in anns})
    missing = [i for i in wanted if not (root / names[i]).is_file()]
    if missing:
        raise DataError(
            f"{len(wanted) - len(missing)} of {len(wanted)} images found in {root}; first missing: {names[missing[0]]}"
        )
    return len(anns)


def share_thresholds(scores: np.ndarray, share: float) -> np.ndarray:
    """Per keypoint type (column of an (N, K) score array), the score of its ceil(share * n)-th most confident
    reading among its n finite ones: keeping scores at or above it keeps that share of the type (more on ties).
    A type with no finite score gets +inf (nothing kept)."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    out = np.full(scores.shape[1], np.inf)
    for k in range(scores.shape[1]):
        finite = np.sort(scores[np.isfinite(scores[:, k]), k])[::-1]
        if len(finite):
            out[k] = finite[math.ceil(share * len(finite)) - 1]
    return out


def pseudo_label_file(
    model: Any,
    data: dict[str, Any],
    images: str | Path,
    *,
    min_score: float = 0.4,
    head: str | int | None = None,
    decoder: Callable[[np.ndarray], np.ndarray] | None = None,
    flip_test: bool = True,
    upright_test: bool = False,
    debias: ProportionDebias | None = None,
    keep_share: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(COCO keypoint file in the head's schema, summary) for every non-crowd box of `data` (`read_boxes_file`).

    `keep_share` also drops, per keypoint type, the readings below that type's `share_thresholds` (of all people's
    readings, not only those passing `min_score`); `debias` moves the kept keypoints' axial proportions off the
    source population's (evaluate.proportions)."""
    from poseadapt.evaluate.topdown import People, predict_people, read_image

    index = model.head_index(head) if isinstance(head, str) else int(head or 0)
    schema = model.schemas[index]
    root = Path(images)
    names = {im["id"]: im["file_name"] for im in data["images"]}
    anns = [a for a in data["annotations"] if not a.get("iscrowd")]
    people = People(
        np.array([a["image_id"] for a in anns], dtype=np.int64),
        np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4),
        np.ones(len(anns)),
    )
    check_box_images(data, root)
    preds = predict_people(
        model, people, lambda i: read_image(root / names[i]), head=index, flip_test=flip_test, decoder=decoder,
        nms_threshold=None, upright_test=upright_test,
    )  # fmt: skip
    kp = preds.keypoints.reshape(len(anns), len(schema), 3)
    read = np.isfinite(kp).all(axis=2)
    sure = read & (kp[..., 2] >= min_score)
    cut = None if keep_share is None else share_thresholds(np.where(read, kp[..., 2], np.nan), keep_share)
    if cut is not None:
        sure &= kp[..., 2] >= cut
    labels = np.where(sure[..., None], np.concatenate([kp[..., :2], np.full(sure.shape + (1,), 2.0)], axis=2), 0.0)
    report = None
    if debias is not None and len(anns):
        labels, report = debias.apply(labels)
    out_anns, kept = [], int(sure.sum())
    for ann, rows, n in zip(anns, labels, sure.sum(axis=1), strict=True):
        entry = {k: v for k, v in ann.items() if k not in ("keypoints", "num_keypoints")}
        entry.update(keypoints=[round(float(v), 2) for v in rows.ravel()], num_keypoints=int(n))
        entry["category_id"] = 1
        out_anns.append(entry)
    index_of = {n: i + 1 for i, n in enumerate(schema.keypoints)}
    category = {
        "id": 1, "name": "person", "supercategory": "person", "keypoints": list(schema.keypoints),
        "skeleton": [[index_of[a], index_of[b]] for a, b in schema.skeleton],
    }  # fmt: skip
    out = {"images": data["images"], "annotations": out_anns, "categories": [category]}
    total = len(out_anns) * len(schema)
    summary = {"people": len(out_anns), "schema": schema.name, "min_score": min_score, "keypoints_kept": kept,
               "share_kept": kept / total if total else math.nan}  # fmt: skip
    if cut is not None:
        summary["keep_share"] = keep_share
        summary["share_thresholds"] = {n: round(float(t), 4) for n, t in zip(schema.keypoints, cut, strict=True)}
    if report is not None:
        summary["debias"] = report
    return out, summary
