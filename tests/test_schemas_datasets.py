"""Public datasets' own annotation files load, and an explicit `--schema` agrees with the inferred one.

The files in tests/data/mmpose_layouts are excerpts of the datasets' published layouts (see the README there).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from poseadapt.data.coco import load_coco_keypoints
from poseadapt.errors import SchemaError
from poseadapt.schemas import find_builtin_by_keypoints, get_schema
from poseadapt.schemas.mapping import keypoint_names_disagree

LAYOUTS = Path(__file__).parent / "data" / "mmpose_layouts"

# file -> the built-in it must load as (inferred from its category names, and given explicitly)
EXPECTED = {
    "crowdpose": "crowdpose14",  # keypoint 12 is `head`
    "exlpose": "crowdpose14",  # same 14 points, `head`, and mmpose's exlpose.py sigmas equal CrowdPose's
    "aic": "aic14",  # `Right Shoulder`, `Head top`
    "mhp": "mpii16",  # `Right-ankle`, `Upper-neck`
    "humanart": "humanart21",  # 21 names; the 21 points are in `keypoints_21`
    "jhmdb": "jhmdb15",  # no iscrowd, area or num_keypoints
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_published_file_loads_inferred_and_explicit(name: str) -> None:
    path = LAYOUTS / f"{name}.json"
    inferred = load_coco_keypoints(path)
    explicit = load_coco_keypoints(path, EXPECTED[name])
    assert inferred.schema.name == explicit.schema.name == EXPECTED[name]
    np.testing.assert_array_equal(inferred.keypoints, explicit.keypoints)
    raw = json.loads(path.read_text())["annotations"][0]
    field = "keypoints_21" if name == "humanart" else "keypoints"
    np.testing.assert_allclose(inferred.keypoints[0, :, :2].ravel(), np.reshape(raw[field], (-1, 3))[:, :2].ravel())


def test_humanart_reads_the_21_points_and_their_count() -> None:
    gt = load_coco_keypoints(LAYOUTS / "humanart.json")
    raw = json.loads((LAYOUTS / "humanart.json").read_text())["annotations"][0]
    assert len(raw["keypoints"]) == 17 * 3 and len(raw["keypoints_21"]) == 21 * 3
    assert gt.num_keypoints[0] == raw["num_keypoints_21"]
    assert "keypoints_21" in gt.annotations[0]  # the raw dict's fields are all still there


def test_halpe_fullbody_needs_its_schema_named() -> None:
    path = LAYOUTS / "halpe.json"
    assert json.loads(path.read_text())["categories"][0]["keypoints"] == []
    with pytest.raises(SchemaError, match="--schema"):
        load_coco_keypoints(path)
    gt = load_coco_keypoints(path, "halpe136")
    assert gt.keypoints.shape[1:] == (136, 3) and gt.schema.name == "halpe136"


@pytest.mark.parametrize(
    ("spelling", "schema"),
    [
        (["Right Shoulder", "Right Elbow", "Right Wrist", "Left Shoulder", "Left Elbow", "Left Wrist", "Right Hip",
          "Right Knee", "Right Ankle", "Left Hip", "Left Knee", "Left Ankle", "Head top", "Neck"], "aic14"),
        (["RIGHT-ANKLE", "right knee", "Right_Hip", "left-hip", "LeftKnee", "L_Ankle", "Pelvis", "Thorax",
          "Upper-neck", "Head-top", "r_wrist", "Right elbow", "right shoulder", "Left Shoulder", "Left-elbow",
          "left_wrist"], "mpii16"),
    ],
)  # fmt: skip
def test_name_normaliser_makes_explicit_and_inferred_agree(spelling: list[str], schema: str) -> None:
    assert find_builtin_by_keypoints(spelling).name == schema
    assert keypoint_names_disagree(spelling, get_schema(schema)) is None


def test_aliases_are_per_schema_and_contradictions_still_fail() -> None:
    crowd = list(get_schema("crowdpose14").keypoints)
    crowd[12] = "head"
    assert keypoint_names_disagree(crowd, get_schema("crowdpose14")) is None
    # `head` is CrowdPose's head top, not a global synonym: JHMDB's `head` (the face point) stays itself
    jhmdb = list(get_schema("jhmdb15").keypoints)
    jhmdb[2] = "head_top"
    assert keypoint_names_disagree(jhmdb, get_schema("jhmdb15")) == 2
    crowd[0], crowd[1] = crowd[1], crowd[0]
    assert keypoint_names_disagree(crowd, get_schema("crowdpose14")) == 0


def test_explicit_schema_that_contradicts_the_file_is_one_line(tmp_path: Path) -> None:
    data = json.loads((LAYOUTS / "aic.json").read_text())
    names = data["categories"][0]["keypoints"]
    names[0], names[3] = names[3], names[0]  # the shoulders swapped
    path = tmp_path / "swapped.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SchemaError) as info:
        load_coco_keypoints(path, "aic14")
    assert "keypoint 0 is 'Left Shoulder'" in str(info.value) and "\n" not in str(info.value)
