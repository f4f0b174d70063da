"""`poseadapt predict` and `poseadapt eval`: the command-line side of `poseadapt.evaluate.topdown`.

torch is imported inside the functions, so loading this module (and `poseadapt --help`) stays light.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from poseadapt.errors import PoseAdaptError


def _collect_images(inputs: list[Path]) -> list[Path]:
    from poseadapt.evaluate.topdown import IMAGE_SUFFIXES

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


def read_boxes_by_file(path: Path) -> dict[str, list[list[float]]]:
    """Boxes for `predict`: {file_name: [[x, y, w, h(, score)], ...]} or [{"file_name", "bbox", "score"?}, ...]."""
    from poseadapt.data.validate import read_json
    from poseadapt.errors import DataError
    from poseadapt.evaluate.topdown import check_box

    data = read_json(path, "boxes file")
    out: dict[str, list[list[float]]] = {}
    if isinstance(data, dict):
        for name, boxes in data.items():
            rows = boxes if isinstance(boxes, list) and boxes and isinstance(boxes[0], list) else [boxes]
            out[Path(name).name] = [check_box(b, f"{path} [{name}]") for b in rows]
        return out
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a mapping file_name -> boxes or a list of {{file_name, bbox, score}}")
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "file_name" not in item or "bbox" not in item:
            raise DataError(f"{path}: entry {i} needs 'file_name' and 'bbox'")
        row = check_box(list(item["bbox"]) + [item.get("score", 1.0)], f"{path} entry {i}")
        out.setdefault(Path(item["file_name"]).name, []).append(row)
    return out


def image_ids_from_ann(ann: Path, images: list[Path]) -> tuple[dict[Path, int], int | None]:
    """The ground truth's `image_id` of every image (matched by its file_name, or by base name when unique), and
    the file's keypoint category id; one line naming the first image the file does not list."""
    from poseadapt.data.validate import read_json
    from poseadapt.errors import DataError

    data = read_json(ann, "annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{ann}: not a COCO annotation file (no 'images' list)")
    by_name: dict[str, int] = {}
    by_base: dict[str, list[int]] = {}
    for im in data["images"]:
        if isinstance(im, dict) and isinstance(im.get("file_name"), str) and isinstance(im.get("id"), int):
            by_name[im["file_name"]] = im["id"]
            by_base.setdefault(Path(im["file_name"]).name, []).append(im["id"])
    ids: dict[Path, int] = {}
    for path in images:
        found = next((by_name[k] for k in (str(path), path.as_posix()) if k in by_name), None)
        if found is None:
            tail = [i for k, i in by_name.items() if path.as_posix().endswith("/" + k)]
            base = by_base.get(path.name, [])
            found = tail[0] if len(tail) == 1 else base[0] if len(base) == 1 else None
        if found is None:
            raise DataError(f"--ann {ann}: lists no image '{path.name}' (of {len(images)} images to predict)")
        ids[path] = found
    cats = [c for c in data.get("categories") or [] if isinstance(c, dict) and c.get("keypoints")]
    return ids, (int(cats[0]["id"]) if cats and isinstance(cats[0].get("id"), int) else None)


def predict_cmd(
    checkpoint: Path,
    inputs: list[Path],
    boxes: Path | None,
    out: Path,
    head: str | None,
    flip: bool,
    json_out: bool,
    ann: Path | None = None,
    min_score: float | None = None,
    decode_prior: Path | None = None,
    upright_test: bool = False,
    invert_images: bool = False,
) -> None:
    """`image_id`s: the ground truth's with `ann` (matched by file name), else 1..N in sorted file-name order
    (each row also carries its `file_name`); scoring 1..N ids against a file with other ids would be wrong.

    Overlays draw keypoints scoring at least `min_score` (results.json keeps them all), left / right / centre in
    three colours, the person boxes when `boxes` gave them, and with `ann` the ground truth in a panel beside."""
    import cv2
    import numpy as np

    from poseadapt.cli.io import atomic_folder, check_output, print_json, progress_callback, write_json
    from poseadapt.evaluate.topdown import (
        OKS_NMS_THRESHOLD,
        People,
        coco_results,
        oks_nms,
        predict_people,
        read_image,
        select,
    )
    from poseadapt.models.inference import DEFAULT_MIN_SCORE, draw_pose

    if min_score is None:
        min_score = DEFAULT_MIN_SCORE
    check_min_score(min_score)
    check_output(out, "--out", folder=True)

    images = _collect_images(inputs)
    box_map = read_boxes_by_file(boxes) if boxes else None
    if ann is not None:
        id_of, category_id = image_ids_from_ann(ann, images)
    else:
        id_of, category_id = {path: i for i, path in enumerate(images, start=1)}, None
    model = reading_model(checkpoint, invert_images)
    schema = model.schemas[model.head_index(head) if head else 0]
    decoder = prior_decoder(decode_prior, schema, model.codec)
    ids, rows, names = [], [], {}
    for path in images:
        image_id = id_of[path]
        names[image_id] = path.name
        if box_map is not None:
            found = box_map.get(path.name, [])
        else:  # the whole image is the box
            h, w = read_image(path).shape[:2]
            found = [[0.0, 0.0, float(w), float(h), 1.0]]
        ids += [image_id] * len(found)
        rows += found
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    people = People(np.asarray(ids, dtype=np.int64), table[:, :4], table[:, 4], detected=box_map is not None)
    paths = {id_of[path]: path for path in images}
    if len(paths) != len(images):
        raise PoseAdaptError(f"--ann {ann}: two of the images to predict map to the same image_id")
    progress = progress_callback(len(images), "predicting")
    preds = predict_people(
        model, people, lambda i: read_image(paths[i]), head=head, flip_test=flip, nms_threshold=None, progress=progress,
        decoder=decoder, upright_test=upright_test, **({} if category_id is None else {"category_id": category_id}),
    )  # fmt: skip
    keep = np.arange(len(preds))
    if people.detected and len(preds):
        keep = oks_nms(preds, people.boxes[:, 2] * people.boxes[:, 3], schema.sigmas, OKS_NMS_THRESHOLD)
        preds = select(preds, keep)
    results = coco_results(preds, names)
    for row, box in zip(results, people.boxes[keep], strict=True):
        row["bbox"] = [round(float(v), 2) for v in box]
    gt = None
    if ann is not None:
        from poseadapt.evaluate.topdown import load_ground_truth

        gt = load_ground_truth(ann, schema)
    drawn_boxes = people.boxes[keep] if people.detected else None
    with atomic_folder(out) as tmp:
        for image_id, path in paths.items():
            image = read_image(path)
            here = preds.image_ids == image_id
            panel = draw_pose(
                image, preds.keypoints[here], schema, min_score,
                boxes=None if drawn_boxes is None else drawn_boxes[here], label=None if gt is None else "prediction",
            )  # fmt: skip
            if gt is not None:
                rows = (gt.image_ids == image_id) & ~gt.iscrowd
                truth = draw_pose(image, gt.keypoints[rows], gt.schema, 1, boxes=gt.boxes[rows], label="ground truth")
                panel = np.concatenate([panel, truth], axis=1)
            overlay = cv2.cvtColor(panel, cv2.COLOR_RGB2BGR)
            ok, png = cv2.imencode(".png", overlay)
            if not ok:
                raise PoseAdaptError(f"cannot encode the overlay of {path}")
            (tmp / "overlays").mkdir(exist_ok=True)
            (tmp / "overlays" / f"{path.stem}.png").write_bytes(png.tobytes())
        write_json(tmp / "results.json", results)
    summary = {"images": len(images), "instances": len(results), "results": str(out / "results.json"),
               "overlays": str(out / "overlays"), "schema": schema.name}  # fmt: skip
    if json_out:
        print_json(summary)
    else:
        sys.stdout.write(
            f"{summary['instances']} poses in {summary['images']} images -> {summary['results']} "
            f"(overlays in {summary['overlays']})\n"
        )
        if ann is None:
            sys.stderr.write(
                "note: image_id 1..N follows the sorted file names (results.json rows carry file_name too); "
                "pass --ann GT.json to use the ground truth's ids before scoring against it\n"
            )


def check_min_score(min_score: float) -> None:
    """Any number is a threshold, NaN is not: heatmap scores can leave [0, 1] (-1 keeps every keypoint, 1e9 none)."""
    if math.isnan(min_score):
        raise PoseAdaptError(f"--min-score must be a number, got {min_score}")


def reading_model(checkpoint: Path, invert_images: bool) -> Any:
    """The checkpoint's model; with `invert_images`, the same weights reading every image inverted (255 - value).

    The inversion toggles what the checkpoint does (surgery.with_input_inverted), so it is exact and free, and a
    model trained with `model.invert_input` given `--invert-images` reads the images as its weights did before.
    Crop padding past the image is black before the inversion, so it reads as an inverted frame's white border.
    """
    from poseadapt.interop.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint)
    if not invert_images:
        return model
    from poseadapt.models.surgery import with_input_inverted

    return with_input_inverted(model, not model.config.input_inverted).eval()


def proportion_debias(source: Path | None, target: Path | None, schema: Any) -> Any:
    """A ProportionDebias from `--debias-source` / `--debias-target` (None without them); both or neither."""
    if source is None and target is None:
        return None
    if source is None or target is None:
        given, missing = ("--debias-source", "--debias-target")[:: 1 if target is None else -1]
        raise PoseAdaptError(f"{given} needs {missing} too (the labelled poses of the other population)")
    from poseadapt.data.coco import load_coco_keypoints
    from poseadapt.evaluate.proportions import ProportionDebias

    poses = [load_coco_keypoints(path, schema).keypoints for path in (source, target)]
    return ProportionDebias.from_poses(schema.keypoints, *poses)


def prior_decoder(path: Path | None, schema: Any, codec: Any) -> Any:
    """A PriorDecoder for `--decode-prior` (None without one); a prior missing the schema's keypoints is one line."""
    if path is None:
        return None
    from poseadapt.evaluate.prior_decode import PriorDecoder, codec_refiner
    from poseadapt.priors import PosePrior

    refine = codec_refiner(codec)
    if refine is None:
        raise PoseAdaptError(f"--decode-prior needs a heatmap model; this one decodes with {type(codec).__name__}")
    return PriorDecoder(PosePrior.load(path), schema.keypoints, schema.flip_index, refine)


def eval_cmd(
    checkpoint: Path,
    ann: Path,
    images_dir: Path,
    boxes: Path | None,
    head: str | None,
    flip: bool,
    out: Path | None,
    json_out: bool,
    prior: Path | None = None,
    decode_prior: Path | None = None,
    upright_test: bool = False,
    invert_images: bool = False,
) -> None:
    from poseadapt.cli.io import check_output, print_json, progress_callback, write_json
    from poseadapt.evaluate.topdown import detection_people, evaluate_model, load_ground_truth

    if not images_dir.is_dir():
        raise PoseAdaptError(f"--images must be a folder, got {images_dir}")
    if out is not None:
        check_output(out, "--out")
    pose_prior = None
    if prior is not None:
        from poseadapt.priors import PosePrior

        pose_prior = PosePrior.load(prior)
    model = reading_model(checkpoint, invert_images)
    schema = model.schemas[model.head_index(head) if head else 0]
    decoder = prior_decoder(decode_prior, schema, model.codec)
    gt = load_ground_truth(ann, schema)
    detections = detection_people(boxes, gt.images) if boxes is not None else None
    result = evaluate_model(
        model, gt, images_dir, detections=detections, head=head, flip_test=flip,
        progress=progress_callback(len(gt.images), "evaluating"), decoder=decoder, upright_test=upright_test,
    )  # fmt: skip
    summary = result.to_dict()
    if decoder is not None:
        summary.update(decoder.summary())
    if pose_prior is not None:
        from poseadapt.evaluate.plausibility import implausible_rate

        names = model.schemas[model.head_index(head) if head else 0].keypoints
        summary.update(implausible_rate(pose_prior, result.predictions.keypoints, names))
    if out is not None:
        write_json(out, result.results())
        summary["results"] = str(out)
    if json_out:
        print_json(summary)
        return
    lines = [f"{k:>6}: {v:.4f}" for k, v in result.stats.items()]
    if pose_prior is not None:
        lo, hi = summary["implausible_interval"]
        lines.append(
            f"implausible poses: {summary['implausible_rate']:.4f} [{lo:.4f}, {hi:.4f}] of {summary['poses']} "
            f"(prior {summary['prior']})"
        )
    sys.stdout.write(
        f"OKS keypoint AP of {checkpoint.name} on {ann.name} ({summary['instances']} instances, "
        f"{summary['boxes']} boxes, schema {summary['schema']}, {summary['scored_keypoints']} keypoints scored)\n"
        + "\n".join(lines)
        + "\n"
    )


def pseudo_label_cmd(
    checkpoint: Path,
    ann: Path,
    images: Path,
    out: Path,
    min_score: float,
    head: str | None,
    flip: bool,
    decode_prior: Path | None,
    json_out: bool,
    upright_test: bool = False,
    invert_images: bool = False,
    debias: tuple[Path | None, Path | None] = (None, None),
    keep_share: float | None = None,
) -> None:
    from poseadapt.cli.io import check_output, print_json, write_json
    from poseadapt.evaluate.pseudo_labels import pseudo_label_file, read_boxes_file

    check_min_score(min_score)
    check_keep_share(keep_share)
    if not images.is_dir():
        raise PoseAdaptError(f"--images must be a folder, got {images}")
    check_output(out, "--out")
    data = read_boxes_file(ann)
    model = reading_model(checkpoint, invert_images)
    schema = model.schemas[model.head_index(head) if head else 0]
    decoder = prior_decoder(decode_prior, schema, model.codec)
    debiaser = proportion_debias(*debias, schema)
    labelled, summary = pseudo_label_file(
        model, data, images, min_score=min_score, head=head, decoder=decoder, flip_test=flip, upright_test=upright_test,
        debias=debiaser, keep_share=keep_share,
    )  # fmt: skip
    write_json(out, labelled)
    summary["out"] = str(out)
    if summary["people"] and not summary["share_kept"]:
        sys.stderr.write(f"warning: no keypoint scored >= {min_score}; {out} labels no keypoint and will not train\n")
    if json_out:
        print_json(summary)
        return
    capped = f", each keypoint on at most {keep_share:.0%} of people" if keep_share is not None else ""
    sys.stdout.write(
        f"pseudo-labelled {summary['people']} people ({summary['schema']}): {summary['share_kept']:.0%} of keypoints "
        f"scored >= {min_score}{capped} -> {out}\n"
    )
    sys.stdout.write(debias_lines(summary))


def check_keep_share(keep_share: float | None) -> None:
    """--keep-share is a share of people: in (0, 1]."""
    if keep_share is not None and not 0.0 < keep_share <= 1.0:
        raise PoseAdaptError(f"--keep-share must be a share of people in (0, 1], got {keep_share}")


def debias_lines(summary: dict[str, Any]) -> str:
    """A pseudo-labelling summary's debias report, a line per axial segment (empty without one)."""
    lines = []
    for part, seg in summary.get("debias", {}).items():
        what = "moved to the target's" if seg["corrected"] else "not moved"
        if not seg["corrected"] and None not in (seg["noise"], seg["labels"], seg["target"]):
            gap = abs(seg["target"] - seg["labels"])
            what += f" (within noise: {gap:.4f} < {seg['noise']})" if gap < seg["noise"] else ""
        lines.append(
            f"  {part}: median axial ratio {seg['labels']} -> {seg['after']} (source {seg['source']}, target "
            f"{seg['target']}, {seg['people']} people): {what}\n"
        )
    return "".join(lines)
