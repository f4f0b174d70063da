"""`head_only`: the backbone stays as pre-trained; only the heads learn (linear probing, for pose)."""

from __future__ import annotations

from typing import ClassVar

from poseadapt.adapt.method import Method
from poseadapt.adapt.params import in_backbone


class HeadOnly(Method):
    name = "head_only"
    kinds: ClassVar[tuple[str, ...]] = ("parameters",)
    summary = "freeze the backbone, train the heads"
    chooses_parameters = True

    def trainable(self, name: str, epoch: int, depth: int) -> bool:
        return not in_backbone(name)
