"""Multi-dataset training across skeletons: masked per-sample losses, per-dataset validation, ViTPose++ experts
trained by dataset index and merged into one plain ViT per dataset after training."""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any

import pytest
import torch

SCHEMAS = ["coco17", "mpii16", "aic14"]


def multi_recipe(tiny: dict[str, Any], experts: int = 3) -> dict[str, Any]:
    r = copy.deepcopy(tiny)
    r["model"].update({"schema": SCHEMAS, "experts": experts, "head": "simple"})
    r["data"] = {
        "train": [
            {"synth": {"population": "adult", "n": 6, "size": 96, "seed": 10 + i}, "schema": s, "ratio": 1.0}
            for i, s in enumerate(SCHEMAS)
        ],
        "val": [
            {"synth": {"population": "adult", "n": 3, "size": 96, "seed": 100 + i}, "schema": s}
            for i, s in enumerate(SCHEMAS)
        ],
    }
    r["train"].update({"batch_size": 6, "val_interval": 1, "flip_test": False})
    return r


def test_mse_averages_each_sample_over_its_own_keypoints() -> None:
    from poseadapt.train.losses import keypoint_mse

    pred = torch.zeros(2, 4, 2, 2)
    target = torch.zeros(2, 4, 2, 2)
    target[0, :4] = 1.0  # a 4-keypoint sample, every keypoint wrong by 1
    target[1, :2] = 1.0  # a 2-keypoint sample padded to 4, both keypoints wrong by 1
    weight = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]])
    # each sample's mean over its own keypoints is 1: the batch loss is 1, whatever the padding
    assert keypoint_mse(pred, target, weight, torch.tensor([4, 2])).item() == pytest.approx(1.0)
    assert keypoint_mse(pred, target, weight).item() == pytest.approx(0.75)  # padded mean: 2-kpt sample counts half
    same = keypoint_mse(pred, target, weight, torch.tensor([4, 4]))
    assert same.item() == pytest.approx(keypoint_mse(pred, target, weight).item())


def test_collate_marks_mixed_skeletons() -> None:
    import numpy as np

    from poseadapt.train.batch import collate

    def sample(k: int, d: int) -> dict[str, Any]:
        return {"image": np.zeros((8, 8, 3), np.uint8), "target": np.ones((k, 4, 4), np.float32),
                "target_weight": np.ones(k, np.float32), "dataset_index": d}  # fmt: skip

    batch = collate([sample(17, 0), sample(14, 2)])
    assert batch["target"].shape == (2, 17, 4, 4)
    assert batch["num_keypoints"].tolist() == [17, 14]
    assert batch["target_weight"][1, 14:].sum() == 0
    assert "num_keypoints" not in collate([sample(17, 0), sample(17, 1)])


def test_experts_train_by_dataset_and_merge_per_dataset(tiny_recipe, cli_train, tmp_path: Path) -> None:
    from poseadapt.interop.checkpoint import load_checkpoint
    from poseadapt.models.surgery import merge_experts

    out = tmp_path / "multi"
    summary = cli_train(multi_recipe(tiny_recipe), out)
    assert summary["status"] == "completed"
    rows = list(csv.DictReader((out / "val_log.csv").open()))
    assert {f"val/{name}/AP" for name in SCHEMAS} <= set(rows[0]) and "val/AP" in rows[0]
    model = load_checkpoint(out / "final.safetensors").eval()
    assert model.config.backbone.num_experts == 3 and model.head_names == SCHEMAS
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 48)
    for d, name in enumerate(SCHEMAS):
        dense = merge_experts(model, name).eval()
        assert dense.config.backbone.num_experts == 0 and dense.head_names == [name]
        with torch.no_grad():
            want = model(x, d)
            got = dense(x)
        assert got.shape == (2, len(want[0]), *want.shape[2:])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_experts_receive_gradients_only_from_their_dataset() -> None:
    from poseadapt.models import create_model

    model = create_model("vit_tiny", schema=SCHEMAS, head="simple", img_size=(64, 48), num_experts=3)
    x = torch.randn(4, 3, 64, 48)
    index = torch.tensor([0, 0, 2, 2])
    model(x, index).sum().backward()
    grads = [model.backbone.blocks[0].mlp.experts[e].weight.grad for e in range(3)]
    assert grads[0].abs().sum() > 0 and grads[2].abs().sum() > 0
    assert grads[1] is None or grads[1].abs().sum() == 0
    assert model.heads["mpii16"].final_layer.weight.grad is None
