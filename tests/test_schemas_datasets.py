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
from poseadapt.schemas.mapping import SchemaMap, keypoint_names_disagree

LAYOUTS = Path(__file__).parent / "data" / "mmpose_layouts"

# file -> the built-in it must load as (inferred from its category names, and given explicitly)
EXPECTED = {
    "crowdpose": "crowdpose14",  # keypoint 12 is `head`
    "exlpose": "crowdpose14",  # same 14 points, `head`, and mmpose's exlpose.py sigmas equal CrowdPose's
    "aic": "aic14",  # `Right Shoulder`, `Head top`
    "mhp": "mpii16",  # `Right-ankle`, `Upper-neck`
    "humanart": "humanart21",  # 21 names; the 21 points are in `keypoints_21`
    "jhmdb": "jhmdb15",  # no iscrowd, area or num_keypoints
    "mpii_trb": "mpii_trb40",  # `head`, 40 points, no bbox (MPII's center/scale), no num_keypoints
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


def test_mpii_trb_boxes_come_from_the_keypoints() -> None:
    gt = load_coco_keypoints(LAYOUTS / "mpii_trb.json")
    raw = json.loads((LAYOUTS / "mpii_trb.json").read_text())["annotations"]
    assert "bbox" not in raw[0] and gt.num_keypoints.tolist() == [a["num_joints"] for a in raw]
    for box, a in zip(gt.boxes, raw, strict=True):
        pts = np.reshape(a["keypoints"], (-1, 3))
        pts = pts[pts[:, 2] > 0, :2]
        np.testing.assert_allclose(box, [*pts.min(0), *(pts.max(0) - pts.min(0))])


H36M_ORDER = list(get_schema("h36m17").keypoints)


def test_h36m_converter_file_is_refused_at_its_mislabelled_legs(tmp_path: Path) -> None:
    """mmpose's h36m_to_coco.py names points 1-3 left and 4-6 right, but its coordinates are in Human3.6M's order
    (in 3D, `keypoints_3d`, point 1 is nearer right_shoulder, point 14, than the left one in every image). The file
    is refused at keypoint 1 in one line; with the category names corrected it loads as h36m17, inferred and
    explicit."""
    path = LAYOUTS / "h36m.json"
    data = json.loads(path.read_text())
    assert data["categories"][0]["keypoints"][1] == "left_hip"
    with pytest.raises(SchemaError) as info:
        load_coco_keypoints(path, "h36m17")
    assert "keypoint 1 is 'left_hip'" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(SchemaError):
        load_coco_keypoints(path)
    for ann in data["annotations"]:  # the data say point 1 is the right hip, as mmpose's h36m.py orders them
        k = np.reshape(ann["keypoints_3d"], (-1, 4))[:, :3]
        assert np.linalg.norm(k[1] - k[14]) < np.linalg.norm(k[1] - k[11])
        assert np.linalg.norm(k[4] - k[11]) < np.linalg.norm(k[4] - k[14])
    data["categories"][0]["keypoints"] = ["root (pelvis)", *H36M_ORDER[1:]]
    fixed = tmp_path / "h36m.json"
    fixed.write_text(json.dumps(data))
    inferred, explicit = load_coco_keypoints(fixed), load_coco_keypoints(fixed, "h36m")
    assert inferred.schema.name == explicit.schema.name == "h36m17"
    assert inferred.keypoints.shape == (4, 17, 3)
    np.testing.assert_array_equal(inferred.keypoints, explicit.keypoints)


COCO_AIC = [*get_schema("coco17").keypoints, "head_top", "neck"]


def test_coco_aic_layout_loads_and_maps_as_mmpose(tmp_path: Path) -> None:
    """A file in mmpose's merged COCO + AIC layout (19 names of coco_aic.py) loads as coco_aic19, and mapping
    AIC and COCO into it reproduces mmpose's `keypoint_mapping_aic` / `keypoint_mapping_coco` (its aic-coco
    configs, e.g. body_2d_keypoint/topdown_heatmap/coco/cspnext-l_udp_8xb256-210e_aic-coco-256x192.py)."""
    aic = json.loads((LAYOUTS / "aic.json").read_text())
    src = np.reshape(aic["annotations"][0]["keypoints"], (-1, 3))
    mmpose_aic = [(0, 6), (1, 8), (2, 10), (3, 5), (4, 7), (5, 9), (6, 12), (7, 14), (8, 16), (9, 11), (10, 13),
                  (11, 15), (12, 17), (13, 18)]  # fmt: skip
    assert SchemaMap("aic14", "coco_aic19").matched == sorted(mmpose_aic, key=lambda p: p[1])
    assert SchemaMap("coco17", "coco_aic19").matched == [(i, i) for i in range(17)]
    kpts = np.zeros((19, 3))
    for s, d in mmpose_aic:
        kpts[d] = src[s]
    ann = {**aic["annotations"][0], "keypoints": kpts.ravel().tolist(), "num_keypoints": int((kpts[:, 2] > 0).sum())}
    data = {**aic, "categories": [{**aic["categories"][0], "keypoints": COCO_AIC}], "annotations": [ann]}
    path = tmp_path / "coco_aic.json"
    path.write_text(json.dumps(data))
    for schema in (None, "coco_aic19", "coco_aic", "humanart_aic"):
        gt = load_coco_keypoints(path, schema)
        assert gt.schema.name == "coco_aic19"
        np.testing.assert_array_equal(gt.keypoints[0], kpts)


def test_ubody_wholebody_layout_loads_as_coco_wholebody133(tmp_path: Path) -> None:
    """UBody's 2D files are in COCO-WholeBody's layout (17 body names in `categories`, parts in their own fields);
    `--schema ubody2d` names the same built-in the file is inferred as."""
    rng = np.random.default_rng(0)

    def part(k: int) -> list[float]:
        pts = np.c_[rng.uniform(10, 90, (k, 2)), np.ones(k)]
        return pts.ravel().tolist()

    ann = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [5, 5, 90, 90], "area": 8100.0,
           "num_keypoints": 17, "keypoints": [v if i % 3 != 2 else 2 for i, v in enumerate(part(17))],
           "foot_kpts": part(6), "face_kpts": part(68), "lefthand_kpts": part(21), "righthand_kpts": part(21),
           "foot_valid": True, "face_valid": True, "lefthand_valid": True, "righthand_valid": False,
           "face_box": [0, 0, 0, 0], "lefthand_box": [0, 0, 0, 0], "righthand_box": [0, 0, 0, 0]}  # fmt: skip
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}], "annotations": [ann],
            "categories": [{"id": 1, "name": "person", "keypoints": list(get_schema("coco17").keypoints)}]}  # fmt: skip
    path = tmp_path / "ubody.json"
    path.write_text(json.dumps(data))
    inferred, explicit = load_coco_keypoints(path), load_coco_keypoints(path, "ubody2d")
    assert inferred.schema.name == explicit.schema.name == "coco_wholebody133"
    np.testing.assert_array_equal(inferred.keypoints, explicit.keypoints)
    assert (explicit.keypoints[0, :112, 2] > 0).all() and (explicit.keypoints[0, 112:, 2] == 0).all()


def test_exlpose_by_its_mmpose_name() -> None:
    gt = load_coco_keypoints(LAYOUTS / "exlpose.json", "exlpose")
    assert gt.schema.name == "crowdpose14" and gt.keypoints.shape[1] == 14
