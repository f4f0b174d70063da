"""Export a PoseModel to ONNX and check the exported graph against PyTorch with onnxruntime.

The graph takes normalised pixels (B, 3, H, W) with a dynamic batch and returns the selected head's output
(heatmaps, or SimCC x / y logits). Expert routing is a gather + batched matmul, so a ViTPose++ model exports with
its dataset index fixed at export time (one ONNX file per dataset).

Output shapes are written from the traced output: dimension 0 is `batch`, every other dimension is its fixed size
(heatmaps (batch, K, H/4, W/4), SimCC (batch, K, bins)). The file's `metadata_props` say what a runtime needs to use
it without poseadapt (all values are strings, lists and dicts as JSON):

- `keypoint_names`, `flip_pairs`, `skeleton`, `schema`, `head`: the output's keypoints, in channel order
- `input_size` (`"WxH"`, width first like recipes' `[w, h]`), `input_width`, `input_height`
- `input_format`: how pixels become the `pixels` input, with `mean` and `std` (RGB, 0-255 scale)
- `output_kind` (`heatmaps` or `simcc`), `codec` (the codec config: type, input/heatmap sizes, sigma, ...)
"""

from __future__ import annotations

import json
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
            _ignore_legacy_exporter_warnings()
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
        _finish(tmp, model, index, outputs, reference)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    result: dict[str, Any] = {"path": str(out), "outputs": outputs, "head": model.head_names[index or 0]}
    if check:
        result["max_rel_error"] = check_onnx(out, example, reference)
    return result


def _ignore_legacy_exporter_warnings() -> None:
    """Silence only what the TorchScript exporter (`dynamo=False`) always says; every other warning still shows.

    The torch.export-based exporter needs onnxscript, which poseadapt does not depend on, so the legacy one is used
    on purpose: its deprecation notice, the deprecated helper it calls itself, and the tracer's note that the
    position-embedding resize check is traced as a constant (it is: an export fixes the input size, only the batch
    axis is dynamic). Anything else, from torch or from the model, reaches the user.
    """
    warnings.filterwarnings(
        "ignore", message=r"You are using the legacy TorchScript-based ONNX export", category=DeprecationWarning
    )
    warnings.filterwarnings(
        "ignore",
        message=r"The feature will be removed",
        category=DeprecationWarning,
        module=r"torch\.onnx\._internal\.torchscript_exporter",
    )
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"poseadapt\.models\.vit$")


def onnx_metadata(model: PoseModel, index: int | None, outputs: list[str]) -> dict[str, str]:
    """The `metadata_props` written into an exported file (see the module docstring)."""
    i = index or 0
    schema = model.schemas[i]
    w, h = model.input_size
    return {
        "producer": "poseadapt",
        "head": model.head_names[i],
        "schema": schema.name,
        "keypoint_names": json.dumps(list(schema.keypoints)),
        "flip_pairs": json.dumps([list(p) for p in schema.flip_pairs]),
        "skeleton": json.dumps([list(p) for p in schema.skeleton]),
        "input_size": f"{w}x{h}",
        "input_width": str(w),
        "input_height": str(h),
        "input_format": "pixels = (RGB image resized to input_size, 0-255 float - mean) / std, NCHW",
        "mean": json.dumps([float(v) for v in model.config.mean]),
        "std": json.dumps([float(v) for v in model.config.std]),
        "output_kind": "simcc" if outputs == ["x_logits", "y_logits"] else "heatmaps",
        "outputs": json.dumps(outputs),
        "codec": json.dumps(model.config.codec, default=list),
        "arch": model.config.arch,
    }


def _finish(path: str, model: PoseModel, index: int | None, outputs: list[str], reference: Any) -> None:
    """Name output dimensions from the traced output (batch first, the rest fixed) and write the metadata."""
    import onnx

    proto = onnx.load(path)
    refs = reference if isinstance(reference, tuple) else (reference,)
    for value, ref in zip(proto.graph.output, refs, strict=True):
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for axis, size in enumerate(ref.shape):
            dim = dims.add()
            if axis == 0:
                dim.dim_param = "batch"
            else:
                dim.dim_value = int(size)
    # intermediate shapes the tracer guessed (it can give a spatial axis the batch's name) are dropped
    del proto.graph.value_info[:]
    del proto.metadata_props[:]
    for key, val in onnx_metadata(model, index, outputs).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, val
    onnx.save(proto, path)


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
