"""Unlabelled target images as two views of one crop, with the person's silhouette: the data of `mean_teacher`.

`TwoViewDataset` wraps a top-down dataset whose keypoints are ignored. Per sample, the box transforms (flip,
scale, rotation) draw ONE crop; the teacher's view is that crop with the `weak` pixel transforms, the student's
the same crop with the `strong` ones (photometric, blur, occlusion). With `student_rotate` / `student_scale` the
student's view is then turned and scaled about the crop's centre by a random similarity (the easy-hard pairs of
Xie et al. 2021, "An Empirical Study of the Collapsing Problem in Semi-Supervised 2D Human Pose Estimation": a
student that must find the teacher's keypoints in a harder geometry cannot simply agree with it), whose 2x3
matrix travels with the sample so the teacher's keypoints can be carried into the student's view. Without it the
matrix is the identity and the teacher's heatmaps are the student's targets as they are.

Items, as `train.batch.collate` expects:
    image            the strong view (the student's input: what the engine feeds the model)
    target, target_weight   zeros: an unlabelled sample gets no supervised heatmap loss
    sample_extra     weak_image (the teacher's view), unlabelled = 1, silhouette_distance (H, W) float32: distance
                     of each crop pixel to the person's mask, in heatmap cells (0 inside, in the student's
                     view), has_silhouette 0 / 1, student_matrix (2, 3) float32: teacher view -> student view

Silhouettes come from the annotation's `segmentation`: COCO polygons (what `poseadapt.synth` writes from its
render masks) or RLE (decoded with pycocotools), warped into the crop with the sample's own matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from poseadapt.adapt.streams import TARGET_DOMAIN, tag_domain
from poseadapt.data.augment import TopDownSample, Transform, split_stages


def silhouette_mask(segmentation: Any, matrix: np.ndarray, input_size: tuple[int, int], image_hw: Any) -> np.ndarray:
    """The annotation's mask in crop pixels (H, W) uint8, or an empty mask without a usable segmentation."""
    w, h = input_size
    mask = np.zeros((h, w), np.uint8)
    if isinstance(segmentation, list) and segmentation:
        polys = []
        for poly in segmentation:
            pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
            if len(pts) >= 3:
                crop = pts @ matrix[:, :2].T + matrix[:, 2]
                polys.append(np.round(crop * 16).astype(np.int32))  # 4 bits of sub-pixel precision
        if polys:
            cv2.fillPoly(mask, polys, 1, lineType=cv2.LINE_8, shift=4)
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        from pycocotools import mask as mask_utils

        rle = segmentation
        if isinstance(rle["counts"], list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        full = mask_utils.decode(rle).astype(np.uint8)
        mask = cv2.warpAffine(full, matrix.astype(np.float64), (w, h), flags=cv2.INTER_NEAREST)
    return mask


def distance_to_mask(mask: np.ndarray, cell: float) -> np.ndarray:
    """Distance of every pixel to the nearest mask pixel, in units of `cell` pixels (0 inside the mask)."""
    outside = (mask == 0).astype(np.uint8)
    return (cv2.distanceTransform(outside, cv2.DIST_L2, 3) / cell).astype(np.float32)


class TwoViewDataset:
    """Weak (teacher) and strong (student) views of one crop of an unlabelled person (see the module docstring)."""

    def __init__(
        self,
        base: Any,
        num_keypoints: int,
        heatmap_size: tuple[int, int],
        *,
        weak: Sequence[Transform] = (),
        strong: Sequence[Transform] = (),
        silhouettes: bool = True,
        student_rotate: float = 0.0,
        student_scale: float = 0.0,
    ) -> None:
        box, pixel = split_stages(list(base.transforms))
        self.base = base
        self.base.transforms = box  # the shared geometry; pixel transforms go to the views
        self.weak = list(weak)
        self.strong = [*pixel, *strong]  # pixel transforms the base came with make the student's view harder
        if any(t.stage != "pixel" for t in [*weak, *strong]):
            raise ValueError("the weak and strong views take pixel transforms only (the geometry is shared)")
        self.num_keypoints = int(num_keypoints)
        self.heatmap_size = tuple(heatmap_size)
        self.silhouettes = bool(silhouettes)
        self.student_rotate, self.student_scale = float(student_rotate), float(student_scale)
        w_in, h_in = base.input_size
        w_hm, h_hm = heatmap_size
        self.cell = float(((w_in - 1) / (w_hm - 1) + (h_in - 1) / (h_hm - 1)) / 2)  # UDP input px per heatmap cell

    @property
    def seed(self) -> int:
        return self.base.seed

    @property
    def schema(self) -> Any:
        return self.base.schema

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.get(index, self.base.rng_for(index))

    def _view(self, item: dict[str, Any], transforms: list[Transform], rng: np.random.Generator) -> np.ndarray:
        if not transforms:
            return item["image"]
        sample = TopDownSample(
            image=item["image"].copy(), keypoints=item["keypoints"], center=item["meta"]["center"],
            scale=item["meta"]["scale"], schema=self.base.schema, cropped=True, matrix=item["meta"]["matrix"],
        )  # fmt: skip
        for t in transforms:
            sample = t(sample, rng)
        return sample.image

    @property
    def turned(self) -> bool:
        """Whether the student's view is turned / scaled against the teacher's."""
        return bool(self.student_rotate or self.student_scale)

    def student_matrix(self, rng: np.random.Generator) -> np.ndarray:
        """The similarity (2, 3) from the teacher's view to the student's: a turn of up to `student_rotate`
        degrees and a scale within 1 +- `student_scale` about the crop's centre (the identity when both are 0)."""
        if not self.turned:
            return np.array([[1, 0, 0], [0, 1, 0]], np.float32)
        w_in, h_in = self.base.input_size
        angle = rng.uniform(-self.student_rotate, self.student_rotate)
        scale = rng.uniform(1.0 - self.student_scale, 1.0 + self.student_scale)
        centre = ((w_in - 1) / 2.0, (h_in - 1) / 2.0)
        return cv2.getRotationMatrix2D(centre, angle, scale).astype(np.float32)

    def get(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        item = self.base.get(index, rng)
        strong = self._view(item, self.strong, rng)
        weak = self._view(item, self.weak, rng)
        w_in, h_in = self.base.input_size
        matrix = self.student_matrix(rng)
        if self.turned:
            strong = cv2.warpAffine(strong, matrix.astype(np.float64), (w_in, h_in), flags=cv2.INTER_LINEAR)
        has, distance = np.float32(0.0), np.zeros((h_in, w_in), np.float32)
        if self.silhouettes:
            row = int(self.base.indices[index])
            ann = self.base.data.annotations[row]
            info = self.base.data.images.get(int(self.base.data.image_ids[row]))
            mask = silhouette_mask(ann.get("segmentation"), item["meta"]["matrix"], (w_in, h_in), info)
            if self.turned:
                mask = cv2.warpAffine(mask, matrix.astype(np.float64), (w_in, h_in), flags=cv2.INTER_NEAREST)
            if mask.any():
                has, distance = np.float32(1.0), distance_to_mask(mask, self.cell)
        k, (w_hm, h_hm) = self.num_keypoints, self.heatmap_size
        keypoints = np.asarray(item["keypoints"], np.float32).copy()
        keypoints[:, 2] = 0.0  # labels, if the file has any, are not used
        return {
            "image": strong,
            "target": np.zeros((k, h_hm, w_hm), np.float32),
            "target_weight": np.zeros(k, np.float32),
            "keypoints": keypoints,
            "meta": item["meta"],
            "extra": tag_domain({}, k, TARGET_DOMAIN),  # unlabelled target images, for a domain classifier too
            "sample_extra": {
                "weak_image": weak,
                "unlabelled": np.float32(1.0),
                "silhouette_distance": distance,
                "has_silhouette": has,
                "student_matrix": matrix,
            },
        }
