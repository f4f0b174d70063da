"""What prior-guided decoding costs: codec decoding alone vs `PriorDecoder` + codec decoding, on real heatmaps.

    .venv/bin/python benchmarks/bench_prior_decode.py [--out bench_out/prior_decode]

Heatmaps: the 100-label fine-tuned model of benchmarks/prior_decoding.py (run that first) on its 600 test infants
(flip test merged, as `eval` decodes them). A and B interleaved, 7 repeats each, median wall time, 1 thread.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out/prior_decode"))
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from poseadapt.evaluate.prior_decode import PriorDecoder, codec_refiner
    from poseadapt.evaluate.topdown import Predictor, gt_people, image_reader, load_ground_truth
    from poseadapt.interop.checkpoint import load_checkpoint
    from poseadapt.priors import PosePrior

    out = args.out
    model = load_checkpoint(out / "runs/finetune100/final.safetensors").eval()
    schema = model.schemas[0]
    gt = load_ground_truth(out / "data/test/annotations/infant_coco17.json", schema)
    people, read = gt_people(gt), image_reader(out / "data/test/images", gt)
    predictor = Predictor(model)
    heatmaps = []
    for image_id in sorted(set(people.image_ids.tolist())):
        rows = people.image_ids == image_id
        pixels, _, _ = predictor.crops(read(image_id), people.boxes[rows])
        heatmaps.append(predictor.forward(pixels))
    maps = np.concatenate(heatmaps)
    prior = PosePrior.load(out / "prior_decode.safetensors")
    codec = model.codec

    def plain() -> None:
        codec.decode(maps)

    def guided() -> None:
        decoder = PriorDecoder(prior, schema.keypoints, schema.flip_index, codec_refiner(codec))
        codec.decode(decoder(maps))

    times: dict[str, list[float]] = {"plain": [], "guided": []}
    for _ in range(args.repeats):
        for name, fn in (("plain", plain), ("guided", guided)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    n = len(maps)
    print(f"{n} poses, heatmaps {maps.shape[2]}x{maps.shape[3]}, median of {args.repeats}, 1 thread")
    print(f"codec decode alone:        {1e3 * med['plain']:.1f} ms ({1e6 * med['plain'] / n:.0f} us/pose)")
    print(f"prior-guided + codec:      {1e3 * med['guided']:.1f} ms ({1e6 * med['guided'] / n:.0f} us/pose)")
    print(f"ratio guided / plain:      {med['guided'] / med['plain']:.2f}")


if __name__ == "__main__":
    main()
