"""`poseadapt import` and `poseadapt export onnx` end to end, and ONNX output against PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from poseadapt.cli.main import main
from poseadapt.interop.checkpoint import load_model, save_checkpoint
from poseadapt.models import create_model

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'poseadapt[onnx]')")


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return int(info.value.code or 0)


def randomize(model: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def onnx_vs_torch(path, model, x, dataset_index=None) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixels": x.numpy()})
    with torch.no_grad():
        ref = model(x, dataset_index)
    refs = ref if isinstance(ref, tuple) else (ref,)
    return max(float(np.abs(g - r.numpy()).max() / np.abs(r.numpy()).max()) for g, r in zip(got, refs, strict=True))


@pytest.mark.parametrize("head", ["classic", "simcc"])
def test_export_onnx_matches_pytorch(tmp_path, capsys, head):
    model = randomize(create_model("vit_tiny", head=head)).eval()
    ckpt = save_checkpoint(model, tmp_path / "m.safetensors")
    assert run_cli(["export", "onnx", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["max_rel_error"] < 1e-4
    x = torch.randn(3, 3, 256, 192)  # another batch size than the export's example: the batch axis is dynamic
    assert onnx_vs_torch(tmp_path / "m.onnx", model, x) < 1e-4


def test_export_onnx_of_expert_model_fixes_the_dataset(tmp_path, capsys):
    model = randomize(create_model("vit_tiny", ["coco17", "mpii16"], head_names=["coco", "mpii"], num_experts=2))
    ckpt = save_checkpoint(model.eval(), tmp_path / "plus.safetensors")
    argv = ["export", "onnx", "--checkpoint", str(ckpt), "--out", str(tmp_path / "mpii.onnx"), "--head", "mpii"]
    assert run_cli(argv) == 0
    assert "head mpii" in capsys.readouterr().out
    x = torch.randn(2, 3, 256, 192)
    assert onnx_vs_torch(tmp_path / "mpii.onnx", model, x, 1) < 1e-4


def test_import_cli_writes_a_loadable_checkpoint(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    backbone = transformers.VitPoseBackboneConfig(
        image_size=[64, 48], hidden_size=32, num_hidden_layers=2, num_attention_heads=2, out_indices=[2]
    )
    hf = transformers.VitPoseForPoseEstimation(
        transformers.VitPoseConfig(backbone_config=backbone, use_simple_decoder=False, num_labels=17)
    ).eval()
    hf.save_pretrained(tmp_path / "hf")
    out = tmp_path / "imported.safetensors"
    assert run_cli(["import", "hf", str(tmp_path / "hf"), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["heads"] == [{"name": "coco17", "schema": "coco17", "keypoints": 17}] and summary["unused"] == []
    model = load_model(out)
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        assert torch.allclose(model(x), hf(x).heatmaps, rtol=1e-4, atol=1e-7)
    assert model.provenance["import_report"]["format"] == "hf"

    # user errors: one line on stderr, exit code 2
    assert run_cli(["import", "hf", str(tmp_path / "hf"), "--out", str(out), "--schema", "mpii16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: schema 'mpii16' has 16 keypoints but the checkpoint's head predicts 17"]
    assert run_cli(["import", "caffe", str(tmp_path / "hf"), "--out", str(out)]) == 2
    assert "unknown import format 'caffe'" in capsys.readouterr().err
