"""`lora`: low-rank adapters on the ViT blocks' linears (peft); merged back into plain layers for export.

`head` says which head parameters train beside the adapters: `final` (the per-keypoint output layer, the part
head surgery re-initialises), `all`, or `none`. `final` keeps ViT-B under 2% trainable parameters; the classic
head's deconvolutions alone are 4.7% of ViT-B.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field
from torch import nn

from poseadapt.adapt.lora import has_lora, inject_lora, merge_for_export
from poseadapt.adapt.method import AdaptContext, Method, MethodOptions
from poseadapt.adapt.params import HEAD_PREFIX, in_backbone, is_lora_param, require_vit


class LoraOptions(MethodOptions):
    r: int = Field(8, ge=1, description="adapter rank")
    alpha: float = Field(16.0, gt=0.0, description="scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    targets: list[str] = Field(
        default_factory=lambda: ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"],
        min_length=1,
        description="module-name suffixes inside each block",
    )
    head: Literal["final", "all", "none"] = Field("final", description="head parameters that train too")


class Lora(Method):
    name = "lora"
    kinds: ClassVar[tuple[str, ...]] = ("parameters",)
    summary = "low-rank adapters on the ViT linears (peft), merged for export; backbone frozen"
    Options = LoraOptions
    chooses_parameters = True
    options: Any

    def prepare(self, model: nn.Module, ctx: AdaptContext) -> nn.Module:
        require_vit(model, self.name)
        return inject_lora(model, self.options)

    def trainable(self, name: str, epoch: int, depth: int) -> bool:
        if is_lora_param(name):
            return True
        if in_backbone(name):
            return False
        if name.startswith(HEAD_PREFIX):
            head = self.options.head
            return head == "all" or (head == "final" and ".final_layer." in name)
        return True

    def export(self, model: nn.Module) -> nn.Module:
        return merge_for_export(model) if has_lora(model) else model
