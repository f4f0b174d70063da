"""Core KeypointSchema behaviour: validation, flip permutation, YAML round trip."""

import pytest

from poseadapt.errors import SchemaError
from poseadapt.schemas import KeypointSchema, derive_flip_pairs, get_schema


def test_coco17_flip_index_is_an_involution():
    s = get_schema("coco17")
    perm = s.flip_index
    assert [perm[p] for p in perm] == list(range(17))
    assert s.keypoints[perm[s.index("left_knee")]] == "right_knee"
    assert perm[s.index("nose")] == s.index("nose")


def test_yaml_round_trip(tmp_path):
    s = get_schema("coco17")
    path = tmp_path / "s.yaml"
    path.write_text(s.to_yaml())
    again = KeypointSchema.from_yaml(path)
    assert again.to_dict() == s.to_dict()


def test_flip_pairs_derived_from_names():
    pairs = derive_flip_pairs(["head_top", "left_hip", "right_hip", "l_wrist", "r_wrist", "lshoulder"])
    assert ("left_hip", "right_hip") in pairs and ("l_wrist", "r_wrist") in pairs
    s = KeypointSchema.from_dict({"name": "x", "keypoints": ["left_a", "right_a", "mid"], "sigmas": [0.1] * 3})
    assert s.flip_pairs == (("left_a", "right_a"),)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "x", "keypoints": ["a", "a"], "sigmas": [0.1, 0.1]}, "duplicate keypoint"),
        ({"name": "x", "keypoints": ["a", "b"], "sigmas": [0.1]}, "1 sigmas for 2 keypoints"),
        ({"name": "x", "keypoints": ["a"], "sigmas": [0.1], "sigma": [1]}, "unknown field"),
        ({"name": "x", "keypoints": ["a", "b"], "sigmas": [0.1, 0.1], "flip_pairs": [["a", "c"]]}, "unknown keypoint"),
        ({"name": "x", "keypoints": ["a"], "sigmas": [-0.1]}, "> 0"),
    ],
)
def test_invalid_schemas_are_refused(data, message):
    with pytest.raises(SchemaError, match=message):
        KeypointSchema.from_dict(data)
