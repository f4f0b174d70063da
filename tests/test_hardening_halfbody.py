"""Half-body split and threshold against mmpose 1.x (`RandomHalfBody`, each dataset's keypoint `type` field).

The lower-half index lists below are transcribed from the `type='lower'` entries of mmpose
`configs/_base_/datasets/*.py`; they are the reference, not derived from our code.
"""

import numpy as np
import pytest

from poseadapt.data.augment import RandomHalfBody, TopDownSample, body_halves
from poseadapt.schemas import builtin_names, get_schema

MMPOSE_LOWER = {
    "coco17": list(range(11, 17)),
    "posetrack17": list(range(11, 17)),
    "crowdpose14": list(range(6, 12)),
    "aic14": list(range(6, 12)),
    "mpii16": [0, 1, 2, 3, 4, 5, 6],  # ankles, knees, hips and the pelvis
    "halpe26": [11, 12, 13, 14, 15, 16, 19, 20, 21, 22, 23, 24, 25],  # + mid hip and the six foot points
    "coco_wholebody133": list(range(11, 23)),  # hips, knees, ankles and the six foot points
    "jhmdb15": [5, 6, 9, 10, 13, 14],
    "halpe136": [11, 12, 13, 14, 15, 16, 19, 20, 21, 22, 23, 24, 25],
    # mmpose humanart21.py also marks the fingertips (17, 18) 'lower': a slip, a fingertip is on the arm
    "humanart21": [11, 12, 13, 14, 15, 16, 19, 20],
    "coco_aic19": list(range(11, 17)),
    "h36m17": [0, 1, 2, 3, 4, 5, 6],  # root, hips, knees, feet
    "mpii_trb40": [6, 7, 8, 9, 10, 11, *range(28, 40)],  # joints and the contour points beside them
    # mmpose ap10k.py: Root of tail, hips, knees, back paws, and R_F_Paw (10), while L_F_Paw (7) is 'upper': a slip
    # we do not copy (a flip would move the front paw between halves). Everything else agrees.
    "ap10k17": [4, 11, 12, 13, 14, 15, 16],
}


@pytest.mark.parametrize("name", sorted(MMPOSE_LOWER))
def test_lower_half_is_mmposes(name):
    schema = get_schema(name)
    upper, lower = body_halves(schema)
    assert list(lower) == MMPOSE_LOWER[name]
    assert sorted([*upper, *lower]) == list(range(len(schema)))


def test_wholebody_hips_knees_ankles_are_lower_not_upper():
    schema = get_schema("coco_wholebody133")
    upper, lower = body_halves(schema)
    for joint in ("left_hip", "right_knee", "left_ankle", "right_heel"):
        assert schema.index(joint) in lower and schema.index(joint) not in upper
    assert schema.index("left_thumb_1") in upper and schema.index("face_chin") in upper


@pytest.mark.parametrize("name", builtin_names())
def test_flipping_keeps_each_point_in_its_half(name):
    schema = get_schema(name)
    _, lower = body_halves(schema)
    flip = np.asarray(schema.flip_index)
    assert set(flip[lower]) == set(lower)


def _coco_sample(n_labelled: int) -> TopDownSample:
    schema = get_schema("coco17")
    rng = np.random.default_rng(3)
    kpts = np.zeros((17, 3))
    kpts[:, 0] = 100 + rng.random(17) * 80
    kpts[:, 1] = np.linspace(20, 300, 17)
    kpts[:n_labelled, 2] = 2
    return TopDownSample(
        image=np.zeros((320, 320, 3), np.uint8), keypoints=kpts, center=[140, 160], scale=[200, 300], schema=schema
    )


def test_half_body_needs_nine_labelled_points_by_default():
    assert RandomHalfBody().min_total_keypoints == 9
    half = RandomHalfBody(prob=1.0)
    for seed in range(20):
        assert half.select(_coco_sample(8), np.random.default_rng(seed)) is None
    # 9 labelled: 0-8 are all upper (11 upper points), so with prob 1 the upper half is always chosen
    chosen = [half.select(_coco_sample(9), np.random.default_rng(seed)) for seed in range(20)]
    assert all(c is not None and list(c) == list(range(9)) for c in chosen)
