"""Forward FLOPs of a pose model on one crop, counted by `torch.utils.flop_counter.FlopCounterMode`.

The counter records the matrix multiplies and convolutions (attention included) of an actual forward pass, so
conv stems, heads and attention at the model's own input size are all counted; element-wise work (norms,
activations) is not, as in the FLOPs that papers report. One multiply-add counts as 2 FLOPs (PyTorch's
convention; many pose papers quote GMACs = GFLOPs / 2, e.g. ViTPose-B 17.1 GFLOPs in MACs at 256x192).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def count_flops(model: nn.Module, input_size: tuple[int, int] | None = None, batch: int = 1) -> int:
    """FLOPs of one forward pass of `model` on `batch` crops of `input_size` (w, h; default the model's own)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    w, h = input_size if input_size is not None else model.input_size  # type: ignore[union-attr]
    param = next(model.parameters())
    x = torch.zeros(batch, 3, int(h), int(w), device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        # grad mode on: under no_grad the CPU ViT takes a fused oneDNN linear the counter does not see; the math
        # attention kernel: the counter has no formula for CPU flash attention and would skip attention entirely
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            if len(getattr(model, "heads", ())) > 1:  # a multi-head model: the cost of one dataset's head
                model(x, 0)
            else:
                model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def flops_summary(models: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{name: {"gflops", "params_m"}} for named models or checkpoint paths (a table for reports)."""
    from poseadapt.interop.checkpoint import load_checkpoint

    out = {}
    for name, model in models.items():
        m = load_checkpoint(model) if not isinstance(model, nn.Module) else model
        out[name] = {
            "gflops": count_flops(m) / 1e9,
            "params_m": sum(p.numel() for p in m.parameters()) / 1e6,
        }
    return out
