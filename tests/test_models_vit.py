"""The ViT backbone, heads and PoseModel: shapes, routing, pos-embed resizing, checkpointing, checkpoint files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from poseadapt.errors import PoseAdaptError
from poseadapt.interop.checkpoint import load_model, read_header, save_checkpoint
from poseadapt.models import create_model, vit_config
from poseadapt.models.vit import resize_pos_embed
from poseadapt.schemas import KeypointSchema


def randomize(model: torch.nn.Module, std: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """Weights large enough that every layer shapes the output (the default head init is N(0, 0.001))."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if p.ndim == 1 and "norm" in str(p.shape) else 0.0))
    return model


@pytest.mark.parametrize(
    ("head", "shape"),
    [("classic", (2, 17, 64, 48)), ("simple", (2, 17, 64, 48)), ("sapiens", (2, 17, 64, 48))],
)
def test_heatmap_heads_give_quarter_resolution(head, shape):
    model = create_model("vit_tiny", head=head).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 256, 192)).shape == shape
    assert model.heatmap_size == (48, 64)
    assert model.config.codec == {
        "type": "UDPHeatmap",
        "input_size": [192, 256],
        "heatmap_size": [48, 64],
        "sigma": 2.0,
    }


def test_simcc_head_gives_bin_logits():
    model = create_model("vit_tiny", head="simcc").eval()
    with torch.no_grad():
        x, y = model(torch.randn(2, 3, 256, 192))
    assert x.shape == (2, 17, 384) and y.shape == (2, 17, 512)
    assert model.config.codec["type"] == "SimCC"


def test_size_table_matches_published_configs():
    base = vit_config("vit_base")
    assert (base.embed_dim, base.depth, base.num_heads, base.mlp_dim, base.drop_path_rate) == (768, 12, 12, 3072, 0.3)
    assert base.grid_size == (16, 12)
    huge_plus = vit_config("vit_huge", num_experts=6)
    assert (huge_plus.embed_dim, huge_plus.depth, huge_plus.part_features) == (1280, 32, 320)
    sapiens = vit_config("sapiens_1b")
    assert (sapiens.embed_dim, sapiens.depth, sapiens.num_heads, sapiens.grid_size) == (1536, 40, 24, (64, 48))
    with pytest.raises(PoseAdaptError, match="unknown model"):
        vit_config("vit_gigantic")


def test_pos_embed_resizes_for_another_input_size():
    model = randomize(create_model("vit_tiny")).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 320, 256))
    assert out.shape == (1, 17, 80, 64)
    # resizing keeps a constant field constant and a ramp a ramp (monotone, same range inside the borders)
    rows = torch.linspace(0, 1, 16)[:, None].expand(16, 12)
    field = torch.stack([rows, torch.full_like(rows, 0.5)], -1).reshape(1, 192, 2)
    resized = resize_pos_embed(field, (16, 12), (32, 24)).reshape(32, 24, 2)
    assert torch.allclose(resized[..., 1], torch.full((32, 24), 0.5), atol=1e-6)
    ramp = resized[:, 5, 0]
    assert (ramp.diff() > 0).all() and abs(ramp[0].item()) < 0.05 and abs(ramp[-1].item() - 1) < 0.05
    assert resize_pos_embed(field, (16, 12), (16, 12)) is field


def test_experts_route_each_sample_by_dataset_index():
    model = randomize(create_model("vit_tiny", ["coco17", "coco17"], head_names=["a", "b"], num_experts=3)).eval()
    x = torch.randn(3, 3, 256, 192)
    feats_mixed = model.forward_features(x, torch.tensor([2, 0, 1]))
    for i, d in enumerate([2, 0, 1]):
        alone = model.forward_features(x[i : i + 1], d)
        assert torch.allclose(feats_mixed[i : i + 1], alone, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(model.forward_features(x, 0), model.forward_features(x, 1))
    with pytest.raises(PoseAdaptError, match="pass dataset_index"):
        model(x)


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = randomize(create_model("vit_tiny", img_size=(64, 48), drop_path_rate=0.0)).train()
    x = torch.randn(2, 3, 64, 48)
    grads = []
    for enable in (False, True):
        model.zero_grad()
        model.backbone.set_grad_checkpointing(enable)
        model(x).square().mean().backward()
        grads.append([p.grad.clone() for p in model.backbone.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_drop_path_is_stochastic_only_in_training():
    model = randomize(create_model("vit_tiny", img_size=(64, 48), drop_path_rate=0.5))
    x = torch.randn(2, 3, 64, 48)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    a = model.backbone(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, model.backbone(x))


def test_checkpoint_roundtrip_keeps_custom_schema_and_provenance(tmp_path):
    infant = KeypointSchema(
        name="infant_test5",
        keypoints=("nose", "left_wrist", "right_wrist", "left_ankle", "right_ankle"),
        sigmas=(0.026, 0.062, 0.062, 0.089, 0.089),
        skeleton=(("left_wrist", "right_wrist"),),
    )
    model = randomize(create_model("vit_tiny", infant, num_experts=2)).eval()
    path = save_checkpoint(model, tmp_path / "ckpt" / "m.safetensors", {"note": "test"})
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.safetensors"]  # no temp files left
    header = read_header(path)
    assert header["provenance"] == {"note": "test"} and header["schemas"][0]["name"] == "infant_test5"
    again = load_model(path)
    assert again.schema.to_dict() == infant.to_dict() and not again.training
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        assert torch.equal(model(x, 1), again(x, 1))
    assert json.loads(json.dumps(again.config.to_dict())) == model.config.to_dict()


def test_load_model_rejects_foreign_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(PoseAdaptError, match="not a poseadapt checkpoint"):
        load_model(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(PoseAdaptError, match="not a safetensors checkpoint"):
        load_model(tmp_path / "junk.safetensors")


def test_top_level_load_model_is_lazy(tmp_path):
    code = "import sys, poseadapt; assert 'torch' not in sys.modules; f = poseadapt.load_model; print(f.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "poseadapt.interop.checkpoint"
