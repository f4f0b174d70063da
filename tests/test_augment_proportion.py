"""`ProportionWarp`: limb lengths and head size change in image space, and every labelled keypoint moves exactly
where its pixels go (a dot painted at a keypoint is found at the warped keypoint, within 1 px)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from poseadapt.data.augment import ProportionWarp, TopDownSample, build_transforms
from poseadapt.data.proportion import PROPORTIONS, keypoint_part
from poseadapt.errors import PoseAdaptError
from poseadapt.schemas import get_schema

W, H = 96, 128
COCO = get_schema("coco17")


def adult_pose() -> np.ndarray:
    """A standing adult in a 96x128 crop, arms and legs slightly spread (x, y, v)."""
    p = {
        "nose": (48, 24), "left_eye": (51, 21), "right_eye": (45, 21), "left_ear": (55, 23), "right_ear": (41, 23),
        "left_shoulder": (60, 38), "right_shoulder": (36, 38), "left_elbow": (67, 53), "right_elbow": (29, 53),
        "left_wrist": (72, 68), "right_wrist": (24, 68), "left_hip": (56, 66), "right_hip": (40, 66),
        "left_knee": (59, 88), "right_knee": (37, 88), "left_ankle": (61, 111), "right_ankle": (35, 111),
    }  # fmt: skip
    return np.array([[*p[n], 2.0] for n in COCO.keypoints], np.float64)


def crop_sample(image: np.ndarray, keypoints: np.ndarray) -> TopDownSample:
    s = TopDownSample(image=image, keypoints=keypoints, center=np.array([W / 2, H / 2]), scale=np.array([W, H]),
                      schema=COCO)  # fmt: skip
    s.cropped = True
    return s


def dot_image(x: float, y: float, radius: float = 2.0) -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W]
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 0] = np.clip(255 * (radius + 0.5 - np.hypot(xs - x, ys - y)), 0, 255).astype(np.uint8)
    return image


def centroid(image: np.ndarray) -> np.ndarray:
    m = image[..., 0].astype(np.float64)
    ys, xs = np.mgrid[0:H, 0:W]
    return np.array([(m * xs).sum() / m.sum(), (m * ys).sum() / m.sum()])


def test_parts_from_names() -> None:
    parts = {n: keypoint_part(n) for n in get_schema("infant21").keypoints}
    assert parts["left_elbow"] == "upper_arm" and parts["right_wrist"] == "forearm" and parts["left_knee"] == "thigh"
    assert parts["left_ankle"] == "shin" and parts["left_big_toe"] == "foot" and parts["head_top"] == "head"
    assert parts["neck"] == parts["left_hip"] == parts["right_shoulder"] == "torso" and parts["nose"] == "head"


@pytest.mark.parametrize("name", COCO.keypoints)
def test_a_dot_at_a_keypoint_moves_with_the_keypoint(name: str) -> None:
    pose = adult_pose()
    k = COCO.keypoints.index(name)
    before = crop_sample(dot_image(*pose[k, :2]), pose)
    np.testing.assert_allclose(centroid(before.image), pose[k, :2], atol=0.05)
    warp = ProportionWarp(prob=1.0, target="infant")
    after = warp.warp(before, t=1.0)
    moved = np.abs(after.keypoints[k, :2] - pose[k, :2]).max()
    assert moved == 0 if keypoint_part(name) == "torso" else moved > 2.0  # the torso stays, the rest moves
    np.testing.assert_allclose(centroid(after.image), after.keypoints[k, :2], atol=1.0)


def test_segment_lengths_follow_the_ratios() -> None:
    pose = adult_pose()
    after = ProportionWarp(prob=1.0).warp(crop_sample(np.zeros((H, W, 3), np.uint8), pose), t=1.0).keypoints
    r = PROPORTIONS["infant"]
    i = COCO.keypoints.index

    def length(kp: np.ndarray, a: str, b: str) -> float:
        return float(np.hypot(*(kp[i(a), :2] - kp[i(b), :2])))

    segments = [
        (("left_hip", "left_knee"), "thigh"),
        (("left_knee", "left_ankle"), "shin"),
        (("right_shoulder", "right_elbow"), "upper_arm"),
        (("right_elbow", "right_wrist"), "forearm"),
    ]
    for (a, b), part in segments:
        assert length(after, a, b) == pytest.approx(r[part] * length(pose, a, b))
    for n in ("left_shoulder", "right_hip"):  # the torso stays
        np.testing.assert_array_equal(after[i(n)], pose[i(n)])
    neck = (pose[i("left_shoulder"), :2] + pose[i("right_shoulder"), :2]) / 2
    np.testing.assert_allclose(after[i("nose"), :2] - neck, r["head"] * (pose[i("nose"), :2] - neck))
    # strength 0 is the identity; a fractional strength lands in between
    same = ProportionWarp(prob=1.0).warp(crop_sample(np.zeros((H, W, 3), np.uint8), pose), t=0.0).keypoints
    np.testing.assert_allclose(same, pose, atol=1e-9)


def test_unlabelled_points_prob_and_determinism() -> None:
    pose = adult_pose()
    pose[COCO.keypoints.index("left_knee"), 2] = 0  # unlabelled: the chain below it stays, and it is not moved
    image = dot_image(30, 40)
    after = ProportionWarp(prob=1.0).warp(crop_sample(image.copy(), pose.copy()), t=1.0)
    k = COCO.keypoints.index("left_knee")
    np.testing.assert_array_equal(after.keypoints[k], pose[k])
    off = ProportionWarp(prob=0.0)(crop_sample(image.copy(), pose.copy()), np.random.default_rng(0))
    assert np.array_equal(off.image, image)
    a = ProportionWarp(prob=1.0)(crop_sample(image.copy(), pose.copy()), np.random.default_rng(7))
    b = ProportionWarp(prob=1.0)(crop_sample(image.copy(), pose.copy()), np.random.default_rng(7))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.keypoints, b.keypoints)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"target": "toddler"}, "target must be one of infant, adult"),
        ({"ratios": {"tail": 0.5}}, "unknown part(s) ['tail']"),
        ({"ratios": {"thigh": 0.0}}, "ratios must lie in [0.1, 10]"),
        ({"strength": [1.0, 0.5]}, "strength must satisfy"),
        ({"prob": 2}, "prob must be in [0, 1]"),
        ({"probability": 0.5}, "unexpected keyword argument 'probability'"),
    ],
)
def test_bad_options_are_one_line(spec: dict, message: str) -> None:
    with pytest.raises(PoseAdaptError) as exc:
        build_transforms([{"type": "ProportionWarp", **spec}])
    assert "\n" not in str(exc.value) and message in str(exc.value), str(exc.value)


def test_in_a_recipe_trains_and_bad_option_names_the_key(tmp_path: Path, tiny_recipe: dict, cli_train) -> None:
    from poseadapt.train import build_trainer, recipe_from_dict

    tiny_recipe["data"]["train"]["augment"] = [
        {"type": "RandomFlip", "prob": 0.5},
        {"type": "ProportionWarp", "prob": 1.0, "target": "infant", "strength": [0.5, 1.0]},
    ]
    out = cli_train(tiny_recipe, tmp_path / "run")
    assert Path(out["final_checkpoint"]).is_file()
    tiny_recipe["data"]["train"]["augment"][1]["target"] = "toddler"
    with pytest.raises(PoseAdaptError) as exc:
        build_trainer(recipe_from_dict(tiny_recipe), tmp_path / "bad")
    assert str(exc.value).startswith("recipe key 'data.train.0.augment': transform ProportionWarp: target")
