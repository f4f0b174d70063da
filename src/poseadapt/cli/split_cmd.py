"""`poseadapt split ANN.json --out DIR [--group-by FIELD]`: train / val / test COCO files from one.

Splits by image (every person of an image lands in the same split) or, with `--group-by FIELD`, by the value of
an image field such as a subject id, so that one infant never sits in two splits. The same seed gives the same
split, byte for byte; groups are shuffled and handed out until each split reaches its share of images.
The three files keep the input's `info`, `licenses` and `categories`, and its image and annotation ids.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from poseadapt.errors import DataError, PoseAdaptError

SPLITS = ("train", "val", "test")


def parse_ratios(text: str) -> tuple[float, float, float]:
    try:
        values = [float(v) for v in text.replace(":", ",").split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or not all(math.isfinite(v) and v >= 0 for v in values) or sum(values) <= 0:
        raise PoseAdaptError(f"--ratios expects three shares train,val,test (e.g. 0.8,0.1,0.1), got '{text}'")
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def group_key(image: dict[str, Any], field: str | None) -> Any:
    """The value an image is grouped by: `field` of the image (dotted for nested: `attributes.subject`)."""
    if field is None:
        return ("image", image["id"])
    value: Any = image
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DataError(f"image {image.get('id')}: no field '{field}' to group by")
        value = value[part]
    if isinstance(value, list | dict):
        raise DataError(f"image {image.get('id')}: field '{field}' is a {type(value).__name__}, expected a value")
    return value


def split_images(
    images: list[dict[str, Any]], ratios: tuple[float, float, float], seed: int, group_by: str | None
) -> dict[str, list[int]]:
    """Image ids per split; every group (or image) whole in one split."""
    groups: dict[str, list[int]] = {}
    for image in images:
        groups.setdefault(repr(group_key(image, group_by)), []).append(image["id"])
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    total = len(images)
    targets = [r * total for r in ratios]
    out: dict[str, list[int]] = {name: [] for name in SPLITS}
    for key in keys:
        # the split furthest below its share takes the next group
        need = [targets[i] - len(out[name]) for i, name in enumerate(SPLITS)]
        i = max(range(3), key=lambda k: (need[k], -k))
        out[SPLITS[i]].extend(groups[key])
    return out


def run(ann: Path, out: Path, group_by: str | None, ratios_text: str, seed: int, json_out: bool) -> dict[str, Any]:
    from poseadapt.cli.io import check_output, print_json, write_json
    from poseadapt.data.validate import Problems, keypoint_count_mistakes, read_json

    shares = parse_ratios(ratios_text)
    check_output(out, "--out", folder=True)
    data = read_json(ann, "annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{ann}: not a COCO file (no 'images' list)")
    images = [im for im in data["images"] if isinstance(im, dict) and isinstance(im.get("id"), int)]
    if not images:
        raise DataError(f"{ann}: no images to split")
    problems = Problems(str(ann))
    keypoint_count_mistakes(data, problems)  # a wrong-length keypoint list would be copied into every split
    problems.raise_if_any()
    parts = split_images(images, shares, seed, group_by)
    anns = [a for a in data.get("annotations") or [] if isinstance(a, dict)]
    summary: dict[str, Any] = {"file": str(ann), "seed": seed, "group_by": group_by, "splits": {}}
    stem = ann.stem
    for name in SPLITS:
        ids = set(parts[name])
        coco = {k: v for k, v in data.items() if k not in ("images", "annotations")}
        coco["images"] = [im for im in images if im["id"] in ids]
        coco["annotations"] = [a for a in anns if a.get("image_id") in ids]
        path = write_json(out / f"{stem}_{name}.json", coco)
        groups = len({repr(group_key(im, group_by)) for im in coco["images"]})
        summary["splits"][name] = {"file": str(path), "images": len(coco["images"]),
                                   "annotations": len(coco["annotations"]), "groups": groups}  # fmt: skip
    if json_out:
        print_json(summary)
    else:
        noun = f"'{group_by}' groups" if group_by else "images"
        sys.stdout.write(
            "; ".join(
                f"{n}: {s['images']} images, {s['annotations']} people ({s['groups']} {noun}) -> {s['file']}"
                for n, s in summary["splits"].items()
            )
            + "\n"
        )
    return summary


def split(
    ann: Annotated[Path, typer.Argument(help="COCO keypoint JSON to split.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for ANN_train.json, ANN_val.json, ANN_test.json.")],
    group_by: Annotated[
        str | None,
        typer.Option(
            "--group-by",
            help="Image field whose value stays in one split (e.g. subject_id; dotted for nested fields).",
        ),
    ] = None,
    ratios: Annotated[str, typer.Option("--ratios", help="Shares of train,val,test images.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same split.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Split a COCO keypoint file into train / val / test by image, or by a field so one subject is in one split."""
    run(ann, out, group_by, ratios, seed, json_out)
