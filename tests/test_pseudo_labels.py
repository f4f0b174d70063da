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


def test_invert_images_reads_as_the_model_reads_inverted_copies(
    unlabelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--invert-images` (eval, pseudo-label) gives what the model gives on copies with every pixel 255 - value.

    Crops reaching past the image are padded black before the inversion, so the flag reads that padding white; the
    copies sit on a white canvas (inverted black) wide enough for every crop, shifted by OFFSET pixels."""
    import cv2

    offset = 256
    labelled, boxes = unlabelled
    images = labelled.parent.parent / "images"
    copies = tmp_path / "inverted"
    copies.mkdir()
    renamed = {}
    for image in sorted(images.iterdir()):  # PNG: lossless, so both readings see the same pixels
        pixels = 255 - cv2.imread(str(image))
        canvas = np.full((pixels.shape[0] + 2 * offset, pixels.shape[1] + 2 * offset, 3), 255, np.uint8)
        canvas[offset : offset + pixels.shape[0], offset : offset + pixels.shape[1]] = pixels
        cv2.imwrite(str(copies / f"{image.stem}.png"), canvas)
        renamed[image.name] = f"{image.stem}.png"
    for src, name in ((labelled, "gt.json"), (boxes, "boxes.json")):
        data = json.loads(src.read_text())
        for im in data["images"]:
            im["file_name"] = renamed[Path(im["file_name"]).name]
            im["width"], im["height"] = im["width"] + 2 * offset, im["height"] + 2 * offset
        for ann in data["annotations"]:
            ann["bbox"][:2] = [ann["bbox"][0] + offset, ann["bbox"][1] + offset]
            if "keypoints" in ann:
                kp = np.array(ann["keypoints"], float).reshape(-1, 3)
                kp[:, :2] += offset * (kp[:, 2:] > 0)
                ann["keypoints"] = kp.ravel().tolist()
            ann.pop("segmentation", None)
        (tmp_path / name).write_text(json.dumps(data))
    model = ["--checkpoint", "builtin:synthpose-vit-tiny"]
    reads = {}
    for how, folder, gt, ann, extra in (
        ("flag", images, labelled, boxes, ["--invert-images"]),
        ("copies", copies, tmp_path / "gt.json", tmp_path / "boxes.json", []),
    ):
        preds_file, labels_file = tmp_path / f"{how}.json", tmp_path / f"{how}_pseudo.json"
        assert run(["eval", *model, "--ann", str(gt), "--images", str(folder), "--out", str(preds_file), "--json",
                    *extra]) == 0  # fmt: skip
        ap = json.loads(capsys.readouterr().out)["AP"]
        assert run(["pseudo-label", *model, "--ann", str(ann), "--images", str(folder), "--out", str(labels_file),
                    "--json", *extra]) == 0  # fmt: skip
        capsys.readouterr()
        preds = sorted(json.loads(preds_file.read_text()), key=lambda p: p["image_id"])
        labels = sorted(json.loads(labels_file.read_text())["annotations"], key=lambda a: a["image_id"])
        shift = np.array([0, 0, 0] if how == "flag" else [offset, offset, 0], float)
        pred_xy = np.array([p["keypoints"] for p in preds]).reshape(len(preds), -1, 3) - shift
        label_xy = np.array([a["keypoints"] for a in labels], float).reshape(len(labels), -1, 3)
        label_xy[..., :2] -= shift[:2] * (label_xy[..., 2:] > 0)
        reads[how] = ap, pred_xy, label_xy
    (ap_flag, pred_flag, label_flag), (ap_copies, pred_copies, label_copies) = reads["flag"], reads["copies"]
    assert ap_flag == pytest.approx(ap_copies, abs=1e-6)
    np.testing.assert_allclose(pred_flag, pred_copies, atol=1e-2)
    np.testing.assert_allclose(label_flag, label_copies, atol=1e-2)
    # and it is not a no-op: the model reads the images as they are differently
    assert run(["eval", *model, "--ann", str(labelled), "--images", str(images), "--out", str(tmp_path / "plain.json"),
                "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    plain = sorted(json.loads((tmp_path / "plain.json").read_text()), key=lambda p: p["image_id"])
    assert np.abs(np.array([p["keypoints"] for p in plain]).reshape(pred_flag.shape) - pred_flag).max() > 1.0
    # compare: the named model reads inverted, the other as its checkpoint does, in one table
    models = ["--model", "plain=builtin:synthpose-vit-tiny", "--model", "inv=builtin:synthpose-vit-tiny"]
    tests = ["--test", f"filmed={labelled}:{images}", "--test", f"copies={tmp_path / 'gt.json'}:{copies}"]
    assert run(["compare", *models, *tests, "--invert-images", "inv", "--out", str(tmp_path / "cmp"),
                "--bootstrap", "10", "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    ap = {(r["model"], r["test"]): r["AP"] for r in summary["results"]}
    assert ap[("inv", "filmed")] == pytest.approx(ap_flag, abs=1e-6)
    assert ap[("plain", "copies")] == pytest.approx(ap_copies, abs=1e-6)
    assert [m["reads_inverted"] for m in summary["models"]] == [False, True]
    assert run(["compare", *models, *tests, "--invert-images", "nope", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "--invert-images names a model that is not a checkpoint --model: nope" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_min_score_takes_any_number_and_warns_when_it_keeps_nothing(
    unlabelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labelled, boxes = unlabelled
    images = labelled.parent.parent / "images"
    args = ["pseudo-label", "--checkpoint", "builtin:synthpose-vit-tiny", "--ann", str(boxes), "--images",
            str(images)]  # fmt: skip
    assert run([*args, "--out", str(tmp_path / "none.json"), "--min-score", "1e9"]) == 0
    err = capsys.readouterr().err
    assert "warning: no keypoint scored >= 1000000000.0" in err and "Traceback" not in err
    assert all(a["num_keypoints"] == 0 for a in json.loads((tmp_path / "none.json").read_text())["annotations"])
    assert run([*args, "--out", str(tmp_path / "all.json"), "--min-score", "-1"]) == 0
    assert "warning" not in capsys.readouterr().err
    kept = [a["num_keypoints"] for a in json.loads((tmp_path / "all.json").read_text())["annotations"]]
    assert kept == [17] * 6
    assert run([*args, "--out", str(tmp_path / "nan.json"), "--min-score", "nan"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --min-score must be a number, got nan" and not (tmp_path / "nan.json").exists()


def test_debias_moves_the_labels_carried_proportions_and_reports_them(
    unlabelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--debias-source/--debias-target`: the same labels as without, but for the axial pairs the report says it
    moved, whose median ratio then sits at the target's; one of the two options alone is one line."""
    from poseadapt.evaluate.proportions import axial_pairs, axial_ratios

    labelled, boxes = unlabelled
    images = labelled.parent.parent / "images"
    adults = write_dataset(tmp_path / "adults", "adult", view="top", n=20, size=96, seed=5, schemas=["coco17"])
    source = adults.annotations["coco17"]
    args = ["pseudo-label", "--checkpoint", "builtin:synthpose-vit-tiny", "--ann", str(boxes), "--images",
            str(images), "--min-score", "-1", "--json"]  # fmt: skip
    assert run([*args, "--out", str(tmp_path / "plain.json")]) == 0
    capsys.readouterr()
    debias = ["--debias-source", str(source), "--debias-target", str(labelled)]
    assert run([*args, "--out", str(tmp_path / "debiased.json"), *debias]) == 0
    report = json.loads(capsys.readouterr().out)["debias"]
    assert list(report) == ["ear", "shoulder", "hip", "knee"]
    moved = [part for part, seg in report.items() if seg["corrected"]]
    assert moved  # the built-in adult model's infant labels carry some adult proportion
    plain, fixed = (load_coco_keypoints(tmp_path / f, "coco17").keypoints for f in ("plain.json", "debiased.json"))
    names = json.loads(labelled.read_text())["categories"][0]["keypoints"]
    pairs = axial_pairs(names)  # tests/test_proportions.py checks it
    touched = sorted(i for p, li, ri in pairs if p in moved for i in (li, ri))
    untouched = [i for i in range(17) if i not in touched]
    np.testing.assert_array_equal(fixed[:, untouched], plain[:, untouched])
    assert np.abs(fixed[:, touched, :2] - plain[:, touched, :2]).max() > 0.1
    ratios = axial_ratios(plain, pairs)  # the report's "labels": the medians before any move
    assert [seg["labels"] for seg in report.values()] == pytest.approx(np.median(ratios, axis=0), abs=1e-4)
    for alone, missing in ((debias[:2], "--debias-target"), (debias[2:], "--debias-source")):
        assert run([*args, "--out", str(tmp_path / "alone.json"), *alone]) == 2
        err = capsys.readouterr().err
        assert f"needs {missing} too" in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "alone.json").exists()


def test_share_thresholds_keep_each_types_most_confident_share() -> None:
    from poseadapt.evaluate.pseudo_labels import share_thresholds

    scores = np.array([[0.9, 0.1, np.nan], [0.8, 0.2, np.nan], [0.7, 0.3, np.nan], [0.6, np.nan, np.nan]])
    # column 0: 4 readings, half -> the 2nd best; column 1: 3 readings, ceil(1.5) = 2 -> the 2nd best; none -> inf
    np.testing.assert_array_equal(share_thresholds(scores, 0.5), [0.8, 0.2, np.inf])
    np.testing.assert_array_equal(share_thresholds(scores, 1.0), [0.6, 0.1, np.inf])
    np.testing.assert_array_equal(share_thresholds(scores, 0.01), [0.9, 0.3, np.inf])
    for bad in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="share must be in"):
            share_thresholds(scores, bad)


def test_keep_share_labels_each_keypoint_on_its_most_confident_people(
    unlabelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--keep-share 0.5` on 6 people: every keypoint type labelled on its 3 highest-scoring people (by `eval`'s
    scores of the same readings), on top of `--min-score`; a share of 1 changes nothing; bad shares are one line."""
    labelled, boxes = unlabelled
    images = labelled.parent.parent / "images"
    args = ["pseudo-label", "--checkpoint", "builtin:synthpose-vit-tiny", "--ann", str(boxes), "--images",
            str(images), "--json"]  # fmt: skip
    assert run([*args, "--out", str(tmp_path / "half.json"), "--min-score", "-1", "--keep-share", "0.5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["keep_share"] == 0.5 and summary["share_kept"] == pytest.approx(0.5)
    preds_file = tmp_path / "preds.json"
    assert run(["eval", "--checkpoint", "builtin:synthpose-vit-tiny", "--ann", str(labelled), "--images",
                str(images), "--out", str(preds_file), "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    preds = {p["image_id"]: np.array(p["keypoints"]).reshape(-1, 3) for p in json.loads(preds_file.read_text())}
    raw = json.loads((tmp_path / "half.json").read_text())["annotations"]
    scores = np.stack([preds[a["image_id"]][:, 2] for a in raw])  # (6, 17)
    kept = np.stack([np.array(a["keypoints"]).reshape(-1, 3)[:, 2] == 2 for a in raw])
    assert (kept.sum(axis=0) == 3).all()
    top3 = np.argsort(-scores, axis=0)[:3]
    for k in range(17):
        assert set(np.flatnonzero(kept[:, k])) == set(top3[:, k]), k
    thresholds = np.array(list(summary["share_thresholds"].values()))
    np.testing.assert_allclose(thresholds, np.sort(scores, axis=0)[-3], atol=2e-3)  # eval rounds its scores
    # on top of --min-score: a type below it stays unlabelled; a share of 1 is the plain labels
    assert run([*args, "--out", str(tmp_path / "both.json"), "--min-score", "0.3", "--keep-share", "0.5"]) == 0
    capsys.readouterr()
    both = load_coco_keypoints(tmp_path / "both.json", "coco17").keypoints[..., 2] > 0
    np.testing.assert_array_equal(both, kept & (scores >= 0.3))
    assert run([*args, "--out", str(tmp_path / "one.json"), "--min-score", "0.3", "--keep-share", "1"]) == 0
    assert run([*args, "--out", str(tmp_path / "plain.json"), "--min-score", "0.3"]) == 0
    capsys.readouterr()
    one, plain = (json.loads((tmp_path / f).read_text())["annotations"] for f in ("one.json", "plain.json"))
    assert one == plain
    for bad in ("0", "1.5", "nan"):
        assert run([*args, "--out", str(tmp_path / "bad.json"), "--keep-share", bad]) == 2
        err = capsys.readouterr().err
        assert err.strip() == f"error: --keep-share must be a share of people in (0, 1], got {float(bad)}"
        assert not (tmp_path / "bad.json").exists()
