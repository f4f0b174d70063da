"""`poseadapt import` and `poseadapt export onnx`: bring foreign checkpoints in, send ours out.

torch is imported inside the functions, so loading this module (and `poseadapt --help`) stays light.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from poseadapt.errors import PoseAdaptError


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def parse_img_size(text: str | None) -> tuple[int, int] | None:
    """'256x192' (height x width) -> (256, 192)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not match:
        raise PoseAdaptError(f"--img-size must look like HEIGHTxWIDTH (e.g. 256x192), got '{text}'")
    return int(match.group(1)), int(match.group(2))


def import_cmd(
    fmt: str,
    src: str,
    out: Path,
    schema: str | None,
    num_heads: int | None,
    img_size: str | None,
    head: str,
    json_out: bool,
) -> None:
    from poseadapt.interop.checkpoint import save_checkpoint
    from poseadapt.interop.importers import FORMATS, import_checkpoint

    if fmt not in FORMATS:
        raise PoseAdaptError(f"unknown import format '{fmt}' (known: {', '.join(FORMATS)})")
    if out.suffix != ".safetensors":
        raise PoseAdaptError(f"--out must end in .safetensors, got '{out}'")
    model, report = import_checkpoint(fmt, src, schema, num_heads, parse_img_size(img_size), head)
    provenance = {**model.provenance, "import_report": report.to_dict()}
    provenance.pop("hf_config", None)
    save_checkpoint(model, out, provenance)
    summary: dict[str, Any] = {
        "out": str(out),
        "arch": model.config.arch,
        "backbone": {
            k: v
            for k, v in model.config.backbone.to_dict().items()
            if k in ("embed_dim", "depth", "num_heads", "img_size", "num_experts")
        },
        "heads": [
            {"name": h.name, "schema": h.schema, "keypoints": len(s)}
            for h, s in zip(model.config.heads, model.schemas, strict=True)
        ],
        **report.to_dict(),
    }
    if json_out:
        _print_json(summary)
        return
    lines = [
        f"imported {fmt} checkpoint {src} -> {out}",
        f"  backbone: {summary['backbone']}",
        "  heads: " + ", ".join(f"{h['name']} ({h['schema']}, {h['keypoints']} kp)" for h in summary["heads"]),
        f"  loaded {report.loaded} tensors; unused: {len(report.unused)}; initialised fresh: {len(report.missing)}",
    ]
    lines += [f"    unused: {k}" for k in report.unused[:20]]
    if len(report.unused) > 20:
        lines.append(f"    ... and {len(report.unused) - 20} more unused (use --json for all)")
    lines += [f"  note: {n}" for n in report.notes]
    sys.stdout.write("\n".join(lines) + "\n")


def export_onnx_cmd(checkpoint: Path, out: Path, head: str | None, check: bool, json_out: bool) -> None:
    from poseadapt.interop.checkpoint import load_model
    from poseadapt.interop.onnx_export import export_onnx

    model = load_model(checkpoint)
    result = export_onnx(model, out, head=head, check=check)
    if json_out:
        _print_json(result)
        return
    msg = f"exported {checkpoint} (head {result['head']}) -> {out}"
    if "max_rel_error" in result:
        msg += f"; onnxruntime vs torch max relative error {result['max_rel_error']:.2e}"
    sys.stdout.write(msg + "\n")


# ---------------------------------------------------------------------------------------------- predict / eval
def _collect_images(inputs: list[Path]) -> list[Path]:
    from poseadapt.models.inference import IMAGE_SUFFIXES

    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            found.append(item)
        else:
            raise PoseAdaptError(f"no such image or folder: {item}")
    if not found:
        raise PoseAdaptError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, inputs))}")
    return found


def _read_json(path: Path, what: str) -> Any:
    from poseadapt.errors import DataError

    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def _box_rows(boxes: Any, where: str) -> list[list[float]]:
    """[[x, y, w, h(, score)], ...] validated: finite numbers, positive size."""
    import math

    from poseadapt.errors import DataError

    rows = []
    for box in boxes:
        if not isinstance(box, list | tuple) or len(box) not in (4, 5):
            raise DataError(f"{where}: a box must be [x, y, w, h] or [x, y, w, h, score], got {box!r}")
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
            raise DataError(f"{where}: box {box!r} needs finite numbers and a positive width and height")
        rows.append([float(v) for v in box] + ([1.0] if len(box) == 4 else []))
    return rows


def read_boxes_by_file(path: Path) -> dict[str, list[list[float]]]:
    """Boxes for `predict`: {file_name: [[x, y, w, h(, score)], ...]} or [{"file_name", "bbox", "score"?}, ...]."""
    from poseadapt.errors import DataError

    data = _read_json(path, "boxes file")
    out: dict[str, list[list[float]]] = {}
    if isinstance(data, dict):
        for name, boxes in data.items():
            out[Path(name).name] = _box_rows(boxes if isinstance(boxes, list) else [boxes], f"{path} [{name}]")
        return out
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a mapping file_name -> boxes or a list of {{file_name, bbox, score}}")
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "file_name" not in item or "bbox" not in item:
            raise DataError(f"{path}: entry {i} needs 'file_name' and 'bbox'")
        row = _box_rows([list(item["bbox"]) + [item.get("score", 1.0)]], f"{path} entry {i}")
        out.setdefault(Path(item["file_name"]).name, []).extend(row)
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _progress(items: list, description: str) -> Any:
    from rich.progress import track

    return track(items, description=description, transient=True, disable=not sys.stderr.isatty() or len(items) < 3)


def _results_for(keypoints: Any, boxes: list[list[float]], **fields: Any) -> list[dict[str, Any]]:
    from poseadapt.models.inference import instance_score

    return [
        {
            **fields,
            "keypoints": [round(float(v), 3) for v in kp.reshape(-1)],
            "score": round(instance_score(kp[:, 2], box[4]), 5),
            "bbox": [round(v, 2) for v in box[:4]],
        }
        for kp, box in zip(keypoints, boxes, strict=True)
    ]


def predict_cmd(
    checkpoint: Path, inputs: list[Path], boxes: Path | None, out: Path, head: str | None, flip: bool, json_out: bool
) -> None:
    import cv2
    import numpy as np

    from poseadapt.interop.checkpoint import load_model
    from poseadapt.models.inference import TopDownPredictor, draw_pose, read_image

    images = _collect_images(inputs)
    box_map = read_boxes_by_file(boxes) if boxes else None
    predictor = TopDownPredictor(load_model(checkpoint), head=head, flip_test=flip)
    results: list[dict[str, Any]] = []
    for image_id, path in enumerate(_progress(images, "predicting"), start=1):
        image = read_image(path)
        h, w = image.shape[:2]
        rows = box_map.get(path.name, []) if box_map is not None else [[0.0, 0.0, float(w), float(h), 1.0]]
        keypoints = predictor.predict(image, np.asarray([r[:4] for r in rows]).reshape(-1, 4))
        results += _results_for(keypoints, rows, image_id=image_id, file_name=path.name, category_id=1)
        overlay = cv2.cvtColor(draw_pose(image, keypoints, predictor.schema), cv2.COLOR_RGB2BGR)
        ok, png = cv2.imencode(".png", overlay)
        if not ok:
            raise PoseAdaptError(f"cannot encode the overlay of {path}")
        _write_atomic(out / "overlays" / f"{path.stem}.png", png.tobytes())
    _write_atomic(out / "results.json", json.dumps(results).encode())
    summary = {"images": len(images), "instances": len(results), "results": str(out / "results.json"),
               "overlays": str(out / "overlays"), "schema": predictor.schema.name}  # fmt: skip
    if json_out:
        _print_json(summary)
    else:
        sys.stdout.write(
            f"{summary['instances']} poses in {summary['images']} images -> {summary['results']} "
            f"(overlays in {summary['overlays']})\n"
        )


def _detections_by_image(path: Path, valid_ids: set[int]) -> dict[int, list[list[float]]]:
    from poseadapt.errors import DataError

    data = _read_json(path, "detections file")
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a COCO detection results list [{{image_id, bbox, score}}, ...]")
    out: dict[int, list[list[float]]] = {}
    for i, det in enumerate(data):
        if not isinstance(det, dict) or "image_id" not in det or "bbox" not in det:
            raise DataError(f"{path}: detection {i} needs 'image_id' and 'bbox'")
        if det["image_id"] not in valid_ids:
            raise DataError(f"{path}: detection {i} refers to image_id {det['image_id']}, which the annotations lack")
        out.setdefault(int(det["image_id"]), []).extend(
            _box_rows([list(det["bbox"]) + [det.get("score", 1.0)]], f"{path} detection {i}")
        )
    return out


def eval_cmd(
    checkpoint: Path,
    ann: Path,
    images_dir: Path,
    boxes: Path | None,
    head: str | None,
    flip: bool,
    out: Path | None,
    json_out: bool,
) -> None:
    import tempfile

    import numpy as np

    from poseadapt.data.coco import load_coco_keypoints
    from poseadapt.evaluate.score import score_files
    from poseadapt.interop.checkpoint import load_model
    from poseadapt.models.inference import TopDownPredictor, read_image

    if not images_dir.is_dir():
        raise PoseAdaptError(f"--images must be a folder, got {images_dir}")
    predictor = TopDownPredictor(load_model(checkpoint), head=head, flip_test=flip)
    gt = load_coco_keypoints(ann, predictor.schema, image_root=images_dir)
    if boxes is not None:
        per_image = _detections_by_image(boxes, set(gt.images))
    else:  # ground-truth boxes of every non-crowd person
        per_image = {}
        for row in np.flatnonzero(~gt.iscrowd):
            per_image.setdefault(int(gt.image_ids[row]), []).append([*map(float, gt.boxes[row]), 1.0])
    results: list[dict[str, Any]] = []
    for image_id in _progress(sorted(per_image), "evaluating"):
        rows = per_image[image_id]
        image = read_image(gt.image_path(image_id, images_dir))
        keypoints = predictor.predict(image, np.asarray([r[:4] for r in rows]))
        results += _results_for(keypoints, rows, image_id=image_id, category_id=gt.category_id)
    if not results:
        raise PoseAdaptError(f"no person boxes to evaluate in {boxes or ann}")
    with tempfile.TemporaryDirectory() as tmp:
        pred_path = out if out is not None else Path(tmp) / "results.json"
        _write_atomic(pred_path, json.dumps(results).encode())
        score = score_files(ann, pred_path, schema=predictor.schema, metric="ap")
    summary = {**score.to_dict(), "instances": len(results), "boxes": "detections" if boxes else "ground truth"}
    if out is not None:
        summary["results"] = str(out)
    if json_out:
        _print_json(summary)
        return
    lines = [f"{k:>6}: {v:.4f}" for k, v in score.values.items()]
    sys.stdout.write(
        f"OKS keypoint AP of {checkpoint.name} on {ann.name} ({summary['instances']} instances, "
        f"{summary['boxes']} boxes, schema {score.schema})\n" + "\n".join(lines) + "\n"
    )
