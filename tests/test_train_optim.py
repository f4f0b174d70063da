"""Optimizer groups (layer-wise lr decay, no-decay rules), the lr schedule against torch's own schedulers, and
the heatmap loss against the per-joint form ViTPose writes."""

from __future__ import annotations

import math

import pytest
import torch

from poseadapt.models import create_model
from poseadapt.train.losses import HeatmapMSE, keypoint_mse
from poseadapt.train.optim import build_optimizer, lr_factor, param_groups


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("vit_tiny", "coco17", "simple", img_size=(64, 48))


def test_layer_decay_and_no_decay_groups(model) -> None:
    rate, depth = 0.75, 2
    groups = param_groups(model.named_parameters(), lr=1e-3, weight_decay=0.1, layer_decay=rate, depth=depth)
    where = {name: g for g in groups for name in g["names"]}
    assert set(where) == {n for n, _ in model.named_parameters()}  # every parameter, exactly once
    expected_id = {
        "backbone.pos_embed": 0,
        "backbone.patch_embed.proj.weight": 0,
        "backbone.blocks.0.attn.qkv.weight": 1,
        "backbone.blocks.1.mlp.fc2.weight": 2,
        "backbone.norm.weight": 3,
        "heads.coco17.final_layer.weight": 3,
    }
    for name, lid in expected_id.items():
        assert where[name]["layer_id"] == lid
        assert where[name]["lr"] == pytest.approx(1e-3 * rate ** (depth + 1 - lid))
    for name, param in model.named_parameters():
        no_decay = param.ndim == 1 or name.endswith(".bias") or "pos_embed" in name
        assert where[name]["weight_decay"] == (0.0 if no_decay else 0.1), name
    assert where["backbone.blocks.0.attn.qkv.weight"]["weight_decay"] == 0.1
    assert where["backbone.blocks.0.norm1.weight"]["weight_decay"] == 0.0
    assert where["backbone.pos_embed"]["weight_decay"] == 0.0


def test_frozen_parameters_are_grouped_but_not_updated(model) -> None:
    m = create_model("vit_tiny", "coco17", "simple", img_size=(64, 48))
    for p in m.backbone.parameters():
        p.requires_grad_(False)
    opt = build_optimizer(m, lr=1e-2, weight_decay=0.1, layer_decay=0.8)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m(torch.randn(2, 3, 64, 48)).square().mean().backward()
    opt.step()
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("backbone."))
    assert not torch.equal(before["heads.coco17.final_layer.weight"], after["heads.coco17.final_layer.weight"])


def _torch_lrs(make, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_step_schedule_matches_torch_linear_and_multistep() -> None:
    ipe, warm, ratio, milestones, gamma = 7, 10, 1e-3, (2, 4), 0.1
    reference = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.ChainedScheduler(
            [
                torch.optim.lr_scheduler.LinearLR(o, start_factor=ratio, end_factor=1.0, total_iters=warm),
                torch.optim.lr_scheduler.MultiStepLR(o, milestones=[m * ipe for m in milestones], gamma=gamma),
            ]
        ),
        6 * ipe,
    )
    ours = [
        lr_factor(i, ipe, warmup_iters=warm, warmup_ratio=ratio, policy="step", milestones=milestones, gamma=gamma)
        for i in range(6 * ipe)
    ]
    assert ours == pytest.approx(reference, rel=1e-9, abs=1e-12)


def test_warmup_cosine_schedule_matches_torch() -> None:
    ipe, epochs, warm = 5, 4, 6
    reference = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.ChainedScheduler(
            [
                torch.optim.lr_scheduler.LinearLR(o, start_factor=0.01, end_factor=1.0, total_iters=warm),
                torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=epochs * ipe, eta_min=0.0),
            ]
        ),
        epochs * ipe,
    )
    ours = [
        lr_factor(i, ipe, warmup_iters=warm, warmup_ratio=0.01, policy="cosine", epochs=epochs)
        for i in range(epochs * ipe)
    ]
    assert ours == pytest.approx(reference, rel=1e-6, abs=1e-12)
    floor = lr_factor(epochs * ipe, ipe, policy="cosine", epochs=epochs, min_lr_ratio=0.05)
    half = lr_factor(epochs * ipe // 2, ipe, policy="cosine", epochs=epochs, min_lr_ratio=0.05)
    assert floor == pytest.approx(0.05) and half == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi / 2)))


def test_keypoint_mse_is_vitpose_per_joint_loss() -> None:
    g = torch.Generator().manual_seed(0)
    pred, gt = torch.rand(3, 5, 8, 6, generator=g), torch.rand(3, 5, 8, 6, generator=g)
    w = torch.tensor([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]], dtype=torch.float32)
    # ViTPose's KeypointMSELoss(use_target_weight=True), without its 0.5 factor: sum over joints of
    # MSE(pred_j * w_j, gt_j * w_j), divided by the number of joints
    per_joint = [
        torch.nn.functional.mse_loss(pred[:, j] * w[:, j, None, None], gt[:, j] * w[:, j, None, None]) for j in range(5)
    ]
    expected = sum(per_joint) / 5
    assert keypoint_mse(pred, gt, w).item() == pytest.approx(expected.item(), rel=1e-6)
    # an unlabelled joint's prediction does not matter
    pred2 = pred.clone()
    pred2[0, 1] += 10.0
    assert keypoint_mse(pred2, gt, w).item() == pytest.approx(keypoint_mse(pred, gt, w).item(), rel=1e-6)
    term = HeatmapMSE(weight=0.5)
    assert term({"target": gt, "target_weight": w}, pred).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="does not match the targets"):
        term({"target": gt[:, :4], "target_weight": w[:, :4]}, pred)
