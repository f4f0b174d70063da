"""`poseadapt demo [--quick] [--from-scratch] [--out DIR]`: the main job end to end on the embedded default."""

from __future__ import annotations

from pathlib import Path


def run(quick: bool, out: Path, from_scratch: bool) -> None:
    from poseadapt.demo import run_demo

    run_demo(out, quick=quick, from_scratch=from_scratch)
