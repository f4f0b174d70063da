"""The COCO keypoint loader: arrays, pycocotools conventions, WholeBody flattening, and its problem reports."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from poseadapt.data.coco import WHOLEBODY_PARTS, coco_keypoints_from_dict, load_coco_keypoints, load_predictions
from poseadapt.data.validate import boxes_from_keypoints
from poseadapt.errors import DataError, SchemaError
from poseadapt.schemas import KeypointSchema, builtin_names, get_schema

COCO17 = get_schema("coco17")


def person(ann_id: int, image_id: int, *, seed: int | None = None, **fields: object) -> dict:
    """A plausible COCO person annotation with 17 keypoints (some unlabelled), overridable field by field."""
    rng = np.random.default_rng(ann_id if seed is None else seed)
    xy = rng.uniform(20, 300, (17, 2)).round(1)
    v = rng.choice([0, 1, 2], 17, p=[0.2, 0.2, 0.6])
    v[:2] = 2  # at least two labelled points
    xy[v == 0] = 0
    kps = [float(c) if j % 3 < 2 else int(c) for j, c in enumerate(np.column_stack([xy, v]).ravel())]
    lab = xy[v > 0]
    x0, y0 = lab.min(0)
    w, h = lab.max(0) - lab.min(0)
    ann = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": kps,
        "num_keypoints": int((v > 0).sum()),
        "bbox": [float(x0), float(y0), float(w), float(h)],
        "area": float(round(w * h * 0.6, 2)),
        "iscrowd": 0,
        "segmentation": [],
    }
    ann.update(fields)
    return ann


def coco_file(annotations: list[dict], n_images: int = 3, names: list[str] | None = None) -> dict:
    return {
        "images": [{"id": i, "file_name": f"{i:04d}.png", "width": 320, "height": 320} for i in range(1, n_images + 1)],
        "annotations": annotations,
        "categories": [
            {"id": 1, "name": "person", "keypoints": list(names or COCO17.keypoints), "skeleton": []},
        ],
    }


def write(tmp_path: Path, data: object, name: str = "gt.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises((DataError, SchemaError)) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------------ happy path
def test_arrays_match_the_file_and_schema_is_inferred(tmp_path: Path) -> None:
    anns = [person(1, 1), person(2, 1), person(3, 2), person(7, 3)]
    data = load_coco_keypoints(write(tmp_path, coco_file(anns)))
    assert data.schema.name == "coco17"
    assert data.category_id == 1 and data.keypoint_category_ids == (1,)
    assert data.keypoints.shape == (4, 17, 3) and data.keypoints.dtype == np.float64
    np.testing.assert_array_equal(data.ann_ids, [1, 2, 3, 7])
    np.testing.assert_array_equal(data.image_ids, [1, 1, 2, 3])
    for row, ann in enumerate(anns):
        np.testing.assert_array_equal(data.keypoints[row].ravel(), ann["keypoints"])
        np.testing.assert_array_equal(data.boxes[row], ann["bbox"])
        assert data.areas[row] == ann["area"]
        assert data.num_keypoints[row] == ann["num_keypoints"]
    assert data.annotations[3] is not None and data.annotations[3]["id"] == 7
    assert set(data.images) == {1, 2, 3} and data.images[2].file_name == "0002.png"
    assert data.image_path(2, tmp_path / "imgs") == tmp_path / "imgs" / "0002.png"
    assert not data.ignore.any()


def test_matches_pycocotools_reading_of_the_same_file(tmp_path: Path) -> None:
    """Areas, boxes, crowd flags and the num_keypoints-based ignore must be what pycocotools' eval uses."""
    coco_mod = pytest.importorskip("pycocotools.coco")
    anns = [person(i, 1 + i % 3) for i in range(1, 25)]
    anns[4]["iscrowd"] = 1
    anns[5]["keypoints"] = [0] * 51
    anns[5]["num_keypoints"] = 0
    del anns[6]["area"]  # pycocotools would fail on this one; compare the rest
    path = write(tmp_path, coco_file(anns))
    data = load_coco_keypoints(path)
    reference = coco_mod.COCO()
    reference.dataset = coco_file([a for a in anns if "area" in a])
    reference.createIndex()
    for row, ann_id in enumerate(data.ann_ids):
        if ann_id == anns[6]["id"]:
            assert data.areas[row] == pytest.approx(data.boxes[row, 2] * data.boxes[row, 3])
            continue
        ref = reference.anns[int(ann_id)]
        assert data.areas[row] == ref["area"]
        np.testing.assert_array_equal(data.boxes[row], ref["bbox"])
        np.testing.assert_array_equal(data.keypoints[row].ravel(), ref["keypoints"])
        ref_ignored = bool(ref["iscrowd"]) or ref["num_keypoints"] == 0  # cocoeval.evaluateImg, keypoints
        assert bool(data.ignore[row]) == ref_ignored


def test_crowd_annotation_without_keypoints_is_legal(tmp_path: Path) -> None:
    crowd = {"id": 9, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 50, 50], "area": 900.0}
    crowd_empty = dict(crowd, id=10, keypoints=[], num_keypoints=0)
    data = load_coco_keypoints(write(tmp_path, coco_file([person(1, 1), crowd, crowd_empty])))
    assert data.iscrowd.tolist() == [False, True, True]
    assert data.ignore.tolist() == [False, True, True]
    assert np.all(data.keypoints[1:] == 0)
    assert data.num_keypoints[1:].tolist() == [0, 0]
    assert data.areas[1] == 900.0


def test_missing_bbox_and_area_are_derived_from_the_labelled_keypoints(tmp_path: Path) -> None:
    kps = [0.0] * 51
    for name, x, y in (("nose", 40.0, 10.0), ("left_ankle", 30.0, 90.0), ("right_wrist", 70.0, 50.0)):
        j = COCO17.index(name)
        kps[3 * j : 3 * j + 3] = [x, y, 2]
    kps[3 * COCO17.index("left_knee") : 3 * COCO17.index("left_knee") + 3] = [999.0, 999.0, 0]  # unlabelled: ignored
    ann = {"id": 1, "image_id": 1, "category_id": 1, "keypoints": kps, "iscrowd": 0}
    data = load_coco_keypoints(write(tmp_path, coco_file([ann])))
    np.testing.assert_allclose(data.boxes[0], [30.0, 10.0, 40.0, 80.0])
    assert data.areas[0] == pytest.approx(40.0 * 80.0)
    assert data.num_keypoints[0] == 3  # no num_keypoints field: counted from v > 0


def test_zero_size_bbox_is_an_error_unless_derivation_is_the_convention(tmp_path: Path) -> None:
    ann = person(1, 1, bbox=[10.0, 10.0, 0.0, 25.0])
    path = write(tmp_path, coco_file([ann]))
    message = error_of(load_coco_keypoints, path)
    assert "annotation 1 (image 1)" in message and "bbox width and height must be > 0" in message
    data = load_coco_keypoints(path, derive_boxes=True)
    expected, ok = boxes_from_keypoints(np.array(ann["keypoints"], float).reshape(1, 17, 3))
    assert ok[0] and data.boxes[0, 2] > 0
    np.testing.assert_allclose(data.boxes[0], expected[0])


def test_a_box_that_cannot_be_derived_is_reported(tmp_path: Path) -> None:
    kps = [0.0] * 51
    kps[0:3] = [5.0, 5.0, 2]  # a single labelled point spans no area
    ann = {"id": 4, "image_id": 2, "category_id": 1, "keypoints": kps}
    message = error_of(load_coco_keypoints, write(tmp_path, coco_file([ann])))
    assert "annotation 4 (image 2): has no 'bbox'" in message and "span no area" in message


def test_other_categories_are_left_out_and_shared_skeletons_kept(tmp_path: Path) -> None:
    data = coco_file([person(1, 1), person(2, 1, category_id=2), person(3, 2, category_id=5)])
    data["categories"].append({"id": 2, "name": "child", "keypoints": list(COCO17.keypoints)})
    data["categories"].append({"id": 5, "name": "ball"})
    loaded = load_coco_keypoints(write(tmp_path, data))
    assert loaded.ann_ids.tolist() == [1, 2]
    assert loaded.category_ids.tolist() == [1, 2] and loaded.keypoint_category_ids == (1, 2)


# ------------------------------------------------------------------------------------------------ WholeBody
def wholebody_schema() -> KeypointSchema:
    if "coco_wholebody133" in builtin_names():
        return get_schema("coco_wholebody133")
    extra = [f"wb_{i}" for i in range(133 - 17)]
    return KeypointSchema(name="wb133_test", keypoints=COCO17.keypoints + tuple(extra), sigmas=[0.05] * 133)


def wholebody_ann(ann_id: int) -> dict:
    ann = person(ann_id, 1)
    rng = np.random.default_rng(100 + ann_id)
    for field, flag, k in WHOLEBODY_PARTS[1:]:
        xy = rng.uniform(10, 200, (k, 2)).round(1)
        conf = rng.uniform(0.05, 1.0, (k, 1)).round(3)
        ann[field] = np.column_stack([xy, conf]).ravel().tolist()
        ann[flag] = True
        ann[field.replace("_kpts", "_box")] = [0.0, 0.0, 0.0, 0.0]
    return ann


def test_wholebody_parts_are_flattened_in_order_to_133(tmp_path: Path) -> None:
    schema = wholebody_schema()
    a, b = wholebody_ann(1), wholebody_ann(2)
    b["lefthand_valid"] = False  # its numbers must not count as labelled
    b["face_kpts"][2::3] = [1.5] * 68  # face flags run up to 2
    b["foot_kpts"] = []  # an absent part is unlabelled
    data = load_coco_keypoints(write(tmp_path, coco_file([a, b])), schema)
    assert data.wholebody and data.keypoints.shape == (2, 133, 3)
    layout = {"keypoints": (0, 17), "foot_kpts": (17, 23), "face_kpts": (23, 91)}  # COCO-WholeBody numbering
    layout.update(lefthand_kpts=(91, 112), righthand_kpts=(112, 133))
    for field, (lo, hi) in layout.items():
        expected = np.array(a[field], float).reshape(hi - lo, 3)[:, :2]
        np.testing.assert_allclose(data.keypoints[0, lo:hi, :2], expected)
    hand_conf = np.array(a["lefthand_kpts"][2::3])
    assert set(np.unique(data.keypoints[0, 91:112, 2])) == {1.0} and hand_conf.max() <= 1.0  # (0, 1] -> 1
    assert np.all(data.keypoints[1, 91:112] == 0)  # lefthand_valid False
    assert np.all(data.keypoints[1, 17:23] == 0)  # foot_kpts []
    assert np.all(data.keypoints[1, 23:91, 2] == 2)  # face 1.5 -> 2
    assert data.num_keypoints[1] == (data.keypoints[1, :, 2] > 0).sum()


def test_wholebody_schema_is_inferred_and_body_only_reading_works(tmp_path: Path) -> None:
    path = write(tmp_path, coco_file([wholebody_ann(1)]))
    if "coco_wholebody133" in builtin_names():
        assert load_coco_keypoints(path).schema.name == "coco_wholebody133"
    body = load_coco_keypoints(path, "coco17")  # a 17-point schema reads the body of a WholeBody file
    assert not body.wholebody and body.keypoints.shape == (1, 17, 3)
    message = error_of(load_coco_keypoints, path, "coco17", wholebody=True)
    assert "133 keypoints" in message


def test_wholebody_zero_size_body_box_is_derived(tmp_path: Path) -> None:
    ann = wholebody_ann(1)
    ann["bbox"] = [0.0, 0.0, 0.0, 0.0]
    data = load_coco_keypoints(write(tmp_path, coco_file([ann])), wholebody_schema())
    expected, _ = boxes_from_keypoints(data.keypoints)
    np.testing.assert_allclose(data.boxes, expected)
    assert data.boxes[0, 2] > 0 and data.boxes[0, 3] > 0


def test_wholebody_part_of_wrong_length_names_the_part(tmp_path: Path) -> None:
    ann = wholebody_ann(3)
    ann["righthand_kpts"] = ann["righthand_kpts"][:60]
    message = error_of(load_coco_keypoints, write(tmp_path, coco_file([ann])), wholebody_schema())
    assert "annotation 3 (image 1): 'righthand_kpts' has 60 values, expected 63" in message


# ------------------------------------------------------------------------------------------------ problem reports
def test_all_problems_reported_at_once_with_ids(tmp_path: Path) -> None:
    anns = [
        person(1, 1, keypoints=[1.0] * 50),
        person(2, 1),
        person(2, 2),  # duplicate id
        person(3, 77),  # unknown image
        person(4, 2, iscrowd=2),
    ]
    anns[1]["keypoints"][3 * COCO17.index("left_shoulder") + 2] = 3
    data = coco_file(anns)
    data["images"].append(dict(data["images"][0]))  # duplicate image id 1
    message = error_of(coco_keypoints_from_dict, data, source="gt.json")
    assert message.startswith("gt.json: 6 problems: ")
    for phrase in (
        "image id 1 appears 2 times",
        "annotation 1 (image 1): 'keypoints' has 50 values, expected 51",
        "annotation id 2 is used 2 times (images 1, 2)",
        "annotation 3 (image 77): image_id 77 is not in 'images'",
        "keypoint 'left_shoulder' has visibility 3, expected 0, 1 or 2",
        "annotation 4 (image 2): 'iscrowd' must be 0 or 1",
    ):
        assert phrase in message, phrase


def test_report_is_cut_at_20_with_a_count_of_the_rest(tmp_path: Path) -> None:
    anns = [person(i, 1 + i % 3) for i in range(1, 36)]
    for ann in anns[:30]:
        ann["keypoints"][6] = math.nan
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(coco_file(anns)))  # json writes NaN; the loader must still name each annotation
    message = error_of(load_coco_keypoints, path)
    assert message.startswith(f"{path}: 30 problems: ")
    assert message.endswith("; and 10 more")
    shown = re.findall(r"annotation (\d+) \(image (\d+)\): keypoint 'right_eye' in 'keypoints' is NaN", message)
    assert [int(a) for a, _ in shown] == list(range(1, 21))
    assert all(int(img) == 1 + int(a) % 3 for a, img in shown)


def test_nan_and_inf_in_bbox_and_area_are_reported(tmp_path: Path) -> None:
    anns = [person(1, 1, bbox=[1.0, 2.0, math.inf, 4.0]), person(2, 1, area=-5.0), person(3, 1, area=0.0)]
    message = error_of(load_coco_keypoints, write(tmp_path, coco_file(anns)))
    assert "annotation 1 (image 1): 'bbox' has NaN, inf or null" in message
    assert "annotation 2 (image 1): 'area' must be finite and >= 0" in message
    assert "annotation 3 (image 1): 'area' is 0" in message


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    path.write_text('{"images": [],\n "annotations": [,]}')
    message = error_of(load_coco_keypoints, path)
    assert "not valid JSON" in message and "line 2, column 18" in message


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (None, "not found"),
        ("", "is empty"),
        ("[]", "got a list (is this a predictions file?)"),
        ('{"images": [], "annotations": []}', "no 'categories' list"),
        ('{"images": {}, "annotations": [], "categories": []}', "'images' must be a list"),
    ],
)
def test_file_level_problems(tmp_path: Path, content: str | None, phrase: str) -> None:
    path = tmp_path / "gt.json"
    if content is not None:
        path.write_text(content)
    assert phrase in error_of(load_coco_keypoints, path)


def test_category_names_that_contradict_the_schema(tmp_path: Path) -> None:
    names = list(COCO17.keypoints)
    names[5], names[6] = names[6], names[5]  # a real contradiction: the shoulders swapped
    message = error_of(load_coco_keypoints, write(tmp_path, coco_file([person(1, 1)], names=names)), "coco17")
    assert "keypoint 5 is 'right_shoulder' in category 1 'person' but 'left_shoulder' in schema 'coco17'" in message
    names = list(COCO17.keypoints)
    names[5] = "l_shoulder"  # another spelling of the same point: accepted, as inference accepts it
    spelled = write(tmp_path, coco_file([person(1, 1)], names=names), "spelled.json")
    assert load_coco_keypoints(spelled, "coco17").schema.name == load_coco_keypoints(spelled).schema.name == "coco17"
    short = write(tmp_path, coco_file([person(1, 1)], names=names[:16]), "short.json")
    assert "lists 16 keypoint names but schema 'coco17' has 17" in error_of(load_coco_keypoints, short, "coco17")


def test_unknown_keypoint_names_ask_for_a_schema(tmp_path: Path) -> None:
    names = [f"marker_{i}" for i in range(17)]
    path = write(tmp_path, coco_file([person(1, 1)], names=names))
    message = error_of(load_coco_keypoints, path)
    assert "no built-in schema matches" in message and "--schema" in message
    custom = KeypointSchema(name="markers", keypoints=names, sigmas=[0.05] * 17)
    assert load_coco_keypoints(path, custom).schema is custom


def test_unknown_schema_name(tmp_path: Path) -> None:
    message = error_of(load_coco_keypoints, write(tmp_path, coco_file([person(1, 1)])), "no_such_schema")
    assert "unknown schema 'no_such_schema'" in message


# ------------------------------------------------------------------------------------------------ images
def test_image_files_are_checked_when_asked(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    root = tmp_path / "images"
    root.mkdir()
    cv2.imwrite(str(root / "0001.png"), np.full((8, 8, 3), 127, np.uint8))
    (root / "0002.png").write_bytes(b"this is not an image")
    png = (root / "0001.png").read_bytes()
    (root / "0003.png").write_bytes(png[:16] + b"\x00" * 40)  # a PNG header over garbage: only decoding finds it
    path = write(tmp_path, coco_file([person(1, 1)]))
    assert len(load_coco_keypoints(path)) == 1  # no check unless asked
    message = error_of(load_coco_keypoints, path, image_root=root, check_images=True)
    assert message.count("problem") == 1 and "image 2: not a readable image" in message
    (root / "0002.png").write_bytes(png)
    assert len(load_coco_keypoints(path, image_root=root, check_images=True)) == 1
    message = error_of(load_coco_keypoints, path, image_root=root, decode_images=True)
    assert "image 3: corrupt PNG image" in message
    (root / "0003.png").unlink()
    assert "image 3: image file not found" in error_of(load_coco_keypoints, path, image_root=root, check_images=True)


# ------------------------------------------------------------------------------------------------ predictions
def predictions_for(anns: list[dict], noise: float = 2.0) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for ann in anns:
        kp = np.array(ann["keypoints"], float).reshape(17, 3)
        kp[:, :2] += rng.normal(0, noise, (17, 2))
        kp[:, 2] = rng.uniform(0, 1, 17)
        out.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.8})
    return out


def test_predictions_load_as_arrays(tmp_path: Path) -> None:
    anns = [person(1, 1), person(2, 2)]
    gt = load_coco_keypoints(write(tmp_path, coco_file(anns)))
    preds = predictions_for(anns)
    del preds[1]["category_id"]  # the GT's keypoint category is assumed
    loaded = load_predictions(write(tmp_path, preds, "pred.json"), gt)
    assert len(loaded) == 2 and loaded.keypoints.shape == (2, 17, 3)
    np.testing.assert_array_equal(loaded.image_ids, [1, 2])
    np.testing.assert_array_equal(loaded.category_ids, [1, 1])
    np.testing.assert_array_equal(loaded.keypoints[1].ravel(), preds[1]["keypoints"])
    np.testing.assert_array_equal(loaded.scores, [0.8, 0.8])


@pytest.mark.parametrize(
    ("mutate", "phrase"),
    [
        (lambda p: {"annotations": p}, "got an object (is this a ground-truth file?)"),
        (lambda p: [], "no predictions (the list is empty)"),
        (lambda p: [dict(p[0], image_id=99)] + p[1:], "prediction [0] (image 99): image_id 99 is not in the ground"),
        (lambda p: [dict(p[0], keypoints=p[0]["keypoints"][:48])], "'keypoints' has 48 values, expected 51"),
        (lambda p: [dict(p[0], keypoints=[math.nan] * 51)], "keypoint 'nose' in 'keypoints' is NaN"),
        (lambda p: [dict(p[0], keypoints=["x"] * 51)], "prediction [0] (image 1): 'keypoints' holds a non-numeric"),
        (lambda p: [dict(p[0], image_id=1.5)], "prediction [0] (image 1.5): 'image_id' is missing or not an integer"),
        (lambda p: [{k: v for k, v in p[0].items() if k != "score"}], "prediction [0] (image 1): has no 'score'"),
        (lambda p: [dict(p[0], score="high")], "'score' must be a finite number, got 'high'"),
        (lambda p: [dict(p[0], category_id=3)], "category_id 3 is not a keypoint category"),
        (lambda p: [p[0], 5], "prediction [1] is not an object"),
    ],
)
def test_bad_predictions(tmp_path: Path, mutate, phrase: str) -> None:
    anns = [person(1, 1), person(2, 2)]
    gt = load_coco_keypoints(write(tmp_path, coco_file(anns)))
    path = write(tmp_path, mutate(predictions_for(anns)), "pred.json")
    assert phrase in error_of(load_predictions, path, gt)


# ------------------------------------------------------------------------------------------------ scale, imports
def big_coco(n_images: int, k: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """5000 images x 2-4 people x k keypoints, built with numpy so the test stays fast."""
    rng = np.random.default_rng(seed)
    per_image = rng.integers(2, 5, n_images)
    image_ids = np.repeat(np.arange(1, n_images + 1), per_image)
    n = len(image_ids)
    xy = rng.uniform(10, 600, (n, k, 2)).round(2)
    v = rng.choice([0, 1, 2], (n, k), p=[0.1, 0.2, 0.7])
    kps = np.concatenate([xy, v[..., None]], axis=2)
    lo, hi = xy.min(1), xy.max(1)
    boxes = np.concatenate([lo, hi - lo], 1).round(2)
    kp_lists, box_lists = kps.reshape(n, -1).tolist(), boxes.tolist()
    anns = [
        {
            "id": i + 1,
            "image_id": int(image_ids[i]),
            "category_id": 1,
            "keypoints": kp_lists[i],
            "num_keypoints": int((v[i] > 0).sum()),
            "bbox": box_lists[i],
            "area": float(box_lists[i][2] * box_lists[i][3] * 0.6),
            "iscrowd": 0,
        }
        for i in range(n)
    ]
    pred_kps = (kps + np.concatenate([rng.normal(0, 3, (n, k, 2)), np.zeros((n, k, 1))], 2)).round(2)
    pred_lists = pred_kps.reshape(n, -1).tolist()
    scores = rng.uniform(0, 1, n).round(4).tolist()
    preds = [
        {"image_id": int(image_ids[i]), "category_id": 1, "keypoints": pred_lists[i], "score": scores[i]}
        for i in range(n)
    ]
    images = [{"id": i, "file_name": f"{i:06d}.jpg", "width": 640, "height": 640} for i in range(1, n_images + 1)]
    names = [f"point_{j}" for j in range(k)]
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "keypoints": names}]}, preds


def per_row_reference(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The plainest per-row Python loader (stdlib json, one array per annotation, no validation): the floor a
    regression to per-row Python in `load_coco_keypoints` would fall to."""
    anns = json.loads(path.read_text())["annotations"]
    kps = np.array([np.asarray(a["keypoints"], np.float64).reshape(-1, 3) for a in anns])
    return kps, np.array([a["bbox"] for a in anns], np.float64)


def test_load_time_of_5000_images(tmp_path: Path) -> None:
    gt_dict, preds = big_coco(5000, 21)
    schema = KeypointSchema(name="points21", keypoints=gt_dict["categories"][0]["keypoints"], sigmas=[0.05] * 21)
    gt_path, pred_path = write(tmp_path, gt_dict), write(tmp_path, preds, "pred.json")
    gt_times, pred_times, ratios = [], [], []
    for _ in range(5):  # interleaved with the per-row reference, so machine load hits both alike
        t0 = time.perf_counter()
        gt = load_coco_keypoints(gt_path, schema)
        t1 = time.perf_counter()
        loaded = load_predictions(pred_path, gt)
        t2 = time.perf_counter()
        ref_kps, _ = per_row_reference(gt_path)
        t3 = time.perf_counter()
        gt_times.append(t1 - t0)
        pred_times.append(t2 - t1)
        ratios.append((t3 - t2) / (t1 - t0))
    mb = gt_path.stat().st_size / 1e6, pred_path.stat().st_size / 1e6
    print(
        f"\n5000 images, {len(gt)} people x 21 keypoints: GT ({mb[0]:.1f} MB) {1e3 * np.median(gt_times):.0f} ms, "
        f"predictions ({mb[1]:.1f} MB) {1e3 * np.median(pred_times):.0f} ms; per-row reference / loader "
        f"{np.median(ratios):.2f}x (medians of 5, shared 2-core machine)"
    )
    assert len(loaded) == len(gt) == len(gt_dict["annotations"])
    np.testing.assert_array_equal(gt.keypoints, ref_kps)
    # validated loading must beat unvalidated per-row Python: a per-row regression lands at or below 1x
    assert np.median(ratios) > 1.0, ratios
    assert max(gt_times) < 5.0 and max(pred_times) < 5.0


def test_loader_never_imports_torch() -> None:
    code = "import sys, poseadapt.data.coco; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
