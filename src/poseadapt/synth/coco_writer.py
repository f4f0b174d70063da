"""Rendered samples -> COCO keypoint annotations in any schema the body (and wheelchair) can express.

Output is deterministic: numbers are rounded (keypoints and polygons to 0.01 px), ids follow the sample
index, and the JSON is written in insertion order, so one seed gives a byte-identical file on every run.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from poseadapt.schemas import KeypointSchema
from poseadapt.synth.body import resolve_point_names
from poseadapt.synth.props import WHEELCHAIR_POINTS
from poseadapt.synth.scene.compose import KEYPOINT_INDEX, PersonRecord, SynthSample

MIN_AREA = 16  # pixels: a person hidden down to fewer pixels than this gets no annotation


def schema_columns(schema: KeypointSchema) -> np.ndarray:
    """Index of each schema keypoint among the renderer's keypoints (aliases resolved; unknown names error)."""
    names = resolve_point_names(list(schema.keypoints), extra=WHEELCHAIR_POINTS)
    return np.array([KEYPOINT_INDEX[n] for n in names], dtype=int)


def uses_device(schema: KeypointSchema) -> bool:
    """Whether the schema labels wheelchair points, which makes the chair part of the person's instance."""
    return any(n in WHEELCHAIR_POINTS for n in schema.keypoints)


def silhouette_polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons (x1, y1, x2, y2, ...) of the mask's outer outline, a quarter pixel inside its pixel edges.

    Contours are traced on the mask upsampled 2x, so a component one pixel wide still has area (pycocotools
    rasterises the polygons back to the same pixels). COCO polygons cannot carry holes: a hole (the inside of
    a wheel) is filled, as in COCO's own polygon annotations.
    """
    up = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) > 8:  # drop vertices that move the outline by under 0.2 px
            c = cv2.approxPolyDP(c, 0.4, True)
        if len(c) >= 3:
            polys.append(np.round((c.reshape(-1) + 0.5) * 0.5, 2).tolist())
    return polys


def person_annotation(
    person: PersonRecord, columns: np.ndarray, device: bool, image_id: int, ann_id: int
) -> dict[str, Any] | None:
    """One COCO annotation, or None when the person is (almost) entirely hidden."""
    mask = person.mask_with_device if device else person.mask
    area = int(mask.sum())
    if area < MIN_AREA:
        return None
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    x0, y0 = int(cols[0]), int(rows[0])
    bbox = [float(x0), float(y0), float(cols[-1] + 1 - x0), float(rows[-1] + 1 - y0)]
    vis = person.visibility[columns]
    xy = np.round(person.pixels[columns], 2)
    kps: list[float] = []
    for (x, y), v in zip(xy.tolist(), vis.tolist(), strict=True):
        kps += [x, y, int(v)] if v > 0 else [0, 0, 0]
    polys = silhouette_polygons(mask)
    if not polys:  # a sliver too thin for a contour: its box is the honest outline
        polys = [
            [
                bbox[0],
                bbox[1],
                bbox[0] + bbox[2],
                bbox[1],
                bbox[0] + bbox[2],
                bbox[1] + bbox[3],
                bbox[0],
                bbox[1] + bbox[3],
            ]
        ]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": kps,
        "num_keypoints": int((vis > 0).sum()),
        "bbox": bbox,
        "area": float(area),
        "iscrowd": 0,
        "segmentation": polys,
        "attributes": {"pose": person.pose, "props": person.props},
    }


class CocoBuilder:
    """Collects images and annotations for one schema; `to_dict()` gives the COCO keypoint file."""

    def __init__(self, schema: KeypointSchema, population: str, view: str, seed: int) -> None:
        self.schema = schema
        self.columns = schema_columns(schema)
        self.device = uses_device(schema)
        self.population, self.view, self.seed = population, view, seed
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add(self, sample: SynthSample, file_name: str) -> None:
        image_id = sample.index + 1
        h, w = sample.image.shape[:2]
        self.images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
        for k, person in enumerate(sample.persons):
            ann = person_annotation(person, self.columns, self.device, image_id, image_id * 100 + k)
            if ann is not None:
                self.annotations.append(ann)

    def to_dict(self) -> dict[str, Any]:
        return {
            "info": {
                "description": f"poseadapt synthetic {self.population} ({self.view} view), schema {self.schema.name}",
                "seed": self.seed,
            },
            "images": self.images,
            "annotations": self.annotations,
            "categories": [
                {
                    "id": 1,
                    "name": "person",
                    "supercategory": "person",
                    "keypoints": list(self.schema.keypoints),
                    "skeleton": [[a + 1, b + 1] for a, b in self.schema.skeleton_index],  # COCO is 1-based
                }
            ],
        }


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        text = json.dumps(obj, separators=(",", ":"))  # dumps, not dump: only dumps uses the C encoder
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def builders_for(schemas: Iterable[KeypointSchema], population: str, view: str, seed: int) -> dict[str, CocoBuilder]:
    return {s.name: CocoBuilder(s, population, view, seed) for s in schemas}
