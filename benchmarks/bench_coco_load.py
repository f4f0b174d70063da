"""COCO keypoint loading + validation (`poseadapt.data.coco`) vs pycocotools' loading, on 5000 images.

The files are `bench_score.py`'s (5000 images x 2-4 people x 21 keypoints, GT and results). Figures are medians
of several in-process runs: JSON parsing alone (stdlib json vs msgspec, which the loader uses, and orjson when
installed, the alternative measured against it), then
loading GT + predictions into validated arrays vs pycocotools' `COCO(gt)` + `loadRes(pred)`, which only index
the dicts and check nothing.

    .venv/bin/python benchmarks/bench_coco_load.py [--runs 7] [--images 5000]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).parent))
from bench_score import make_data  # noqa: E402  (the same files as the scoring benchmark)


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        gc.disable()  # as the loader does while parsing (`gc_paused`): the parsed tree holds no cycles
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        gc.enable()
        del result
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--images", type=int, default=5000)
    args = parser.parse_args()

    from pycocotools.coco import COCO

    from poseadapt.data.coco import load_coco_keypoints, load_predictions
    from poseadapt.schemas import get_schema

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_data(folder, args.images)
        gt_path, pred_path = folder / "gt.json", folder / "pred.json"
        schema = get_schema(folder / "schema.yaml")
        raw = gt_path.read_bytes()
        mb = len(raw) / 1e6, pred_path.stat().st_size / 1e6

        t_json = median_seconds(lambda: json.loads(raw), args.runs)
        t_msgspec = median_seconds(lambda: msgspec.json.decode(raw), args.runs)
        try:
            import orjson

            t_orjson: float | None = median_seconds(lambda: orjson.loads(raw), args.runs)
        except ImportError:
            t_orjson = None
        gt = load_coco_keypoints(gt_path, schema)
        t_gt = median_seconds(lambda: load_coco_keypoints(gt_path, schema), args.runs)
        t_pred = median_seconds(lambda: load_predictions(pred_path, gt), args.runs)

        def pycocotools_load() -> object:
            with contextlib.redirect_stdout(io.StringIO()):
                coco = COCO(str(gt_path))
                return coco, coco.loadRes(str(pred_path))

        t_ref = median_seconds(pycocotools_load, args.runs)

    print(f"files: GT {mb[0]:.1f} MB ({len(gt)} people, {len(gt.images)} images), predictions {mb[1]:.1f} MB")
    alt = f", orjson {1e3 * t_orjson:.0f} ms" if t_orjson is not None else ""
    print(
        f"parse GT: json {1e3 * t_json:.0f} ms, msgspec {1e3 * t_msgspec:.0f} ms{alt}, "
        f"json/msgspec {t_json / t_msgspec:.1f}x"
    )
    ours = t_gt + t_pred
    print(f"poseadapt load + validate: GT {1e3 * t_gt:.0f} ms, predictions {1e3 * t_pred:.0f} ms, {1e3 * ours:.0f} ms")
    print(f"pycocotools COCO(gt) + loadRes(pred): {1e3 * t_ref:.0f} ms")
    print(f"ratio (pycocotools / poseadapt): {t_ref / ours:.1f}x  (medians of {args.runs}, shared 2-core machine)")


if __name__ == "__main__":
    main()
