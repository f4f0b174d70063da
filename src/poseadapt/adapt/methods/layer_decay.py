"""`layer_decay`: every parameter trains, early blocks at smaller learning rates (BEiT / ViTPose fine-tuning).

A backbone parameter of layer id i (0 embeddings, b + 1 block b, depth + 1 final norm) gets
`lr * rate ** (depth + 1 - i)`; heads train at the full rate.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from torch import nn

from poseadapt.adapt.method import AdaptContext, Method, MethodOptions
from poseadapt.adapt.params import backbone_layer, require_vit
from poseadapt.errors import PoseAdaptError


class LayerDecayOptions(MethodOptions):
    rate: float = Field(0.75, gt=0.0, lt=1.0, description="lr factor per block, from the top down")


class LayerDecay(Method):
    name = "layer_decay"
    kinds: ClassVar[tuple[str, ...]] = ("parameters",)
    summary = "train everything; block b's lr is scaled by rate ** (depth - b)"
    Options = LayerDecayOptions
    chooses_parameters = True
    options: Any

    def prepare(self, model: nn.Module, ctx: AdaptContext) -> nn.Module:
        require_vit(model, self.name)
        if ctx.recipe.optim.layer_decay != 1.0:
            raise PoseAdaptError(
                f"layer decay is set twice: {ctx.key}.rate {self.options.rate} and optim.layer_decay "
                f"{ctx.recipe.optim.layer_decay} (keep one)"
            )
        return model

    def lr_scale(self, name: str, depth: int) -> float:
        return float(self.options.rate ** (depth + 1 - backbone_layer(name, depth)))
