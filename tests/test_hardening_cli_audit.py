"""Bad input found by an audit of every command: one `error:` line, exit code 2, no traceback, nothing written.

Each case would once have ended in a Python traceback (or exit 0). They run in-process and fail before any model
is loaded or any image read, so the checkpoints and images they name need not exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def test_predict_min_score_must_be_a_fraction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["predict", str(tmp_path), "--checkpoint", "none.safetensors", "--out", str(tmp_path / "o")]
    code, err = run([*argv, "--min-score", "nan"], capsys)
    assert_one_line(code, err, "--min-score must be between 0 and 1, got nan")
    assert not (tmp_path / "o").exists()
