"""Bad input through the CLI: one `error:` line, exit code 2, no traceback (synth, predict, eval)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from poseadapt.cli.main import main as cli_main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        cli_main(argv)
    err = capsys.readouterr().err
    return int(done.value.code or 0), err


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_synth_out_under_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "a_file" / "data"
    code, err = run(["synth", "--population", "infant", "--n", "2", "--out", str(out)], capsys)
    assert_one_line(code, err, "--out", "cannot create the folder", "Not a directory")


def test_synth_out_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a_file").write_text("x")
    code, err = run(["synth", "--population", "infant", "--n", "2", "--out", str(tmp_path / "a_file")], capsys)
    assert_one_line(code, err, "--out")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from poseadapt.interop.checkpoint import save_checkpoint
    from poseadapt.models import create_model

    return save_checkpoint(create_model("vit_tiny").eval(), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00garbage"])
def test_predict_on_a_corrupt_image_is_one_line(
    tmp_path: Path, tiny_checkpoint: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(content)
    argv = ["predict", str(bad), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "out")]
    code, err = run(argv, capsys)
    assert_one_line(code, err, "cannot read image", "broken.png")


def test_eval_with_a_head_the_model_does_not_have_is_one_line(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cv2.imwrite(str(tmp_path / "ok.png"), np.zeros((60, 80, 3), np.uint8))
    from poseadapt.schemas import get_schema

    names = list(get_schema("coco17").keypoints)
    ann = {
        "images": [{"id": 1, "file_name": "ok.png", "width": 80, "height": 60}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": [10, 10, 2] * 17,
                         "num_keypoints": 17, "bbox": [0, 0, 50, 50], "area": 2500, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person", "keypoints": names}],
    }  # fmt: skip
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    base = ["eval", "--checkpoint", str(tiny_checkpoint), "--ann", str(tmp_path / "ann.json")]
    base += ["--images", str(tmp_path)]
    code, err = run([*base, "--head", "mpii16"], capsys)
    assert_one_line(code, err, "no head 'mpii16'", "coco17")
