"""Synthetic renderer throughput on one core: 256x256 images with one person, written as a full COCO dataset.

The figure is `write_dataset` end to end (sample, pose, rasterise, shade, blur / noise, JPEG encode, file write,
labels, silhouettes, polygons, JSON for coco17 + the native schema) in one process with OpenCV held to one
thread. The comparator, measured in the same run, is the floor any image writer pays: encoding and writing a
blank 256x256 JPEG with cv2. Also printed: the share of a sample's time spent rendering + labelling vs encoding.

Both wall-clock and CPU-time rates are medians of several runs. On a shared machine the CPU-time rate is the
per-core figure (wall time also counts the time other jobs hold the core).

    .venv/bin/python benchmarks/bench_synth.py [--runs 5] [--n 200] [--populations adult,infant,elderly,wheelchair]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def median_rates(fn: Callable[[], object], n: int, runs: int) -> tuple[float, float]:
    """(wall, cpu) items per second: medians over `runs` timed calls of `fn`, each doing `n` items."""
    wall, cpu = [], []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return n / statistics.median(wall), n / statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--populations", default="adult,infant,elderly,wheelchair")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    from poseadapt.synth import get_population, iter_samples, write_dataset

    size, n = 256, args.n
    write_dataset(tempfile.mkdtemp(), "adult", n=5, size=size)  # warm-up: imports, noise table, workspace
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        blank = np.zeros((size, size, 3), np.uint8)

        def blank_jpegs() -> None:
            for i in range(n):
                ok, data = cv2.imencode(".jpg", blank, [cv2.IMWRITE_JPEG_QUALITY, 92])
                (out / f"blank_{i}.jpg").write_bytes(data.tobytes())

        base_wall, base_cpu = median_rates(blank_jpegs, n, args.runs)
        print(f"comparator: blank {size}px JPEG encode + write: {base_cpu:6.0f} images/s cpu, {base_wall:6.0f} wall")
        for name in args.populations.split(","):
            pop = get_population(name)

            def run(pop=pop) -> None:
                write_dataset(out / pop.name, pop, view="random", n=n, size=size, seed=0, people=1)

            wall, cpu = median_rates(run, n, args.runs)
            samples = list(iter_samples(pop, view="random", n=50, size=size, seed=1))
            _, render_cpu = median_rates(lambda pop=pop: list(iter_samples(pop, n=50, size=size, seed=1)), 50, 3)
            _, enc_cpu = median_rates(lambda s=samples: [cv2.imencode(".jpg", x.image) for x in s], 50, 3)
            share = (1 / render_cpu) / (1 / render_cpu + 1 / enc_cpu)
            print(
                f"{name:>10}: {cpu:5.0f} images/s per core (cpu time; {1000 / cpu:5.2f} ms/image), {wall:5.0f} wall; "
                f"{base_cpu / cpu:5.1f}x the blank-JPEG floor; rendering + labels = {100 * share:4.1f}% of "
                "render + encode"
            )


if __name__ == "__main__":
    main()
