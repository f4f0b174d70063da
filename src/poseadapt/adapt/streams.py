"""Extra training streams a method adds beside the recipe's own data: labelled or not, tagged with a domain.

`DomainData` is the recipe block (a COCO file or a synthetic population, its augmentation, its share of each
epoch); `DomainTagged` carries its labels to the target head's schema by name and, when unlabelled, zeroes the
target weights so only the method's own losses see the sample (the adversarial classifier, a distillation
teacher).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from poseadapt.adapt.method import MethodOptions
from poseadapt.adapt.replay import MappedDataset, SourceAsTarget


class DomainData(MethodOptions):
    """One domain's images: a COCO keypoint file (+ images) or a synthetic population spec."""

    ann: Path | None = None
    images: Path | None = None
    synth: dict[str, Any] | str | None = Field(None, description="a data.train synth spec, or a population name")
    schema_name: str | None = Field(None, alias="schema", description="schema of the labels (default: the head's)")
    augment: list[dict[str, Any]] | None = Field(None, description="as data.train's; default: the ViTPose recipe")
    ratio: float = Field(0.25, gt=0.0, lt=1.0, description="fraction of each epoch drawn from this set")
    labelled: bool | None = Field(None, description="whether its labels train the pose head (default per role)")

    @model_validator(mode="after")
    def _one_source(self) -> DomainData:
        if (self.ann is None) == (self.synth is None):
            raise ValueError("give exactly one of 'ann' (a COCO keypoint file) or 'synth'")
        return self


class DomainTagged(MappedDataset):
    """A top-down dataset in the head's schema, each item tagged with its domain (and unlabelled if asked).

    The wrapped dataset's labels are carried to `schema` by name (as rehearsal does); `labelled=False` zeroes the
    target weights, so the sample trains the domain classifier (and, through the reversal, the backbone) only.
    """

    def __init__(self, dataset: Any, schema: Any, codec: Any, domain: int, labelled: bool) -> None:
        self.dataset = SourceAsTarget(dataset, schema, codec, fill_unlabelled=False)
        self.schema = self.dataset.schema
        self.domain = int(domain)
        self.labelled = bool(labelled)

    def transform(self, item: dict[str, Any]) -> dict[str, Any]:
        k = len(item["target_weight"])
        extra = dict(item.get("extra", {}))
        extra["domain"] = np.full(k, float(self.domain), np.float32)
        if not self.labelled:
            item["target_weight"] = np.zeros(k, np.float32)
            extra["pseudo_mask"] = np.zeros(k, np.float32)  # nothing here for a teacher either
        item["extra"] = extra
        return item
