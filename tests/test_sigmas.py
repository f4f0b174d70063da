"""`poseadapt sigmas`: recovers the sigmas it simulates annotators with; bad input is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from poseadapt.cli.main import main
from poseadapt.evaluate.sigmas import estimate_sigmas
from poseadapt.schemas import KeypointSchema, get_schema

SCHEMA = get_schema("coco17")


def annotators(tmp_path, sigmas, people=200, raters=2, seed=0, drop=()):
    """COCO files of `raters` annotators clicking every keypoint of the same people with error sigma * sqrt(area)."""
    rng = np.random.default_rng(seed)
    k = len(sigmas)
    truth, boxes = [], []
    for _ in range(people):
        w, h = rng.uniform(40, 200), rng.uniform(80, 300)
        x0, y0 = rng.uniform(0, 400), rng.uniform(0, 300)
        truth.append(np.stack([rng.uniform(x0, x0 + w, k), rng.uniform(y0, y0 + h, k)], -1))
        boxes.append([x0, y0, w, h])
    paths = []
    for r in range(raters):
        anns = []
        for i, (xy, box) in enumerate(zip(truth, boxes, strict=True)):
            area = box[2] * box[3]
            # per-axis std sigma * s / sqrt(2): the 2-D distance then has E[d^2 / s^2] = sigma^2 (COCO's definition)
            clicks = xy + rng.normal(0, 1, (k, 2)) * np.asarray(sigmas)[:, None] * np.sqrt(area) / np.sqrt(2)
            v = np.full(k, 2.0)
            if r > 0:
                v[list(drop)] = 0
            kp = np.concatenate([clicks, v[:, None]], -1)
            kp[v == 0] = 0
            jitter = rng.normal(0, 2, 4)
            anns.append({"id": i + 1, "image_id": i // 2 + 1, "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                         "num_keypoints": int((v > 0).sum()), "bbox": (np.asarray(box) + jitter).tolist(),
                         "area": area, "iscrowd": 0})  # fmt: skip
        images = [{"id": j + 1, "file_name": f"{j}.jpg", "width": 640, "height": 640} for j in range(people // 2 + 1)]
        cats = [{"id": 1, "name": "person", "keypoints": list(SCHEMA.keypoints), "skeleton": []}]
        path = tmp_path / f"rater{r}.json"
        path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
        paths.append(path)
    return paths


def test_recovers_known_sigmas_within_ten_percent(tmp_path):
    true = np.asarray(SCHEMA.sigmas)
    paths = annotators(tmp_path, true, people=200)
    est = estimate_sigmas(paths)
    assert est.counts == [200] * 17 and est.people == 200 and not est.warnings
    ratio = np.asarray(est.schema.sigmas) / true
    assert np.abs(ratio - 1).max() < 0.10, ratio
    # the estimator is unbiased: averaged over keypoints the error is much smaller than 10%
    assert abs(np.mean(ratio**2) - 1) < 0.05


def test_one_file_with_repeated_annotations_and_three_raters(tmp_path):
    true = np.full(17, 0.06)
    paths = annotators(tmp_path, true, people=60, raters=3, seed=3)
    est = estimate_sigmas(paths, min_repeats=30)
    assert est.counts == [60] * 17
    assert np.abs(np.asarray(est.schema.sigmas) / true - 1).max() < 0.15
    # the same people repeated inside one file
    one = json.loads(paths[0].read_text())
    two = json.loads(paths[1].read_text())
    one["annotations"] += [{**a, "id": a["id"] + 1000} for a in two["annotations"]]
    (tmp_path / "both.json").write_text(json.dumps(one))
    single = estimate_sigmas([tmp_path / "both.json"])
    assert single.counts == [60] * 17 and single.people == 60


def test_cli_writes_a_loadable_schema_with_sample_sizes_and_warns(tmp_path, capsys):
    paths = annotators(tmp_path, np.asarray(SCHEMA.sigmas), people=20, drop=[0])
    out = tmp_path / "est.yaml"
    with pytest.raises(SystemExit) as info:
        main(["sigmas", *map(str, paths), "--out", str(out), "--json"])
    assert info.value.code == 0
    captured = capsys.readouterr()
    assert "nose: no person labelled twice" in captured.err and "left_eye: only 20 people" in captured.err
    summary = json.loads(captured.out)
    assert summary["keypoints"][1] == {**summary["keypoints"][1], "name": "left_eye", "people": 20}
    schema = KeypointSchema.from_yaml(out)
    assert schema.sigmas[0] == SCHEMA.sigmas[0]  # not measured: the prior stays
    assert "#   left_eye: 20 people" in out.read_text()
    assert yaml.safe_load(out.read_text())["keypoints"] == list(SCHEMA.keypoints)


@pytest.mark.parametrize(
    "case, message",
    [("missing", "not found"), ("no repeats", "more than once"), ("not json", "not valid JSON")],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, case, message):
    paths = annotators(tmp_path, np.asarray(SCHEMA.sigmas), people=6, raters=1)
    if case == "missing":
        paths = [tmp_path / "nope.json"]
    elif case == "not json":
        (tmp_path / "bad.json").write_text("{")
        paths = [tmp_path / "bad.json", paths[0]]
    out = tmp_path / "out.yaml"
    with pytest.raises(SystemExit) as info:
        main(["sigmas", *map(str, paths), "--out", str(out)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and err.count("\n") == 1, err
    assert not out.exists() and not list(tmp_path.glob(".out.yaml*"))
