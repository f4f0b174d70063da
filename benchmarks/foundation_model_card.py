"""The numbers of docs/MODEL_CARD.md: the built-in foundation model on fresh renders of seeds training never used.

    .venv/bin/python benchmarks/foundation_model_card.py [--model builtin:synthpose-vit-tiny] [--n 300]

Renders each population/view test set with `poseadapt synth` (seeds 7001-7006; pre-training streams seed 0 and
validates on seed 90001), then scores the model with `poseadapt compare` (GT boxes, flip test, coco17 keypoints,
OKS AP with a 95% bootstrap interval over images) and prints the markdown table the model card quotes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

SETS = {  # name -> (population, view, seed)
    "adults, every view": ("adult", "random", 7001),
    "adults, front": ("adult", "front", 7006),
    "infants, top (zero-shot)": ("infant", "top", 7002),
    "infants, diagonal (zero-shot)": ("infant", "diagonal", 7005),
    "older adults, every view": ("elderly", "random", 7003),
    "wheelchair users, every view": ("wheelchair", "random", 7004),
}


def poseadapt(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "poseadapt.cli.main", *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"poseadapt {' '.join(args)}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def plot_curve(runs: list[Path], png: Path, batch: int = 64) -> None:
    """Validation AP (adults, every view, 300 renders) against samples seen, from each stage's val_log.csv in
    order: a later stage's samples continue where the previous stage's last iteration ended."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=120)
    offset, points = 0.0, []
    for stage, run in enumerate(runs, start=1):
        rows = list(csv.DictReader((run / "val_log.csv").open()))
        x = [offset + int(r["iteration"]) * batch / 1000 for r in rows]
        y = [100 * float(r["val/AP"]) for r in rows]
        ax.plot(x, y, "o-", label=f"stage {stage}")
        points += list(zip(x, y, strict=True))
        train = list(csv.DictReader((run / "train_log.csv").open()))
        offset += int(train[-1]["iteration"]) * batch / 1000 if train else 0.0
    ax.set(xlabel="samples seen (thousands)", ylabel="val AP (adults, every view)", title="synthpose-vit-tiny")
    ax.grid(alpha=0.3)
    if len(runs) > 1:
        ax.legend()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png)
    print("learning curve:", png, [(round(a), round(b, 1)) for a, b in points])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:synthpose-vit-tiny")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("bench_out/model_card"))
    ap.add_argument(
        "--curve", type=Path, nargs="+", help="pre-training run folders, in stage order: plot validation AP"
    )
    ap.add_argument("--curve-png", type=Path, default=Path("docs/model_card/learning_curve.png"))
    args = ap.parse_args()
    if args.curve is not None:
        plot_curve(args.curve, args.curve_png)
    tests = []
    for name, (pop, view, seed) in SETS.items():
        folder = args.out / "data" / f"{pop}_{view}_{seed}_{args.n}"
        ann = folder / "annotations" / f"{pop}_coco17.json"
        if not ann.is_file():
            poseadapt("synth", "--population", pop, "--view", view, "--n", str(args.n), "--seed", str(seed),
                      "--size", "256", "--out", str(folder))  # fmt: skip
        tests += ["--test", f"{name}={ann}:{folder / 'images'}"]
    summary = json.loads(poseadapt("compare", "--model", f"model={args.model}", *tests,
                                   "--out", str(args.out / "compare"), "--json"))  # fmt: skip
    print("| test set (coco17, GT boxes, flip test) | images | AP [95% interval] | AP50 | AR |")
    print("|---|---|---|---|---|")
    for r in summary["results"]:
        lo, hi = r["AP_ci"]
        print(
            f"| {r['test']} | {r['images']} | {100 * r['AP']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | "
            f"{100 * r['AP50']:.1f} | {100 * r['AR']:.1f} |"
        )


if __name__ == "__main__":
    main()
