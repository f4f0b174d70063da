"""`RandomForeshorten`: the body shortens along one direction by the drawn factor, a dot painted at a keypoint of
the source image is found at the warped keypoint, and the sample's matrix maps source pixels to the crop exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from poseadapt.data.augment import RandomForeshorten, TopDownAffine, TopDownSample, build_transforms
from poseadapt.data.topdown import warp_points
from poseadapt.errors import PoseAdaptError
from poseadapt.schemas import get_schema

COCO = get_schema("coco17")
SRC = 200  # square source image
CROP = (96, 128)  # (w, h)


def source_sample(points: np.ndarray, dot: int | None = None) -> TopDownSample:
    """A source image (float32, one blob at keypoint `dot`) with a box around the points."""
    ys, xs = np.mgrid[0:SRC, 0:SRC]
    image = np.zeros((SRC, SRC, 1), np.float32)
    if dot is not None:
        x, y = points[dot, :2]
        image[..., 0] = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 2.0**2))
    return TopDownSample(image=image, keypoints=points.copy(), center=np.array([100.0, 100.0]),
                         scale=np.array([120.0, 160.0]), schema=COCO)  # fmt: skip


def points() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.concatenate([rng.uniform(60, 140, size=(17, 2)), np.full((17, 1), 2.0)], axis=1)


def run(sample: TopDownSample, seed: int, factor: float = 0.6) -> tuple[TopDownSample, float, float]:
    rng = np.random.default_rng(seed)
    RandomForeshorten(prob=1.0, factor=(factor, factor))(sample, rng)
    draw = np.random.default_rng(seed)
    draw.random()
    angle = draw.uniform(0.0, math.pi)
    return TopDownAffine(CROP)(sample, None), angle, factor


def test_the_body_shortens_by_the_factor_along_the_drawn_direction_only() -> None:
    plain = TopDownAffine(CROP)(source_sample(points()), None).keypoints[:, :2]
    warped, angle, f = run(source_sample(points()), seed=5)
    d = np.array([-math.sin(angle), math.cos(angle)])  # the shortened axis (second column of the rotation)
    n = np.array([math.cos(angle), math.sin(angle)])  # the one that keeps its length
    centred_plain, centred_warped = plain - plain.mean(0), warped.keypoints[:, :2] - warped.keypoints[:, :2].mean(0)
    np.testing.assert_allclose(centred_warped @ d, f * (centred_plain @ d), atol=1e-9)
    np.testing.assert_allclose(centred_warped @ n, centred_plain @ n, atol=1e-9)


@pytest.mark.parametrize("k", [0, 5, 9, 16])
def test_pixels_move_with_their_keypoint_and_the_matrix_is_exact(k: int) -> None:
    pts = points()
    warped, _, _ = run(source_sample(pts, dot=k), seed=11)
    np.testing.assert_allclose(warp_points(pts[:, :2], warped.matrix), warped.keypoints[:, :2], atol=1e-9)
    crop = warped.image[..., 0] if warped.image.ndim == 3 else warped.image
    ys, xs = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]]
    found = np.array([(crop * xs).sum() / crop.sum(), (crop * ys).sum() / crop.sum()])
    # the blob shrinks too, so its centroid is the keypoint up to interpolation: well inside a pixel
    assert np.linalg.norm(found - warped.keypoints[k, :2]) < 0.3


def test_factor_one_or_prob_zero_changes_nothing_and_bad_options_are_one_line() -> None:
    plain = TopDownAffine(CROP)(source_sample(points()), None).keypoints
    same, _, _ = run(source_sample(points()), seed=2, factor=1.0)
    np.testing.assert_allclose(same.keypoints, plain, atol=1e-9)
    untouched = source_sample(points())
    RandomForeshorten(prob=0.0)(untouched, np.random.default_rng(0))
    assert untouched.view is None
    for bad in ({"factor": [0.1, 1.0]}, {"factor": [0.9, 0.5]}, {"prob": 2}):
        with pytest.raises(PoseAdaptError, match="RandomForeshorten"):
            build_transforms([{"type": "RandomForeshorten", **bad}])
