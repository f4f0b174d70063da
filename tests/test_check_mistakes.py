"""`poseadapt check` catches mistakes a valid COCO file can hold, one test per mistake, each a one-line error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from poseadapt.cli.main import main as cli_main


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from poseadapt.cli import synth_cmd

    root = tmp_path_factory.mktemp("chk")
    synth_cmd.run("adult", "random", 4, 96, root / "d", 2, ["coco17"], "1", None, "png", 1, False, True)
    return root / "d"


def gt(data: Path) -> dict[str, Any]:
    return json.loads((data / "annotations" / "adult_coco17.json").read_text())


def check(tmp_path: Path, coco: dict[str, Any], capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(coco))
    with pytest.raises(SystemExit) as exc:
        cli_main(["check", "--ann", str(ann), *args])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out + out.err


def test_clean_data_passes_with_per_keypoint_counts(tmp_path: Path, data: Path, capsys) -> None:
    rc, out = check(tmp_path, gt(data), capsys, "--images", str(data / "images"), "--decode", "--json")
    assert rc == 0, out
    summary = json.loads(out)
    assert summary["per_keypoint"]["nose"]["labelled"] <= 4 and 0 <= summary["per_keypoint"]["nose"]["visible_share"]
    rc, out = check(tmp_path, gt(data), capsys, "--images", str(data / "images"))
    assert rc == 0 and "least labelled keypoints:" in out


def test_keypoint_far_outside_the_image(tmp_path: Path, data: Path, capsys) -> None:
    coco = gt(data)
    coco["annotations"][0]["keypoints"][0:3] = [900, 30, 2]
    rc, out = check(tmp_path, coco, capsys)
    assert rc == 2 and out.count("\n") == 1
    assert "keypoint 'nose' at (900, 30) is outside the 96x96 image" in out


def test_visible_keypoint_at_origin(tmp_path: Path, data: Path, capsys) -> None:
    coco = gt(data)
    coco["annotations"][1]["keypoints"][3:6] = [0, 0, 2]
    rc, out = check(tmp_path, coco, capsys)
    assert rc == 2 and out.count("\n") == 1 and "keypoint 'left_eye' labelled (v=2) at (0, 0)" in out


def test_box_off_the_image(tmp_path: Path, data: Path, capsys) -> None:
    coco = gt(data)
    coco["annotations"][0]["bbox"] = [500, 500, 40, 80]
    rc, out = check(tmp_path, coco, capsys)
    assert rc == 2 and "lies mostly outside the 96x96 image" in out


def test_image_sizes_that_disagree_with_the_annotations(tmp_path: Path, data: Path, capsys) -> None:
    coco = gt(data)
    for im in coco["images"]:
        im["width"] = im["height"] = 320  # annotations made for 320x320 images, files are 96x96
    rc, out = check(tmp_path, coco, capsys, "--images", str(data / "images"))
    assert rc == 0, out  # without --decode the sizes are not read
    rc, out = check(tmp_path, coco, capsys, "--images", str(data / "images"), "--decode")
    assert rc == 2 and out.count("\n") == 1 and "is 96x96 but listed as 320x320" in out


def test_a_wrong_image_folder_is_one_summary_line(tmp_path: Path, data: Path, capsys) -> None:
    (tmp_path / "elsewhere").mkdir()
    rc, out = check(tmp_path, gt(data), capsys, "--images", str(tmp_path / "elsewhere"))
    assert rc == 2 and out.count("\n") == 1 and "0 of 4 images found in" in out and "first missing" in out


def test_preview_writes_a_grid_of_labelled_samples(tmp_path: Path, data: Path, capsys) -> None:
    import cv2
    import numpy as np

    from poseadapt.draw import LEFT_COLOUR, RIGHT_COLOUR
    from poseadapt.schemas import get_schema

    png = tmp_path / "sub" / "preview.png"
    rc, out = check(tmp_path, gt(data), capsys, "--images", str(data / "images"), "--preview", str(png))
    assert rc == 0 and f"preview: {png}" in out, out
    sheet = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert sheet.shape == (256, 4 * 258 - 2, 3)  # 4 images in one row of 256-px tiles, 2-px gutters
    assert not [p for p in png.parent.iterdir() if p != png]  # no temporary file left beside it

    coco, schema = gt(data), get_schema("coco17")
    first = min(im["id"] for im in coco["images"])
    image = next(im for im in coco["images"] if im["id"] == first)
    s = 256 / max(image["width"], image["height"])
    labelled = [
        (name, x * s, y * s, v)
        for ann in coco["annotations"]
        if ann["image_id"] == first
        for name, (x, y, v) in zip(schema.keypoints, np.reshape(ann["keypoints"], (-1, 3)), strict=True)
        if v > 0
    ]
    colour = {left: LEFT_COLOUR for left, _ in schema.flip_pairs} | {r: RIGHT_COLOUR for _, r in schema.flip_pairs}
    checked = 0
    for name, x, y, v in labelled:
        alone = all(np.hypot(x - x2, y - y2) > 6 for n2, x2, y2, _ in labelled if n2 != name)
        if v == 2 and name in colour and alone and y > 24:  # clear of other dots and of the file-name label
            bgr = sheet[int(round(y)), int(round(x))]
            assert tuple(int(c) for c in bgr[::-1]) == colour[name], (name, x, y)
            checked += 1
    assert checked >= 2  # the rendered person shows at least two separate side keypoints


def test_preview_needs_the_images(tmp_path: Path, data: Path, capsys) -> None:
    rc, out = check(tmp_path, gt(data), capsys, "--preview", str(tmp_path / "p.png"))
    assert rc == 2 and out.count("\n") == 1 and "give --images too" in out
