"""`poseadapt split`: train / val / test by image or by a grouping field, deterministic, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poseadapt.cli.main import main as cli_main


def coco(n_subjects: int = 10, per_subject: int = 6) -> dict:
    images, anns = [], []
    for s in range(n_subjects):
        for k in range(per_subject):
            i = s * per_subject + k + 1
            images.append({"id": i, "file_name": f"s{s}_{k}.jpg", "width": 64, "height": 64, "subject_id": f"S{s}"})
            anns.append({"id": 100 + i, "image_id": i, "category_id": 1, "keypoints": [10, 10, 2], "bbox": [0, 0, 9, 9],
                         "area": 81, "iscrowd": 0, "num_keypoints": 1})  # fmt: skip
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "p", "keypoints": ["a"]}]}


def run(tmp_path: Path, capsys, *args: str) -> tuple[int, str]:
    ann = tmp_path / "all.json"
    if not ann.exists():
        ann.write_text(json.dumps(coco()))
    with pytest.raises(SystemExit) as exc:
        cli_main(["split", str(ann), *args])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out + out.err


def load(folder: Path) -> dict[str, dict]:
    return {n: json.loads((folder / f"all_{n}.json").read_text()) for n in ("train", "val", "test")}


def test_group_by_keeps_each_subject_in_one_split(tmp_path: Path, capsys) -> None:
    rc, out = run(tmp_path, capsys, "--out", str(tmp_path / "a"), "--group-by", "subject_id", "--json")
    assert rc == 0, out
    parts = load(tmp_path / "a")
    subjects = {n: {im["subject_id"] for im in p["images"]} for n, p in parts.items()}
    assert not subjects["train"] & subjects["val"] and not subjects["train"] & subjects["test"]
    assert not subjects["val"] & subjects["test"]
    assert all(subjects.values())  # 10 subjects at 0.8/0.1/0.1: every split gets one
    ids = sorted(im["id"] for p in parts.values() for im in p["images"])
    assert ids == list(range(1, 61))  # nothing lost, nothing twice
    for p in parts.values():
        mine = {im["id"] for im in p["images"]}
        assert all(a["image_id"] in mine for a in p["annotations"]) and p["categories"]
    assert len(parts["train"]["images"]) == 48 and json.loads(out)["splits"]["train"]["groups"] == 8


def test_same_seed_same_split_other_seed_other_split(tmp_path: Path, capsys) -> None:
    for name, seed in (("a", "0"), ("b", "0"), ("c", "7")):
        assert run(tmp_path, capsys, "--out", str(tmp_path / name), "--seed", seed)[0] == 0
    a, b, c = (tmp_path / n / "all_test.json" for n in "abc")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    sizes = {n: len(p["images"]) for n, p in load(tmp_path / "a").items()}
    assert sizes == {"train": 48, "val": 6, "test": 6}


def test_a_missing_group_field_is_one_line(tmp_path: Path, capsys) -> None:
    rc, out = run(tmp_path, capsys, "--out", str(tmp_path / "x"), "--group-by", "patient")
    assert rc == 2 and out.count("\n") == 1 and "no field 'patient'" in out
    rc, out = run(tmp_path, capsys, "--out", str(tmp_path / "x"), "--ratios", "1,2")
    assert rc == 2 and "--ratios" in out
