"""`poseadapt check`: validate a COCO keypoint dataset (annotations, schema, image files) before a long run.

Beyond what the loader rejects (malformed JSON, wrong keypoint counts, bad boxes), it looks for the mistakes a
valid file can still hold: labelled keypoints far outside their image, "visible" keypoints at (0, 0), boxes off
the image, and, with `--decode`, images whose real size is not the size the file lists. A wrong `--images`
folder is one line ("0 of 64 images found in DIR"). Everything wrong is reported at once as one `error:` line
(exit code 2); a clean dataset prints a summary with per-keypoint label counts, or one JSON object with `--json`.
`--preview PNG` writes a contact sheet of labelled samples (written before the verdict, so a failing dataset can
be looked at too). Never imports torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from poseadapt.errors import DataError

if TYPE_CHECKING:
    from poseadapt.data.coco import CocoKeypoints


PREVIEW_SAMPLES = 16
PREVIEW_COLUMNS = 4
PREVIEW_TILE = 256


def run(
    ann: Path, images: Path | None, schema: str | None, decode: bool, json_out: bool, preview: Path | None = None
) -> None:
    from poseadapt.data.coco import load_coco_keypoints
    from poseadapt.data.validate import (
        Problems,
        annotation_mistakes,
        check_image_file,
        image_folder_summary,
        image_size_mistakes,
        keypoint_label_stats,
    )

    if preview is not None and images is None:
        raise DataError("--preview draws the images: give --images too")
    if preview is not None:
        from poseadapt.cli.io import check_output

        check_output(preview, "--preview")
    if images is not None and not images.is_dir():
        raise DataError(f"--images: folder not found: {images}")
    data = load_coco_keypoints(ann, schema)
    if images is not None:
        missing = image_folder_summary(data, images)
        if missing is not None:
            raise DataError(f"{ann}: {missing}")
    problems = Problems(str(ann))
    annotation_mistakes(data, problems)
    if images is not None:
        for image in data.images.values():
            why = check_image_file(images / image.file_name, decode=False)
            if why is not None:
                problems.add(f"image {image.id}: {why}")
        if decode:
            image_size_mistakes(data, images, problems)
    if preview is not None and images is not None:
        write_preview(data, images, preview)
    problems.raise_if_any()
    stats = keypoint_label_stats(data)
    summary = {
        "file": str(ann),
        "schema": data.schema.name,
        "keypoints": len(data.schema),
        "layout": "coco-wholebody" if data.wholebody else "coco",
        "images": len(data.images),
        "annotations": len(data),
        "crowd": int(data.iscrowd.sum()),
        "without_keypoints": int((data.num_keypoints == 0).sum()),
        "images_checked": "decoded" if decode and images is not None else ("exist" if images is not None else "no"),
        "per_keypoint": stats,
    }
    if preview is not None:
        summary["preview"] = str(preview)
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    sys.stdout.write(
        f"ok: {summary['file']}: {summary['images']} images, {summary['annotations']} annotations "
        f"({summary['crowd']} crowd, {summary['without_keypoints']} without keypoints), "
        f"schema {summary['schema']} ({summary['keypoints']} keypoints, {summary['layout']} layout), "
        f"image files: {summary['images_checked']}\n"
    )
    people = max(len(data) - summary["crowd"], 1)
    rarest = sorted(stats.items(), key=lambda kv: kv[1]["labelled"])[:5]
    sys.stdout.write(
        "least labelled keypoints: "
        + ", ".join(f"{k} {v['labelled']}/{people} ({100 * v['visible_share']:.0f}% visible)" for k, v in rarest)
        + "\n"
    )
    if preview is not None:
        sys.stdout.write(f"preview: {preview}\n")


def write_preview(
    data: CocoKeypoints,
    images: Path,
    out: Path,
    samples: int = PREVIEW_SAMPLES,
    columns: int = PREVIEW_COLUMNS,
    tile: int = PREVIEW_TILE,
) -> Path:
    """A PNG grid of the first `samples` images (by id) that hold labelled people: each fitted into a `tile`
    square with its ground truth drawn (left / right / centre colours, skeleton, boxes, occluded points as rings)
    and its file name; written atomically. Images that cannot be read are skipped (check reports them)."""
    import cv2
    import numpy as np

    from poseadapt.cli.io import write_atomic
    from poseadapt.draw import annotation_tile, contact_sheet

    people = ~data.iscrowd & (data.num_keypoints > 0)
    tiles = []
    for image_id in sorted(set(data.image_ids[people].tolist())):
        if len(tiles) == samples:
            break
        bgr = cv2.imread(str(images / data.images[image_id].file_name), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rows = people & (data.image_ids == image_id)
        name = Path(data.images[image_id].file_name).name
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        tiles.append(annotation_tile(rgb, data.keypoints[rows], data.boxes[rows], data.schema, tile, label=name))
    if not tiles:
        raise DataError(f"--preview: none of the images with labelled people in {images} could be read")
    ok, png = cv2.imencode(".png", cv2.cvtColor(contact_sheet(tiles, columns), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise DataError(f"--preview: cannot encode {out}")
    return write_atomic(out, np.asarray(png).tobytes())
