"""Per-keypoint OKS sigmas from repeated annotations of the same people, as COCO derived its own.

COCO defines sigma_k^2 = E[d_k^2 / s^2]: d_k the distance of an annotation of keypoint k from the true point,
s^2 the person's area. With m annotations of one person and no truth, the spread around their mean gives it
without bias: sum |x_a - mean|^2 over the m annotations has expectation (m - 1) sigma^2 s^2, so
sigma_k^2 = sum over people and annotations |x_a - mean|^2 / s^2 / sum over people (m - 1).

Annotations of one person are found per image across the files (or within one file) by box overlap (IoU > 0.5,
at most one annotation per file and person when there are several files). A keypoint counts for a person when
at least two annotations label it; the number of such people is the keypoint's sample size. A keypoint with
fewer than two keeps the schema's sigma and is reported; one with fewer than `min_repeats` gets a warning (the
estimate's relative standard error is about 1 / sqrt(2 * n * (m - 1))).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from poseadapt.errors import DataError, PoseAdaptError

MATCH_IOU = 0.5
DEFAULT_SIGMA = 0.05


@dataclass
class SigmaEstimate:
    schema: Any  # KeypointSchema with the estimated sigmas (prior kept where nothing was measured)
    counts: list[int]  # people with >= 2 labels, per keypoint
    estimated: list[bool]
    files: list[str]
    people: int
    warnings: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, float, int]]:
        return list(zip(self.schema.keypoints, self.schema.sigmas, self.counts, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema.name,
            "files": self.files,
            "people": self.people,
            "keypoints": [
                {"name": n, "sigma": s, "people": c, "estimated": e}
                for (n, s, c), e in zip(self.rows(), self.estimated, strict=True)
            ],
            "warnings": self.warnings,
        }


def _schema_for(data: Any, path: Path, schema: Any) -> Any:
    from poseadapt.data.coco import _top_level
    from poseadapt.schemas import KeypointSchema, find_builtin_by_keypoints, get_schema

    if schema is not None:
        return get_schema(schema)
    _, _, categories = _top_level(data, path)  # the loader's own shape check: a list or a bare object is one line
    cats = [c for c in categories if c.get("keypoints")]
    if not cats:
        raise DataError(f"{path}: no category with keypoint names")
    names = [str(n) for n in cats[0]["keypoints"]]
    found = find_builtin_by_keypoints(names)
    if found is not None:
        return found
    return KeypointSchema.from_dict(
        {"name": str(cats[0].get("name", "custom")), "keypoints": names, "sigmas": [DEFAULT_SIGMA] * len(names)},
        source=str(path),
    )


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one xywh box against many."""
    x1, y1 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x2, y2 = np.minimum(a[0] + a[2], b[:, 0] + b[:, 2]), np.minimum(a[1] + a[3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / (a[2] * a[3] + b[:, 2] * b[:, 3] - inter + 1e-12)


def group_people(sets: Sequence[Any]) -> list[list[tuple[int, int]]]:
    """[[(file index, row), ...] per person]: annotations of one person across files (or within one file)."""
    several = len(sets) > 1
    people: list[list[tuple[int, int]]] = []
    by_image: dict[int, list[int]] = {}
    for f, gt in enumerate(sets):
        for row in np.flatnonzero(~np.asarray(gt.iscrowd, bool)):
            image_id = int(gt.image_ids[row])
            box = np.asarray(gt.boxes[row], dtype=np.float64)
            candidates = by_image.setdefault(image_id, [])
            best, best_iou = -1, MATCH_IOU
            if candidates:
                boxes = np.array([np.mean([sets[g].boxes[r] for g, r in people[p]], axis=0) for p in candidates])
                ious = _iou(box, boxes)
                for p, iou in zip(candidates, ious, strict=True):
                    if iou > best_iou and not (several and any(g == f for g, _ in people[p])):
                        best, best_iou = p, iou
            if best < 0:
                people.append([(f, int(row))])
                candidates.append(len(people) - 1)
            else:
                people[best].append((f, int(row)))
    return people


def estimate_sigmas(
    annotation_files: Sequence[str | Path], *, schema: Any = None, min_repeats: int = 30
) -> SigmaEstimate:
    """Estimate sigmas from two or more files over the same images, or one file with repeated annotations."""
    from poseadapt.data.coco import coco_keypoints_from_dict
    from poseadapt.data.validate import read_json

    paths = [Path(p) for p in annotation_files]
    if not paths:
        raise PoseAdaptError("sigmas needs at least one annotation file")
    for p in paths:
        if not p.is_file():
            raise DataError(f"annotation file not found: {p}")
    raw = [read_json(p, "annotation file") for p in paths]
    resolved = _schema_for(raw[0], paths[0], schema)
    sets = [
        coco_keypoints_from_dict(d, resolved, source=p, image_root=p.parent) for d, p in zip(raw, paths, strict=True)
    ]
    k = len(resolved)
    people = [g for g in group_people(sets) if len(g) > 1]
    if not people:
        raise PoseAdaptError(
            "no person is annotated more than once: give two or more files over the same images "
            "(or one file with repeated annotations of the same people)"
        )
    sum_sq = np.zeros(k)
    dof = np.zeros(k)
    counts = np.zeros(k, dtype=np.int64)
    for group in people:
        kp = np.stack([sets[f].keypoints[r] for f, r in group])  # (m, K, 3)
        area = float(np.mean([sets[f].areas[r] for f, r in group]))
        if not area > 0:
            continue
        labelled = kp[..., 2] > 0  # (m, K)
        m = labelled.sum(axis=0)
        ok = m >= 2
        mean = np.where(m[:, None] > 0, (kp[..., :2] * labelled[..., None]).sum(0) / np.maximum(m, 1)[:, None], 0.0)
        d2 = (((kp[..., :2] - mean[None]) ** 2).sum(-1) * labelled).sum(0)
        sum_sq += np.where(ok, d2 / area, 0.0)
        dof += np.where(ok, m - 1, 0)
        counts += ok
    estimated = dof > 0
    sigmas = np.where(estimated, np.sqrt(sum_sq / np.maximum(dof, 1)), np.asarray(resolved.sigmas))
    sigmas = np.where(estimated & (sigmas <= 0), 1e-4, sigmas)  # identical clicks: tiny, not zero (a schema needs > 0)
    warnings = []
    for name, c, e in zip(resolved.keypoints, counts, estimated, strict=True):
        if not e:
            warnings.append(f"{name}: no person labelled twice; kept the schema's sigma")
        elif c < min_repeats:
            warnings.append(f"{name}: only {c} people labelled twice or more (< {min_repeats}); the sigma is rough")
    new_schema = replace(resolved, sigmas=tuple(float(s) for s in sigmas))
    return SigmaEstimate(
        new_schema, counts.tolist(), estimated.tolist(), [str(p) for p in paths], len(people), warnings
    )


def schema_yaml(estimate: SigmaEstimate) -> str:
    """The schema YAML with the estimated sigmas, and the sample size of each as a comment block on top."""
    lines = [
        f"# sigmas estimated by `poseadapt sigmas` from {', '.join(estimate.files)}",
        f"# {estimate.people} people annotated more than once; per keypoint: people with >= 2 labels",
    ]
    for (name, sigma, count), est in zip(estimate.rows(), estimate.estimated, strict=True):
        lines.append(f"#   {name}: {count} people, sigma {sigma:.4f}" + ("" if est else " (not measured: prior kept)"))
    return "\n".join(lines) + "\n" + estimate.schema.to_yaml()
