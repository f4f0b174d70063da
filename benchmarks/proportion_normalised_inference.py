"""Zero labels at test time: does reading an infant with adult proportions place its joints better? (no; session 15)

    .venv/bin/python benchmarks/proportion_normalised_inference.py [--model builtin:synthpose-vit-tiny]
        [--tests bench_out/unl_s5]

The adult model puts infant joints where an adult's joint would sit (docs/ADAPTATION_RESULTS.md, session 7), and
the model card's factor study finds infants rendered with adult proportions much easier than infants. So: read
each top-view infant once, warp the crop around that reading towards adult proportions (the inverse of
`ProportionWarp`'s infant ratios, the same MLS geometry, raised to a strength), read the warped crop again and map
its keypoints back through the warp's own pixel map. If it worked, `poseadapt pseudo-label` would gain it.

Rows: the plain reading; the crop zoomed out / in alone (a warp of strength 0.001, to separate the scale change
from the warp); the warp of every part, of the head only, of the arms, of the legs. Also a silhouette check that
needs no net (SHIFT's masks, session 14's question without the adult-trained Kp2Seg): each limb joint of the plain
reading moved across its limb onto the ridge of the mask's distance transform, and the hidden labels moved alike.
GT boxes, flip test, OKS AP on benchmarks/unlabelled_methods_ap.py's 200 top-view infants (seed 9101), rendered
here if missing; each row's predictions scored with `poseadapt compare --bootstrap 1000`, paired against the plain
reading.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from poseadapt.data import proportion as P
from poseadapt.data.coco import CocoPredictions
from poseadapt.data.topdown import box_to_center_scale, crop, invert_affine, udp_warp_matrix, warp_points
from poseadapt.evaluate.topdown import (
    Predictor,
    coco_results,
    gt_people,
    image_reader,
    instance_scores,
    load_ground_truth,
)
from poseadapt.interop.checkpoint import load_checkpoint
from unlabelled_methods_ap import sh

LIMB_JOINTS = [(f"{side}_{j}", f"{side}_{p}") for side in ("left", "right")
               for j, p in (("elbow", "shoulder"), ("wrist", "elbow"), ("knee", "hip"), ("ankle", "knee"))]  # fmt: skip
RIDGE_SEARCH = 0.12  # how far across the limb a joint may move, x sqrt(box area)
ARMS, LEGS = ("upper_arm", "forearm", "hand"), ("thigh", "shin", "foot")
# (row name, crop zoom, warp strength, parts warped; None = all)
VARIANTS = [
    ("zoomed in (x0.9)", 0.9, 0.001, None),
    ("zoomed out (x1.3)", 1.3, 0.001, None),
    ("all parts, strength 0.5", 1.0, 0.5, None),
    ("all parts, strength 1.0", 1.0, 1.0, None),
    ("all parts, strength 1.0, zoomed out (x1.3, room for longer limbs)", 1.3, 1.0, None),
    ("head only, strength 0.5", 1.0, 0.5, ("head",)),
    ("head only, strength 1.0", 1.0, 1.0, ("head",)),
    ("arms only, strength 1.0", 1.0, 1.0, ARMS),
    ("legs only, strength 0.5", 1.0, 0.5, LEGS),
    ("legs only, strength 1.0", 1.0, 1.0, LEGS),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:synthpose-vit-tiny")
    ap.add_argument("--tests", type=Path, default=Path("bench_out/unl_s5"))
    ap.add_argument("--out", type=Path, default=Path("bench_out/proportion_normalised"))
    args = ap.parse_args()
    data = args.tests / "data/infant_top_test"
    ann = data / "annotations/infant_coco17.json"
    if not ann.is_file():
        sh("synth", "--population", "infant", "--view", "top", "--n", "200", "--seed", "9101", "--size", "256",
           "--out", str(data))  # fmt: skip
    model = load_checkpoint(args.model)
    predictor = Predictor(model, flip_test=True)
    schema, size = predictor.schema, tuple(model.input_size)
    index = {n: i for i, n in enumerate(schema.keypoints)}
    edges = [(index[a], index[b]) for a, b in schema.skeleton]
    gt = load_ground_truth(ann)
    people = gt_people(gt)
    read = image_reader(data / "images", gt)

    def reading(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One crop (h, w, 3) -> keypoints (K, 2) in crop pixels, scores (K,)."""
        keypoints, scores = predictor._decode_input(predictor.forward(pixels[None]))
        return keypoints[0], scores[0]

    def normalised(image: np.ndarray, center: np.ndarray, scale: np.ndarray, first: np.ndarray, zoom: float,
                   strength: float, parts: tuple[str, ...] | None) -> np.ndarray:  # fmt: skip
        """Warp a `zoom`-times wider crop around the first reading (image pixels) towards adult proportions, read it,
        and map the keypoints back to image pixels through the warp's backward map."""
        to_crop = udp_warp_matrix(center, scale * zoom, 0.0, size)
        old = warp_points(first[:, :2], to_crop)
        ratios = {k: v**strength if parts is None or k in parts else 1.0 for k, v in P.PROPORTIONS["adult"].items()}
        labelled = np.ones(len(old), bool)
        new = P.proportion_targets(old, labelled, schema.keypoints, schema.skeleton, ratios)
        src, dst = P.control_points(old, new, labelled, edges, size)
        maps = P.mls_maps(dst, src, size)  # warped pixel -> source pixel
        keypoints, scores = reading(P.warp_image(crop(image, center, scale * zoom, 0.0, size), maps))
        xs, ys = (keypoints[:, i : i + 1].astype(np.float32) for i in (0, 1))
        back = [cv2.remap(maps[..., d], xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for d in (0, 1)]
        back = np.concatenate(back, 1).astype(np.float64)
        return np.concatenate([warp_points(back, invert_affine(to_crop)), scores[:, None]], 1)

    def ridge_snapped(keypoints: np.ndarray, person: dict, image_size: tuple[int, int], frac: float) -> np.ndarray:
        """Each limb joint moved across its limb (perpendicular to its parent bone) to the nearest ridge of the
        person mask's distance transform, `frac` of the way: a joint sits mid-limb when the limb is seen side-on."""
        mask = np.zeros(image_size[::-1], np.uint8)
        for poly in person["segmentation"]:
            cv2.fillPoly(mask, [np.round(np.reshape(poly, (-1, 2)) * 4).astype(np.int32)], 1, shift=2)
        ridge = cv2.distanceTransform(mask, cv2.DIST_L2, 5).astype(np.float32)
        offsets = np.linspace(-1.0, 1.0, 41) * RIDGE_SEARCH * np.sqrt(person["area"])
        out = keypoints.copy()
        for joint, parent in LIMB_JOINTS:
            bone = keypoints[index[joint], :2] - keypoints[index[parent], :2]
            if np.linalg.norm(bone) < 1e-3:
                continue
            across = np.array([-bone[1], bone[0]]) / np.linalg.norm(bone)
            line = (keypoints[index[joint], :2] + offsets[:, None] * across).astype(np.float32)
            depth = cv2.remap(ridge, line[:, :1], line[:, 1:], cv2.INTER_LINEAR)[:, 0]
            out[index[joint], :2] += frac * offsets[np.argmax(depth - 0.05 * np.abs(offsets))] * across
        return out

    raw = json.loads(ann.read_text())
    persons = [a for a in raw["annotations"] if not a.get("iscrowd")]
    sizes = {im["id"]: (im["width"], im["height"]) for im in raw["images"]}
    if not np.allclose([p["bbox"] for p in persons], people.boxes, atol=1.0):
        raise SystemExit("the annotations' order differs from the evaluation's people")
    rows = {"plain reading": np.zeros((len(people), len(index), 3))}
    rows.update({name: np.zeros_like(rows["plain reading"]) for name, *_ in VARIANTS})
    t0 = time.time()
    for i in range(len(people)):
        image = read(int(people.image_ids[i])).astype(np.float32)
        center, scale = box_to_center_scale(people.boxes[i], size[0] / size[1], predictor.padding)
        keypoints, scores = reading(crop(image, center, scale, 0.0, size))
        first = np.concatenate([warp_points(keypoints, invert_affine(udp_warp_matrix(center, scale, 0.0, size))),
                                scores[:, None]], 1)  # fmt: skip
        rows["plain reading"][i] = first
        for name, zoom, strength, parts in VARIANTS:
            rows[name][i] = normalised(image, center, scale, first, zoom, strength, parts)
        size_i = sizes[int(people.image_ids[i])]
        for frac in (0.5, 1.0):
            name = f"plain reading, limb joints snapped {frac:g} to the mask's ridge"
            rows.setdefault(name, rows["plain reading"] * 0)[i] = ridge_snapped(first, persons[i], size_i, frac)
        truth = np.reshape(persons[i]["keypoints"], (-1, 3)).astype(np.float64)
        truth[:, 2] = 1.0
        rows.setdefault("the hidden labels, snapped 1 to the mask's ridge", rows["plain reading"] * 0)
        rows["the hidden labels, snapped 1 to the mask's ridge"][i] = ridge_snapped(truth, persons[i], size_i, 1.0)
    print(f"{len(people)} infants, {time.time() - t0:.0f} s", flush=True)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    models = []
    for n, keypoints in enumerate(rows.values()):
        preds = CocoPredictions(
            image_ids=people.image_ids,
            category_ids=np.ones(len(people), np.int64),
            keypoints=keypoints,
            scores=instance_scores(keypoints[..., 2], people.box_scores),
        )
        path = out / f"reading{n}.json"
        path.write_text(json.dumps(coco_results(preds)))
        models += ["--model", f"r{n}={path}"]
    summary = json.loads(sh("compare", *models, "--test", f"infant_top={ann}", "--out", str(out / "compare"),
                            "--baseline", "r0", "--bootstrap", "1000", "--json"))  # fmt: skip
    names = list(rows)
    print("| reading | AP [95%] | ΔAP vs the plain reading [95%] | AP50 | AP75 |\n|---|---|---|---|---|")
    for r in summary["results"]:
        ci, f = r["AP_ci"], r.get("forgetting") or {}
        d = f"{100 * f['delta_AP']:+.1f} [{100 * f['ci'][0]:+.1f}, {100 * f['ci'][1]:+.1f}]" if f.get("ci") else "-"
        ap = f"{100 * r['AP']:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
        print(f"| {names[int(r['model'][1:])]} | {ap} | {d} | {100 * r['AP50']:.1f} | {100 * r['AP75']:.1f} |")


if __name__ == "__main__":
    main()
