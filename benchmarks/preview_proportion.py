"""Preview of the `ProportionWarp` augmentation: rendered adults, cropped as training sees them, warped towards
infant proportions at strength 0 (the crop), 0.5 and 1, beside a rendered infant for reference.

    python benchmarks/preview_proportion.py --out docs/augment/proportion.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from poseadapt.data.augment import ProportionWarp, TopDownAffine, TopDownSample
from poseadapt.data.coco import coco_keypoints_from_dict
from poseadapt.data.topdown import box_to_center_scale
from poseadapt.schemas import get_schema
from poseadapt.synth import render_dataset

INPUT = (144, 192)  # (w, h) of the crops shown


def crops(population: str, view: str, n: int, seed: int) -> list[TopDownSample]:
    schema = get_schema("coco17")
    bgr, coco = render_dataset(population, view=view, n=n, size=320, seed=seed, schema=schema)
    data = coco_keypoints_from_dict(coco, schema, source=population)
    by_id = {int(info["id"]): cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for info, im in zip(coco["images"], bgr, strict=True)}
    out = []
    for row in range(len(data.ann_ids)):
        centre, scale = box_to_center_scale(np.asarray(data.boxes[row], np.float64).reshape(1, 4), 0.75, 1.25)
        sample = TopDownSample(by_id[int(data.image_ids[row])], data.keypoints[row], centre[0], scale[0], schema)
        out.append(TopDownAffine(INPUT)(sample))
    return out


def draw(sample: TopDownSample, label: str) -> np.ndarray:
    image = cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR).copy()
    kp = sample.keypoints
    for a, b in sample.schema.skeleton_index:
        if kp[a, 2] > 0 and kp[b, 2] > 0:
            cv2.line(image, (round(kp[a, 0]), round(kp[a, 1])), (round(kp[b, 0]), round(kp[b, 1])), (80, 230, 80), 1,
                     cv2.LINE_AA)  # fmt: skip
    for x, y, v in kp:
        if v > 0:
            cv2.circle(image, (round(x), round(y)), 2, (0, 255, 255), -1, cv2.LINE_AA)
    cv2.putText(image, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/augment/proportion.png"))
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    warp = ProportionWarp(prob=1.0, target="infant")
    infants = crops("infant", "front", args.n, args.seed)
    rows = []
    for i, adult in enumerate(crops("adult", "front", args.n, args.seed)):
        tiles = [draw(adult, "adult crop")]
        for t in (0.5, 1.0):
            s = TopDownSample(adult.image.copy(), adult.keypoints.copy(), adult.center, adult.scale, adult.schema)
            s.cropped = True
            tiles.append(draw(warp.warp(s, t), f"-> infant, strength {t:g}"))
        tiles.append(draw(infants[i], "rendered infant"))
        rows.append(np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles], 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.concatenate(rows, 0))
    print(args.out)


if __name__ == "__main__":
    main()
