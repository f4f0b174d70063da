"""`left_right: either` on a data source: labels whose left and right may be swapped as a whole (pseudo-labels of
people whose facing the teacher may have missed). The loss takes the nearer of the labels and their mirror, so a
model trained on half-mirrored labels keeps left and right apart, where the plain loss averages them together."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import yaml

from poseadapt.cli.main import main
from poseadapt.schemas import get_schema
from poseadapt.synth import render_dataset
from poseadapt.train.batch import collate
from poseadapt.train.losses import HeatmapMSE, SimCCKL, keypoint_mse, mirrored_labels

FLIP = list(get_schema("coco17").flip_index)


def either_batch(target: Any, weight: torch.Tensor, either: list[float], counts: list[int] | None = None) -> dict:
    b, k = weight.shape
    batch = {
        "target": target,
        "target_weight": weight,
        "mirror_partner": torch.tensor([FLIP[:k] if k == 17 else list(range(k))] * b),
        "left_right_either": torch.tensor(either),
    }
    if counts is not None:
        batch["num_keypoints"] = torch.tensor(counts)
    return batch


def test_loss_takes_the_nearer_of_the_labels_and_their_mirror() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 17, 8, 6, generator=g)
    labels = pred[:, FLIP] + 0.01 * torch.rand(3, 17, 8, 6, generator=g)  # every sample's labels mirrored
    weight = torch.ones(3, 17)
    plain = {"target": labels, "target_weight": weight}
    batch = either_batch(labels, weight, [1.0, 0.0, 1.0])
    per = [keypoint_mse(pred[i : i + 1], labels[i : i + 1]) for i in range(3)]
    near = [keypoint_mse(pred[i : i + 1], labels[i : i + 1, FLIP]) for i in range(3)]
    expected = (near[0] + per[1] + near[2]) / 3  # only the samples marked `either` may take the mirror
    assert HeatmapMSE()(batch, pred).item() == pytest.approx(expected.item(), rel=1e-6)
    assert HeatmapMSE()(plain, pred).item() == pytest.approx(keypoint_mse(pred, labels).item(), rel=1e-6)
    assert near[0] < 0.01 * per[0]
    # labels already the right way round: `either` changes nothing
    right = either_batch(pred[:, :] + 0.01, weight, [1.0, 1.0, 1.0])
    assert HeatmapMSE()(right, pred).item() == pytest.approx(keypoint_mse(pred, pred + 0.01).item(), rel=1e-6)


def test_the_anchor_keeps_a_share_on_the_labels_as_given() -> None:
    g = torch.Generator().manual_seed(2)
    pred = torch.rand(2, 17, 8, 6, generator=g)
    labels = pred[:, FLIP] + 0.01 * torch.rand(2, 17, 8, 6, generator=g)
    weight = torch.ones(2, 17)
    as_given = keypoint_mse(pred, labels).item()
    nearer = keypoint_mse(pred, labels[:, FLIP]).item()
    mixed = HeatmapMSE()(either_batch(labels, weight, [0.9, 0.9]), pred).item()  # left_right_anchor 0.1
    assert mixed == pytest.approx(0.9 * nearer + 0.1 * as_given, rel=1e-6)


def test_the_mirror_moves_weights_with_their_keypoints_and_keeps_padding() -> None:
    target = torch.arange(2 * 17, dtype=torch.float32).view(2, 17, 1, 1).expand(2, 17, 2, 2).clone()
    weight = torch.zeros(2, 17)
    weight[:, 5] = 1.0  # only the left shoulder labelled
    batch = either_batch(target, weight, [1.0, 1.0], counts=[17, 3])
    batch["mirror_partner"][1] = torch.tensor([0, 2, 1] + [0] * 14)  # a 3-keypoint skeleton, zero-padded
    swapped, w = mirrored_labels(target, weight, batch)
    assert w[0, 6] == 1 and w[0, 5] == 0  # the label now sits on the right shoulder
    assert torch.equal(swapped[0, 6], target[0, 5]) and torch.equal(swapped[0, 5], target[0, 6])
    assert torch.equal(swapped[1, :3], target[1, [0, 2, 1]])
    assert torch.equal(swapped[1, 3:], target[1, 3:]) and torch.equal(w[1], weight[1])  # padding stays put


def test_simcc_loss_takes_the_nearer_mirror_too() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 17, 12, generator=g), torch.rand(2, 17, 16, generator=g)
    weight = torch.ones(2, 17)
    mirrored = (x[:, FLIP], y[:, FLIP])
    plain = SimCCKL()({"target": mirrored, "target_weight": weight}, (x, y))
    either = SimCCKL()(either_batch(mirrored, weight, [1.0, 1.0]), (x, y))
    exact = SimCCKL()({"target": (x, y), "target_weight": weight}, (x, y))
    assert either.item() == pytest.approx(exact.item(), abs=1e-6) and plain.item() > 100 * max(exact.item(), 1e-6)


def test_optimising_against_randomly_mirrored_labels() -> None:
    """A free heatmap fitted to one person whose labels arrive mirrored half the time: the plain loss settles on the
    average (left and right channels alike), `either` on one consistent reading with sharp, distinct channels."""
    rng = np.random.default_rng(0)
    labels = torch.zeros(1, 17, 16, 12)
    for k in range(17):
        labels[0, k, k % 16, (3 * k) % 12] = 1.0
    weight = torch.ones(1, 17)
    fitted = {}
    for mode in ("as_labelled", "either"):
        start = 0.01 * torch.rand(1, 17, 16, 12, generator=torch.Generator().manual_seed(0))  # no exact tie
        heat = start.clone().requires_grad_(True)
        opt = torch.optim.SGD([heat], lr=100.0)  # the mean over 17 x 16 x 12 values: a step of 0.06 of the error
        for _ in range(400):
            target = labels[:, FLIP] if rng.random() < 0.5 else labels
            batch = {"target": target, "target_weight": weight}
            if mode == "either":
                batch = either_batch(target, weight, [1.0])
            opt.zero_grad()
            HeatmapMSE()(batch, heat).backward()
            opt.step()
        fitted[mode] = heat.detach()
    left, right = 5, 6
    plain, either = fitted["as_labelled"][0], fitted["either"][0]
    assert torch.allclose(plain[left], plain[right], atol=0.1)  # averaged: the pair is indistinguishable
    assert plain[left].max() < 0.7
    assert either[left].max() > 0.9 and (either[left] - either[right]).abs().max() > 0.9


def test_dataset_items_carry_the_mirror_map_and_batches_mix(tmp_path: Path) -> None:
    from poseadapt.train import recipe_from_dict
    from poseadapt.train.build import build_dataset, build_model

    recipe = recipe_from_dict(
        {
            "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17"},
            "data": {"train": [{"synth": "adult", "left_right": "either"}, {"synth": "adult"}]},
        }
    )
    model = build_model(recipe)
    either = build_dataset(recipe.data.train[0], "data.train.0", model, 0, 1.25, True, 0)
    plain = build_dataset(recipe.data.train[1], "data.train.1", model, 0, 1.25, True, 0)
    batch = collate([either[0], plain[0]])
    assert batch["left_right_either"].tolist() == pytest.approx([0.9, 0.0])  # 1 - the default anchor, 0.1
    assert batch["mirror_partner"][0].tolist() == FLIP
    assert "left_right_either" not in collate([plain[0], plain[1]])
    val = build_dataset(recipe.data.train[0], "data.train.0", model, 0, 1.25, False, 0)
    assert "sample_extra" not in val[0]  # evaluation reads the labels as they are


def write_people(folder: Path, n: int, seed: int, mirror_every_other: bool) -> Path:
    bgr, coco = render_dataset("adult", view="front", n=n, size=128, seed=seed)
    (folder / "images").mkdir(parents=True)
    for info, image in zip(coco["images"], bgr, strict=True):
        cv2.imwrite(str(folder / "images" / info["file_name"]), image)
    if mirror_every_other:
        for i, ann in enumerate(coco["annotations"]):
            if i % 2:
                ann["keypoints"] = np.asarray(ann["keypoints"]).reshape(17, 3)[FLIP].reshape(-1).tolist()
    (folder / "ann.json").write_text(json.dumps(coco))
    return folder / "ann.json"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


@pytest.mark.usefixtures("one_thread")
def test_training_on_half_mirrored_labels_keeps_left_and_right_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = write_people(tmp_path / "train", 48, 0, mirror_every_other=True)
    val = write_people(tmp_path / "val", 24, 1, mirror_every_other=False)
    recipe = {
        "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "classic"},
        "data": {"train": {"ann": str(train), "images": str(train.parent / "images"), "augment": []}},
        "optim": {"lr": 2e-3, "weight_decay": 0.0},
        "schedule": {"epochs": 10, "warmup_iters": 5, "policy": "constant"},
        "train": {
            "batch_size": 16,
            "workers": 0,
            "device": "cpu",
            "amp": False,
            "flip_test": False,
            "tensorboard": False,
            "val_interval": 0,
            "progress": False,
        },  # fmt: skip
    }
    truth = {
        a["image_id"]: np.asarray(a["keypoints"]).reshape(17, 3) for a in json.loads(val.read_text())["annotations"]
    }
    spread, error = {}, {}
    for mode in ("as_labelled", "either"):
        r = copy.deepcopy(recipe)
        r["data"]["train"]["left_right"] = mode
        path = tmp_path / f"{mode}.yaml"
        path.write_text(yaml.safe_dump(r))
        code, _, err = run_cli(["train", str(path), "--out", str(tmp_path / mode), "--json"], capsys)
        assert code == 0, err
        pred = tmp_path / f"{mode}.json"
        code, _, err = run_cli(["eval", "--checkpoint", str(tmp_path / mode / "final.safetensors"), "--ann",
                                  str(val), "--images", str(val.parent / "images"), "--no-flip", "--out", str(pred),
                                  "--json"], capsys)  # fmt: skip
        assert code == 0, err
        ratios, errors = [], []  # left-right distances over the true ones; error of the nearer reading
        for p in json.loads(pred.read_text()):
            k, t = np.asarray(p["keypoints"]).reshape(17, 3), truth[p["image_id"]]
            for a, b in ((5, 6), (7, 8), (11, 12), (13, 14)):
                if t[a, 2] > 0 and t[b, 2] > 0:
                    ratios.append(np.linalg.norm(k[a, :2] - k[b, :2]) / max(np.linalg.norm(t[a, :2] - t[b, :2]), 1))
            seen = t[:, 2] > 0
            errors.append(min(np.linalg.norm(k[:, :2] - t[:, :2], axis=1)[seen].mean(),
                              np.linalg.norm(k[FLIP, :2] - t[:, :2], axis=1)[seen].mean()))  # fmt: skip
        error[mode] = float(np.median(errors))
        spread[mode] = float(np.median(ratios))
    assert spread["as_labelled"] < 0.4  # left and right averaged onto one spot
    assert 0.7 < spread["either"] < 1.4
    assert error["either"] < 0.9 * error["as_labelled"]  # nearer the truth, whichever way round it reads


def test_bad_left_right_settings_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = {
        "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17"},
        "data": {"train": {"synth": {"population": "adult", "n": 4, "stream": True}, "left_right": "either"}},
        "schedule": {"epochs": 1},
        "train": {"workers": 0, "device": "cpu", "val_interval": 0, "progress": False, "tensorboard": False},
    }
    for name, recipe, says in (
        ("stream", base, "'data.train.0.left_right': 'either' needs a fixed set"),
        ("typo", {**base, "data": {"train": {"synth": "adult", "left_right": "mirror"}}}, "left_right"),
        (
            "anchor",
            {**base, "data": {"train": {"synth": "adult", "left_right": "either", "left_right_anchor": 1}}},
            "left_right_anchor",
        ),  # fmt: skip
        (
            "val",
            {**base, "data": {"train": {"synth": "adult"}, "val": {"synth": "adult", "left_right": "either"}}},
            "'left_right' is for training data",
        ),  # fmt: skip
    ):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        code, _, err = run_cli(["train", str(path), "--out", str(tmp_path / name)], capsys)
        assert code != 0 and says in err and "Traceback" not in err
        assert len(err.strip().splitlines()) <= 3, err
        assert not (tmp_path / name / "final.safetensors").exists()
