"""`poseadapt score --json` vs pycocotools and vs bare hotcoco, each timed as a whole process, on 5000 images.

The data: 5000 images with 2-4 people each and a 21-keypoint schema with its own sigmas, people of every size,
3% crowd regions, 15% unlabelled keypoints, 10% missed people and 0-2 false positives per image. Every process
starts from the shell (interpreter start-up, imports, JSON parsing, validation and evaluation all count). The
three commands run interleaved (poseadapt, hotcoco, pycocotools, poseadapt, ...) so a change in load hits all
of them alike; each figure is the median of `--runs`, and the ratios are of the medians (the median of the
per-round ratios is printed too). The ten statistics of poseadapt and pycocotools must be identical.

"Bare hotcoco" is the floor under `poseadapt score`: a `python -c` that imports hotcoco, parses both files and
evaluates, with no validation and no CLI.

    .venv/bin/python benchmarks/bench_score.py [--runs 7] [--images 5000] [--keep DIR]
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

HOTCOCO = """
import json, sys, warnings
import hotcoco
warnings.filterwarnings("ignore", message=r"hotcoco: kpt_oks_sigmas differ from the COCO defaults")
gt = hotcoco.COCO(sys.argv[1])
ev = hotcoco.COCOeval(gt, gt.load_res(sys.argv[2]), "keypoints")
params = ev.params
params.kpt_oks_sigmas = json.loads(sys.argv[3])
ev.params = params
ev.evaluate(); ev.accumulate()
print(json.dumps([float(p) for p in ev.eval["precision"][:, :, 0, 0, -1].mean(axis=1)]))
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


def describe(folder: Path) -> str:
    """What the generated files hold, for the benchmark note."""
    gt = json.loads((folder / "gt.json").read_text())
    preds = json.loads((folder / "pred.json").read_text())
    anns = gt["annotations"]
    crowd = sum(a["iscrowd"] for a in anns)
    labelled = sum(a["num_keypoints"] for a in anns) / (len(anns) * NUM_KEYPOINTS)
    mb = sum((folder / n).stat().st_size for n in ("gt.json", "pred.json")) / 1e6
    return (
        f"{len(gt['images'])} images, {len(anns)} GT people ({crowd} crowd regions, {labelled:.1%} of keypoints"
        f" labelled), {len(preds)} predictions, {NUM_KEYPOINTS} keypoints with their own sigmas; GT"
        f" {(folder / 'gt.json').stat().st_size / 1e6:.1f} MB + predictions"
        f" {(folder / 'pred.json').stat().st_size / 1e6:.1f} MB = {mb:.1f} MB of JSON"
    )


def time_once(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def time_interleaved(cmds: dict[str, list[str]], runs: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Each command once per round, in the same order, `runs` rounds (after one untimed warm-up round)."""
    times: dict[str, list[float]] = {name: [] for name in cmds}
    outs: dict[str, str] = {}
    for name, cmd in cmds.items():  # warm-up: page cache, byte-compiled sources
        outs[name] = time_once(cmd)[1]
    for _ in range(runs):
        for name, cmd in cmds.items():
            seconds, outs[name] = time_once(cmd)
            times[name].append(seconds)
    return times, outs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--keep", type=Path, default=None, help="write the data here instead of a temp folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        sigmas = make_data(folder, args.images)
        gt, pred, schema = (str(folder / n) for n in ("gt.json", "pred.json", "schema.yaml"))
        poseadapt = str(Path(sys.executable).with_name("poseadapt"))
        cmds = {
            "poseadapt": [poseadapt, "score", "--gt", gt, "--pred", pred, "--schema", schema, "--json"],
            "hotcoco": [sys.executable, "-c", HOTCOCO, gt, pred, json.dumps(sigmas)],
            "pycocotools": [sys.executable, "-c", PYCOCOTOOLS, gt, pred, json.dumps(sigmas)],
        }
        description = describe(folder)
        times, outs = time_interleaved(cmds, args.runs)
    got = json.loads(outs["poseadapt"])
    want = dict(zip(KEYS, json.loads(outs["pycocotools"]), strict=True))
    identical = all(got[k] == want[k] for k in KEYS)
    max_diff = max(abs(got[k] - want[k]) for k in KEYS)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"data: {description}")
    print(f"medians of {args.runs} interleaved whole-process runs")
    for name, label in (("poseadapt", "poseadapt score --json"), ("hotcoco", "bare hotcoco (python -c)"),
                        ("pycocotools", "pycocotools (python -c)")):  # fmt: skip
        print(f"{label:25s}: {med[name]:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times[name])})")
    paired_ref = statistics.median(r / o for r, o in zip(times["pycocotools"], times["poseadapt"], strict=True))
    paired_hot = statistics.median(o / h for o, h in zip(times["poseadapt"], times["hotcoco"], strict=True))
    print(f"speed-up vs pycocotools: {med['pycocotools'] / med['poseadapt']:.1f}x (per round {paired_ref:.1f}x)")
    print(f"poseadapt / bare hotcoco : {med['poseadapt'] / med['hotcoco']:.2f}x (per round {paired_hot:.2f}x)")
    print(f"statistics identical: {identical} (max |difference| {max_diff:.3g})")
    print(f"AP {got['AP']:.6f}, AR {got['AR']:.6f}")
    if max_diff > 1e-6:
        sys.exit("statistics differ from pycocotools")


if __name__ == "__main__":
    main()
