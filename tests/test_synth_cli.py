"""`poseadapt synth` end to end: files, JSON output, one-line errors."""

from __future__ import annotations

import json

import pytest

from poseadapt.cli.main import main
from poseadapt.data.coco import load_coco_keypoints


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_synth_writes_images_annotations_and_preview(tmp_path, capsys):
    out = tmp_path / "infants"
    argv = ["synth", "--population", "infant", "--view", "top", "--n", "3", "--size", "64", "--out", str(out)]
    code, stdout, _ = _run([*argv, "--seed", "5", "--preview", "--json"], capsys)
    assert code == 0
    result = json.loads(stdout)
    assert set(result["annotations"]) == {"coco17", "infant21"}
    assert (out / "preview.png").is_file()
    assert len(list((out / "images").glob("infant_*.jpg"))) == 3
    data = load_coco_keypoints(
        result["annotations"]["infant21"], "infant21", image_root=out / "images", check_images=True
    )
    assert len(data.image_ids) == 3


def test_synth_schema_option_restricts_output(tmp_path, capsys):
    argv = ["synth", "--population", "wheelchair", "--n", "2", "--size", "64", "--out", str(tmp_path)]
    code, _, _ = _run([*argv, "--schema", "wheelchair25", "--people", "1-2"], capsys)
    assert code == 0
    assert [p.name for p in (tmp_path / "annotations").iterdir()] == ["wheelchair_wheelchair25.json"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--population", "toddler"], "unknown population 'toddler'"),
        (["--view", "sky"], "unknown view 'sky'"),
        (["--people", "two"], "--people must be N or LO-HI"),
        (["--schema", "no_such_schema"], "unknown schema"),
        (["--size", "4"], "image size"),
        (["--backgrounds", "/nonexistent/bg"], "does not exist"),
        (["--look", "xray"], "unknown look 'xray'"),
    ],
)
def test_synth_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    code, _, err = _run(["synth", "--n", "1", "--out", str(tmp_path), *args], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_synth_never_imports_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from poseadapt.cli.main import main\n"
        f"try: main(['synth', '--n', '2', '--size', '48', '--out', {str(tmp_path)!r}])\n"
        "except SystemExit as e: assert e.code == 0, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
