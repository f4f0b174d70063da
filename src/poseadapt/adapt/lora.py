"""LoRA adapters on the ViT blocks' linears via `peft`, and merging them back for export.

peft's `inject_adapter_in_model` wraps plain `nn.Linear`s of any `nn.Module` in place, so PoseModel needs no peft
model class: each targeted linear becomes a peft `Linear` holding the frozen `base_layer` and the trainable
`lora_A` / `lora_B` (B starts at zero, so the wrapped model computes exactly what the plain one did).
Targets are resolved here to full module names inside `backbone.blocks` (peft would also wrap the patch embedding's
conv for a bare `proj`). `merge_for_export` folds `scale * B @ A` into each base weight and puts the plain linear
back, so the exported state dict has the keys of an ordinary PoseModel (our checkpoint loader and ONNX export
need nothing LoRA-specific). peft is imported only when a LoRA strategy is used: it pulls in transformers.

Only peft's public API is used: `peft.functional.inject_adapter_in_model` (the module peft names as its public
API for integrations without a PeftModel), adapters recognised as `peft.tuners.lora.LoraLayer` (exported in that
package's `__all__`), and merged with that layer's `merge` / `get_base_layer`. The tested range is pinned in
pyproject.toml and constraints.txt; tests/test_adapt_lora.py checks the installed peft is inside it.
"""

from __future__ import annotations

import copy
import sys
import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from poseadapt.errors import PoseAdaptError

ADAPTER = "default"


def lora_target_names(model: nn.Module, targets: list[str]) -> list[str]:
    """Full names of the `nn.Linear`s inside `backbone.blocks` whose name ends with one of `targets`."""
    names = []
    for name, module in model.named_modules():
        if not name.startswith("backbone.blocks.") or not isinstance(module, nn.Linear):
            continue
        if any(name == t or name.endswith("." + t) for t in targets):
            names.append(name)
    if not names:
        raise PoseAdaptError(f"lora.targets {targets} match no linear layer in the ViT blocks")
    return names


def has_lora(model: nn.Module) -> bool:
    return any(_is_lora_layer(m) for m in model.modules())


def _is_lora_layer(module: nn.Module) -> bool:
    """A peft LoRA layer. Without peft imported there can be none, so a plain model never imports it."""
    if "peft" not in sys.modules:
        return False
    from peft.tuners.lora import LoraLayer

    return isinstance(module, LoraLayer)


def inject_lora(model: nn.Module, settings: Any) -> nn.Module:
    """Wrap the targeted linears of `model` with LoRA adapters, in place (a no-op if it already has them)."""
    if has_lora(model):
        return model
    from peft import LoraConfig
    from peft.functional import inject_adapter_in_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=lora_target_names(model, settings.targets),
        bias="none",
    )
    model = inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    if hasattr(model, "peft_config"):  # peft records its config on the model; ours lives in the recipe
        del model.peft_config
    for module in model.modules():
        if _is_lora_layer(module) and hasattr(module.get_base_layer(), "forward_gelu"):
            # the ViT MLP calls fc1.forward_gelu (a fused GEMM + GELU on CPU); the wrapper must offer it too
            module.forward_gelu = types.MethodType(_lora_forward_gelu, module)
    return model


def _lora_forward_gelu(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return F.gelu(self(x))


def merge_for_export(model: nn.Module) -> nn.Module:
    """A copy of `model` with every LoRA adapter merged into its base weight and the plain layers restored.

    All parameters of the copy are trainable again (as a freshly loaded model's are); `model` is untouched, so
    training can go on after an intermediate export.
    """
    plain = copy.deepcopy(model)
    for name, module in list(plain.named_modules()):
        if not _is_lora_layer(module):
            continue
        module.merge(safe_merge=True, adapter_names=[ADAPTER])
        base = module.get_base_layer()
        parent_name, _, child = name.rpartition(".")
        setattr(plain.get_submodule(parent_name) if parent_name else plain, child, base)
    for param in plain.parameters():
        param.requires_grad_(True)
    leftover = [n for n, m in plain.named_modules() if type(m).__module__.split(".")[0] == "peft"]
    if leftover:
        raise PoseAdaptError(f"LoRA merge left peft modules behind: {leftover[:3]}")
    return plain
