"""Bad input found by an audit of every command: one `error:` line, exit code 2, no traceback, nothing written.

Each case would once have ended in a Python traceback (or exit 0). They run in-process and fail before any model
is loaded or any image read, so the checkpoints and images they name need not exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from poseadapt.cli.main import main as cli_main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        cli_main(argv)
    return int(done.value.code or 0), capsys.readouterr().err


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _files(tmp: Path) -> dict[str, Path]:
    """A clean annotation file, a plain file to stand in the way of an output, and a folder named like a file."""
    ann = tmp / "ann.json"
    ann.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    (tmp / "a_file").write_text("x")
    (tmp / "a_folder.json").mkdir()
    (tmp / "a_folder.safetensors").mkdir()
    (tmp / "images").mkdir()
    return {"ann": ann, "file": tmp / "a_file", "dir": tmp / "a_folder.json", "images": tmp / "images"}


# --------------------------------------------------------------------------------- output paths that cannot be written
# (argv from the files, what the message must say); `F` is a plain file, so `F/x` cannot be created
OUTPUTS: dict[str, tuple[Callable[[dict[str, Path]], list[str]], str]] = {
    "check --preview under a file": (
        lambda f: ["check", "--ann", str(f["ann"]), "--images", str(f["images"]), "--preview", f"{f['file']}/p.png"],
        "is a file, not a folder",
    ),
    "check --preview is a folder": (
        lambda f: ["check", "--ann", str(f["ann"]), "--images", str(f["images"]), "--preview", str(f["dir"])],
        "is a folder, expected a file name",
    ),
    "predict --out is a file": (
        lambda f: ["predict", str(f["images"]), "--checkpoint", "none.safetensors", "--out", str(f["file"])],
        "a file is in the way, expected a folder",
    ),
    "eval --out is a folder": (
        lambda f: ["eval", "--checkpoint", "none.safetensors", "--ann", str(f["ann"]), "--images", str(f["images"]),
                   "--out", str(f["dir"])],
        "is a folder, expected a file name",
    ),
    "pseudo-label --out under a file": (
        lambda f: ["pseudo-label", "--checkpoint", "none.safetensors", "--ann", str(f["ann"]), "--images",
                   str(f["images"]), "--out", f"{f['file']}/labels.json"],
        "is a file, not a folder",
    ),
    "self-train --out is a file": (
        lambda f: ["self-train", "synth-infant-mean-teacher", "--unlabelled", str(f["ann"]), "--images",
                   str(f["images"]), "--out", str(f["file"])],
        "a file is in the way, expected a folder",
    ),
    "export onnx --out is a folder": (
        lambda f: ["export", "onnx", "--checkpoint", "none.safetensors", "--out", str(f["dir"])],
        "is a folder, expected a file name",
    ),
    "import --out under a file": (
        lambda f: ["import", "vitpose", "none.pth", "--out", f"{f['file']}/c.safetensors"],
        "is a file, not a folder",
    ),
    "sigmas --out is a folder": (
        lambda f: ["sigmas", str(f["ann"]), "--out", str(f["dir"])],
        "is a folder, expected a file name",
    ),
    "prior fit --out is a folder": (
        lambda f: ["prior", "fit", str(f["ann"]), "--out", str(f["dir"].with_suffix(".safetensors"))],
        "is a folder, expected a file name",
    ),
    "split --out is a file": (
        lambda f: ["split", str(f["ann"]), "--out", str(f["file"])],
        "a file is in the way, expected a folder",
    ),
    "compare --out under a file": (
        lambda f: ["compare", "--model", f"m=t:{f['ann']}", "--test", f"t={f['ann']}", "--out", f"{f['file']}/c"],
        "is a file, not a folder",
    ),
    "demo --out under a file": (lambda f: ["demo", "--out", f"{f['file']}/d"], "is a file, not a folder"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(OUTPUTS), ids=list(OUTPUTS))
def test_an_output_path_that_cannot_be_written_is_one_line(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build, phrase = OUTPUTS[case]
    files = _files(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, err = run(build(files), capsys)
    assert_one_line(code, err, "--", phrase)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing half-written, no temporary left


def test_train_out_under_a_file_is_one_line_before_training(
    tmp_path: Path, tiny_recipe: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a_file").write_text("x")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe))
    code, err = run(["train", str(recipe), "--out", str(tmp_path / "a_file" / "run")], capsys)
    assert_one_line(code, err, "--out", "a_file is a file, not a folder")


def test_predict_min_score_must_be_a_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["predict", str(tmp_path), "--checkpoint", "none.safetensors", "--out", str(tmp_path / "o")]
    code, err = run([*argv, "--min-score", "nan"], capsys)
    assert_one_line(code, err, "--min-score must be a number, got nan")
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------- JSON inputs that are folders
def test_predict_boxes_and_ann_that_are_folders_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    files = _files(tmp_path)
    cv2.imwrite(str(files["images"] / "a.png"), np.zeros((8, 8, 3), np.uint8))
    base = ["predict", str(files["images"]), "--checkpoint", "none.safetensors", "--out", str(tmp_path / "o")]
    code, err = run([*base, "--boxes", str(files["dir"])], capsys)
    assert_one_line(code, err, "boxes file", "is a directory, expected a JSON file")
    code, err = run([*base, "--ann", str(files["dir"])], capsys)
    assert_one_line(code, err, "annotation file", "is a directory, expected a JSON file")


def test_detections_that_are_a_folder_are_one_line(tmp_path: Path) -> None:
    from poseadapt.errors import DataError
    from poseadapt.evaluate.topdown import detection_people

    with pytest.raises(DataError, match="^detections file .* is a directory, expected a JSON file$"):
        detection_people(tmp_path)
    (tmp_path / "d.json").write_text('[{"image_id": 1,\n "bbox": }]')
    with pytest.raises(DataError, match="is not valid JSON: .* at line 2, column"):
        detection_people(tmp_path / "d.json")


def test_sigmas_on_a_list_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "preds.json").write_text("[1, 2]")
    code, err = run(["sigmas", str(tmp_path / "preds.json"), "--out", str(tmp_path / "s.yaml")], capsys)
    assert_one_line(code, err, "got a list (is this a predictions file?)")
    assert not (tmp_path / "s.yaml").exists()


@pytest.mark.parametrize("ratios", ["nan,0.1,0.1", "0.8,inf,0.1"])
def test_split_ratios_must_be_finite(tmp_path: Path, ratios: str, capsys: pytest.CaptureFixture[str]) -> None:
    ann, _ = _coco_with_images(tmp_path)
    code, err = run(["split", str(ann), "--out", str(tmp_path / "sp"), "--ratios", ratios], capsys)
    assert_one_line(code, err, "--ratios expects three shares")
    assert not (tmp_path / "sp").exists()


def test_synth_rejected_option_leaves_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "data"
    code, err = run(["synth", "--n", "2", "--size", "64", "--out", str(out), "--format", "gif"], capsys)
    assert_one_line(code, err, "image format must be jpg or png")
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()  # a folder the user made stays
    code, err = run(["synth", "--n", "0", "--out", str(tmp_path / "mine")], capsys)
    assert_one_line(code, err, "n must be >= 1")
    assert (tmp_path / "mine").is_dir()


# --------------------------------------------------------------------------------- images: up front, one line
def _coco_with_images(tmp: Path, n: int = 2) -> tuple[Path, Path]:
    from poseadapt.schemas import get_schema

    root = tmp / "images"
    root.mkdir(exist_ok=True)
    images, anns = [], []
    for i in range(1, n + 1):
        cv2.imwrite(str(root / f"{i}.png"), np.full((64, 48, 3), 90, np.uint8))
        images.append({"id": i, "file_name": f"{i}.png", "width": 48, "height": 64})
        anns.append({"id": i, "image_id": i, "category_id": 1, "keypoints": [20, 30, 2] * 17, "num_keypoints": 17,
                     "bbox": [4, 4, 40, 56], "area": 2240, "iscrowd": 0})  # fmt: skip
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(get_schema("coco17").keypoints)}]}  # fmt: skip
    ann = tmp / "ann.json"
    ann.write_text(json.dumps(coco))
    return ann, root


def test_check_decode_of_a_cut_off_png_is_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """OpenCV's own "PNG input buffer is incomplete" warning no longer joins the error line on stderr."""
    ann, root = _coco_with_images(tmp_path)
    png = root / "2.png"
    png.write_bytes(png.read_bytes()[: len(png.read_bytes()) // 2])
    with pytest.raises(SystemExit) as done:
        cli_main(["check", "--ann", str(ann), "--images", str(root), "--decode"])
    assert_one_line(int(done.value.code or 0), capfd.readouterr().err, "image 2: cannot decode")


def test_missing_images_are_one_line_before_any_prediction(tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    from poseadapt.data.coco import load_coco_keypoints
    from poseadapt.errors import DataError
    from poseadapt.evaluate.topdown import image_reader, read_image

    ann, root = _coco_with_images(tmp_path, n=3)
    (root / "2.png").unlink()
    gt = load_coco_keypoints(ann)
    with pytest.raises(DataError, match=r"ann.json: 2 of 3 images found in .*; first missing: 2.png$"):
        image_reader(root, gt, gt.image_ids)
    assert image_reader(root, gt, [1, 3])(3).shape == (64, 48, 3)  # only the images a run reads must be there
    with pytest.raises(DataError, match=r"cannot read image .*2.png \(no such file\)$"):
        read_image(root / "2.png")
    assert "WARN" not in capfd.readouterr().err  # OpenCV is not asked to open a file that is not there


def test_pseudo_label_boxes_file_without_file_name_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    ann, root = _coco_with_images(tmp_path)
    coco = json.loads(ann.read_text())
    del coco["images"][1]["file_name"]
    ann.write_text(json.dumps(coco))
    argv = ["pseudo-label", "--checkpoint", "none.safetensors", "--ann", str(ann), "--images", str(root)]
    code, err = run([*argv, "--out", str(tmp_path / "labels.json")], capsys)
    assert_one_line(code, err, "images[1] needs an integer 'id' and a 'file_name'")


def test_pseudo_label_missing_images_fail_before_labelling(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from poseadapt.errors import DataError
    from poseadapt.evaluate.pseudo_labels import pseudo_label_file, read_boxes_file
    from poseadapt.schemas import get_schema

    ann, root = _coco_with_images(tmp_path, n=3)
    (root / "3.png").unlink()
    model = SimpleNamespace(schemas=[get_schema("coco17")])  # never called: the check comes first
    with pytest.raises(DataError, match=r"2 of 3 images found in .*; first missing: 3.png$"):
        pseudo_label_file(model, read_boxes_file(ann), root)


# --------------------------------------------------------------------------------- split: keypoint counts
def test_split_rejects_a_keypoint_list_of_the_wrong_length(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    ann, _ = _coco_with_images(tmp_path, n=3)
    coco = json.loads(ann.read_text())
    coco["annotations"][1]["keypoints"] = [20, 30, 2] * 16  # 48 values for 17 keypoints
    ann.write_text(json.dumps(coco))
    code, err = run(["split", str(ann), "--out", str(tmp_path / "sp")], capsys)
    assert_one_line(
        code, err, "1 problem: annotation 2 (image 2): 'keypoints' has 48 values, expected 51 (3 x 17 keypoints "
        "of category 1 'person')",
    )  # fmt: skip
    assert not (tmp_path / "sp").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("20 30 2", "'keypoints' must be a list of numbers, got str"),
        ({"x": 1}, "'keypoints' must be a list of numbers, got dict"),
        ([20, "30", 2] * 17, "'keypoints' must hold finite numbers, got '30'"),
        ([20, 30, True] * 17, "'keypoints' must hold finite numbers, got True"),
        ([20, 30, 2] * 16 + [float("nan"), 1, 2], "'keypoints' must hold finite numbers, got nan"),
    ],
)
def test_split_rejects_keypoints_that_are_not_a_list_of_numbers(
    tmp_path: Path, value: object, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ann, _ = _coco_with_images(tmp_path, n=3)
    coco = json.loads(ann.read_text())
    coco["annotations"][1]["keypoints"] = value
    ann.write_text(json.dumps(coco))
    code, err = run(["split", str(ann), "--out", str(tmp_path / "sp")], capsys)
    assert_one_line(code, err, f"1 problem: annotation 2 (image 2): {message}")
    assert not (tmp_path / "sp").exists()


def test_split_leaves_files_without_keypoint_names_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No schema needed: boxes-only annotations, and a category that lists no keypoints, are split as they are."""
    coco = {"images": [{"id": i, "file_name": f"{i}.png"} for i in (1, 2, 3)],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4]},
                            {"id": 2, "image_id": 2, "category_id": 2, "keypoints": [1, 2, 2]}],
            "categories": [{"id": 1, "name": "person", "keypoints": ["nose", "neck"]},
                           {"id": 2, "name": "dog"}]}  # fmt: skip
    ann = tmp_path / "boxes.json"
    ann.write_text(json.dumps(coco))
    code, err = run(["split", str(ann), "--out", str(tmp_path / "sp"), "--ratios", "1,1,1"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "sp").iterdir()) == [f"boxes_{s}.json" for s in ("test", "train", "val")]


# --------------------------------------------------------------------------------- wording: a folder, not a file
def test_a_folder_given_for_a_file_is_called_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ann, root = _coco_with_images(tmp_path)
    folder = tmp_path / "a_folder"
    folder.mkdir()
    code, err = run(["score", "--gt", str(ann), "--pred", str(ann), "--schema", str(folder)], capsys)
    assert_one_line(code, err, f"schema {folder} is a folder, expected a schema YAML file")
    argv = ["predict", str(root), "--checkpoint", str(folder), "--out", str(tmp_path / "o")]
    code, err = run(argv, capsys)
    assert_one_line(code, err, f"checkpoint {folder} is a folder, expected a poseadapt checkpoint file (.safetensors)")
    code, err = run(["import", "vitpose", str(folder), "--out", str(tmp_path / "c.safetensors")], capsys)
    assert_one_line(code, err, f"ViTPose checkpoint {folder} is a folder, expected a checkpoint file (.pth / ")
    argv = ["compare", "--model", f"m={folder}", "--test", f"t={ann}", "--out", str(tmp_path / "cmp")]
    code, err = run(argv, capsys)
    assert_one_line(code, err, f"model 'm': checkpoint {folder} is a folder, expected a poseadapt checkpoint file")
    assert not (tmp_path / "o").exists() and not (tmp_path / "c.safetensors").exists()


@pytest.mark.parametrize(("content", "what"), [(b'{"a": 1}', "JSON text"), (b"hello\n", "plain text"),
                                               (b"", "an empty file")])  # fmt: skip
def test_import_of_a_file_that_is_no_checkpoint_says_so_first(
    tmp_path: Path, content: bytes, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked by its first bytes before any unpickling ("hello" once reached the unpickler: a KeyError traceback)."""
    src = tmp_path / "x.json"
    src.write_bytes(content)
    code, err = run(["import", "vitpose", str(src), "--out", str(tmp_path / "c.safetensors")], capsys)
    assert_one_line(
        code, err, f"error: {src} is not a ViTPose checkpoint poseadapt can read (.pth / .safetensors): it is {what}, "
        "not a PyTorch zip archive or pickle; refusing to unpickle it",
    )  # fmt: skip
    assert not (tmp_path / "c.safetensors").exists()


def test_a_safetensors_file_named_pth_is_read_as_safetensors(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from poseadapt.interop.safe_load import load_state_dict_file

    save_file({"w": torch.ones(2)}, str(tmp_path / "w.pth"))
    tensors, extra = load_state_dict_file(tmp_path / "w.pth", "ViTPose checkpoint")
    assert torch.equal(tensors["w"], torch.ones(2)) and extra == {}


def test_pseudo_label_calls_ann_the_annotation_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _files(tmp_path)
    argv = ["pseudo-label", "--checkpoint", "none.safetensors", "--ann", str(files["dir"]), "--images",
            str(files["images"]), "--out", str(tmp_path / "labels.json")]  # fmt: skip
    code, err = run(argv, capsys)
    assert_one_line(code, err, f"annotation file {files['dir']} is a directory, expected a JSON file")
    assert "boxes file" not in err


# --------------------------------------------------------------------------------- score: nothing to score against
@pytest.mark.parametrize("metric", ["ap", "pck"])
@pytest.mark.parametrize("people", ["none", "unlabelled"])
def test_score_warns_when_the_ground_truth_has_no_keypoints(
    tmp_path: Path, metric: str, people: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0 and pycocotools' -1 ("-") stay; one `warning:` line on stderr says why every number is undefined."""
    ann, _ = _coco_with_images(tmp_path)
    coco = json.loads(ann.read_text())
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([{"image_id": 1, "category_id": 1, "keypoints": [20, 30, 1] * 17, "score": 0.9}]))
    code, err = run(["score", "--gt", str(ann), "--pred", str(pred), "--metric", metric], capsys)
    assert code == 0 and err == "", err  # a ground truth with people: no warning
    if people == "none":
        coco["annotations"] = []
    else:
        for a in coco["annotations"]:
            a.update(keypoints=[0] * 51, num_keypoints=0)
    ann.write_text(json.dumps(coco))
    code, err = run(["score", "--gt", str(ann), "--pred", str(pred), "--metric", metric, "--json"], capsys)
    undefined = "every metric is" if metric == "ap" else "PCK is"
    assert code == 0
    assert err == f"warning: the ground truth has no keypoint annotations; {undefined} undefined\n"
