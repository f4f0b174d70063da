"""The upright test (`--upright-test`): each crop read at the four quarter turns, the most confident and upright
reading kept. Checked on rendered people whose whole images are turned: the turn that undoes the image's turn
reproduces the upright image's prediction, the test picks it, and AP on turned people rises."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from poseadapt.evaluate.topdown import Predictor, evaluate_model, gt_people, load_ground_truth, read_image
from poseadapt.interop.checkpoint import load_checkpoint
from poseadapt.synth import write_dataset


@pytest.fixture(scope="module")
def model():
    return load_checkpoint("builtin:synthpose-vit-tiny").eval()


@pytest.fixture(scope="module")
def adults(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("upright")
    return write_dataset(root, "adult", view="front", n=12, size=128, seed=7, schemas=["coco17"]).annotations["coco17"]


def turn_image(image: np.ndarray, quarters: int) -> np.ndarray:
    """The image turned counter-clockwise by `quarters` x 90 degrees (np.rot90)."""
    return np.ascontiguousarray(np.rot90(image, quarters))


def turn_points(xy: np.ndarray, quarters: int, width: int, height: int) -> np.ndarray:
    """Pixel coordinates (pixel centres at integers, as the crops use them) moved with `turn_image`."""
    x, y = xy[..., 0], xy[..., 1]
    for _ in range(quarters % 4):
        x, y, width, height = y, width - 1 - x, height, width
    return np.stack([x, y], axis=-1)


def turn_box(box: np.ndarray, quarters: int, width: int, height: int) -> np.ndarray:
    c = turn_points(np.array([[box[0], box[1]], [box[0] + box[2], box[1] + box[3]]]), quarters, width, height)
    lo, hi = c.min(0), c.max(0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def test_the_turn_that_undoes_the_images_turn_reads_exactly_the_upright_image(model, adults: Path) -> None:
    gt = load_ground_truth(adults)
    people = gt_people(gt)
    plain, upright = Predictor(model), Predictor(model, upright_test=True)
    for row in range(4):
        image = read_image(gt.image_path(int(people.image_ids[row]), adults.parent.parent / "images"))
        h, w = image.shape[:2]
        box = people.boxes[row]
        want = plain.predict(image, box[None])[0]
        for quarters in (1, 2, 3):
            pixels, centers, scales = upright.crops(turn_image(image, quarters), turn_box(box, quarters, w, h)[None])
            readings, _ = upright.turned_readings(pixels, centers, scales)
            # np.rot90 turns counter-clockwise; the crop turned by `quarters` x 90 degrees sees the upright person
            got = readings[0, quarters]
            np.testing.assert_allclose(got[:, 2], want[:, 2], atol=1e-4)
            np.testing.assert_allclose(got[:, :2], turn_points(want[:, :2], quarters, w, h), atol=0.05)


def test_upright_test_finds_turned_people_and_keeps_upright_ones(model, adults: Path, tmp_path: Path) -> None:
    gt = load_ground_truth(adults)
    images = adults.parent.parent / "images"
    base = evaluate_model(model, gt, images).stats["AP"]
    kept = evaluate_model(model, gt, images, upright_test=True).stats["AP"]
    assert kept > base - 0.05  # upright people: the quarter turns rarely win
    # every image turned by a half turn, boxes and keypoints with it
    data = json.loads(adults.read_text())
    out = tmp_path / "images"
    out.mkdir()
    sizes = {}
    for im in data["images"]:
        image = read_image(images / im["file_name"])
        sizes[im["id"]] = image.shape[1], image.shape[0]
        import cv2

        cv2.imwrite(str(out / im["file_name"]), cv2.cvtColor(turn_image(image, 2), cv2.COLOR_RGB2BGR))
    for ann in data["annotations"]:
        w, h = sizes[ann["image_id"]]
        kp = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        kp[:, :2] = turn_points(kp[:, :2], 2, w, h)
        ann["keypoints"] = kp.ravel().tolist()
        ann["bbox"] = turn_box(np.array(ann["bbox"]), 2, w, h).tolist()
    turned_ann = tmp_path / "turned.json"
    turned_ann.write_text(json.dumps(data))
    turned = load_ground_truth(turned_ann)
    upside_down = evaluate_model(model, turned, out).stats["AP"]
    found = evaluate_model(model, turned, out, upright_test=True).stats["AP"]
    print(f"AP upright {base:.3f} with test {kept:.3f}; upside down {upside_down:.3f} with test {found:.3f}")
    assert upside_down < base - 0.2  # the adult model cannot read people upside down
    assert found > base - 0.1 and found > upside_down + 0.2


def test_eval_and_compare_take_upright_test(model, adults: Path, tmp_path: Path, capsys) -> None:
    from poseadapt.cli.main import main

    images = adults.parent.parent / "images"
    want = evaluate_model(model, load_ground_truth(adults), images, upright_test=True).stats["AP"]
    for argv in (
        ["eval", "--checkpoint", "builtin:synthpose-vit-tiny", "--ann", str(adults), "--images", str(images)],
        ["compare", "--model", "fm=builtin:synthpose-vit-tiny", "--test", f"adults={adults}:{images}", "--out",
         str(tmp_path / "cmp"), "--bootstrap", "10"],
    ):  # fmt: skip
        with pytest.raises(SystemExit) as info:
            main([*argv, "--upright-test", "--json"])
        assert info.value.code in (0, None)
        out = json.loads(capsys.readouterr().out)
        got = out["AP"] if argv[0] == "eval" else out["results"][0]["AP"]
        assert got == pytest.approx(want, abs=1e-9)
        if argv[0] == "compare":
            assert out["tests"][0]["upright_test"] is True
