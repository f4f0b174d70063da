"""Does a camera-tilt augmentation carry top-view adaptation to a diagonal camera?  (issue 12's cross-view target)

    .venv/bin/python benchmarks/cross_view_augment.py [--model builtin:synthpose-vit-tiny] [--out bench_out/xview]

The demo's default data (800 top-view infants, 192 px; test sets of 300 infants from the top and from a diagonal
camera, seeds the adaptation never saw) and its `full` run (the shipped `demo-infant` recipe, 8 epochs), twice:
the recipe's augmentation as shipped, and the same plus `RandomForeshorten` (p 0.5, factor 0.55-1.0: the body
shortened along a random direction as a camera tilted from above to about 35 degrees elevation shortens it). `poseadapt compare` scores both (AP with 95% bootstrap intervals, the change paired against
the shipped augmentation) and prints the diagonal/top ratio the target asks for (at least one half).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from poseadapt.demo.data import render_set
from poseadapt.demo.pipeline import adapt_run
from poseadapt.demo.settings import RunSpec, default_settings

TILT = {"type": "RandomForeshorten", "prob": 0.5, "factor": [0.55, 1.0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:synthpose-vit-tiny")
    ap.add_argument("--out", type=Path, default=Path("bench_out/xview"))
    args = ap.parse_args()
    os.nice(10)
    settings = default_settings()
    data = args.out / "data"
    train = render_set(data, settings.infant_train, settings.image_size)
    tests = {k: render_set(data, s, settings.image_size) for k, s in settings.tests.items() if "infant" in k}
    from poseadapt.train.recipe import load_recipe

    shipped = load_recipe("demo-infant").to_dict()["data"]["train"][0]["augment"]
    arms = {"shipped": shipped, "tilt": [*shipped[:-1], TILT, shipped[-1]]}
    checkpoints = {}
    for name, augment in arms.items():
        final = args.out / "runs" / name / "final.safetensors"
        if not final.is_file():
            run = RunSpec(name, name, [{"full": {}}])
            final = adapt_run(args.out / "runs" / name, settings, run, args.model, train, augment=augment)
        checkpoints[name] = str(final)
    from poseadapt.evaluate.compare import ModelSpec, TestSpec, compare_report

    summary = compare_report(
        [ModelSpec(k, checkpoint=v) for k, v in checkpoints.items()],
        [TestSpec(k, t.annotations["coco17"], t.images) for k, t in tests.items()],
        args.out / "compare",
        baseline="shipped",
        samples=1000,
    )
    ap_of = {(r["model"], r["test"]): r for r in summary["results"]}
    for (model, test), r in ap_of.items():
        lo, hi = r["AP_ci"]
        f = r.get("forgetting") or {}
        delta = f" ({100 * f['delta_AP']:+.1f} [{100 * f['ci'][0]:+.1f}, {100 * f['ci'][1]:+.1f}])" if f else ""
        print(f"| {model} | {test} | {100 * r['AP']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]{delta} |")
    top, diag = list(tests)
    for model in checkpoints:
        print(f"{model}: diagonal / top = {ap_of[(model, diag)]['AP'] / max(ap_of[(model, top)]['AP'], 1e-9):.2f}")
    (args.out / "result.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
