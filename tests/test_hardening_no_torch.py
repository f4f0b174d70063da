"""`score`, `schemas` and `synth` never import torch (they must start fast and run where torch is absent)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LAYOUTS = Path(__file__).parent / "data" / "mmpose_layouts"

PROBE = """
import sys
from poseadapt.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code or 0
heavy = sorted(m for m in ("torch", "torchvision", "timm", "transformers") if m in sys.modules)
print("EXIT", code, "HEAVY", ",".join(heavy) or "-", file=sys.stderr)
"""


def _run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("EXIT 0 "), done.stderr
    return last.split("HEAVY ", 1)[1]


@pytest.fixture
def score_files(tmp_path: Path) -> tuple[Path, Path]:
    gt = json.loads((LAYOUTS / "aic.json").read_text())
    preds = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt["annotations"]
    ]
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    return LAYOUTS / "aic.json", tmp_path / "pred.json"


def test_score_schemas_synth_do_not_import_torch(tmp_path: Path, score_files: tuple[Path, Path]) -> None:
    gt, pred = score_files
    commands = [
        ["schemas", "list"],
        ["schemas", "show", "halpe136"],
        ["schemas", "map", "mpii16", "coco17"],
        ["score", "--gt", str(gt), "--pred", str(pred), "--json"],
        ["score", "--gt", str(gt), "--pred", str(pred), "--metric", "pck"],
        ["synth", "--population", "infant", "--n", "2", "--size", "128", "--out", str(tmp_path / "s")],
    ]
    for argv in commands:
        assert _run(argv, tmp_path) == "-", f"poseadapt {' '.join(argv)} imported a heavy module"
