"""`poseadapt demo [--quick] [--out DIR]`: the main job end to end on the embedded synthetic default."""

from __future__ import annotations

from pathlib import Path


def run(quick: bool, out: Path, cache_dir: Path | None, no_cache: bool) -> None:
    from poseadapt.demo import run_demo

    run_demo(out, quick=quick, cache_dir=cache_dir, use_cache=not no_cache)
