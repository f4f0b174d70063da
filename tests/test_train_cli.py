"""Through the command line: `train --resume` continues a stopped run to the uninterrupted run's weights, and
`check --json` reports what the annotation file holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from poseadapt.cli.main import main
from poseadapt.interop.checkpoint import load_checkpoint
from poseadapt.train.checkpointing import load_train_state

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_resume_through_the_cli_matches_an_uninterrupted_run(tmp_path: Path, tiny_recipe, cli_train) -> None:
    tiny_recipe["train"]["amp"] = False
    tiny_recipe["schedule"]["epochs"] = 2
    full = cli_train(tiny_recipe, tmp_path / "full")
    assert full["status"] == "completed" and full["iteration"] == 4

    # the same run stopped after its first epoch (train.max_iters), then resumed with the limit lifted
    part = cli_train(tiny_recipe, tmp_path / "split", "train.max_iters=2")
    assert part["iteration"] == 2
    assert load_train_state(tmp_path / "split" / "last.pt", map_location="cpu")["iteration"] == 2
    resumed = cli_train(tiny_recipe, tmp_path / "split", "train.max_iters=null", resume=True)
    assert resumed["status"] == "completed" and resumed["iteration"] == 4 and resumed["epoch"] == 2

    a = load_checkpoint(tmp_path / "full" / "final.safetensors").state_dict()
    b = load_checkpoint(tmp_path / "split" / "final.safetensors").state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_without_a_run_is_one_line(tmp_path: Path, tiny_recipe, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    with pytest.raises(SystemExit) as exc:
        main(["train", str(path), "--out", str(tmp_path / "nothing"), "--resume"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code != 0 and "Traceback" not in err
    assert "nothing to resume" in err.splitlines()[-1]


def test_check_json_counts_what_the_file_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--population", "adult", "--n", "3", "--size", "64", "--out", str(tmp_path), "--seed", "2"])
    assert exc.value.code == 0
    capsys.readouterr()
    ann = next(tmp_path.rglob("*.json"))
    gt = json.loads(ann.read_text())
    with pytest.raises(SystemExit) as exc:
        main(["check", "--ann", str(ann), "--images", str(ann.parent.parent / "images"), "--json"])
    captured = capsys.readouterr()
    assert exc.value.code == 0, captured.err
    report = json.loads(captured.out)
    assert report["images"] == len(gt["images"]) == 3
    assert report["annotations"] == len(gt["annotations"])
    assert report["crowd"] == sum(int(a.get("iscrowd", 0)) for a in gt["annotations"])
    assert report["keypoints"] == len(gt["categories"][0]["keypoints"])
    assert report["without_keypoints"] == sum(1 for a in gt["annotations"] if a.get("num_keypoints", 1) == 0)
