"""`new_dataset`: fine-tune a multi-dataset (ViTPose++) model on a new dataset without touching the others.

The recipe lists the checkpoint's schemas and then the new one (`model.schema: [coco17, aic14, mpii16, infant21]`);
the model builder adds a head and, for a ViTPose++ backbone, an FFN expert for each new dataset, both copied from
the existing dataset that shares the most keypoints by name (`poseadapt.models.surgery.add_dataset`). This method
then trains only what belongs to the new datasets: their heads and their experts. Every shared weight, every other
expert and head stays as loaded, so the other datasets' outputs are bit-identical after training.
With `shared: true` the shared backbone trains too (the new dataset learns more, the others drift).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from torch import nn

from poseadapt.adapt.method import AdaptContext, Method, MethodOptions
from poseadapt.errors import PoseAdaptError


class NewDatasetOptions(MethodOptions):
    heads: list[str] | None = Field(
        None, description="heads of the new datasets; default: the heads model.checkpoint does not have"
    )
    shared: bool = Field(False, description="also train the shared backbone (the other datasets' outputs change)")


class NewDataset(Method):
    name = "new_dataset"
    kinds: ClassVar[tuple[str, ...]] = ("parameters",)
    summary = "train only the new datasets' heads and ViTPose++ experts; the other datasets stay unchanged"
    Options = NewDatasetOptions
    chooses_parameters = True
    options: Any

    def __init__(self, options: NewDatasetOptions) -> None:
        super().__init__(options)
        self.prefixes: tuple[str, ...] = ()
        self.expert_markers: tuple[str, ...] = ()

    def prepare(self, model: nn.Module, ctx: AdaptContext) -> nn.Module:
        names = self.options.heads
        if names is None:
            old = set(ctx.source_model.head_names) if ctx.source_model is not None else set()
            names = [n for n in model.head_names if n not in old]
        if not names:
            raise PoseAdaptError(
                f"recipe key '{ctx.key}': no new dataset: list the checkpoint's schemas then the new one in "
                "model.schema, or name the heads to train with 'heads'"
            )
        for n in names:
            if n not in model.head_names:
                raise PoseAdaptError(f"recipe key '{ctx.key}.heads': no head '{n}' (heads: {model.head_names})")
        self.prefixes = tuple(f"heads.{n}." for n in names)
        if model.config.backbone.num_experts:
            self.expert_markers = tuple(f".mlp.experts.{model.head_index(n)}." for n in names)
        return model

    def trainable(self, name: str, epoch: int, depth: int) -> bool:
        if self.options.shared and not name.startswith("heads."):
            return True
        return name.startswith(self.prefixes) or (
            name.startswith("backbone.") and any(m in name for m in self.expert_markers)
        )
