"""`head_then_full`: train the heads alone for the first epochs, then everything (LP-FT, Kumar et al. 2022).

A new head trained on a frozen backbone first does not send its random gradients into pre-trained features.
The stage is a function of the epoch, so a resumed run re-applies it exactly; the engine re-wraps DDP at the
switch (the unfrozen backbone's gradients must be all-reduced from then on).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from torch import nn

from poseadapt.adapt.method import AdaptContext, Method, MethodOptions
from poseadapt.adapt.params import in_backbone, require_vit


class HeadThenFullOptions(MethodOptions):
    head_epochs: int = Field(1, ge=1, description="epochs of stage 1 (heads only)")


class HeadThenFull(Method):
    name = "head_then_full"
    kinds: ClassVar[tuple[str, ...]] = ("parameters",)
    summary = "heads only for head_epochs epochs, then every parameter"
    Options = HeadThenFullOptions
    chooses_parameters = True
    options: Any

    def prepare(self, model: nn.Module, ctx: AdaptContext) -> nn.Module:
        require_vit(model, self.name)
        return model

    def trainable(self, name: str, epoch: int, depth: int) -> bool:
        return epoch >= self.options.head_epochs or not in_backbone(name)

    def ever_trains(self, name: str, depth: int) -> bool:
        return True

    def on_epoch_start(self, model: nn.Module, epoch: int) -> dict[str, float]:
        return {"stage_switch": float(epoch)} if epoch == self.options.head_epochs else {}
