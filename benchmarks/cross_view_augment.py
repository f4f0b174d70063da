"""Demo arms: does camera-tilt augmentation carry top-view adaptation to a diagonal camera, and does bf16 cost AP?

    .venv/bin/python benchmarks/cross_view_augment.py [--model builtin:synthpose-vit-tiny] [--arms shipped tilt fp32]

The demo's default data (800 top-view infants, 192 px; test sets of 300 infants from the top and from a diagonal
camera, seeds the adaptation never saw) and its `full` run (the shipped `demo-infant` recipe, 8 epochs) in arms:
`shipped` (the recipe as shipped); `tilt` (plus `RandomForeshorten`, p 0.5, factor 0.55-1.0: the body shortened
along a random direction, as a camera tilted from above to about 35 degrees elevation shortens it; issue 12's
cross-view target asks diagonal AP >= half the top-view AP); `fp32` (`train.amp=false`: bf16 autocast's AP
against fp32, issue 10). `poseadapt compare` scores every arm (AP with 95% bootstrap intervals, the change paired
against `shipped`); the wall time of each run is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from poseadapt.demo.data import render_set
from poseadapt.demo.pipeline import adapt_run
from poseadapt.demo.settings import RunSpec, default_settings

TILT = {"type": "RandomForeshorten", "prob": 0.5, "factor": [0.55, 1.0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:synthpose-vit-tiny")
    ap.add_argument("--out", type=Path, default=Path("bench_out/xview"))
    ap.add_argument("--arms", nargs="+", default=["shipped", "tilt", "fp32"])
    args = ap.parse_args()
    os.nice(10)
    settings = default_settings()
    data = args.out / "data"
    train = render_set(data, settings.infant_train, settings.image_size)
    tests = {k: render_set(data, s, settings.image_size) for k, s in settings.tests.items() if "infant" in k}
    from poseadapt.train.recipe import load_recipe

    shipped = load_recipe("demo-infant").to_dict()["data"]["train"][0]["augment"]
    tilt = json.dumps([*shipped[:-1], TILT, shipped[-1]])
    arms = {"shipped": (), "tilt": (f"data.train.0.augment={tilt}",), "fp32": ("train.amp=false",)}
    checkpoints, seconds = {}, {}
    for name in args.arms:
        final = args.out / "runs" / name / "final.safetensors"
        if not final.is_file():
            t0 = time.perf_counter()
            run = RunSpec(name, name, [{"full": {}}])
            final = adapt_run(args.out / "runs" / name, settings, run, args.model, train, sets=arms[name])
            seconds[name] = time.perf_counter() - t0
        checkpoints[name] = str(final)
    print("wall seconds per run (this invocation):", {k: round(v) for k, v in seconds.items()})
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
        if diag not in [t for m, t in ap_of if m == model]:
            continue
        print(f"{model}: diagonal / top = {ap_of[(model, diag)]['AP'] / max(ap_of[(model, top)]['AP'], 1e-9):.2f}")
    (args.out / "result.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
