"""Every line of the README's CLI tour runs as written, in a temporary folder with tiny data it makes.

Lines that need a downloaded model or minutes of training are listed in `NOT_RUN` with the reason; any other
line (including one added to the README later) must run and exit 0.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from poseadapt.cli.main import main as cli_main
from poseadapt.schemas import get_schema

README = Path(__file__).resolve().parents[1] / "README.md"

NOT_RUN = {
    "poseadapt import hf ./vitpose-base-simple": "needs the ViTPose weights downloaded from the Hugging Face Hub",
    "poseadapt predict --checkpoint vitpose-b.safetensors": "needs the checkpoint the import line makes",
    "poseadapt train demo-infant": "trains for a minute or more on 2 cores",
    "poseadapt self-train synth-infant-mean-teacher": "rounds of training, minutes on 2 cores (test_self_training.py)",
    "poseadapt compare --model start=builtin:synthpose-vit-tiny": "needs the checkpoint the train line makes",
    "poseadapt demo --quick": "minutes of training (tests/test_demo.py runs it)",
}


def tour_lines() -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## A quick tour of the CLI\s+```bash\n(.*?)```", text, re.S)
    assert block, "README has no CLI tour block"
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


def test_tour_block_is_found_and_every_skip_is_still_in_it() -> None:
    lines = tour_lines()
    assert len(lines) >= 10
    for prefix in NOT_RUN:
        assert any(line.startswith(prefix) for line in lines), f"stale NOT_RUN entry: {prefix}"


def _fixtures(root: Path) -> None:
    """GT.json / PRED.json / my.yaml for the score lines: synthetic GT (written by the synth line) and its copy."""
    gt = json.loads((root / "data/infant/annotations/infant_coco17.json").read_text())
    (root / "GT.json").write_text(json.dumps(gt))
    preds = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": a["keypoints"], "score": 1.0}
        for a in gt["annotations"]
    ]
    (root / "PRED.json").write_text(json.dumps(preds))
    (root / "my.yaml").write_text(get_schema("coco17").to_yaml())


def test_readme_tour_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = []
    for line in tour_lines():
        if any(line.startswith(prefix) for prefix in NOT_RUN):
            continue
        argv = shlex.split(line)
        assert argv[0] == "poseadapt"
        if argv[1] == "score" and not (tmp_path / "GT.json").exists():
            _fixtures(tmp_path)
        with pytest.raises(SystemExit) as done:
            cli_main(argv[1:])
        out = capsys.readouterr()
        assert done.value.code == 0, f"`{line}` exited {done.value.code}: {out.err.strip()}"
        ran.append(argv[1])
        if "--json" in argv:
            json.loads(out.out)
    assert ran == [
        "schemas",
        "schemas",
        "schemas",
        "synth",
        "check",
        "score",
        "score",
        "eval",
        "prior",
        "eval",
        "eval",
        "pseudo-label",
        "export",
        "methods",
        "recipes",
    ]
