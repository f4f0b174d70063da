"""`freeze_blocks`: freeze the embeddings and the first N transformer blocks (ViTPose's `frozen_stages`)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from torch import nn

from poseadapt.adapt.method import AdaptContext, Method, MethodOptions
from poseadapt.adapt.params import backbone_layer, in_backbone, require_vit
from poseadapt.errors import PoseAdaptError


class FreezeBlocksOptions(MethodOptions):
    blocks: int = Field(..., ge=1, description="embeddings + this many first blocks stay frozen")


class FreezeBlocks(Method):
    name = "freeze_blocks"
    kinds: ClassVar[tuple[str, ...]] = ("parameters",)
    summary = "freeze the patch/position embeddings and the first N blocks; train the rest"
    Options = FreezeBlocksOptions
    chooses_parameters = True
    options: Any

    def prepare(self, model: nn.Module, ctx: AdaptContext) -> nn.Module:
        depth = require_vit(model, self.name)
        if self.options.blocks > depth:
            raise PoseAdaptError(
                f"recipe key '{ctx.key}.blocks': {self.options.blocks} but the model has {depth} blocks"
            )
        return model

    def trainable(self, name: str, epoch: int, depth: int) -> bool:
        return not in_backbone(name) or backbone_layer(name, depth) > self.options.blocks
