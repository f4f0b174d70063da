"""The bugs a new user with their own data hit (issue 14), each pinned by a test: checkpoint vs explicit model
settings, predict's image ids, a wrong image folder, offline hub ids, the schema-file advice, flip pairs from
L_/R_ names, a schedule that does not fit the run, and training output a person can follow."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from poseadapt.cli.main import main as cli_main
from poseadapt.errors import PoseAdaptError
from poseadapt.schemas import get_schema
from poseadapt.schemas.schema import KeypointSchema, derive_flip_pairs, unpaired_side_names

TINY = {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "simple"}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli_main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 rendered adults on disk (COCO file + images)."""
    from poseadapt.cli import synth_cmd

    root = tmp_path_factory.mktemp("own")
    synth_cmd.run("adult", "random", 6, 96, root / "d", 1, ["coco17"], "1", None, "jpg", 1, False, True)
    return root / "d"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from poseadapt.interop.checkpoint import save_checkpoint
    from poseadapt.models import create_model

    path = tmp_path_factory.mktemp("ck") / "tiny.safetensors"
    return save_checkpoint(create_model("vit_tiny", "coco17", "simple", img_size=(64, 48)), path)


def recipe(data: Path, **model: Any) -> dict[str, Any]:
    ann = str(data / "annotations" / "adult_coco17.json")
    return {
        "model": {**TINY, **model},
        "data": {"train": {"ann": ann, "images": str(data / "images")}},
        "optim": {"lr": 1e-3, "weight_decay": 0.0},
        "schedule": {"epochs": 1, "warmup_iters": 0, "policy": "constant"},
        "train": {"batch_size": 2, "workers": 0, "device": "cpu", "progress": False, "tensorboard": False,
                  "val_interval": 0, "ema": None, "log_interval": 1},
    }  # fmt: skip


def write(tmp_path: Path, r: dict[str, Any], name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(r))
    return path


# ---------------------------------------------------------------------------------------------- model settings
def test_model_name_and_head_contradicting_the_checkpoint_warn_and_recipe_yaml_records_the_truth(
    tmp_path: Path, data: Path, ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = recipe(data, checkpoint=str(ckpt))
    sets = ["--set", "model.name=vit_huge", "--set", "model.head=classic", "--set", "train.max_iters=1"]
    rc, _, err = run_cli(["train", str(write(tmp_path, r)), "--out", str(tmp_path / "run"), "--json", *sets], capsys)
    assert rc == 0, err
    assert "model.name': 'vit_huge' is ignored" in err and "'vit_tiny'" in err
    assert "model.head': 'classic' is ignored" in err and "'simple'" in err
    written = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert written["model"]["name"] == "vit_tiny" and written["model"]["head"] == "simple"


def test_default_model_name_with_a_checkpoint_records_the_checkpoint_arch_silently(
    tmp_path: Path, data: Path, ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = recipe(data, checkpoint=str(ckpt))
    del r["model"]["name"], r["model"]["head"]
    rc, _, err = run_cli(["train", str(write(tmp_path, r)), "--out", str(tmp_path / "run"), "--json"], capsys)
    assert rc == 0, err
    assert "ignored" not in err
    assert yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())["model"]["name"] == "vit_tiny"


# ---------------------------------------------------------------------------------------------- predict ids
def test_predict_with_ann_keeps_the_ground_truth_ids(
    tmp_path: Path, data: Path, ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = json.loads((data / "annotations" / "adult_coco17.json").read_text())
    for im in gt["images"]:  # ids unlike 1..N in file-name order
        im["id"] = 1000 - im["id"]
    for a in gt["annotations"]:
        a["image_id"] = 1000 - a["image_id"]
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(gt))
    args = ["predict", str(data / "images"), "--checkpoint", str(ckpt), "--no-flip"]
    rc, _, err = run_cli([*args, "--out", str(tmp_path / "p1"), "--ann", str(ann)], capsys)
    assert rc == 0, err
    rows = json.loads((tmp_path / "p1" / "results.json").read_text())
    by_name = {im["file_name"]: im["id"] for im in gt["images"]}
    assert rows and all(row["image_id"] == by_name[row["file_name"]] for row in rows)
    rc, _, err = run_cli([*args, "--out", str(tmp_path / "p2")], capsys)
    assert rc == 0 and "--ann" in err  # without it: a note that ids are 1..N by file name
    ann.write_text(json.dumps({**gt, "images": gt["images"][1:]}))
    rc, _, err = run_cli([*args, "--out", str(tmp_path / "p3"), "--ann", str(ann)], capsys)
    assert rc == 2 and "lists no image" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------- image folder
def test_a_wrong_image_folder_is_one_line_before_training(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = recipe(data)
    (tmp_path / "empty").mkdir()
    r["data"]["train"]["images"] = str(tmp_path / "empty")
    r["train"]["workers"] = 2
    rc, _, err = run_cli(["train", str(write(tmp_path, r)), "--out", str(tmp_path / "run")], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and "0 of 6 images found" in err and "data.train.0.images" in err
    assert not (tmp_path / "run" / "last.pt").exists()


# ---------------------------------------------------------------------------------------------- hub offline
def test_hf_hub_id_offline_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    rc, out, err = run_cli(["import", "hf", "nobody/no-such-model", "--out", str(tmp_path / "m.safetensors")], capsys)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "cannot fetch 'nobody/no-such-model'" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------- schema advice
def test_schema_advice_names_the_yaml_file(tmp_path: Path, data: Path) -> None:
    from poseadapt.train.build import build_trainer
    from poseadapt.train.recipe import recipe_from_dict

    coco = get_schema("coco17").to_dict()
    schema_file = tmp_path / "clinic17.yaml"
    schema_file.write_text(yaml.safe_dump({**coco, "name": "clinic17", "keypoints": [f"p{i}" for i in range(17)],
                                           "flip_pairs": [], "skeleton": [], "groups": {}}))  # fmt: skip
    gt = json.loads((data / "annotations" / "adult_coco17.json").read_text())
    gt["categories"][0]["keypoints"] = [f"p{i}" for i in range(17)]
    ann = tmp_path / "clinic.json"
    ann.write_text(json.dumps(gt))
    r = recipe(data)
    r["data"]["train"] = {"ann": str(ann), "images": str(data / "images"), "schema": str(schema_file)}
    with pytest.raises(PoseAdaptError) as exc:
        build_trainer(recipe_from_dict(r), tmp_path / "run")
    assert f"set model.schema to '{schema_file}'" in str(exc.value)


# ---------------------------------------------------------------------------------------------- flip pairs
def test_flip_pairs_from_capital_side_prefixes_and_other_spellings() -> None:
    names = ["head_top", "L_wrist", "R_wrist", "elbow_L", "elbow_R", "LeftKnee", "RightKnee", "LHip", "RHip"]
    pairs = set(derive_flip_pairs(names))
    assert pairs == {("L_wrist", "R_wrist"), ("elbow_L", "elbow_R"), ("LeftKnee", "RightKnee"), ("LHip", "RHip")}
    schema = KeypointSchema.from_dict({"name": "c", "keypoints": names, "sigmas": [0.05] * len(names)})
    assert set(schema.flip_pairs) == pairs and unpaired_side_names(schema) == []


def side_named_data(tmp_path: Path, data: Path) -> tuple[Path, Path]:
    """The rendered adults relabelled in a coco17 copy whose sides are L_/R_ and whose flip_pairs are empty."""
    names = [n.replace("left_", "L_").replace("right_", "R_") for n in get_schema("coco17").keypoints]
    coco = get_schema("coco17").to_dict()
    schema_file = tmp_path / "sides17.yaml"
    schema_file.write_text(yaml.safe_dump({**coco, "name": "sides17", "keypoints": names, "flip_pairs": [],
                                           "skeleton": [], "groups": {}}))  # fmt: skip
    gt = json.loads((data / "annotations" / "adult_coco17.json").read_text())
    gt["categories"][0]["keypoints"] = names
    ann = tmp_path / "sides.json"
    ann.write_text(json.dumps(gt))
    return schema_file, ann


def test_random_flip_refuses_a_schema_with_sides_but_no_flip_pairs(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema_file, ann = side_named_data(tmp_path, data)
    r = recipe(data, schema=str(schema_file))
    r["data"]["train"] = {"ann": str(ann), "images": str(data / "images"), "schema": str(schema_file)}  # flips
    rc, _, err = run_cli(["train", str(write(tmp_path, r)), "--out", str(tmp_path / "run")], capsys)
    assert rc != 0 and err.count("\n") == 1, err
    assert err.startswith("error:") and "random flip (on by default) needs flip pairs" in err
    assert "'sides17'" in err and "L_eye" in err and "flip_pairs" in err and "data.train.0.augment" in err
    assert not (tmp_path / "run" / "last.pt").exists()
    r["data"]["train"]["augment"] = [{"type": "RandomBBoxTransform"}, {"type": "RandomFlip", "prob": 0.5}]
    rc, _, err = run_cli(["train", str(write(tmp_path, r)), "--out", str(tmp_path / "run")], capsys)
    assert rc != 0 and err.count("\n") == 1 and "random flip needs flip pairs" in err, err


def test_side_names_without_pairs_only_warn_when_random_flip_is_off(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from poseadapt.train.build import build_trainer, check_flip_pairs
    from poseadapt.train.recipe import recipe_from_dict

    names = ["neck", "L_wrist", "R_wrist"]
    schema = KeypointSchema.from_dict({"name": "c3", "keypoints": names, "sigmas": [0.05] * 3, "flip_pairs": []})
    assert unpaired_side_names(schema) == ["L_wrist", "R_wrist"]
    check_flip_pairs(schema, [{"type": "RandomBBoxTransform"}], "data.train.0")
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "L_wrist" in err and "flip_pairs" in err
    check_flip_pairs(get_schema("coco17"), None, "data.train.0")  # paired sides: nothing to say
    assert capsys.readouterr().err == ""

    schema_file, ann = side_named_data(tmp_path, data)
    r = recipe(data, schema=str(schema_file))
    no_flip = [{"type": "RandomBBoxTransform"}]
    r["data"]["train"] = {
        "ann": str(ann),
        "images": str(data / "images"),
        "schema": str(schema_file),
        "augment": no_flip,
    }
    build_trainer(recipe_from_dict(r), tmp_path / "run")  # builds: no flip in use
    assert "warning:" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- schedule
def test_a_schedule_that_does_not_fit_the_run_warns(capsys: pytest.CaptureFixture[str]) -> None:
    from poseadapt.train.build import check_schedule
    from poseadapt.train.recipe import recipe_from_dict

    r = recipe_from_dict({"data": {"train": {"synth": "adult"}}, "schedule": {"epochs": 20}})  # COCO defaults
    notes = check_schedule(r, iters_per_epoch=800 // 64, total_iters=20 * (800 // 64))
    assert len(notes) == 2
    assert "warmup_iters 500" in notes[0] and "240 iterations" in notes[0] and "never reaches" in notes[0]
    assert "milestones [170, 200]" in notes[1]
    assert capsys.readouterr().err.count("warning:") == 2
    fit = recipe_from_dict({"data": {"train": {"synth": "adult"}},
                            "schedule": {"epochs": 20, "warmup_iters": 20, "milestones": [15, 18]}})  # fmt: skip
    assert check_schedule(fit, 12, 240) == []


# ---------------------------------------------------------------------------------------------- output
def test_training_output_to_a_file_is_readable(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = recipe(data)
    r["train"].update(progress=True, val_interval=1)
    r["schedule"]["epochs"] = 2
    r["data"]["val"] = copy.deepcopy(r["data"]["train"])
    rc, out, err = run_cli(["train", str(write(tmp_path, r)), "--out", str(tmp_path / "run")], capsys)
    assert rc == 0, err
    lines = out.splitlines()
    start = "\n".join(lines[:8])
    for word in ("model:", "vit_tiny", "device:", "cpu", "trains:", "100.0%", "data:", "train: data.train.0 6",
                 "validation: coco17 6", "schedule:", "2 epochs x 3 iterations"):  # fmt: skip
        assert word in start, (word, start)
    assert any(line.startswith("epoch 1/2  iter 3/6  loss") and "ETA" in line for line in lines)
    assert any(line.startswith("epoch 2/2  iter 6/6") for line in lines)
    assert sum(line.startswith("validation after epoch") and "AP" in line for line in lines) == 2
    assert lines[-1].startswith("done: epoch 2/2, 6 iterations")


def test_progress_and_summary_agree_when_max_iters_stops_early(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = recipe(data)
    r["train"].update(progress=True, max_iters=4)
    r["schedule"]["epochs"] = 50
    rc, out, err = run_cli(["train", str(write(tmp_path, r)), "--out", str(tmp_path / "run")], capsys)
    assert rc == 0, err
    assert "2 epochs x 3 iterations" in out  # the run stops in epoch 2, not 50
    assert "epoch 2/2  iter 4/4" in out
    assert out.splitlines()[-1].startswith("done: epoch 2/2, 4 iterations")


def test_surgery_mapping_is_printed(tmp_path: Path, data: Path, ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from poseadapt.train.build import build_trainer
    from poseadapt.train.recipe import recipe_from_dict

    gt = json.loads((data / "annotations" / "adult_coco17.json").read_text())
    r = recipe(data, checkpoint=str(ckpt), schema="infant21")
    r["train"]["progress"] = True
    r["data"]["train"] = {"synth": {"population": "infant", "n": 2, "size": 96}}
    assert gt  # (the adult file is unused here)
    build_trainer(recipe_from_dict(r), tmp_path / "run")
    out = capsys.readouterr().out
    assert "head:     'coco17' -> " in out and "keep their weights" in out and "start fresh" in out
    # infant21 = coco17's 17 + head_top, neck, two big toes: 4 fresh, each named once (neck approximated, marked)
    line = next(x for x in out.splitlines() if x.startswith("head:"))
    assert "17 keypoints keep their weights" in line and "4 start fresh" in line and line.count("neck") == 1
