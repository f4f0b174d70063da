"""`memory_replay`: keep the keypoints the source model knows and the target data lacks (DeepLabCut 3's memory
replay, for humans and any pair of schemas).

Before training the head becomes a union head: the target schema's keypoints first (their weights carried over
by name, as head surgery does), then the source-only keypoints, initialised from the source model's own head. On
every training sample the frozen source model (the teacher) runs on the same crop; where it is confident, its
decoded peak becomes the target of each source-only keypoint, weighted by its confidence w (the loss is
`mean(w * (p - g)^2)`, so a half-sure teacher counts half, not a quarter). Labels the data does carry always win.
Export keeps the union head (`export: union`, default) or cuts it back to the target schema (`export: target`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from poseadapt.adapt.method import AdaptContext, Method, MethodOptions
from poseadapt.adapt.methods._teacher import check_teacher_file, load_teacher
from poseadapt.adapt.replay import RehearsalTargets, teacher_fingerprint
from poseadapt.errors import PoseAdaptError


class MemoryReplayOptions(MethodOptions):
    teacher: Path | None = Field(None, description="the source model; default: model.checkpoint as loaded")
    score_threshold: float = Field(0.3, ge=0.0, le=1.0, description="teacher confidence below which nothing is taught")
    weight: float = Field(1.0, ge=0.0, description="scale of the pseudo-label weights (0: union head, no replay)")
    export: Literal["union", "target"] = Field("union", description="which head the exported checkpoint keeps")


def union_schema(target: Any, source: Any) -> tuple[Any, list[str]]:
    """Target keypoints, then the source keypoints no target keypoint matches by name or alias."""
    from poseadapt.schemas import KeypointSchema
    from poseadapt.schemas.mapping import SchemaMap

    matched = {s for s, _ in SchemaMap(source, target).matched}
    extra = [i for i in range(len(source.keypoints)) if i not in matched]
    names = [source.keypoints[i] for i in extra]
    clash = sorted(set(names) & set(target.keypoints))
    if clash:
        raise PoseAdaptError(f"memory replay: keypoint names {clash} exist in both schemas but do not match")
    keep = set(target.keypoints) | set(names)
    pairs = list(target.flip_pairs) + [p for p in source.flip_pairs if p[0] in names and p[1] in names]
    skeleton = list(target.skeleton) + [
        e for e in source.skeleton if e[0] in keep and e[1] in keep and set(e) & set(names)
    ]
    schema = KeypointSchema(
        name=f"{target.name}+{source.name}",
        keypoints=(*target.keypoints, *names),
        sigmas=(*target.sigmas, *(source.sigmas[i] for i in extra)),
        flip_pairs=tuple(pairs),
        skeleton=tuple(skeleton),
    )
    return schema, names


class MemoryReplay(Method):
    name = "memory_replay"
    kinds: ClassVar[tuple[str, ...]] = ("losses", "modules")
    summary = "union head; the frozen source model's confident predictions keep source-only keypoints alive"
    Options = MemoryReplayOptions
    options: Any

    def __init__(self, options: MemoryReplayOptions) -> None:
        super().__init__(options)
        self.labeller: RehearsalTargets | None = None
        self.fingerprint: str | None = None
        self.target_schema: Any = None
        self.head_name = ""
        self.replayed: list[str] = []
        self.stats: dict[str, float] = {}

    def check(self, ctx: AdaptContext) -> None:
        check_teacher_file(self.options.teacher, ctx.key)

    def prepare(self, model: nn.Module, ctx: AdaptContext) -> nn.Module:
        from poseadapt.models.surgery import swap_head

        teacher = load_teacher(self.options.teacher, ctx.source_model, model, ctx.key)
        head = ctx.heads[0] if ctx.heads else 0
        self.head_name = model.head_names[head]
        self.target_schema = model.schemas[head]
        schema, self.replayed = union_schema(self.target_schema, teacher.schemas[0])
        if not self.replayed:
            raise PoseAdaptError(
                f"recipe key '{ctx.key}': the teacher's schema '{teacher.schemas[0].name}' has no keypoint the target "
                f"schema '{self.target_schema.name}' lacks: nothing to replay"
            )
        model, _ = swap_head(model, schema, source_head=self.head_name, name=self.head_name, seed=ctx.seed)
        _copy_teacher_channels(model, self.head_name, teacher, self.replayed)
        self.labeller = RehearsalTargets(teacher, schema, model.codec, score_threshold=self.options.score_threshold)
        self.fingerprint = teacher_fingerprint(self.labeller.teacher)
        model.provenance = {**getattr(model, "provenance", {}), "memory_replay": {"replayed": self.replayed}}
        return model.train()

    def before_step(self, batch: dict[str, Any], model: nn.Module) -> None:
        assert self.labeller is not None
        k_target, k_union = len(self.target_schema), len(self.labeller.schema)
        target, weight = batch["target"], batch["target_weight"]
        if target.shape[1] < k_union:  # target-schema samples: grow to the union head, unlabelled
            pad = k_union - target.shape[1]
            batch["target"] = torch.cat([target, target.new_zeros(target.shape[0], pad, *target.shape[2:])], 1)
            batch["target_weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], pad)], 1)
        mask = torch.zeros_like(batch["target_weight"])
        mask[:, k_target:] = (batch["target_weight"][:, k_target:] <= 0).float()
        self.stats = self.labeller(batch, mask) if self.options.weight > 0 else {}
        if self.options.weight != 1.0:
            batch["target_weight"][:, k_target:] *= self.options.weight

    def logs(self) -> dict[str, float]:
        return dict(self.stats)

    def export(self, model: nn.Module) -> nn.Module:
        if self.options.export == "union":
            return model
        from poseadapt.models.surgery import swap_head

        plain, _ = swap_head(model, self.target_schema, source_head=self.head_name, name=self.head_name, seed=0)
        return plain

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": self.fingerprint}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("teacher") != self.fingerprint:
            raise PoseAdaptError("cannot resume: the memory-replay teacher differs from the saved run's")


@torch.no_grad()
def _copy_teacher_channels(model: nn.Module, head: str, teacher: Any, names: list[str]) -> None:
    """Start each replayed keypoint's output channel from the teacher's own (same head layout), not at random."""
    student_final = getattr(model.heads[head], "final_layer", None)
    teacher_final = getattr(teacher.heads[teacher.head_names[0]], "final_layer", None)
    if student_final is None or teacher_final is None:
        return
    if student_final.weight.shape[1:] != teacher_final.weight.shape[1:]:
        return
    schema = model.schemas[model.head_index(head)]
    for name in names:
        s, t = schema.keypoints.index(name), teacher.schemas[0].keypoints.index(name)
        student_final.weight[s] = teacher_final.weight[t]
        if student_final.bias is not None and teacher_final.bias is not None:
            student_final.bias[s] = teacher_final.bias[t]
