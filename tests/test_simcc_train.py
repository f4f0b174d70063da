"""SimCC training: RTMPose's KL loss (hand-checked), the (x, y) targets through dataset + collate, and a tiny
SimCC model that learns through `poseadapt train` (its loss falls, its AP on the training people rises)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from poseadapt.cli.main import main
from poseadapt.codecs import SimCC
from poseadapt.train import recipe_from_dict
from poseadapt.train.batch import collate, to_device
from poseadapt.train.build import build_dataset, build_model
from poseadapt.train.losses import HeatmapMSE, SimCCKL, kl_discret_loss, supervised_loss
from poseadapt.train.validate import evaluate_ap

RECIPE = {
    "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "simcc"},
    "data": {
        "train": {"synth": {"population": "adult", "view": "front", "n": 48, "size": 128}, "augment": []},
        "val": {"synth": {"population": "adult", "view": "front", "n": 48, "size": 128}},  # the training people
    },
    "optim": {"lr": 2e-3, "weight_decay": 0.0},
    "schedule": {"epochs": 16, "warmup_iters": 3, "policy": "constant"},
    "train": {
        "batch_size": 16,
        "workers": 0,
        "device": "cpu",
        "log_interval": 3,
        "flip_test": False,
        "tensorboard": False,
        "progress": False,
        "ema": None,
    },
}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_kl_loss_matches_a_hand_computed_case() -> None:
    # one sample, one keypoint, 3 bins per axis; the x label is one-hot at bin 0, the y label uniform
    px, py = torch.tensor([[[0.0, 0.1, 0.2]]]), torch.tensor([[[0.3, 0.0, 0.0]]])
    tx, ty = torch.tensor([[[1.0, 0.0, 0.0]]]), torch.tensor([[[0.5, 0.5, 0.5]]])
    beta = label_beta = 10.0

    def by_hand(p: list[float], t: list[float]) -> float:
        z = sum(math.exp(beta * v) for v in p)
        log_p = [beta * v - math.log(z) for v in p]
        zq = sum(math.exp(label_beta * v) for v in t)
        q = [math.exp(label_beta * v) / zq for v in t]
        return sum(qi * (math.log(qi) - lp) for qi, lp in zip(q, log_p, strict=True)) / len(p)  # mean over bins

    expected = by_hand([0.0, 0.1, 0.2], [1.0, 0.0, 0.0]) + by_hand([0.3, 0.0, 0.0], [0.5, 0.5, 0.5])
    got = kl_discret_loss((px, py), (tx, ty), torch.ones(1, 1))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # the y label is uniform after smoothing: its term is KL(uniform || softmax(10 * [0.3, 0, 0]))
    assert by_hand([0.3, 0.0, 0.0], [0.5, 0.5, 0.5]) == pytest.approx(
        (math.log(math.exp(3) + 2) - 1.0 - math.log(3)) / 3, rel=1e-12
    )
    # weight 0 removes a keypoint; the sum runs over samples and divides by K (mmpose's KLDiscretLoss)
    two = (torch.cat([px, px], 1), torch.cat([py, py], 1))
    two_t = (torch.cat([tx, tx], 1), torch.cat([ty, ty], 1))
    assert kl_discret_loss(two, two_t, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(expected / 2, rel=1e-6)
    batch2 = (torch.cat([px, px]), torch.cat([py, py]))
    t2 = (torch.cat([tx, tx]), torch.cat([ty, ty]))
    assert kl_discret_loss(batch2, t2, torch.ones(2, 1)).item() == pytest.approx(2 * expected, rel=1e-6)
    # a perfect prediction (logits = label / 1 with beta = label_beta) has zero loss
    assert kl_discret_loss((tx, ty), (tx, ty), torch.ones(1, 1)).item() == pytest.approx(0.0, abs=1e-7)


def test_loss_follows_the_codec() -> None:
    assert isinstance(supervised_loss("SimCC"), SimCCKL)
    assert isinstance(supervised_loss("UDPHeatmap"), HeatmapMSE)


def test_dataset_and_collate_carry_x_and_y_labels() -> None:
    recipe = recipe_from_dict(RECIPE)
    model = build_model(recipe)
    data = build_dataset(recipe.data.train[0], "data.train.0", model, 0, recipe.data.padding, True, 0)
    samples = [data[i] for i in range(3)]
    x, y = samples[0]["target"]
    assert x.shape == (17, 96) and y.shape == (17, 128)
    # the labels are the codec's encoding of the sample's keypoints
    ex, ey, ew = SimCC((48, 64)).encode(samples[0]["keypoints"][:, :2], samples[0]["keypoints"][:, 2] > 0)
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    np.testing.assert_array_equal(samples[0]["target_weight"], ew)
    batch = to_device(collate(samples), torch.device("cpu"))
    bx, by = batch["target"]
    assert bx.shape == (3, 17, 96) and by.shape == (3, 17, 128) and bx.dtype == torch.float32
    out = model(model.normalize(batch["image"].permute(0, 3, 1, 2)))
    loss = SimCCKL()(batch, out)
    assert torch.isfinite(loss) and loss.item() > 0


def test_simcc_model_learns_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "simcc.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    out = tmp_path / "run"
    recipe = recipe_from_dict(RECIPE)
    model = build_model(recipe)  # the seeded initial weights the run starts from
    val = build_dataset(recipe.data.val, "data.val", model, 0, recipe.data.padding, False, 0)
    ap_before = evaluate_ap(model, val, flip_test=False)["AP"]

    with pytest.raises(SystemExit) as exc:
        main(["train", str(path), "--out", str(out), "--set", "train.val_interval=48", "--json"])
    assert exc.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed" and summary["iteration"] == 48

    rows = list(csv.DictReader((out / "train_log.csv").open()))
    losses = [float(r["loss"]) for r in rows]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.7 * losses[0], losses
    ap_after = float(list(csv.DictReader((out / "val_log.csv").open()))[-1]["val/AP"])
    assert ap_after > ap_before + 0.1, (ap_before, ap_after)
