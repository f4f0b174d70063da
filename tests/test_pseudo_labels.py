"""`poseadapt pseudo-label`: a model's keypoints on unlabelled boxes as a COCO file that trains; bad input is one
line and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from poseadapt.cli.main import main
from poseadapt.data.coco import load_coco_keypoints
from poseadapt.synth import write_dataset


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return int(info.value.code or 0)


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Six rendered infants whose keypoints are stripped: boxes only."""
    root = tmp_path_factory.mktemp("unl")
    files = write_dataset(root, "infant", view="top", n=6, size=128, seed=2, schemas=["coco17"])
    data = json.loads(files.annotations["coco17"].read_text())
    for ann in data["annotations"]:
        ann.pop("keypoints"), ann.pop("num_keypoints", None)
    boxes = root / "boxes.json"
    boxes.write_text(json.dumps(data))
    return files.annotations["coco17"], boxes


def test_pseudo_labels_are_the_models_confident_keypoints_and_train(
    unlabelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_recipe: dict, cli_train
) -> None:
    labelled, boxes = unlabelled
    images = labelled.parent.parent / "images"
    out = tmp_path / "pseudo.json"
    args = ["pseudo-label", "--checkpoint", "builtin:synthpose-vit-tiny", "--ann", str(boxes), "--images", str(images),
            "--out", str(out), "--min-score", "0.3", "--json"]  # fmt: skip
    assert run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    pseudo = load_coco_keypoints(out, "coco17")  # a valid COCO keypoint file in the model's schema
    assert summary["people"] == len(pseudo.keypoints) == 6
    # the same pipeline as `eval`: its predictions, where they score >= 0.3, are the labels
    preds_file = tmp_path / "preds.json"
    assert run(["eval", "--checkpoint", "builtin:synthpose-vit-tiny", "--ann", str(labelled), "--images",
                str(images), "--out", str(preds_file), "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    preds = {p["image_id"]: np.array(p["keypoints"]).reshape(-1, 3) for p in json.loads(preds_file.read_text())}
    raw = json.loads(out.read_text())
    for ann in raw["annotations"]:
        kp, pred = np.array(ann["keypoints"]).reshape(-1, 3), preds[ann["image_id"]]
        sure = pred[:, 2] >= 0.3 + 1e-3  # away from the threshold (results files round scores)
        assert (kp[sure, 2] == 2).all()
        np.testing.assert_allclose(kp[sure, :2], pred[sure, :2], atol=0.02)
        assert (kp[pred[:, 2] < 0.3 - 1e-3] == 0).all()
    assert 0 < summary["share_kept"] < 1
    # the file trains as it is
    tiny_recipe["data"]["train"] = {"ann": str(out), "images": str(images)}
    cli_train(tiny_recipe, tmp_path / "run")
    assert (tmp_path / "run" / "final.safetensors").is_file()


def test_bad_boxes_are_one_line_and_write_nothing(
    unlabelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labelled, boxes = unlabelled
    images = labelled.parent.parent / "images"
    data = json.loads(boxes.read_text())
    data["annotations"][1]["bbox"] = [10, 10, 0, 20]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    out = tmp_path / "pseudo.json"
    for ann, message in ((bad, "positive width and height"), (tmp_path / "missing.json", "file not found")):
        args = ["pseudo-label", "--checkpoint", "builtin:synthpose-vit-tiny", "--ann", str(ann), "--images",
                str(images), "--out", str(out)]  # fmt: skip
        assert run(args) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not out.exists()
