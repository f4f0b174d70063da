"""transformers VitPose / ViTPose++ checkpoints import and reproduce transformers' heatmaps.

Tiny random models are built offline with transformers (the parity oracle, a test-only dependency), saved with
save_pretrained, imported by poseadapt (which reads config.json + safetensors without transformers) and compared.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from poseadapt.interop.hf import import_hf  # noqa: E402


def tiny_hf_model(tmp_path, *, simple: bool, experts: int = 1, out_layer: int = 3, eps: float = 1e-6):
    backbone = transformers.VitPoseBackboneConfig(
        image_size=[64, 48],
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        mlp_ratio=4,
        num_experts=experts,
        part_features=8,
        out_indices=[out_layer],
        layer_norm_eps=eps,
    )
    config = transformers.VitPoseConfig(backbone_config=backbone, use_simple_decoder=simple, num_labels=17)
    torch.manual_seed(0)
    model = transformers.VitPoseForPoseEstimation(config).eval()
    with torch.no_grad():  # random weights large enough that every layer matters; BN statistics away from identity
        for p in model.parameters():
            p.normal_(0.0, 0.2)
        for name, b in model.named_buffers():
            if "running_var" in name:
                b.uniform_(0.5, 1.5)
            elif "running_mean" in name:
                b.normal_(0.0, 0.2)
    model.save_pretrained(tmp_path)
    return model


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("simple", [True, False], ids=["simple", "classic"])
def test_hf_vitpose_parity(tmp_path, simple):
    hf = tiny_hf_model(tmp_path, simple=simple)
    model, report = import_hf(str(tmp_path))
    assert report.unused == [] and report.missing == []
    x = torch.randn(3, 3, 64, 48)
    with torch.no_grad():
        expected = hf(x).heatmaps
        got = model(x)
    assert got.shape == expected.shape == (3, 17, 16, 12)
    assert rel_err(got, expected) < 1e-5


def test_hf_vitpose_plus_experts_parity(tmp_path):
    hf = tiny_hf_model(tmp_path, simple=True, experts=4)
    model, _ = import_hf(str(tmp_path))
    assert model.config.backbone.num_experts == 4 and model.head_names == ["coco"]
    x = torch.randn(4, 3, 64, 48)
    for index in ([0, 1, 2, 3], [3, 3, 3, 3], [2, 0, 2, 1]):
        idx = torch.tensor(index)
        with torch.no_grad():
            assert rel_err(model(x, dataset_index=idx), hf(x, dataset_index=idx).heatmaps) < 1e-5


def test_hf_config_is_honoured(tmp_path):
    """HF's default layer_norm_eps (1e-12) and an out_indices that stops before the last layer."""
    hf = tiny_hf_model(tmp_path, simple=False, out_layer=2, eps=1e-12)
    model, report = import_hf(str(tmp_path))
    assert model.config.backbone.ln_eps == 1e-12 and model.config.backbone.depth == 2
    assert any("layers 2..2 dropped" in n for n in report.notes)
    assert all(k.startswith("backbone.encoder.layer.2.") for k in report.unused) and report.unused
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        assert rel_err(model(x), hf(x).heatmaps) < 1e-5
