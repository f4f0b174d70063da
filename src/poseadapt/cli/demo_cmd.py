"""`poseadapt demo [--quick] [--from-scratch] [--scenario S] [--out DIR]`: the main job on the embedded default."""

from __future__ import annotations

from pathlib import Path


def run(quick: bool, out: Path, from_scratch: bool, scenario: str = "labelled") -> None:
    from poseadapt.cli.io import check_output
    from poseadapt.demo import run_demo

    check_output(out, "--out", folder=True)
    run_demo(out, quick=quick, from_scratch=from_scratch, scenario=scenario)
