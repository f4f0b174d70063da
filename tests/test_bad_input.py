"""The bad-input table: every way a user's files can be wrong ends the CLI with exit code != 0 and one clear line.

Each case builds its files in tmp_path, runs the real `poseadapt` entry point in a subprocess, and checks: a
non-zero exit, exactly one non-empty line on stderr, no traceback, and the phrase that tells the user what to fix.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

COCO17 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]  # fmt: skip


def _keypoints(seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    kp = np.column_stack([rng.uniform(20, 200, (17, 2)).round(1), np.full(17, 2.0)])
    return kp.ravel().tolist()


def _gt(n_people: int = 3) -> dict:
    anns = []
    for i in range(1, n_people + 1):
        kps = _keypoints(i)
        xs, ys = kps[0::3], kps[1::3]
        box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        anns.append(
            {
                "id": i,
                "image_id": 1 + i % 2,
                "category_id": 1,
                "keypoints": kps,
                "num_keypoints": 17,
                "bbox": box,
                "area": box[2] * box[3] * 0.6,
                "iscrowd": 0,
            }
        )
    return {
        "images": [{"id": i, "file_name": f"{i}.png", "width": 256, "height": 256} for i in (1, 2)],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17)}],
    }


def _preds(gt: dict) -> list[dict]:
    return [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": [v + 1.0 for v in a["keypoints"]], "score": 0.9}
        for a in gt["annotations"]
    ]


def _write(path: Path, data: object) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _score(tmp: Path, gt: object = None, preds: object = None, *extra: str) -> list[str]:
    """`score` args with GT / predictions files written from the given data (defaults: a clean pair)."""
    gt = _gt() if gt is None else gt
    preds = _preds(_gt()) if preds is None else preds
    return ["score", "--gt", str(_write(tmp / "gt.json", gt)), "--pred", str(_write(tmp / "pred.json", preds)), *extra]


def _schema_yaml(tmp: Path, keypoints: list[str], sigmas: list[float]) -> str:
    path = tmp / "schema.yaml"
    path.write_text(json.dumps({"name": "custom", "keypoints": keypoints, "sigmas": sigmas}))  # JSON is YAML
    return str(path)


def _gt_with(**changes: object) -> dict:
    gt = _gt()
    gt["annotations"][1].update(changes)
    return gt


def _check(tmp: Path, gt: dict) -> list[str]:
    """`check` args: validates a GT file alone, as before a training run."""
    return ["check", "--ann", str(_write(tmp / "gt.json", gt))]


def _with_images(tmp: Path, image_bytes: Callable[[bytes], bytes], *extra: str) -> list[str]:
    import cv2

    root = tmp / "images"
    root.mkdir()
    ok, png = cv2.imencode(".png", np.full((256, 256, 3), 90, np.uint8))  # the size gt.json lists
    assert ok
    (root / "1.png").write_bytes(png.tobytes())
    (root / "2.png").write_bytes(image_bytes(png.tobytes()))
    return ["check", "--ann", str(_write(tmp / "gt.json", _gt())), "--images", str(root), *extra]


def _renamed_category() -> dict:
    gt = _gt()
    gt["categories"][0]["keypoints"][11] = "pelvis"  # another point (`hip_l` would be left_hip, spelled otherwise)
    return gt


def _unnamed_markers() -> dict:
    gt = _gt()
    gt["categories"][0]["keypoints"] = [f"marker_{i}" for i in range(17)]
    return gt


CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "missing file": (lambda t: ["score", "--gt", str(t / "nope.json"), "--pred", str(t / "p.json")], "not found"),
    "malformed JSON": (lambda t: _score(t, gt='{"images": [1,\n  "annotations": }'), "line 2, column"),
    "keypoint length mismatch": (
        lambda t: _score(t, gt=_gt_with(keypoints=_keypoints(2)[:48])),
        "annotation 2 (image 1): 'keypoints' has 48 values, expected 51",
    ),
    "NaN keypoint": (
        lambda t: _score(t, gt=_gt_with(keypoints=[math.nan] + _keypoints(2)[1:])),
        "annotation 2 (image 1): keypoint 'nose' in 'keypoints' is NaN",
    ),
    "zero bbox (check)": (
        lambda t: _check(t, _gt_with(bbox=[10.0, 10.0, 0.0, 50.0])),
        "annotation 2 (image 1): bbox width and height must be > 0",
    ),
    "zero bbox": (
        lambda t: _score(t, gt=_gt_with(bbox=[10.0, 10.0, 0.0, 50.0])),
        "annotation 2 (image 1): bbox width and height must be > 0",
    ),
    "negative bbox": (
        lambda t: _score(t, gt=_gt_with(bbox=[10.0, 10.0, 30.0, -5.0])),
        "bbox width and height must be > 0, got [10, 10, 30, -5]",
    ),
    "visibility flag out of range": (
        lambda t: _score(t, gt=_gt_with(keypoints=_keypoints(2)[:-1] + [3])),
        "keypoint 'right_ankle' has visibility 3, expected 0, 1 or 2",
    ),
    "unknown image_id in predictions": (
        lambda t: _score(t, preds=[dict(_preds(_gt())[0], image_id=42)]),
        "image_id 42 is not in the ground truth",
    ),
    "empty prediction list": (lambda t: _score(t, preds=[]), "no predictions (the list is empty)"),
    "predictions file is a GT file": (lambda t: _score(t, preds=_gt()), "is this a ground-truth file?"),
    "prediction without score": (
        lambda t: _score(t, preds=[{k: v for k, v in p.items() if k != "score"} for p in _preds(_gt())]),
        "has no 'score'",
    ),
    "unknown schema": (lambda t: _score(t, None, None, "--schema", "coco_18_points"), "unknown schema"),
    "sigma count mismatch": (
        lambda t: _score(t, None, None, "--schema", _schema_yaml(t, COCO17, [0.05] * 16)),
        "16 sigmas for 17 keypoints",
    ),
    "duplicate keypoint names": (
        lambda t: _score(t, None, None, "--schema", _schema_yaml(t, COCO17[:16] + ["nose"], [0.05] * 17)),
        "duplicate keypoint names: nose",
    ),
    "category names contradict the schema": (
        lambda t: _score(t, _renamed_category(), None, "--schema", "coco17"),
        "keypoint 11 is 'pelvis' in category 1 'person' but 'left_hip' in schema 'coco17'",
    ),
    "keypoint names of no known schema": (lambda t: _score(t, _unnamed_markers()), "--schema"),
    # no decoder's signature at all (bytes that start like a GIF would pass: only decoding tells, see the next case)
    "corrupt image": (lambda t: _with_images(t, lambda png: b"garbage bytes, not an image"), "not a readable image"),
    "image that does not decode": (
        lambda t: _with_images(t, lambda png: png[:16] + bytes(64), "--decode"),
        "cannot decode",
    ),
    "missing image file": (
        lambda t: [*_with_images(t, lambda png: png)[:-2], "--images", str(t)],
        "0 of 2 images found",
    ),
}


def _poseadapt(args: list[str]) -> subprocess.CompletedProcess:
    code = "from poseadapt.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent
    )


def test_table_has_the_required_cases() -> None:
    assert len(CASES) >= 12


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_exits_with_one_line(tmp_path: Path, case: str) -> None:
    build, phrase = CASES[case]
    result = _poseadapt(build(tmp_path))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert phrase in lines[0], lines[0]


def test_clean_files_pass_the_same_commands(tmp_path: Path) -> None:
    """The table's baseline files are valid: each failure above comes from the one thing its case broke."""
    result = _poseadapt(_score(tmp_path, None, None, "--json"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["AP"] > 0.5
    checked = _poseadapt(_with_images(tmp_path, lambda png: png, "--decode"))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: ") and "2 images, 3 annotations" in checked.stdout
