"""PCK conventions against mmpose 1.x and MPII, on cases small enough to count by hand.

References: mmpose `keypoint_pck_accuracy` (overall = mean of per-keypoint accuracies, strict `<`),
`keypoint_auc` (mean PCK over thresholds i / 20, i = 0..19), `MpiiPCKAccuracy` (per-joint PCKh weighted by joint
counts, pelvis and thorax masked), and mmpose 1.x's COCO loader (GT boxes clipped to [0, W-1] x [0, H-1]).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from poseadapt.cli.main import main as cli_main
from poseadapt.errors import PoseAdaptError
from poseadapt.evaluate.pck import KeypointData, clip_boxes, compute_pck_metric
from poseadapt.evaluate.score import score_files
from poseadapt.schemas import KeypointSchema, get_schema

TRI = KeypointSchema(name="tri", keypoints=("a", "b", "c"), sigmas=(0.05, 0.05, 0.05))


def _data(gt, pred, boxes, **kw) -> KeypointData:
    gt, pred, boxes = (np.asarray(x, dtype=float) for x in (gt, pred, boxes))
    n = len(gt)
    return KeypointData(
        gt_image_ids=np.arange(n),
        gt_keypoints=gt,
        gt_boxes=boxes,
        gt_areas=boxes[:, 2] * boxes[:, 3],
        gt_iscrowd=np.zeros(n, bool),
        pred_image_ids=np.arange(n),
        pred_keypoints=pred,
        pred_scores=np.ones(n),
        **kw,
    )


def _two_people() -> KeypointData:
    # person 0 labels a, b, c with errors 5, 15, 30 px; person 1 labels only a, error 5 px. bbox 100 -> 20 px at 0.2
    gt = [[[10, 10, 2], [50, 10, 2], [90, 40, 2]], [[10, 10, 2], [50, 10, 0], [90, 40, 0]]]
    pred = [[[15, 10, 1], [50, 25, 1], [90, 70, 1]], [[15, 10, 1], [0, 0, 1], [0, 0, 1]]]
    return _data(gt, pred, [[0, 0, 100, 50], [0, 0, 100, 50]])


def test_overall_pck_is_the_mean_over_keypoints_and_pooled_is_named() -> None:
    d = _two_people()
    # per keypoint: a 2/2, b 1/1, c 0/1 -> mmpose mean 2/3; pooled 3 of 4 labelled points -> 0.75
    mean = compute_pck_metric(d, TRI, "pck", alpha=0.2)
    assert mean.value == pytest.approx(2 / 3) and mean.extra["average"] == "keypoint"
    pooled = compute_pck_metric(d, TRI, "pck", alpha=0.2, average="pooled")
    assert pooled.value == pytest.approx(0.75) and pooled.to_dict()["average"] == "pooled"
    assert mean.per_keypoint == pooled.per_keypoint == {"a": 1.0, "b": 1.0, "c": 0.0}
    with pytest.raises(PoseAdaptError, match="average"):
        compute_pck_metric(d, TRI, "pck", average="median")


def test_mpii_pckh_leaves_out_pelvis_and_thorax_and_weights_by_count() -> None:
    mpii = get_schema("mpii16")
    k = len(mpii)
    rng = np.random.default_rng(0)
    gt = np.concatenate([rng.uniform(20, 80, (2, k, 2)), np.full((2, k, 1), 2.0)], axis=2)
    gt[1, :, 2] = 0
    gt[1, [mpii.index("left_wrist"), mpii.index("right_wrist")], 2] = 2  # person 1 labels only the wrists
    pred = gt.copy()
    head = np.array([[0.0, 0.0, 30.0, 40.0]] * 2)  # 0.6 * 50 = 30 px; alpha 0.5 -> 15 px
    for name in ("pelvis", "thorax"):
        pred[0, mpii.index(name), 0] += 40  # wrong, but MPII does not count them
    pred[1, :, 0] += 40  # both of person 1's wrists wrong
    d = _data(gt, pred, [[0, 0, 100, 100]] * 2, gt_head_boxes=head)
    pckh = compute_pck_metric(d, mpii, "pckh")
    # counted: 14 points of person 0 (all right) + 2 wrists of person 1 (wrong) -> 14 / 16, the count-weighted mean
    assert pckh.value == pytest.approx(14 / 16) and pckh.extra["average"] == "mpii"
    assert pckh.per_keypoint["pelvis"] == 0.0 and pckh.per_keypoint["left_wrist"] == 0.5
    # keypoint mean over all 16 (pelvis and thorax 0, wrists 1/2): (12 + 2 * 0.5) / 16
    assert compute_pck_metric(d, mpii, "pckh", average="keypoint").value == pytest.approx(13 / 16)
    # pooled over all 16 keypoints' 18 counted points
    assert compute_pck_metric(d, mpii, "pckh", average="pooled").value == pytest.approx(14 / 18)


def test_auc_as_mmpose_computes_it() -> None:
    # one person, errors 4, 10, 20 px; mmpose keypoint_auc(norm_factor=30): thresholds 1.5 * i px, i = 0..19,
    # strict <. a: i >= 3 -> 17/20, b: i >= 7 -> 13/20, c: i >= 14 -> 6/20; AUC = mean = (17 + 13 + 6) / 60
    gt = [[[0, 0, 2], [0, 0, 2], [0, 0, 2]]]
    pred = [[[4, 0, 1], [0, 10, 1], [12, 16, 1]]]
    d = _data(gt, pred, [[0, 0, 100, 100]])
    auc = compute_pck_metric(d, TRI, "auc", alpha=1.0, normalize=30.0)
    assert auc.value == pytest.approx(36 / 60) and auc.extra["auc_rule"] == "mmpose"
    assert auc.per_keypoint == pytest.approx({"a": 17 / 20, "b": 13 / 20, "c": 6 / 20})
    perfect = _data(gt, [[[0, 0, 1]] * 3], [[0, 0, 100, 100]])
    assert compute_pck_metric(perfect, TRI, "auc", alpha=1.0, normalize=30.0).value == pytest.approx(0.95)
    trapezoid = compute_pck_metric(perfect, TRI, "auc", alpha=1.0, normalize=30.0, auc_rule="trapezoid")
    assert trapezoid.value == pytest.approx(1.0)


def test_clip_boxes_by_hand() -> None:
    boxes = np.array([[-20.0, 10.0, 150.0, 60.0], [10.0, 10.0, 20.0, 20.0], [-5.0, -5.0, 500.0, 500.0]])
    sizes = np.array([[100, 80], [100, 80], [0, 0]])  # last: size unknown, left alone
    np.testing.assert_allclose(clip_boxes(boxes, sizes), [[0, 10, 99, 60], [10, 10, 20, 20], [-5, -5, 500, 500]])


def test_score_clips_gt_boxes_to_the_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # box [-20, 10, 150, 60] in a 100 x 80 image -> [0, 10, 99, 60]: normaliser 99, not 150. Errors 25 px:
    # alpha 0.2 -> 19.8 px (wrong) clipped, 30 px (right) unclipped.
    gt = {
        "images": [{"id": 1, "file_name": "1.jpg", "width": 100, "height": 80}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "keypoints": [10, 20, 2, 50, 20, 2, 90, 60, 2],
             "num_keypoints": 3, "bbox": [-20, 10, 150, 60], "area": 5000, "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "thing", "keypoints": ["a", "b", "c"]}],
    }  # fmt: skip
    preds = [{"image_id": 1, "category_id": 1, "keypoints": [35, 20, 1, 50, 45, 1, 65, 60, 1], "score": 0.9}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    (tmp_path / "tri.yaml").write_text(TRI.to_yaml())
    res = score_files(tmp_path / "gt.json", tmp_path / "pred.json", schema=str(tmp_path / "tri.yaml"), metric="pck")
    assert res.values["PCK"] == 0.0
    res = score_files(
        tmp_path / "gt.json", tmp_path / "pred.json", schema=str(tmp_path / "tri.yaml"), metric="pck", alpha=0.26
    )
    assert res.values["PCK"] == 1.0  # 25 <= 0.26 * 99
    base = ["score", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json")]
    with pytest.raises(SystemExit) as done:
        cli_main([*base, "--schema", str(tmp_path / "tri.yaml"), "--metric", "auc", "--average", "pooled", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert done.value.code == 0 and out["average"] == "pooled" and out["auc_rule"] == "mmpose"
