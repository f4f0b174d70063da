"""`poseadapt check`: validate a COCO keypoint dataset (annotations, schema, image files) before a long run.

Everything wrong is reported at once as one `error:` line (via `DataError` / `SchemaError`); a clean dataset
prints a one-line summary, or one JSON object with `--json`. Never imports torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def run(ann: Path, images: Path | None, schema: str | None, decode: bool, json_out: bool) -> None:
    from poseadapt.data.coco import load_coco_keypoints

    data = load_coco_keypoints(
        ann, schema, image_root=images, check_images=images is not None, decode_images=decode and images is not None
    )
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
    }
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    sys.stdout.write(
        f"ok: {summary['file']}: {summary['images']} images, {summary['annotations']} annotations "
        f"({summary['crowd']} crowd, {summary['without_keypoints']} without keypoints), "
        f"schema {summary['schema']} ({summary['keypoints']} keypoints, {summary['layout']} layout), "
        f"image files: {summary['images_checked']}\n"
    )
