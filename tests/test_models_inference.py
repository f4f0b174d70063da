"""Top-down inference: the geometry oracle (training encode -> inference decode agree), predict and eval end to end."""

from __future__ import annotations

import contextlib
import io
import json

import cv2
import numpy as np
import pytest
import torch

from poseadapt.cli.main import main
from poseadapt.codecs import flip_keypoints
from poseadapt.data.topdown import udp_warp_matrix, warp_points
from poseadapt.evaluate.score import score_files
from poseadapt.evaluate.topdown import Predictor
from poseadapt.interop.checkpoint import save_checkpoint
from poseadapt.models import create_model
from poseadapt.schemas import get_schema


def generated_coco(tmp_path, n_images: int = 4, persons: int = 3, size=(320, 240), seed: int = 0) -> dict:
    """A COCO keypoint file of random people (keypoints spread in their boxes, some unlabelled) + noise images."""
    rng = np.random.default_rng(seed)
    schema = get_schema("coco17")
    w, h = size
    images, annotations = [], []
    (tmp_path / "images").mkdir(exist_ok=True)
    for image_id in range(1, n_images + 1):
        name = f"img{image_id:03d}.png"
        cv2.imwrite(str(tmp_path / "images" / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        for _ in range(persons):
            bw, bh = rng.uniform(40, 90), rng.uniform(80, 150)
            x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            xy = np.stack([rng.uniform(x0, x0 + bw, 17), rng.uniform(y0, y0 + bh, 17)], -1)
            v = np.where(rng.random(17) < 0.15, 0, 2)
            kp = np.concatenate([xy, v[:, None]], -1)
            kp[v == 0] = 0
            labelled = xy[v > 0]
            box = [*labelled.min(0), *(labelled.max(0) - labelled.min(0))]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": [round(float(t), 2) for t in kp.reshape(-1)],
                    "num_keypoints": int((v > 0).sum()),
                    "bbox": [round(float(t), 2) for t in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": 0,
                }
            )
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [
            {
                "id": 1,
                "name": "person",
                "keypoints": list(schema.keypoints),
                "skeleton": [[a + 1, b + 1] for a, b in schema.skeleton_index],
            }
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    return coco


def test_geometry_oracle_encoded_truth_decodes_to_ap_one(tmp_path):
    """Encode GT into UDP heatmaps per crop (as training does), then run the inference path: flip test merge,
    DARK-UDP decode, back to the image. AP must be ~1: training and inference agree on every coordinate."""
    coco = generated_coco(tmp_path, n_images=5, persons=4)
    predictor = Predictor(create_model("vit_tiny"), flip_test=True)
    codec, schema = predictor.codec, predictor.schema
    w_in, h_in = predictor.model.input_size
    blank = np.zeros((240, 320, 3), np.uint8)
    results, errors = [], []
    for image in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        _, centers, scales = predictor.crops(blank, np.array([a["bbox"] for a in anns]))
        heatmaps, flipped = [], []
        for ann, c, s in zip(anns, centers, scales, strict=True):
            kp = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
            inp = np.concatenate([warp_points(kp[:, :2], udp_warp_matrix(c, s, 0.0, (w_in, h_in))), kp[:, 2:]], -1)
            heatmaps.append(codec.encode(inp[:, :2], inp[:, 2])[0])
            mirrored = flip_keypoints(inp, schema.flip_index, w_in)  # what the mirrored crop's targets look like
            flipped.append(codec.encode(mirrored[:, :2], mirrored[:, 2])[0])
        merged = 0.5 * (np.stack(heatmaps) + codec.flip_back(np.stack(flipped), schema.flip_index))
        keypoints = predictor.decode(merged, centers, scales)
        for kp, ann in zip(keypoints, anns, strict=True):
            gt = np.array(ann["keypoints"]).reshape(17, 3)
            errors += list(np.linalg.norm(kp[gt[:, 2] > 0, :2] - gt[gt[:, 2] > 0, :2], axis=-1))
            results.append(
                {"image_id": image["id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(), "score": 1.0}
            )
    (tmp_path / "pred.json").write_text(json.dumps(results))
    score = score_files(tmp_path / "ann.json", tmp_path / "pred.json", schema="coco17")
    assert score.values["AP"] == pytest.approx(1.0, abs=1e-12), score.values
    # stricter than AP: a half-pixel slip anywhere in crop / flip / decode / back-projection would show here
    assert np.mean(errors) < 0.01 and np.max(errors) < 0.05, (np.mean(errors), np.max(errors))


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return int(info.value.code or 0)


@pytest.fixture
def tiny_checkpoint(tmp_path):
    model = create_model("vit_tiny")
    with torch.no_grad():  # a head that responds to its input, so decoded keypoints vary
        model.heads["coco17"].final_layer.weight.normal_(0, 0.5)
    return save_checkpoint(model.eval(), tmp_path / "tiny.safetensors")


def test_predict_end_to_end(tmp_path, tiny_checkpoint, capsys):
    generated_coco(tmp_path, n_images=2, persons=1)
    boxes = {"img001.png": [[10, 20, 60, 120, 0.9], [100, 50, 50, 100]]}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "pred"
    argv = ["predict", str(tmp_path / "images"), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--json"]
    assert run_cli(argv) == 0  # no boxes: the whole image is the box
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 2 and summary["instances"] == 2
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["img001.png", "img002.png"]
    assert cv2.imread(str(out / "overlays" / "img001.png")).shape == (240, 320, 3)

    argv = ["predict", str(tmp_path / "images" / "img001.png"), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    assert run_cli([*argv, "--boxes", str(tmp_path / "boxes.json")]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 2 and all(len(r["keypoints"]) == 51 for r in results)
    xy = np.array(results[0]["keypoints"]).reshape(17, 3)[:, :2]
    # every keypoint lies inside the padded crop of its box, computed by hand: box (10, 20, 60, 120) widened to the
    # 192:256 input aspect (90 x 120), x1.25 padding (112.5 x 150) around its centre (40, 80); heatmap pixels
    # [0, W-1] map onto exactly that span (UDP), and refinement moves a peak less than one heatmap pixel (2.4 px)
    tol = 112.5 / 47
    assert (xy[:, 0] >= 40 - 56.25 - tol).all() and (xy[:, 0] <= 40 + 56.25 + tol).all()
    assert (xy[:, 1] >= 80 - 75 - tol).all() and (xy[:, 1] <= 80 + 75 + tol).all()
    assert np.ptp(xy[:, 0]) > 5 or np.ptp(xy[:, 1]) > 5  # the keypoints vary (a responsive head)

    (tmp_path / "bad.json").write_text(json.dumps({"img001.png": [[0, 0, -5, 10]]}))
    assert run_cli([*argv, "--boxes", str(tmp_path / "bad.json")]) == 2
    assert "positive width and height" in capsys.readouterr().err


def test_eval_end_to_end(tmp_path, tiny_checkpoint, capsys):
    coco = generated_coco(tmp_path, n_images=2, persons=2)
    argv = ["eval", "--checkpoint", str(tiny_checkpoint), "--ann", str(tmp_path / "ann.json")]
    argv += ["--images", str(tmp_path / "images"), "--json", "--out", str(tmp_path / "res.json")]
    assert run_cli(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["instances"] == 4 and summary["boxes"] == "ground truth"
    assert len(json.loads((tmp_path / "res.json").read_text())) == 4
    # the AP it prints is the AP pycocotools computes on the results it wrote (COCO sigmas, GT boxes)
    pycocotools = pytest.importorskip("pycocotools.cocoeval")
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "ann.json"))
        dt = gt.loadRes(str(tmp_path / "res.json"))
        ev = pycocotools.COCOeval(gt, dt, "keypoints")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] >= 0 and summary["AP"] == pytest.approx(float(ev.stats[0]), abs=1e-9)

    dets = [{"image_id": a["image_id"], "bbox": a["bbox"], "score": 0.8, "category_id": 1} for a in coco["annotations"]]
    dets.append({"image_id": 1, "bbox": [5, 5, 30, 60], "score": 0.3})
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    assert run_cli([*argv[:-2], "--boxes", str(tmp_path / "dets.json")]) == 0
    assert json.loads(capsys.readouterr().out)["instances"] == 5


def test_training_validation_and_eval_give_the_same_ap(tmp_path, tiny_checkpoint, capsys):
    """The ValidationHook's `evaluate_ap` and `poseadapt eval` run one path: the same AP to the last digit."""
    from poseadapt.data.coco import load_coco_keypoints
    from poseadapt.data.dataset import TopDownDataset
    from poseadapt.interop.checkpoint import load_checkpoint
    from poseadapt.train.validate import evaluate_ap

    coco = generated_coco(tmp_path, n_images=3, persons=2, seed=4)
    argv = ["eval", "--checkpoint", str(tiny_checkpoint), "--ann", str(tmp_path / "ann.json")]
    argv += ["--images", str(tmp_path / "images"), "--json"]
    # labels = the model's own predictions moved by a few pixels, so the AP is a real number between 0 and 1
    assert run_cli([*argv, "--out", str(tmp_path / "own.json")]) == 0
    capsys.readouterr()
    own = json.loads((tmp_path / "own.json").read_text())
    rng = np.random.default_rng(0)
    for ann, pred in zip(coco["annotations"], own, strict=True):
        kp = np.array(pred["keypoints"]).reshape(17, 3)
        kp[:, :2] += rng.normal(0, 3.0, (17, 2))
        kp[:, 2] = 2
        ann["keypoints"], ann["num_keypoints"] = kp.reshape(-1).tolist(), 17
    (tmp_path / "ann.json").write_text(json.dumps(coco))

    model = load_checkpoint(tiny_checkpoint)
    data = load_coco_keypoints(tmp_path / "ann.json", "coco17")
    dataset = TopDownDataset(data, tmp_path / "images", model.codec, model.input_size, [], train=False)
    val = evaluate_ap(model, dataset, flip_test=True, batch_size=4)
    assert run_cli(argv) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["instances"] == 6
    assert {k: cli[k] for k in val} == val
    assert 0.0 < val["AP"] < 1.0, val
    # and it is the AP pycocotools computes on the first run's predictions (same model, images and boxes)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "ann.json"))
        ev = COCOeval(gt, gt.loadRes(str(tmp_path / "own.json")), "keypoints")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert val["AP"] == pytest.approx(float(ev.stats[0]), abs=1e-9) and val["AR"] == pytest.approx(ev.stats[5])
