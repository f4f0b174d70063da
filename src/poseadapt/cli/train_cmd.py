"""`poseadapt train RECIPE [--set k=v ...] [--out DIR] [--resume]`: validate the recipe, then train.

Every check (keys, values, files, schema vs head) runs before the first step, so a bad recipe costs a second,
not an epoch. Ctrl-C finishes the current step, saves `DIR/last.pt` and exits with code 130; `--resume`
continues from there. Under `torchrun --nproc_per_node N` every rank runs this and rank 0 prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def default_out(recipe_arg: str) -> Path:
    """runs/<recipe name> when neither --out nor the recipe's `out` says where."""
    return Path("runs") / Path(recipe_arg).stem


def reached_epoch(result: Any) -> int:
    """The epoch the run ended in, counted as the progress display counts it (a partial last epoch counts)."""
    if not result.iters_per_epoch:
        return int(result.epoch)
    return -(-int(result.iteration) // int(result.iters_per_epoch))


def run(recipe_arg: str, overrides: list[str], out: Path | None, resume: bool, json_out: bool) -> None:
    from poseadapt.cli.io import check_output
    from poseadapt.train.build import run_recipe
    from poseadapt.train.distributed import env_info
    from poseadapt.train.recipe import load_recipe

    recipe = load_recipe(recipe_arg, overrides)
    out_dir = check_output(out or recipe.out or default_out(recipe_arg), "--out" if out else "out", folder=True)
    if json_out:
        recipe.train.progress = False
    result = run_recipe(recipe, out_dir, resume=resume)
    if not env_info().is_main:
        return
    summary = {
        "status": result.status,
        "epoch": result.epoch,
        "iteration": result.iteration,
        "best_ap": result.best_ap,
        "out": str(result.out_dir),
        "final_checkpoint": str(result.final_checkpoint) if result.final_checkpoint else None,
    }
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    elif result.status == "completed":
        best = f", best val AP {result.best_ap:.4f}" if result.best_ap is not None and result.best_ap >= 0 else ""
        sys.stdout.write(
            f"done: epoch {reached_epoch(result)}/{result.epochs or result.epoch}, {result.iteration} iterations"
            f"{best}; weights in {result.final_checkpoint}\n"
        )
    if result.status == "interrupted":
        again = " ".join(["poseadapt train", recipe_arg, *[f"--set {o}" for o in overrides], "--out", str(out_dir)])
        sys.stderr.write(
            f"interrupted at iteration {result.iteration}; state saved in {out_dir / 'last.pt'}\n"
            f"continue with: {again} --resume\n"
        )
        sys.exit(130)
