"""`rehearsal`: replay labelled source-domain samples (e.g. adults) through the target head against forgetting.

The source set joins the mix at `ratio` of each epoch (the epoch grows so every target sample is still seen once).
Its labels are carried to the target schema by name (`SourceAsTarget`); target keypoints the source schema lacks
are pseudo-labelled by the frozen source model (the teacher) where it predicts them, weighted by its confidence.
A teacher that predicts none of those is not run (it would cost a forward per step and add nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator
from torch import nn

from poseadapt.adapt.method import AdaptContext, DataStream, Method, MethodOptions
from poseadapt.adapt.methods._teacher import check_teacher_file, load_teacher
from poseadapt.adapt.replay import RehearsalTargets, SourceAsTarget, teacher_fingerprint
from poseadapt.errors import DataError, PoseAdaptError, SchemaError


class RehearsalSource(MethodOptions):
    """The source-domain data: a COCO keypoint file (+ images) or a synthetic population spec."""

    ann: Path | None = None
    images: Path | None = None
    synth: dict[str, Any] | str | None = Field(None, description="a data.train synth spec, or a population name")
    schema_name: str | None = Field(None, alias="schema", description="schema of the source labels")
    augment: list[dict[str, Any]] | None = Field(None, description="as data.train's; default: the ViTPose recipe")

    @model_validator(mode="after")
    def _one_source(self) -> RehearsalSource:
        if (self.ann is None) == (self.synth is None):
            raise ValueError("give exactly one of 'ann' (a COCO keypoint file) or 'synth'")
        return self


class RehearsalOptions(MethodOptions):
    source: RehearsalSource
    ratio: float = Field(0.25, gt=0.0, lt=1.0, description="fraction of each epoch drawn from the source set")
    pseudo_label: bool = Field(True, description="fill target keypoints the source schema lacks from the teacher")
    teacher: Path | None = Field(None, description="default: model.checkpoint as loaded, before head surgery")
    score_threshold: float = Field(0.3, ge=0.0, le=1.0)
    weight_by_confidence: bool = True
    fill_unlabelled: bool = Field(
        False,
        description="also pseudo-label points a sample leaves unlabelled (v=0; in COCO mostly out of frame: noise)",
    )


class Rehearsal(Method):
    name = "rehearsal"
    kinds: ClassVar[tuple[str, ...]] = ("data", "losses")
    summary = "replay labelled source data through the target head; the teacher fills keypoints it lacks"
    Options = RehearsalOptions
    options: Any

    def __init__(self, options: RehearsalOptions) -> None:
        super().__init__(options)
        self.labeller: RehearsalTargets | None = None
        self.fingerprint: str | None = None
        self.stats: dict[str, float] = {}

    def check(self, ctx: AdaptContext) -> None:
        src = self.options.source
        if src.ann is not None and not src.ann.is_file():
            raise DataError(f"recipe key '{ctx.key}.source.ann': file not found: {src.ann}")
        if src.images is not None and not src.images.is_dir():
            raise DataError(f"recipe key '{ctx.key}.source.images': folder not found: {src.images}")
        check_teacher_file(self.options.teacher, ctx.key)

    def data(self, model: nn.Module, ctx: AdaptContext) -> list[DataStream]:
        from poseadapt.schemas.mapping import SchemaMap

        o = self.options
        head = ctx.heads[0]  # rehearsal keeps the first (target) dataset's head alive
        head_schema = model.schemas[head]
        teacher = load_teacher(o.teacher, ctx.source_model, model, ctx.key) if o.pseudo_label else None
        schema = o.source.schema_name
        if schema is None and o.source.synth is not None:
            ref = teacher if teacher is not None else ctx.source_model
            schema = ref.schemas[0].name if ref is not None else "coco17"
        if schema is not None:
            _check_shared(schema, head_schema, ctx.key)
        spec = {"ann": o.source.ann, "images": o.source.images, "synth": o.source.synth, "schema": schema,
                "augment": o.source.augment}  # fmt: skip
        source = ctx.build_dataset(spec, f"{ctx.key}.source", model, head, match_head=False)
        _check_shared(source.schema, head_schema, ctx.key)
        wrapped = SourceAsTarget(source, head_schema, model.codec, fill_unlabelled=o.fill_unlabelled)
        if teacher is not None:
            taught = SchemaMap(teacher.schemas[0], head_schema)
            if not taught.matched:
                raise PoseAdaptError(
                    f"recipe key '{ctx.key}': the teacher ({taught.src.name}) predicts no {head_schema.name} keypoint; "
                    f"give another teacher or set pseudo_label: false"
                )
            if any(o.fill_unlabelled or wrapped.schema_gaps[d] for _, d in taught.matched):
                self.labeller = RehearsalTargets(
                    teacher, head_schema, model.codec,
                    score_threshold=o.score_threshold, weight_by_confidence=o.weight_by_confidence,
                )  # fmt: skip
                self.fingerprint = teacher_fingerprint(self.labeller.teacher)
        return [DataStream(wrapped, o.ratio, head, name="rehearsal")]

    def before_step(self, batch: dict[str, Any], model: nn.Module) -> None:
        if self.labeller is not None and "pseudo_mask" in batch:
            self.stats = self.labeller(batch, batch["pseudo_mask"])

    def logs(self) -> dict[str, float]:
        return dict(self.stats)

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": self.fingerprint}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("teacher") != self.fingerprint:
            raise PoseAdaptError(
                "cannot resume: the rehearsal teacher differs from the saved run's (did model.checkpoint or the "
                "teacher change?)"
            )


def _check_shared(source_schema: Any, target_schema: Any, key: str) -> None:
    from poseadapt.schemas.mapping import SchemaMap

    mapping = SchemaMap(source_schema, target_schema)
    if not mapping.matched and not mapping.approximate:
        raise SchemaError(
            f"recipe key '{key}.source.schema': the source schema '{mapping.src.name}' shares no keypoint with the "
            f"target head's schema '{mapping.dst.name}' (see `poseadapt schemas map {mapping.src.name} "
            f"{mapping.dst.name}`)"
        )
