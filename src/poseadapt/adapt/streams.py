"""Extra training streams a method adds beside the recipe's own data: labelled or not, tagged with a domain.

`DomainData` is the recipe block (a COCO file or a synthetic population, its augmentation, its share of each
epoch); `DomainTagged` carries its labels to the target head's schema by name and, when unlabelled, zeroes the
target weights so only the method's own losses see the sample (the adversarial classifier, a distillation
teacher).

Domain tags travel as the per-keypoint extra `domain`, holding 1 + the domain index, so that the zeros the
collate fills in for samples without one read as "untagged": the recipe's own sets, whose domain the consuming
method decides (`tag_domain`, `untagged_domains`).
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


DOMAIN_KEY = "domain"
TARGET_DOMAIN = 0  # the index every method gives target-domain images (unlabelled ones included)


def tag_domain(extra: dict[str, Any], num_keypoints: int, domain: int) -> dict[str, Any]:
    """`extra` with the sample's domain tag set (stored as 1 + `domain`; 0 is reserved for untagged)."""
    extra[DOMAIN_KEY] = np.full(num_keypoints, float(domain) + 1.0, np.float32)
    return extra


def untagged_domains(tags: Any, untagged: int) -> Any:
    """Domain indices from a batch's stored tags ((B,) floats, 1 + domain): `untagged` where no stream tagged."""
    stored = tags.round().long()
    return (stored - 1).where(stored > 0, stored.new_full((), int(untagged)))


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
        extra = tag_domain(dict(item.get("extra", {})), k, self.domain)
        if not self.labelled:
            item["target_weight"] = np.zeros(k, np.float32)
            extra["pseudo_mask"] = np.zeros(k, np.float32)  # nothing here for a teacher either
        item["extra"] = extra
        return item
