"""What a new user's own data produces (issue 14): an ONNX file with named dimensions and its metadata, overlays
with a score flag, side colours, boxes and ground truth, recipe-relative paths, one size convention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from poseadapt.cli.main import main as cli_main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli_main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.mark.parametrize("head", ["simple", "simcc"])
def test_onnx_export_names_dimensions_and_carries_metadata(tmp_path: Path, head: str) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from poseadapt.interop.onnx_export import export_onnx
    from poseadapt.models import create_model

    model = create_model("vit_tiny", "coco17", head, img_size=(64, 48)).eval()
    result = export_onnx(model, tmp_path / "m.onnx")
    assert result["max_rel_error"] < 1e-4
    proto = onnx.load(str(tmp_path / "m.onnx"))
    x = torch.randn(3, 3, 64, 48)
    with torch.no_grad():
        ref = model(x)
    refs = ref if isinstance(ref, tuple) else (ref,)
    for value, r in zip(proto.graph.output, refs, strict=True):
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims == ["batch", *r.shape[1:]], (value.name, dims)  # only the batch is called batch
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["keypoint_names"]) == list(model.schema.keypoints)
    assert ["left_eye", "right_eye"] in json.loads(meta["flip_pairs"])
    assert meta["input_size"] == "48x64" and meta["input_width"] == "48" and meta["input_height"] == "64"
    assert json.loads(meta["mean"]) == pytest.approx(list(model.config.mean))
    assert json.loads(meta["std"]) == pytest.approx(list(model.config.std))
    assert json.loads(meta["codec"])["type"] == model.config.codec["type"]
    assert meta["output_kind"] == ("simcc" if head == "simcc" else "heatmaps")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixels": x.numpy()})  # another batch size runs, shapes as declared
    for g, r in zip(got, refs, strict=True):
        assert g.shape == tuple(r.shape)
        assert np.abs(g - r.numpy()).max() <= 1e-4 * np.abs(r.numpy()).max()
