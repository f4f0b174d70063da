"""Parameter-choosing methods: which parameters train, at which lr, and the head-first-then-full switch."""

from __future__ import annotations

import copy
import functools
from types import SimpleNamespace

import pytest
import torch

from poseadapt.adapt import AdaptContext, DataStream
from poseadapt.adapt.methods import build_methods
from poseadapt.adapt.params import apply_train_mode, apply_trainable, backbone_depth, count_parameters
from poseadapt.errors import PoseAdaptError
from poseadapt.models import create_model
from poseadapt.train.optim import param_groups


@pytest.fixture(scope="module")
def base_model():
    torch.manual_seed(0)
    return create_model("vit_tiny", "coco17", img_size=(64, 48))  # classic head: BatchNorm + deconvolutions


@pytest.fixture
def model(base_model):
    return copy.deepcopy(base_model)


def method(name: str, **options):
    (m,) = build_methods([{name: options}])
    return m


def context(layer_decay: float = 1.0, key: str = "adapt.0") -> AdaptContext:
    recipe = SimpleNamespace(optim=SimpleNamespace(layer_decay=layer_decay))
    return AdaptContext(recipe=recipe, key=key)


def prepare(model: torch.nn.Module, m, epoch: int = 0, ctx: AdaptContext | None = None) -> torch.nn.Module:
    """What the engine does before training: the method prepares the model, then its choice for `epoch` applies."""
    model = m.prepare(model, ctx or context(key=m.key))
    depth = backbone_depth(model)
    apply_trainable(model, lambda name: m.trainable(name, epoch, depth))
    return model


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _trainable_names(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_full_and_layer_decay_train_everything(model):
    for m in (method("full"), method("layer_decay")):
        prepared = prepare(copy.deepcopy(model), m)
        assert count_parameters(prepared) == (_numel(model), _numel(model))


def test_head_only_trains_exactly_the_heads(model):
    prepare(model, method("head_only"))
    assert _trainable_names(model) == {f"heads.{n}" for n, _ in model.heads.named_parameters()}
    assert count_parameters(model)[0] == _numel(model.heads)
    assert 0 < _numel(model.heads) < _numel(model)


def test_freeze_blocks_freezes_embeddings_and_first_blocks(model):
    bb = model.backbone
    frozen = _numel(bb.patch_embed) + bb.pos_embed.numel() + _numel(bb.blocks[0])
    prepare(model, method("freeze_blocks", blocks=1))
    assert count_parameters(model)[0] == _numel(model) - frozen
    names = _trainable_names(model)
    assert not any(n.startswith(("backbone.patch_embed", "backbone.pos_embed", "backbone.blocks.0.")) for n in names)
    assert {"backbone.blocks.1.attn.qkv.weight", "backbone.norm.weight"} <= names


def test_freeze_blocks_beyond_depth_is_a_user_error(model):
    with pytest.raises(
        PoseAdaptError, match=r"^recipe key 'adapt.0.freeze_blocks.blocks': 3 but the model has 2 blocks$"
    ):
        prepare(model, method("freeze_blocks", blocks=3))


def test_frozen_modules_stay_in_eval_mode_while_training(model):
    prepare(model, method("freeze_blocks", blocks=1))
    model.train()
    apply_train_mode(model)
    assert not model.backbone.blocks[0].training and not model.backbone.patch_embed.training
    assert model.backbone.blocks[1].training and model.heads.training


def test_layer_decay_groups_scale_by_depth(model):
    depth, rate, lr = 2, 0.75, 1e-3
    m = method("layer_decay", rate=rate)
    prepare(model, m)
    assert backbone_depth(model) == depth
    groups = param_groups(
        model.named_parameters(), lr, 0.1, depth=depth, lr_scale=functools.partial(m.lr_scale, depth=depth)
    )
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
    m = method("layer_decay", rate=0.75)
    with pytest.raises(PoseAdaptError, match="layer decay is set twice"):
        m.prepare(model, context(layer_decay=0.8, key=m.key))


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
    m = method("head_then_full", head_epochs=2)
    model = m.prepare(model, context(key=m.key))
    depth = backbone_depth(model)
    held = [p for n, p in model.named_parameters() if m.ever_trains(n, depth)]
    assert len(held) == len(list(model.parameters()))  # backbone held by the optimizer from the start
    optimizer = torch.optim.AdamW(held, lr=1e-3)
    model.train()
    switches = []
    for epoch in range(4):
        apply_trainable(model, lambda name, e=epoch: m.trainable(name, e, depth))
        switches.append(bool(m.on_epoch_start(model, epoch)))
        before = copy.deepcopy(model.state_dict())
        _step(model, optimizer)
        after = model.state_dict()
        backbone_moved = any(not torch.equal(before[k], after[k]) for k in before if k.startswith("backbone."))
        head_moved = any(not torch.equal(before[k], after[k]) for k in before if k.startswith("heads."))
        assert head_moved
        assert backbone_moved == (epoch >= 2), epoch
        assert model.backbone.training == (epoch >= 2)  # frozen backbone: no drop path
    assert switches == [False, False, True, False]


def test_head_then_full_stage_is_a_function_of_the_epoch(base_model):
    """A resumed run reaches the stage of its epoch by re-applying the choice: no stage state to save."""
    m = method("head_then_full", head_epochs=2)
    depth = backbone_depth(base_model)
    assert m.state_dict() == {}

    # resume after the switch: a fresh model, the choice of epoch 3 applied
    m2 = prepare(copy.deepcopy(base_model), m, epoch=3)
    assert count_parameters(m2)[0] == _numel(m2)
    assert m.on_epoch_start(m2, 3) == {}  # no second switch is reported
    assert not apply_trainable(m2, lambda name: m.trainable(name, 3, depth))  # idempotent

    # resume before the switch: heads only, and the switch happens (and is reported) at epoch 2
    m3 = prepare(copy.deepcopy(base_model), m, epoch=1)
    assert count_parameters(m3)[0] == _numel(m3.heads)
    assert apply_trainable(m3, lambda name: m.trainable(name, 2, depth))
    assert m.on_epoch_start(m3, 2) == {"stage_switch": 2.0} and count_parameters(m3)[0] == _numel(m3)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"full": {"blocks": 2}}], "recipe key 'adapt.0.full.blocks': unknown key"),
        ([{"freeze_blocks": {}}], "recipe key 'adapt.0.freeze_blocks.blocks': required key is missing"),
        ([{"lora": {"rank": 4}}], "recipe key 'adapt.0.lora.rank': unknown key"),
        ([{"adapterz": {}}], "recipe key 'adapt.0': unknown method 'adapterz'"),
        ([{"full": {}}, {"rehearsal": {"ratio": 0.2}}], "recipe key 'adapt.1.rehearsal.source'"),
        ([{"rehearsal": {"source": {"synth": {}}, "ratio": 1.5}}], "recipe key 'adapt.0.rehearsal.ratio'"),
        ([{"head_then_full": {"head_epochs": 0}}], "recipe key 'adapt.0.head_then_full.head_epochs'"),
        ([{"layer_decay": {"rate": 1.0}}], "recipe key 'adapt.0.layer_decay.rate'"),
    ],
)
def test_config_errors_name_the_key(items, message):
    with pytest.raises(PoseAdaptError) as exc:
        build_methods(items)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_config_defaults_per_method():
    assert method("head_then_full").options.head_epochs == 1
    assert method("layer_decay").options.rate == 0.75
    lora = method("lora", r=4).options
    assert (
        lora.r == 4 and lora.alpha / lora.r == 4.0 and lora.targets == ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"]
    )
    assert lora.head == "final"
    r = method("rehearsal", source={"synth": {"population": "adult"}}).options
    assert r.ratio == 0.25 and r.pseudo_label and r.score_threshold == 0.3 and not r.fill_unlabelled


def test_a_data_stream_takes_its_ratio_and_grows_the_epoch():
    """300 target samples and a 25% source stream: 400 per epoch, every target sample still drawn once."""
    from poseadapt.train import recipe_from_dict
    from poseadapt.train.build import mix_streams

    recipe = recipe_from_dict({"data": {"train": {"synth": "infant"}}})
    ratios, total = mix_streams(recipe, [300], [DataStream(list(range(50)), 0.25, name="rehearsal")])
    assert ratios == pytest.approx([0.75, 0.25]) and total == 400
    assert mix_streams(recipe, [300], []) == (None, None)
    with pytest.raises(PoseAdaptError, match="ratio 0.01 of 3 samples per epoch draws nothing"):
        mix_streams(recipe, [3], [DataStream(list(range(50)), 0.01, name="rehearsal")])
