"""Fine-tuning strategies: which parameters train, at which lr, and the head-first-then-full switch."""

from __future__ import annotations

import copy

import pytest
import torch

from poseadapt.adapt.finetune import (
    FinetuneConfig,
    Finetuner,
    apply_train_mode,
    count_parameters,
    prepare_model,
    trainable_parameter_groups,
)
from poseadapt.errors import PoseAdaptError
from poseadapt.models import create_model


@pytest.fixture(scope="module")
def base_model():
    torch.manual_seed(0)
    return create_model("vit_tiny", "coco17", img_size=(64, 48))  # classic head: BatchNorm + deconvolutions


@pytest.fixture
def model(base_model):
    return copy.deepcopy(base_model)


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _trainable_names(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_full_and_layer_decay_train_everything(model):
    for cfg in (FinetuneConfig(strategy="full"), FinetuneConfig(strategy="layer_decay")):
        m = prepare_model(copy.deepcopy(model), cfg)
        assert count_parameters(m) == (_numel(model), _numel(model))


def test_head_only_trains_exactly_the_heads(model):
    prepare_model(model, FinetuneConfig(strategy="head_only"))
    assert _trainable_names(model) == {f"heads.{n}" for n, _ in model.heads.named_parameters()}
    assert count_parameters(model)[0] == _numel(model.heads)
    assert 0 < _numel(model.heads) < _numel(model)


def test_freeze_blocks_freezes_embeddings_and_first_blocks(model):
    bb = model.backbone
    frozen = _numel(bb.patch_embed) + bb.pos_embed.numel() + _numel(bb.blocks[0])
    prepare_model(model, FinetuneConfig(strategy="freeze_blocks", freeze_blocks=1))
    assert count_parameters(model)[0] == _numel(model) - frozen
    names = _trainable_names(model)
    assert not any(n.startswith(("backbone.patch_embed", "backbone.pos_embed", "backbone.blocks.0.")) for n in names)
    assert {"backbone.blocks.1.attn.qkv.weight", "backbone.norm.weight"} <= names


def test_freeze_blocks_beyond_depth_is_a_user_error(model):
    with pytest.raises(PoseAdaptError, match="freeze_blocks is 3 but the model has 2 blocks"):
        prepare_model(model, FinetuneConfig(strategy="freeze_blocks", freeze_blocks=3))


def test_frozen_modules_stay_in_eval_mode_while_training(model):
    prepare_model(model, FinetuneConfig(strategy="freeze_blocks", freeze_blocks=1))
    model.train()
    apply_train_mode(model)
    assert not model.backbone.blocks[0].training and not model.backbone.patch_embed.training
    assert model.backbone.blocks[1].training and model.heads.training


def test_layer_decay_groups_scale_by_depth(model):
    depth, rate, lr = 2, 0.75, 1e-3
    cfg = FinetuneConfig(strategy="layer_decay", layer_decay=rate)
    prepare_model(model, cfg)
    groups = trainable_parameter_groups(model, cfg, base_lr=lr, weight_decay=0.1)
    expected_id = {
        "backbone.pos_embed": 0,
        "backbone.patch_embed.proj.weight": 0,
        "backbone.blocks.0.mlp.fc1.weight": 1,
    }
    expected_id |= {
        "backbone.blocks.1.attn.qkv.bias": 2,
        "backbone.norm.weight": 3,
        "heads.coco17.final_layer.weight": 3,
    }
    seen = {}
    for g in groups:
        assert g["lr_scale"] == pytest.approx(rate ** (depth + 1 - g["layer_id"]))
        assert g["lr"] == pytest.approx(lr * g["lr_scale"])
        for name, p in zip(g["names"], g["params"], strict=True):
            seen[name] = g["layer_id"]
            no_decay = p.ndim <= 1 or name.endswith(".bias") or "pos_embed" in name
            assert g["weight_decay"] == (0.0 if no_decay else 0.1), name
    assert {k: seen[k] for k in expected_id} == expected_id
    assert set(seen) == {n for n, _ in model.named_parameters()}  # every parameter exactly once
    assert sum(len(g["params"]) for g in groups) == len(seen)
    # the scale ladder itself: embeddings get rate^3, block 0 rate^2, block 1 rate, the rest 1
    scales = {g["layer_id"]: g["lr_scale"] for g in groups}
    assert scales == pytest.approx({0: rate**3, 1: rate**2, 2: rate, 3: 1.0})


def test_layer_decay_set_twice_is_rejected(model):
    cfg = FinetuneConfig(strategy="layer_decay", layer_decay=0.75)
    with pytest.raises(PoseAdaptError, match="layer decay is set twice"):
        trainable_parameter_groups(model, cfg, 1e-3, 0.1, layer_decay=0.8)


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 48)
    loss = (model(x) - 0.1).pow(2).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def test_head_then_full_switches_at_the_right_epoch_and_optimizes_accordingly():
    torch.manual_seed(0)
    model = create_model("vit_tiny", "coco17", "simple", img_size=(64, 48))  # the fast head: 4 real steps
    ft = Finetuner(FinetuneConfig(strategy="head_then_full", head_epochs=2))
    ft.prepare(model)
    groups = ft.parameter_groups(model, 1e-3, 0.0)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))  # backbone held from the start
    optimizer = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in groups])
    model.train()
    switches = []
    for epoch in range(4):
        switches.append(ft.on_epoch_start(model, epoch))
        before = copy.deepcopy(model.state_dict())
        _step(model, optimizer)
        after = model.state_dict()
        backbone_moved = any(not torch.equal(before[k], after[k]) for k in before if k.startswith("backbone."))
        head_moved = any(not torch.equal(before[k], after[k]) for k in before if k.startswith("heads."))
        assert head_moved
        assert backbone_moved == (epoch >= 2), epoch
        assert model.backbone.training == (epoch >= 2)  # frozen backbone: no drop path
    assert switches == [False, False, True, False]


def test_head_then_full_stage_survives_a_state_dict_round_trip(base_model):
    cfg = FinetuneConfig(strategy="head_then_full", head_epochs=2)
    ft = Finetuner(cfg)
    m = ft.prepare(copy.deepcopy(base_model))
    for epoch in range(3):
        ft.on_epoch_start(m, epoch)
    saved = ft.state_dict()
    assert saved["stage"] == "full"

    # resume after the switch: a fresh model is prepared (head stage), then the state is loaded
    resumed = Finetuner(cfg)
    m2 = resumed.prepare(copy.deepcopy(base_model))
    assert count_parameters(m2)[0] == _numel(m2.heads)
    resumed.load_state_dict(saved)
    assert resumed.on_epoch_start(m2, 3) is False  # no second switch is reported
    assert count_parameters(m2)[0] == _numel(m2)

    # resume from a state saved before the switch: the switch happens (and is reported) at epoch 2
    early = Finetuner(cfg)
    m3 = early.prepare(copy.deepcopy(base_model))
    early.on_epoch_start(m3, 1)
    late = Finetuner(cfg)
    late.load_state_dict(early.state_dict())
    m4 = late.prepare(copy.deepcopy(base_model))
    late.load_state_dict(early.state_dict())
    assert late.on_epoch_start(m4, 2) is True and count_parameters(m4)[0] == _numel(m4)

    with pytest.raises(PoseAdaptError, match="strategy 'head_then_full'"):
        Finetuner(FinetuneConfig(strategy="full")).load_state_dict(saved)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"strategy": "full", "freeze_blocks": 2}, "'freeze_blocks' belongs to strategy 'freeze_blocks'"),
        ({"strategy": "freeze_blocks"}, "needs 'freeze_blocks: N'"),
        ({"strategy": "lora", "lora": {"rank": 4}}, "recipe key 'finetune.lora.rank': unknown key"),
        ({"strategy": "adapterz"}, "recipe key 'finetune.strategy'"),
        ({"strategy": "full", "rehearsal": {"ratio": 0.2}}, "recipe key 'finetune.rehearsal.source'"),
        ({"rehearsal": {"source": {"synth": {}}, "ratio": 1.5}}, "recipe key 'finetune.rehearsal.ratio'"),
    ],
)
def test_config_errors_name_the_key(section, message):
    with pytest.raises(PoseAdaptError, match=message):
        FinetuneConfig.from_section(section)


def test_config_defaults_per_strategy():
    assert FinetuneConfig.from_section({"strategy": "head_then_full"}).head_epochs == 1
    assert FinetuneConfig.from_section({"strategy": "layer_decay"}).layer_decay == 0.75
    lora = FinetuneConfig.from_section({"strategy": "lora", "lora": {"r": 4}}).lora
    assert lora.r == 4 and lora.scaling == 4.0 and lora.targets == ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"]
    r = FinetuneConfig.from_section({"rehearsal": {"source": {"synth": {"population": "adult"}}}}).rehearsal
    assert r.ratios == [0.75, 0.25] and r.samples_per_epoch(300) == 400
