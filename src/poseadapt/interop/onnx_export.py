"""Export a PoseModel to ONNX and check the exported graph against PyTorch with onnxruntime.

The graph takes normalised pixels (B, 3, H, W) with a dynamic batch and returns the selected head's output
(heatmaps, or SimCC x / y logits). Expert routing is a gather + batched matmul, so a ViTPose++ model exports with
its dataset index fixed at export time (one ONNX file per dataset).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from poseadapt.errors import PoseAdaptError
from poseadapt.models.pose_model import PoseModel


class _FixedDataset(nn.Module):
    def __init__(self, model: PoseModel, index: int | None) -> None:
        super().__init__()
        self.model = model
        self.index = index

    def forward(self, pixels: torch.Tensor) -> Any:
        return self.model(pixels, self.index)


def export_onnx(
    model: PoseModel,
    out: str | Path,
    *,
    head: str | None = None,
    batch: int = 2,
    opset: int = 18,
    check: bool = True,
) -> dict[str, Any]:
    """Write `out` atomically; with `check`, run onnxruntime on random input and return the max relative error."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    index = (
        model.head_index(head) if head else (0 if len(model.heads) > 1 or model.config.backbone.num_experts else None)
    )
    wrapper = _FixedDataset(model, index).eval()
    h, w = model.config.backbone.img_size
    example = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = wrapper(example)
    outputs = ["x_logits", "y_logits"] if isinstance(reference, tuple) else ["heatmaps"]
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=out.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (example,),
                tmp,
                input_names=["pixels"],
                output_names=outputs,
                dynamic_axes={"pixels": {0: "batch"}, **{name: {0: "batch"} for name in outputs}},
                opset_version=opset,
                dynamo=False,
            )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    result: dict[str, Any] = {"path": str(out), "outputs": outputs, "head": model.head_names[index or 0]}
    if check:
        result["max_rel_error"] = check_onnx(out, example, reference)
    return result


def check_onnx(path: str | Path, pixels: torch.Tensor, reference: Any) -> float:
    """Max |onnx - torch| / max |torch| over all outputs."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise PoseAdaptError(
            "onnxruntime is not installed: pip install 'poseadapt[onnx]' (or skip the check)"
        ) from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixels": pixels.numpy()})
    refs = reference if isinstance(reference, tuple) else (reference,)
    return max(
        float((torch.from_numpy(g) - r).abs().max() / r.abs().max().clamp_min(1e-12))
        for g, r in zip(got, refs, strict=True)
    )
