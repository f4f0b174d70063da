"""PCK / PCKh / AUC / EPE: hand-computed cases, properties and the `poseadapt score` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from poseadapt.cli.main import main as cli_main
from poseadapt.evaluate.pck import KeypointData, auc_from_curve, compute_pck_metric, match_predictions
from poseadapt.schemas import KeypointSchema

TRI = KeypointSchema(name="tri", keypoints=("a", "b", "c"), sigmas=(0.05, 0.05, 0.05))
BODY = KeypointSchema(
    name="body",
    keypoints=("head_top", "upper_neck", "left_shoulder", "right_shoulder", "left_hip", "right_hip"),
    sigmas=(0.05,) * 6,
)


def data(gt_kp, boxes, pred_kp, *, image_ids=None, pred_image_ids=None, scores=None, **kw) -> KeypointData:
    gt_kp = np.asarray(gt_kp, dtype=float)
    pred_kp = np.asarray(pred_kp, dtype=float)
    n, m = len(gt_kp), len(pred_kp)
    boxes = np.asarray(boxes, dtype=float)
    return KeypointData(
        gt_image_ids=np.asarray(image_ids if image_ids is not None else [1] * n),
        gt_keypoints=gt_kp,
        gt_boxes=boxes,
        gt_areas=boxes[:, 2] * boxes[:, 3],
        gt_iscrowd=np.asarray(kw.pop("iscrowd", [False] * n)),
        pred_image_ids=np.asarray(pred_image_ids if pred_image_ids is not None else [1] * m),
        pred_keypoints=pred_kp,
        pred_scores=np.asarray(scores if scores is not None else [1.0] * m, dtype=float),
        **kw,
    )


def one_person(errors: tuple[float, float, float], visible=(2, 2, 2)) -> KeypointData:
    gt = [[[10, 10, visible[0]], [50, 10, visible[1]], [90, 40, visible[2]]]]
    pred = [[[10 + errors[0], 10, 1], [50, 10 + errors[1], 1], [90 - errors[2] * 0.6, 40 + errors[2] * 0.8, 1]]]
    return data(gt, [[0, 0, 100, 50]], pred)


def test_pck_and_epe_by_hand() -> None:
    d = one_person((5.0, 15.0, 30.0))  # bbox normaliser = max(100, 50) = 100, alpha 0.2 -> 20 px
    pck = compute_pck_metric(d, TRI, "pck", alpha=0.2)
    assert pck.value == pytest.approx(2 / 3)
    assert pck.per_keypoint == {"a": 1.0, "b": 1.0, "c": 0.0}
    assert compute_pck_metric(d, TRI, "pck", alpha=0.1).value == pytest.approx(1 / 3)
    assert compute_pck_metric(d, TRI, "pck", alpha=0.3).value == pytest.approx(1.0)  # <= counts: 30 <= 30
    assert compute_pck_metric(d, TRI, "pck", alpha=0.5, normalize=40.0).value == pytest.approx(2 / 3)  # 20 px
    epe = compute_pck_metric(d, TRI, "epe")
    assert epe.value == pytest.approx(50 / 3)
    assert epe.per_keypoint == pytest.approx({"a": 5.0, "b": 15.0, "c": 30.0})


def test_unlabelled_keypoints_do_not_count() -> None:
    d = one_person((5.0, 15.0, 30.0), visible=(2, 0, 1))
    pck = compute_pck_metric(d, TRI, "pck", alpha=0.2)
    assert pck.value == pytest.approx(1 / 2) and pck.keypoints_counted == 2
    assert np.isnan(pck.per_keypoint["b"])
    assert compute_pck_metric(d, TRI, "epe").value == pytest.approx(17.5)


def test_properties_exact_and_huge_alpha() -> None:
    rng = np.random.default_rng(0)
    gt = np.concatenate([rng.uniform(0, 200, (8, 3, 2)), np.full((8, 3, 1), 2.0)], axis=2)
    boxes = np.tile([0.0, 0.0, 200.0, 200.0], (8, 1))
    ids = np.arange(8)
    exact = data(gt, boxes, gt, image_ids=ids, pred_image_ids=ids)
    assert compute_pck_metric(exact, TRI, "epe").value == 0.0
    assert compute_pck_metric(exact, TRI, "pck", alpha=0.0).value == 1.0
    noisy = data(gt, boxes, gt + rng.normal(0, 20, gt.shape), image_ids=ids, pred_image_ids=ids)
    assert compute_pck_metric(noisy, TRI, "pck", alpha=1e6).value == 1.0
    values = [compute_pck_metric(noisy, TRI, "pck", alpha=a).value for a in (0.01, 0.05, 0.1, 0.3)]
    assert values == sorted(values) and values[0] < 1.0  # PCK grows with alpha


def test_auc_of_known_curves() -> None:
    alphas = np.linspace(0.0, 0.5, 101)
    assert float(auc_from_curve(alphas, alphas / 0.5)) == pytest.approx(0.5)  # a straight line: half the square
    # errors at 0.1025 and 0.3025 of the normaliser: PCK steps 0 -> 1/2 -> 1, area (0.5 * 0.2 + 0.1975) / 0.5
    gt = [[[0, 0, 2], [0, 0, 2], [0, 0, 2]]]
    pred = [[[10.25, 0, 1], [0, 30.25, 1], [10.25, 0, 1]]]
    d = data(gt, [[0, 0, 100, 100]], pred)
    auc = compute_pck_metric(d, TRI, "auc", alpha=0.5, auc_rule="trapezoid")
    assert auc.value == pytest.approx((2 / 3 * (0.5 - 0.1025) + 1 / 3 * (0.5 - 0.3025)) / 0.5)
    assert auc.per_keypoint["b"] == pytest.approx((0.5 - 0.3025) / 0.5)


def test_head_and_torso_normalisers() -> None:
    gt = np.zeros((1, 6, 3))
    gt[0, :, 2] = 2
    gt[0, 0, :2] = [50, 0]  # head_top
    gt[0, 1, :2] = [50, 20]  # upper_neck: head segment 20 px
    gt[0, 2, :2], gt[0, 5, :2] = [30, 30], [60, 70]  # left_shoulder - right_hip: 50 px
    gt[0, 3, :2], gt[0, 4, :2] = [70, 30], [40, 100]  # right_shoulder - left_hip: sqrt(30^2 + 70^2)
    pred = gt.copy()
    pred[0, :, 0] += 9.0  # every keypoint 9 px off
    d = data(gt, [[0, 0, 100, 100]], pred)
    assert compute_pck_metric(d, BODY, "pckh", alpha=0.5).value == 1.0  # 9 <= 0.5 * 20
    assert compute_pck_metric(d, BODY, "pckh", alpha=0.4).value == 0.0  # 9 > 8
    torso = (50.0 + np.hypot(30, 70)) / 2
    assert compute_pck_metric(d, BODY, "pck", alpha=9 / torso, normalize="torso").value == 1.0
    assert compute_pck_metric(d, BODY, "pck", alpha=8.9 / torso, normalize="torso").value == 0.0
    head_box = np.array([[0.0, 0.0, 30.0, 40.0]])  # MPII: 0.6 * diagonal 50 = 30 px, preferred to the segment
    d_box = data(gt, [[0, 0, 100, 100]], pred, gt_head_boxes=head_box)
    assert compute_pck_metric(d_box, BODY, "pckh", alpha=0.3).value == 1.0  # 9 <= 0.3 * 30
    assert compute_pck_metric(d_box, BODY, "pckh", alpha=0.29).value == 0.0
    with pytest.raises(Exception, match="torso"):
        compute_pck_metric(one_person((1, 1, 1)), TRI, "pck", normalize="torso")


def test_matching_by_oks_misses_and_false_positives() -> None:
    a = [[10, 10, 2], [20, 10, 2], [30, 10, 2]]
    b = [[200, 200, 2], [210, 200, 2], [220, 200, 2]]
    boxes = [[0, 0, 40, 40], [190, 190, 40, 40]]
    # predictions listed in the other order, and a far-off false positive with the lowest score
    pred = [np.add(b, [1, 0, 0]), np.add(a, [2, 0, 0]), [[500, 500, 1]] * 3]
    d = data([a, b], boxes, pred, scores=[0.9, 0.8, 0.1])
    assert match_predictions(d, TRI.sigmas).tolist() == [1, 0]
    pck = compute_pck_metric(d, TRI, "pck", alpha=0.1)
    assert pck.value == 1.0 and pck.unmatched_predictions == 1 and pck.matched_people == 2
    missed = data([a, b], boxes, pred[:1], scores=[0.9])  # person a is never predicted: its keypoints are wrong
    pck = compute_pck_metric(missed, TRI, "pck", alpha=0.1)
    assert pck.value == 0.5 and pck.matched_people == 1
    assert compute_pck_metric(missed, TRI, "epe").value == pytest.approx(1.0)  # misses have no pixel error
    crowd = data([a, b], boxes, pred, scores=[0.9, 0.8, 0.1], iscrowd=[False, True])
    assert compute_pck_metric(crowd, TRI, "pck", alpha=0.1).gt_people == 1


def test_score_command_pck_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = {
        "images": [{"id": 1, "file_name": "1.jpg", "width": 100, "height": 100}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "keypoints": [10, 10, 2, 50, 10, 2, 90, 40, 2],
                "num_keypoints": 3,
                "bbox": [0, 0, 100, 50],
                "area": 5000,
                "iscrowd": 0,
            }
        ],
        "categories": [{"id": 1, "name": "thing", "keypoints": ["a", "b", "c"]}],
    }
    preds = [{"image_id": 1, "category_id": 1, "keypoints": [15, 10, 1, 50, 25, 1, 90, 70, 1], "score": 0.9}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    (tmp_path / "tri.yaml").write_text(TRI.to_yaml())
    base = ["score", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json")]
    base += ["--schema", str(tmp_path / "tri.yaml")]

    with pytest.raises(SystemExit) as done:
        cli_main([*base, "--metric", "pck", "--json", "--per-keypoint"])
    out = json.loads(capsys.readouterr().out)
    assert done.value.code == 0
    assert out["PCK"] == pytest.approx(2 / 3) and out["per_keypoint"] == {"a": 1.0, "b": 1.0, "c": 0.0}

    with pytest.raises(SystemExit):
        cli_main([*base, "--metric", "epe"])
    table = capsys.readouterr().out
    assert "EPE" in table and "16.667" in table

    with pytest.raises(SystemExit) as done:
        cli_main([*base, "--metric", "pckh"])  # no head keypoints, no head_bbox
    assert done.value.code == 2 and capsys.readouterr().err.startswith("error:")
