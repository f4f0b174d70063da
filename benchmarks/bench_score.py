"""`poseadapt score --json` vs pycocotools, each timed as a whole process (median of 5), on 5000 images.

The data: 5000 images with 2-4 people each and a 21-keypoint schema with its own sigmas, people of every size,
3% crowd regions, 15% unlabelled keypoints, 10% missed people and 0-2 false positives per image. Both processes
start from the shell (interpreter start-up, imports, JSON parsing, validation and evaluation all count), and the
ten statistics must be identical.

    .venv/bin/python benchmarks/bench_score.py [--runs 5] [--images 5000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KEYS = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")
NUM_KEYPOINTS = 21

PYCOCOTOOLS = """
import contextlib, io, json, sys
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
gt_path, pred_path, sigmas = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(gt_path)
    ev = COCOeval(gt, gt.loadRes(pred_path), "keypoints")
    ev.params.kpt_oks_sigmas = np.array(sigmas)
    ev.evaluate(); ev.accumulate(); ev.summarize()
print(json.dumps([float(s) for s in ev.stats]))
"""


def make_data(folder: Path, n_images: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    k = NUM_KEYPOINTS
    sigmas = [round(float(s), 4) for s in rng.uniform(0.02, 0.1, k)]
    names = [f"kp{i}" for i in range(k)]
    images, anns, preds = [], [], []
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id:06d}.jpg", "width": 640, "height": 480})
        for _ in range(int(rng.integers(2, 5))):
            w, h = rng.uniform(10, 300, 2)
            x0, y0 = rng.uniform(0, 300, 2)
            xy = np.stack([x0 + rng.uniform(0, w, k), y0 + rng.uniform(0, h, k)], axis=1)
            v = rng.choice([0, 1, 2], k, p=[0.15, 0.15, 0.7])
            kp = np.concatenate([np.where(v[:, None] > 0, xy, 0.0), v[:, None]], axis=1)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [round(float(t), 2) for t in (x0, y0, w, h)],
                    "area": round(float(w * h * 0.6), 2),
                    "iscrowd": int(rng.random() < 0.03),
                    "num_keypoints": int((v > 0).sum()),
                    "keypoints": kp.ravel().round(2).tolist(),
                }
            )
            if rng.random() < 0.9:
                pred_xy = xy + rng.normal(0, rng.uniform(1, 15), (k, 2))
                preds.append(_prediction(image_id, pred_xy, float(rng.random()), rng))
        for _ in range(int(rng.integers(0, 3))):
            preds.append(_prediction(image_id, rng.uniform(0, 400, (k, 2)), float(rng.random()) * 0.5, rng))
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person", "keypoints": names}]}
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "pred.json").write_text(json.dumps(preds))
    schema = {"name": "bench21", "keypoints": names, "sigmas": sigmas, "flip_pairs": []}
    (folder / "schema.yaml").write_text(json.dumps(schema))  # JSON is YAML
    return sigmas


def _prediction(image_id: int, xy: np.ndarray, score: float, rng: np.random.Generator) -> dict:
    kp = np.concatenate([xy, rng.random((len(xy), 1))], axis=1)
    return {"image_id": image_id, "category_id": 1, "keypoints": kp.ravel().round(2).tolist(), "score": round(score, 4)}


def time_process(cmd: list[str], runs: int) -> tuple[float, list[float], str]:
    times, out = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        out = done.stdout
    return statistics.median(times), times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--keep", type=Path, default=None, help="write the data here instead of a temp folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        sigmas = make_data(folder, args.images)
        gt, pred, schema = (str(folder / n) for n in ("gt.json", "pred.json", "schema.yaml"))
        poseadapt = str(Path(sys.executable).with_name("poseadapt"))
        ours_cmd = [poseadapt, "score", "--gt", gt, "--pred", pred, "--schema", schema, "--json"]
        ref_cmd = [sys.executable, "-c", PYCOCOTOOLS, gt, pred, json.dumps(sigmas)]
        ours, ours_all, ours_out = time_process(ours_cmd, args.runs)
        ref, ref_all, ref_out = time_process(ref_cmd, args.runs)
    got = json.loads(ours_out)
    want = dict(zip(KEYS, json.loads(ref_out), strict=True))
    identical = all(got[k] == want[k] for k in KEYS)
    max_diff = max(abs(got[k] - want[k]) for k in KEYS)
    print(f"data: {args.images} images, {NUM_KEYPOINTS} keypoints; medians of {args.runs} whole-process runs")
    print(f"poseadapt score --json : {ours:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in ours_all)})")
    print(f"pycocotools (python -c): {ref:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in ref_all)})")
    print(f"speed-up: {ref / ours:.1f}x")
    print(f"statistics identical: {identical} (max |difference| {max_diff:.3g})")
    print(f"AP {got['AP']:.6f}, AR {got['AR']:.6f}")
    if max_diff > 1e-6:
        sys.exit("statistics differ from pycocotools")


if __name__ == "__main__":
    main()
