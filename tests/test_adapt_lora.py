"""LoRA via peft: under 5% of the parameters train, training changes the output, and the merged export is a
plain PoseModel that computes what the adapted one does."""

from __future__ import annotations

import copy

import pytest
import torch

from poseadapt.adapt.lora import merge_for_export
from poseadapt.adapt.methods import build_methods
from poseadapt.adapt.params import apply_trainable, backbone_depth, count_parameters
from poseadapt.errors import PoseAdaptError
from poseadapt.interop.checkpoint import load_checkpoint, save_checkpoint
from poseadapt.models import PoseModel, create_model, vit

TARGETS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")


def lora(**options):
    (method,) = build_methods([{"lora": options}])
    return method


def prepare_model(model: torch.nn.Module, method) -> torch.nn.Module:
    """What the engine does before training: prepare (inject adapters), then apply the method's parameter choice."""
    model = method.prepare(model, None)
    depth = backbone_depth(model)
    apply_trainable(model, lambda name: method.trainable(name, 0, depth))
    return model


def expected_lora_trainable(model: PoseModel, r: int) -> int:
    """r * (in + out) per targeted linear of every block, plus the heads' per-keypoint final layers."""
    adapters = sum(
        r * (m.in_features + m.out_features)
        for block in model.backbone.blocks
        for m in (block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2)
    )
    finals = sum(p.numel() for head in model.heads.values() for p in head.final_layer.parameters())
    return adapters + finals


@pytest.fixture(scope="module")
def base_model():
    """A tiny model whose heatmaps are O(1): the published head init (std 0.001) gives outputs near 1e-6, which
    would make any absolute tolerance meaningless."""
    torch.manual_seed(0)
    model = create_model("vit_tiny", "coco17", img_size=(128, 96))  # classic head: BatchNorm and deconvolutions
    for m in model.heads.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            torch.nn.init.kaiming_normal_(m.weight)
    return model


def test_lora_trains_under_5_percent_of_tiny_vit(base_model):
    model = copy.deepcopy(base_model)
    total_before = sum(p.numel() for p in model.parameters())
    model = prepare_model(model, lora())
    trainable, total = count_parameters(model)
    assert trainable == expected_lora_trainable(base_model, 8)
    assert total == total_before + trainable - sum(
        p.numel() for h in base_model.heads.values() for p in h.final_layer.parameters()
    )
    assert trainable / total < 0.05
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(".lora_A." in n or ".lora_B." in n or ".final_layer." in n for n in names)
    assert sum(".lora_A." in n for n in names) == len(TARGETS) * len(model.backbone.blocks)


def test_lora_trains_under_5_percent_of_vit_base(monkeypatch):
    # counting only: skip the (slow, irrelevant here) weight init of an 86M-parameter backbone
    monkeypatch.setattr(vit.VisionTransformer, "reset_parameters", lambda self: None)
    model = create_model("vit_base", "coco17")
    expected = expected_lora_trainable(model, 8)
    model = prepare_model(model, lora())
    trainable, total = count_parameters(model)
    assert trainable == expected
    assert total > 85_000_000
    assert trainable / total < 0.05


def test_lora_targets_must_match_something(base_model):
    with pytest.raises(PoseAdaptError, match="match no linear layer"):
        prepare_model(copy.deepcopy(base_model), lora(targets=["attn.qkvv"]))


def test_lora_training_changes_output_and_merge_matches_unmerged(tmp_path):
    torch.manual_seed(0)
    base_model = create_model("vit_tiny", "coco17", "simple", img_size=(128, 96))  # the fast head on CPU
    torch.nn.init.kaiming_normal_(base_model.heads["coco17"].final_layer.weight)  # O(1) heatmaps, as above
    torch.manual_seed(3)
    x = torch.randn(3, 3, 128, 96)
    base_model.eval()
    with torch.no_grad():
        before = base_model(x)
    assert before.abs().max() > 0.5

    method = lora(r=4, head="none")
    model = prepare_model(copy.deepcopy(base_model), method)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), before)  # B starts at zero: the adapted model starts as the plain one
    depth = backbone_depth(model)
    held = [p for n, p in model.named_parameters() if method.ever_trains(n, depth)]
    assert held and all(p.requires_grad for p in held)  # adapters only (head: none)
    optimizer = torch.optim.AdamW(held, lr=5e-3, weight_decay=0.0)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    model.train()
    method.on_epoch_start(model, 0)
    target = torch.rand_like(before)
    for _ in range(4):
        loss = (model(x) - target).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)  # only adapters moved
    model.eval()
    with torch.no_grad():
        adapted = model(x)
    assert (adapted - before).abs().max() > 0.05

    plain = method.export(model)
    assert type(plain) is PoseModel
    assert not [n for n, m in plain.named_modules() if type(m).__module__.startswith("peft")]
    assert list(plain.state_dict()) == list(base_model.state_dict())  # plain keys, same order
    assert all(p.requires_grad for p in plain.parameters())
    plain.eval()
    with torch.no_grad():
        merged = plain(x)
    torch.testing.assert_close(merged, adapted, rtol=0, atol=1e-5)
    assert any(".lora_A." in n for n, _ in model.named_parameters())  # the training model keeps its adapters

    # a deep copy (what EMA keeps) runs its own adapters, not the original's
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for block in twin.backbone.blocks:
            block.mlp.fc1.lora_B["default"].weight.zero_()
        assert not torch.allclose(twin(x), adapted) and torch.equal(model(x), adapted)

    # our checkpoint format takes the merged model as it is, and loading it gives the same predictions
    path = save_checkpoint(plain, tmp_path / "lora_merged.safetensors")
    reloaded = load_checkpoint(path)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), adapted, rtol=0, atol=1e-5)


def test_merge_for_export_of_a_plain_model_is_a_copy(base_model):
    plain = merge_for_export(base_model)
    assert plain is not base_model
    pairs = zip(plain.state_dict().values(), base_model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_lora_through_the_trainer_exports_a_plain_checkpoint(tmp_path):
    from poseadapt.train import load_recipe, run_recipe
    from poseadapt.train.checkpointing import load_train_state

    sets = [
        "model.head=simple",
        "data.train.synth.n=16",
        "data.val=null",
        "schedule.epochs=1",
        "schedule.warmup_iters=0",
        "train.batch_size=8",
        "train.workers=0",
        "train.val_interval=0",
        "train.ema=null",
        "train.progress=false",
        "train.tensorboard=false",
        "train.device=cpu",
        "adapt=[{lora: {r: 4}}]",
    ]
    result = run_recipe(load_recipe("synth-adult-tiny", sets), tmp_path / "run")
    assert result.status == "completed" and result.iteration == 2
    state = load_train_state(tmp_path / "run" / "last.pt")
    assert state["methods"] == {"adapt.0.lora": {}}
    assert any(".lora_A." in k for k in state["model"])  # the training state keeps the adapters (for --resume)
    exported = load_checkpoint(result.final_checkpoint)  # the exported weights are a plain model
    assert type(exported) is PoseModel and not any("lora" in k for k in exported.state_dict())
    assert exported.provenance["adapt"] == [{"lora": {"r": 4, "alpha": 16.0, "dropout": 0.0, "targets": list(TARGETS),
                                                      "head": "final"}}]  # fmt: skip


def test_peft_is_inside_the_pinned_range():
    """The range in pyproject.toml and constraints.txt is the one these tests run against."""
    import re
    from importlib.metadata import version
    from pathlib import Path

    from packaging.specifiers import SpecifierSet

    root = Path(__file__).parents[1]
    pinned = re.search(r'"peft([^"]+)"', (root / "pyproject.toml").read_text()).group(1)
    constrained = re.search(r"^peft(\S+)$", (root / "constraints.txt").read_text(), re.M).group(1)
    assert pinned == constrained and "<" in pinned  # an upper bound: a new peft is tested before it is allowed
    assert version("peft") in SpecifierSet(pinned)


def test_adapters_are_recognised_by_peft_class_not_by_attribute_names(base_model):
    from peft.tuners.lora import LoraLayer

    from poseadapt.adapt.lora import has_lora

    class LookAlike(torch.nn.Linear):  # the attributes the old duck-typing test looked for, but no peft layer
        lora_A = torch.nn.ModuleDict()

        def get_base_layer(self):
            return self

    decoy = copy.deepcopy(base_model)
    decoy.backbone.blocks[0].mlp.fc2 = LookAlike(4, 4)
    assert not has_lora(decoy)
    model = prepare_model(copy.deepcopy(base_model), lora(r=2, targets=list(TARGETS)))
    wrapped = [n for n, m in model.named_modules() if isinstance(m, LoraLayer)]
    assert has_lora(model) and len(wrapped) == 4 * len(model.backbone.blocks)
    plain = merge_for_export(model)
    assert not has_lora(plain) and not any(isinstance(m, LoraLayer) for m in plain.modules())
