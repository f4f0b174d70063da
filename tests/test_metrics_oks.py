"""COCO keypoint AP/AR parity with pycocotools (the oracle) on random schemas, crowds, sizes, misses and FPs."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from poseadapt.cli.main import main as cli_main
from poseadapt.evaluate.oks import AP_KEYS, coco_keypoint_stats, oks_matrix
from poseadapt.evaluate.score import per_keypoint_ap
from poseadapt.schemas import KeypointSchema, get_schema


def random_case(seed: int, n_images: int = 40) -> tuple[KeypointSchema, dict, list[dict]]:
    """A random schema and a GT / results pair exercising every branch of COCO keypoint evaluation.

    People span small / medium / large areas; ~10% are crowd regions; some have no labelled keypoint (ignored);
    ~15% are missed; predictions carry noise from exact to hopeless; false positives are scattered; a few images
    get more than 20 detections (the per-image cap); scores sometimes tie (rounded to one decimal).
    """
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 26))
    schema = KeypointSchema(
        name=f"random{seed}", keypoints=tuple(f"p{i}" for i in range(k)), sigmas=tuple(rng.uniform(0.02, 0.12, k))
    )
    images, anns, preds = [], [], []
    tie_scores = seed % 2 == 0
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 640, "height": 480})
        crowded = rng.random() < 0.1
        for _ in range(int(rng.integers(0, 6))):
            side = rng.choice([rng.uniform(8, 30), rng.uniform(32, 95), rng.uniform(100, 300)])
            w, h = side * rng.uniform(0.5, 1.5, 2)
            x0, y0 = rng.uniform(0, 300, 2)
            xy = np.stack([x0 + rng.uniform(0, w, k), y0 + rng.uniform(0, h, k)], axis=1)
            v = rng.choice([0, 1, 2], k, p=[0.25, 0.25, 0.5])
            if rng.random() < 0.08:
                v[:] = 0  # a person with no labelled keypoint: COCO ignores it
            kp = np.concatenate([np.where(v[:, None] > 0, xy, 0.0), v[:, None]], axis=1)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": kp.ravel().round(2).tolist(),
                    "num_keypoints": int((v > 0).sum()),
                    "bbox": [round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)],
                    "area": round(float(w * h * rng.uniform(0.4, 1.0)), 2),
                    "iscrowd": int(rng.random() < 0.1),
                }
            )
            if rng.random() < 0.85:
                noise = rng.choice([0.0, 1.0, 4.0, 15.0, 60.0])
                pk = xy + rng.normal(0, noise + 1e-9, xy.shape)
                preds.append(_pred(image_id, pk, rng, tie_scores))
        for _ in range(int(rng.integers(0, 3)) + (22 if crowded else 0)):  # > 20 detections on some images
            preds.append(_pred(image_id, rng.uniform(0, 500, (k, 2)), rng, tie_scores))
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "thing", "keypoints": list(schema.keypoints), "skeleton": []}],
    }
    return schema, gt, preds


def _pred(image_id: int, xy: np.ndarray, rng: np.random.Generator, tie: bool) -> dict:
    score = round(float(rng.random()), 1 if tie else 6)
    kp = np.concatenate([xy, rng.random((len(xy), 1))], axis=1)
    return {"image_id": image_id, "category_id": 1, "keypoints": kp.ravel().round(2).tolist(), "score": score}


def pycocotools_stats(gt: dict, preds: list[dict], sigmas: tuple[float, ...]) -> dict[str, float]:
    """The oracle: pycocotools end to end, its own summarize() included."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(preds))
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.array(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(AP_KEYS, (float(s) for s in ev.stats), strict=True))


def write_case(tmp_path: Path, schema: KeypointSchema, gt: dict, preds: list[dict]) -> tuple[Path, Path, Path]:
    paths = tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "schema.yaml"
    paths[0].write_text(json.dumps(gt))
    paths[1].write_text(json.dumps(preds))
    paths[2].write_text(schema.to_yaml())
    return paths


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def assert_stats_equal(got: dict[str, float], want: dict[str, float]) -> None:
    for key in AP_KEYS:
        assert got[key] == pytest.approx(want[key], abs=1e-6), key


@pytest.mark.parametrize("seed", range(6))
def test_hotcoco_engine_matches_pycocotools(seed: int) -> None:
    schema, gt, preds = random_case(seed)
    want = pycocotools_stats(gt, preds, schema.sigmas)
    assert all(want[k] != -1 for k in ("AP", "AP_M", "AP_L")), "the case must populate the medium and large ranges"
    assert_stats_equal(coco_keypoint_stats(gt, preds, schema.sigmas, engine="hotcoco"), want)
    assert_stats_equal(coco_keypoint_stats(gt, preds, schema.sigmas, engine="pycocotools"), want)


def test_cli_json_matches_pycocotools(tmp_path: Path) -> None:
    schema, gt, preds = random_case(11, n_images=60)
    gt_path, pred_path, schema_path = write_case(tmp_path, schema, gt, preds)
    cmd = [sys.executable, "-m", "poseadapt.cli.main", "score", "--gt", str(gt_path), "--pred", str(pred_path)]
    done = subprocess.run([*cmd, "--schema", str(schema_path), "--json"], capture_output=True, text=True, check=True)
    got = json.loads(done.stdout)
    assert set(AP_KEYS) <= set(got)
    assert_stats_equal(got, pycocotools_stats(gt, preds, schema.sigmas))


@pytest.mark.parametrize("seed", [3, 4])
def test_loader_path_and_fallback_engine_match(tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int) -> None:
    """A file the fast gate refuses (no num_keypoints) goes through the loader and still matches pycocotools."""
    schema, gt, preds = random_case(seed)
    want = pycocotools_stats(gt, preds, schema.sigmas)
    for ann in gt["annotations"]:
        del ann["num_keypoints"]  # the loader recounts it from v > 0, which is what the oracle saw
    gt_path, pred_path, schema_path = write_case(tmp_path, schema, gt, preds)
    base = ["score", "--gt", str(gt_path), "--pred", str(pred_path), "--schema", str(schema_path), "--json"]
    for extra in ([], ["--engine", "pycocotools"]):
        code, out, err = run_cli(base + extra, capsys)
        assert code == 0, err
        assert_stats_equal(json.loads(out), want)


def test_schema_is_inferred_only_from_a_builtin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema, gt, preds = random_case(5, n_images=10)
    gt_path, pred_path, _ = write_case(tmp_path, schema, gt, preds)
    code, out, err = run_cli(["score", "--gt", str(gt_path), "--pred", str(pred_path), "--json"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error:") and "--schema" in err and len(err.strip().splitlines()) == 1

    coco17 = get_schema("coco17")  # the same people with 17 keypoints and COCO names: inferred, no --schema
    gt["categories"][0]["keypoints"] = list(coco17.keypoints)
    rng = np.random.default_rng(0)
    for ann in gt["annotations"]:
        kp = np.resize(np.array(ann["keypoints"]).reshape(-1, 3), (17, 3))
        ann["keypoints"] = kp.ravel().tolist()
        ann["num_keypoints"] = int((kp[:, 2] > 0).sum())
    for det in preds:
        det["keypoints"] = rng.uniform(0, 400, 51).round(2).tolist()
    gt_path, pred_path, _ = write_case(tmp_path, coco17, gt, preds)
    code, out, err = run_cli(["score", "--gt", str(gt_path), "--pred", str(pred_path), "--json"], capsys)
    assert code == 0, err
    got = json.loads(out)
    assert got["schema"] == "coco17"
    assert_stats_equal(got, pycocotools_stats(gt, preds, coco17.sigmas))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("keypoints", [1.0, 2.0, 1.0], "expected"), ("score", None, "score"), ("image_id", 999, "999")],
)
def test_bad_predictions_stop_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object, message: str
) -> None:
    schema, gt, preds = random_case(7, n_images=10)
    preds[3][field] = value
    if value is None:
        del preds[3][field]
    gt_path, pred_path, schema_path = write_case(tmp_path, schema, gt, preds)
    argv = ["score", "--gt", str(gt_path), "--pred", str(pred_path), "--schema", str(schema_path), "--json"]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1


def test_oks_matrix_matches_pycocotools_compute_oks() -> None:
    schema, gt, preds = random_case(8, n_images=20)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(preds)), "keypoints")
        ev.params.kpt_oks_sigmas = np.array(schema.sigmas)
        ev.params.maxDets = [1000]
        ev.evaluate()
    checked = 0
    for (image_id, _), want in ev.ious.items():
        if len(want) == 0:
            continue
        gts = ev._gts[image_id, 1]
        unsorted = ev._dts[image_id, 1]
        dts = [unsorted[i] for i in np.argsort([-d["score"] for d in unsorted], kind="mergesort")]  # as computeOks
        got = oks_matrix(
            np.array([d["keypoints"] for d in dts]).reshape(len(dts), -1, 3),
            np.array([g["keypoints"] for g in gts]).reshape(len(gts), -1, 3),
            np.array([g["area"] for g in gts]),
            np.array([g["bbox"] for g in gts]),
            schema.sigmas,
        )
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        checked += 1
    assert checked > 10


def test_per_keypoint_ap_is_ap_of_that_keypoint_alone() -> None:
    from poseadapt.data.coco import coco_keypoints_from_dict, predictions_from_list

    schema, gt, preds = random_case(9, n_images=25)
    gt_data = coco_keypoints_from_dict(copy.deepcopy(gt), schema)
    per = per_keypoint_ap(gt_data, predictions_from_list(copy.deepcopy(preds), gt_data))
    assert list(per) == list(schema.keypoints)
    for k in (0, len(schema) - 1):
        one_gt = copy.deepcopy(gt)
        for ann in one_gt["annotations"]:
            ann["keypoints"] = ann["keypoints"][3 * k : 3 * k + 3]
            ann["num_keypoints"] = int(ann["keypoints"][2] > 0)
        one_gt["categories"][0]["keypoints"] = [schema.keypoints[k]]
        one_preds = [{**d, "keypoints": d["keypoints"][3 * k : 3 * k + 3]} for d in preds]
        want = pycocotools_stats(one_gt, one_preds, (schema.sigmas[k],))["AP"]
        assert per[schema.keypoints[k]] == pytest.approx(want, abs=1e-6)
