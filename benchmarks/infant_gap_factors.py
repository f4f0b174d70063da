"""Which part of the infant gap is body proportions and which is look and pose? (docs/MODEL_CARD.md)

    .venv/bin/python benchmarks/infant_gap_factors.py [--model builtin:synthpose-vit-tiny] [--n 150]

Renders top-view variants that swap one factor at a time between the adult and infant presets (seed 7002, one
person per image) and scores the model on each with `poseadapt eval` (GT boxes, flip test, coco17 OKS AP):
lying adults with the infant limb sampler; the same with the infant preset's proportions or limb lengths, with a
blanket, at infant stature; infants; infants with adult proportions, without blankets, and also in adult clothes
and the adult lying-limb sampler.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from foundation_model_card import poseadapt  # the same `poseadapt` subprocess the model card's numbers use
from poseadapt.synth import get_population, write_dataset
from poseadapt.synth.populations import PRESETS

LYING = {"supine": 0.65, "prone": 0.22, "side_lying": 0.1, "sitting": 0.03}  # the infant preset's mix


def variants() -> dict[str, tuple[str, dict]]:
    adult, infant = PRESETS["adult"], PRESETS["infant"]
    adult_body = {"lengths": adult.lengths, "radii": adult.radii}
    lying = {"poses": LYING, "flexed_lying": 1.0}
    return {
        "lying adults, flexed limbs": ("adult", lying),
        "  + infant proportions": ("adult", {**lying, "lengths": infant.lengths, "radii": infant.radii}),
        "  + infant limb lengths only": ("adult", {**lying, "lengths": infant.lengths}),
        "  + blanket (30%)": ("adult", {**lying, "props": {"blanket": 0.3}}),
        "  at infant stature": ("adult", {**lying, "stature_m": infant.stature_m}),
        "infants": ("infant", {}),
        "  with adult proportions": ("infant", adult_body),
        "  with adult proportions, no blanket": ("infant", {**adult_body, "props": {}}),
        "  with adult proportions, clothes, limbs": (
            "infant",
            {**adult_body, "style": "adult", "flexed_lying": 1.0, "hair_probability": 0.92},
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="builtin:synthpose-vit-tiny")
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--out", type=Path, default=Path("bench_out/infant_gap"))
    args = ap.parse_args()
    print("| top view, 1 person | AP |\n|---|---|")
    for i, (name, (base, overrides)) in enumerate(variants().items()):
        folder = args.out / f"v{i}_{args.n}"
        if not (folder / "annotations").is_dir():
            pop = get_population(base, **overrides)
            write_dataset(folder, pop, view="top", n=args.n, seed=7002, schemas=["coco17"])
        ann = next((folder / "annotations").glob("*_coco17.json"))
        out = poseadapt(
            "eval", "--checkpoint", args.model, "--ann", str(ann), "--images", str(folder / "images"), "--json"
        )
        print(f"| {name} | {100 * json.loads(out)['AP']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
