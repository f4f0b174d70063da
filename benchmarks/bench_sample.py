"""Top-down training sample throughput on one CPU core (target: >= 150 samples/s from 640x480 JPEGs).

One sample = JPEG decode + box -> centre/scale + augmentation + one affine crop to 256x192 + UDP encoding of 17
points on a 64x48 heatmap, through `TopDownDataset` exactly as training uses it. Two augmentation lists are timed:
the ViTPose recipe (flip, half-body, scale/rotation/shift) and the full list (plus photometric jitter, blur, coarse
occlusion and ImageNet normalisation to float32 CHW). The comparator, timed in the same run on the same files and
boxes, is the bare floor: `cv2.imread` + one `cv2.warpAffine` to 256x192.

OpenCV runs with one thread. The script measures in-process, then re-runs itself pinned with `taskset -c 0` when
that exists, and prints both. Figures are medians over several passes, interleaved between the three runs; other
jobs on the machine add noise.

    .venv/bin/python benchmarks/bench_sample.py [--images 64] [--passes 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from poseadapt.codecs import UDPHeatmap
from poseadapt.data.augment import (
    CoarseOcclusion,
    PhotometricDistortion,
    RandomBlur,
    ToTensor,
    vitpose_train_transforms,
)
from poseadapt.data.coco import load_coco_keypoints
from poseadapt.data.dataset import TopDownDataset
from poseadapt.data.topdown import box_to_center_scale, udp_warp_matrix
from poseadapt.schemas import get_schema

TARGET_PER_S = 150.0
IMAGE_W, IMAGE_H = 640, 480
INPUT = (192, 256)

# a standing person in unit coordinates (x right, y down), COCO-17 order
UNIT_POSE = np.array(
    [
        [0.50, 0.08],
        [0.53, 0.06],
        [0.47, 0.06],
        [0.57, 0.07],
        [0.43, 0.07],
        [0.65, 0.20],
        [0.35, 0.20],
        [0.72, 0.36],
        [0.28, 0.36],
        [0.75, 0.50],
        [0.25, 0.50],
        [0.60, 0.52],
        [0.40, 0.52],
        [0.61, 0.74],
        [0.39, 0.74],
        [0.62, 0.95],
        [0.38, 0.95],
    ]
)


def textured_image(rng: np.random.Generator) -> np.ndarray:
    """Smooth colour noise at several scales plus edges and a gradient: compresses like a photo, not a flat fill."""
    image = np.zeros((IMAGE_H, IMAGE_W, 3), np.float32)
    for cells, weight in ((6, 0.5), (24, 0.3), (96, 0.2)):
        noise = rng.random((cells * 3 // 4, cells, 3)).astype(np.float32)
        image += weight * cv2.resize(noise, (IMAGE_W, IMAGE_H), interpolation=cv2.INTER_CUBIC)
    image *= 200
    image += np.linspace(0, 40, IMAGE_W, dtype=np.float32)[None, :, None]
    for _ in range(12):
        x, y = int(rng.integers(0, IMAGE_W)), int(rng.integers(0, IMAGE_H))
        color = tuple(float(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(image, (x, y), (x + int(rng.integers(10, 120)), y + int(rng.integers(10, 120))), color, 2)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_dataset(folder: Path, count: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    schema = get_schema("coco17")
    images, annotations = [], []
    for i in range(count):
        name = f"{i:05d}.jpg"
        cv2.imwrite(str(folder / name), textured_image(rng), [cv2.IMWRITE_JPEG_QUALITY, 90])
        h = rng.uniform(200, 420)
        w = h * rng.uniform(0.35, 0.6)
        x, y = rng.uniform(0, IMAGE_W - w), rng.uniform(0, IMAGE_H - h)
        points = UNIT_POSE * (w, h) + (x, y) + rng.normal(0, 3, (17, 2))
        vis = np.where(rng.random(17) < 0.85, 2.0, 0.0)
        kps = np.concatenate([np.where(vis[:, None] > 0, points, 0.0), vis[:, None]], axis=1)
        images.append({"id": i + 1, "file_name": name, "width": IMAGE_W, "height": IMAGE_H})
        annotations.append(
            {
                "id": i + 1,
                "image_id": i + 1,
                "category_id": 1,
                "keypoints": kps.ravel().round(2).tolist(),
                "num_keypoints": int((vis > 0).sum()),
                "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                "area": w * h,
                "iscrowd": 0,
            }
        )
    category = {"id": 1, "name": "person", "keypoints": list(schema.keypoints), "skeleton": []}
    path = folder / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [category]}))
    return path


def time_interleaved(runs: dict[str, Callable[[], None]], passes: int) -> dict[str, float]:
    """Median seconds per pass of each run, after one warm-up each. Passes alternate between the runs, so load
    from other jobs hits all of them alike and the ratios stay meaningful on a busy machine."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()
    for _ in range(passes):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(folder: Path, passes: int) -> dict[str, float]:
    cv2.setNumThreads(1)
    data = load_coco_keypoints(folder / "annotations.json", "coco17")
    codec = UDPHeatmap(input_size=INPUT, heatmap_size=(48, 64), sigma=2.0)
    recipes = {
        "vitpose": vitpose_train_transforms(),
        "full": [
            *vitpose_train_transforms(),
            PhotometricDistortion(),
            RandomBlur(),
            CoarseOcclusion(),
            ToTensor(),
        ],
    }
    runs: dict[str, Callable[[], None]] = {}
    for name, transforms in recipes.items():
        ds = TopDownDataset(data, folder, codec, input_size=INPUT, transforms=transforms, train=True)

        def run_pass(ds: TopDownDataset = ds) -> None:
            for i in range(len(ds)):
                ds[i]

        runs[name] = run_pass

    paths = [str(data.image_path(int(i), folder)) for i in data.image_ids]
    centers, scales = box_to_center_scale(data.boxes, INPUT[0] / INPUT[1])
    matrices = [udp_warp_matrix(c, s, 0.0, INPUT) for c, s in zip(centers, scales, strict=True)]

    def bare_pass() -> None:
        for path, matrix in zip(paths, matrices, strict=True):
            cv2.warpAffine(cv2.imread(path, cv2.IMREAD_COLOR), matrix, INPUT, flags=cv2.INTER_LINEAR)

    runs["bare"] = bare_pass
    n = len(data)
    return {"samples": n, **{name: n / seconds for name, seconds in time_interleaved(runs, passes).items()}}


def report(label: str, r: dict[str, float]) -> None:
    print(f"[{label}] {int(r['samples'])} JPEGs 640x480, medians of passes")
    print(f"  poseadapt sample, ViTPose recipe : {r['vitpose']:7.1f} samples/s ({1e3 / r['vitpose']:.2f} ms)")
    print(f"  poseadapt sample, full aug + norm: {r['full']:7.1f} samples/s ({1e3 / r['full']:.2f} ms)")
    print(f"  comparator imread + warpAffine   : {r['bare']:7.1f} samples/s ({1e3 / r['bare']:.2f} ms)")
    print(
        f"  ratio to comparator: ViTPose {r['vitpose'] / r['bare']:.2f}x, full {r['full'] / r['bare']:.2f}x; "
        f"target {TARGET_PER_S:.0f}/s: ViTPose {r['vitpose'] / TARGET_PER_S:.2f}x, full {r['full'] / TARGET_PER_S:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)  # child mode: reuse the parent's files
    args = parser.parse_args()

    if args.data is not None:
        print(json.dumps(measure(args.data, args.passes)))
        return

    folder = Path(tempfile.mkdtemp(prefix="bench_sample_"))
    try:
        write_dataset(folder, args.images)
        report("one OpenCV thread, not pinned", measure(folder, args.passes))
        taskset = shutil.which("taskset")
        if taskset is None:
            print("[pinned] taskset not available: skipped")
            return
        cmd = [taskset, "-c", "0", sys.executable, __file__, "--data", str(folder), "--passes", str(args.passes)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        report("taskset -c 0, one OpenCV thread", json.loads(out.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
