"""Why zero-label self-training plateaus: coarse poses right (AP50), infant joint centres wrong (AP75, bias).

    .venv/bin/python benchmarks/pseudo_label_precision.py [--selftrain DIR] [--tests bench_out/unl_s5]

For the foundation model, each round of benchmarks/self_training_rounds.py and the supervised run (the same 1000
infants WITH labels), on the 200 top-view test infants: AP, AP50, AP75 (`poseadapt eval`), and per keypoint the
median error and the median signed error along the body's axis (mid-hip -> mid-shoulder of the ground truth;
negative: towards the hips), both as a fraction of sqrt(box area), the scale OKS uses. A bias that the supervised
run does not have and the self-trained rounds keep is a difference between where an adult model puts a joint and
where it is on an infant: pseudo-labels carry it into every round.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from unlabelled_methods_ap import FM, test_sets


def errors(pred_file: Path, gt_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per instance and keypoint: |error| and signed error along the torso axis, both / sqrt(area)."""
    gt = {a["image_id"]: a for a in json.loads(gt_file.read_text())["annotations"]}
    size, along = [], []
    for p in json.loads(pred_file.read_text()):
        g = gt[p["image_id"]]
        k = np.asarray(p["keypoints"], float).reshape(-1, 3)[:, :2]
        t = np.asarray(g["keypoints"], float).reshape(-1, 3)[:, :2]
        axis = t[[5, 6]].mean(0) - t[[11, 12]].mean(0)
        axis /= np.linalg.norm(axis) + 1e-9
        d = (k - t) / np.sqrt(g["area"])
        size.append(np.linalg.norm(d, axis=1))
        along.append(d @ axis)
    return np.asarray(size), np.asarray(along)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--selftrain", type=Path, default=Path("bench_out/selftrain_cli"), help="its --out")
    ap.add_argument("--tests", type=Path, default=Path("bench_out/unl_s5"))
    args = ap.parse_args()
    st, bench = args.selftrain.resolve(), args.tests.resolve()
    gt = test_sets(bench / "data", check=True)["infant_top"]
    images = gt.parent.parent / "images"
    models = {"foundation": FM}
    models |= {p.parent.name: str(p) for p in sorted(st.glob("round[0-9]/final.safetensors"))}
    models["supervised"] = str(bench / "runs/supervised/final.safetensors")
    names = json.loads(gt.read_text())["categories"][0]["keypoints"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, ckpt in models.items():
            pred = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, "-m", "poseadapt.cli.main", "eval", "--checkpoint", ckpt, "--ann", str(gt),
                   "--images", str(images), "--out", str(pred), "--json"]  # fmt: skip
            res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
            size, along = errors(pred, gt)
            rows.append((name, res, np.median(size, 0), np.median(along, 0)))
    print("| model | AP | AP50 | AP75 |\n|---|---|---|---|")
    for name, res, _, _ in rows:
        print(f"| {name} | {100 * res['AP']:.1f} | {100 * res['AP50']:.1f} | {100 * res['AP75']:.1f} |")
    print("\nmedian error / sqrt(area) per keypoint; in brackets the median signed error along the body axis")
    print("| keypoint | " + " | ".join(r[0] for r in rows) + " |\n|---|" + "---|" * len(rows))
    for k, kp in enumerate(names):
        print(f"| {kp} | " + " | ".join(f"{r[2][k]:.3f} ({r[3][k]:+.3f})" for r in rows) + " |")


if __name__ == "__main__":
    main()
