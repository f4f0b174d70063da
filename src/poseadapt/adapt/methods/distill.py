"""`distill`: DWPose's two-stage distillation of a large pose model into a small one, on heatmaps.

**Stage 1** (a student from scratch or from a small checkpoint, `teacher:` the big adapted model): the frozen
teacher runs on every training crop; the student learns from the labels (the usual heatmap loss) plus

- feature distillation: a 1x1 convolution (an auxiliary module, trained with the student, never exported)
  maps the student's last backbone feature map to the teacher's channels; loss `feature_weight * mean((a - t)^2)`
  (DWPose: `7e-5 * sum / N`, which is this mean times C*h*w*7e-5: about 4 for RTMPose-x's 1280x8x6 map);
- logit distillation on heatmaps: `logit_weight * mean((p - t)^2)` over every keypoint the teacher predicts
  (matched by name), labelled or not: the teacher also teaches keypoints the labels lack (occluded, unannotated),
  which is what makes it more than the labels. `logit_loss: kl` uses DWPose's form instead: KL between spatial
  softmaxes of beta x heatmaps, summed over pixels, averaged over keypoints and samples.

`unlabelled:` adds images whose labels are ignored (zero target weights): on them the teacher is the only
supervisor, which is how a big teacher's knowledge reaches a small student beyond the labelled set.

`flip_test: true` makes the teacher's heatmaps its flip-test output: the mean of its heatmaps of the crop and of
the mirrored crop (mapped back, left/right swapped), the same merge `poseadapt eval` scores the teacher with, so
the student learns the teacher at the accuracy its AP was measured at. It doubles the teacher's cost.

Both terms are scaled by `(1 - epoch / epochs)` (`decay: true`): the student leans on the teacher early and on
the labels late.

**Ensemble teachers** (`teacher: [a.safetensors, b.safetensors, ...]`): the teacher is the mean of several
frozen models (heatmaps and features averaged; Hinton et al.'s ensemble distillation), its FLOPs the sum of
theirs. Without a bigger pre-trained model than the student, an ensemble of fine-tuned copies is the stronger
teacher a single machine can make (docs/ADAPTATION_RESULTS.md).

**Stage 2** (head-only self-distillation): the stage-1 student becomes its own teacher; its backbone is frozen,
its head re-initialised (`reset_head: true`) and trained by the teacher's heatmaps alone (`labels: false`,
`feature_weight: 0`, `decay: false`), for about a fifth of the stage-1 epochs. With `head_only` in the same
`adapt:` list and `model.checkpoint` the stage-1 student, `teacher:` may be left out (it defaults to
model.checkpoint as loaded). See recipes `synth-distill` and `synth-distill-stage2`.

The teacher must take the student's crops and produce heatmaps of the student's size (same codec geometry).
`poseadapt.adapt.flops.count_flops` counts both models' FLOPs for a report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from poseadapt.adapt.method import AdaptContext, DataStream, Method, MethodOptions, StepOutputs
from poseadapt.adapt.methods._teacher import check_teacher_file, load_teacher
from poseadapt.adapt.replay import crops_to_pixels, teacher_fingerprint
from poseadapt.adapt.streams import DomainData, DomainTagged
from poseadapt.codecs import flip_heatmaps_back
from poseadapt.errors import PoseAdaptError


class DistillOptions(MethodOptions):
    teacher: Path | list[Path] | None = Field(
        None,
        description="the frozen teacher, or a list of checkpoints whose mean is the teacher (an ensemble); "
        "default: model.checkpoint as loaded",
    )
    feature_weight: float = Field(1.0, ge=0.0, description="feature distillation (1x1 alignment, MSE); 0: off")
    logit_weight: float = Field(1.0, ge=0.0, description="heatmap (logit) distillation on every keypoint; 0: off")
    logit_loss: Literal["mse", "kl"] = Field("mse", description="mse of heatmaps, or KL of spatial softmaxes")
    beta: float = Field(10.0, gt=0.0, description="softmax sharpness for logit_loss: kl (DWPose: 10)")
    decay: bool = Field(True, description="scale both terms by (1 - epoch / epochs) (DWPose stage 1)")
    flip_test: bool = Field(
        False, description="the teacher's heatmaps averaged with those of the mirrored crop (its flip-test output)"
    )
    labels: bool = Field(True, description="false: ignore the labels, only the teacher supervises (stage 2)")
    reset_head: bool = Field(False, description="re-initialise the student's heads first (stage 2)")
    unlabelled: DomainData | None = Field(
        None,
        description="extra images whose labels are ignored: only the teacher supervises them (its `ratio` is their "
        "share of each epoch)",
    )


class Distill(Method):
    name = "distill"
    kinds: ClassVar[tuple[str, ...]] = ("data", "losses", "modules")
    summary = "a frozen teacher supervises the student's features (1x1 aligned) and heatmaps (DWPose)"
    Options = DistillOptions
    options: Any

    def __init__(self, options: DistillOptions) -> None:
        super().__init__(options)
        self.teachers: list[nn.Module] = []
        self.align: nn.Module | None = None
        self.fingerprint: str | None = None
        self.epochs = 1
        self.factor = 1.0
        self.head = 0
        self.student_channels: list[int] = []
        self.teacher_channels: list[int] = []
        self.stats: dict[str, Any] = {}

    def check(self, ctx: AdaptContext) -> None:
        o = self.options
        for path in self.teacher_paths():
            check_teacher_file(path, ctx.key)
        if o.feature_weight == 0 and o.logit_weight == 0:
            raise PoseAdaptError(
                f"recipe key '{ctx.key}': feature_weight and logit_weight are both 0: nothing to distil"
            )
        if not o.labels and o.logit_weight == 0:
            raise PoseAdaptError(
                f"recipe key '{ctx.key}.labels': without labels the heads learn only from logit distillation; "
                "set logit_weight > 0"
            )

    def prepare(self, model: nn.Module, ctx: AdaptContext) -> nn.Module:
        from poseadapt.schemas.mapping import SchemaMap

        o = self.options
        teachers = [load_teacher(path, ctx.source_model, model, ctx.key) for path in self.teacher_paths()]
        teacher = teachers[0]
        for other in teachers[1:]:
            if other.schemas[0].name != teacher.schemas[0].name or _width(other) != _width(teacher):
                raise PoseAdaptError(
                    f"recipe key '{ctx.key}.teacher': an ensemble's members must share the schema and feature width"
                )
        self.head = ctx.heads[0] if ctx.heads else 0
        mapping = SchemaMap(teacher.schemas[0], model.schemas[self.head])
        self.teacher_channels = [s for s, _ in mapping.matched]
        self.student_channels = [d for _, d in mapping.matched]
        if o.logit_weight > 0 and not mapping.matched:
            raise PoseAdaptError(
                f"recipe key '{ctx.key}.teacher': the teacher ({mapping.src.name}) predicts no keypoint of the "
                f"student's schema ({mapping.dst.name}): set logit_weight: 0 or give another teacher"
            )
        if o.feature_weight > 0:
            cs, ct = _channels(model, ctx.key, "student"), _channels(teacher, ctx.key, "teacher")
            self.align = nn.Conv2d(cs, ct, kernel_size=1)
        if o.reset_head:
            for head in model.heads.values():
                if hasattr(head, "reset_parameters"):
                    head.reset_parameters()
        self.teachers = teachers
        self.fingerprint = ",".join(teacher_fingerprint(t) for t in teachers)
        self.epochs = int(ctx.recipe.schedule.epochs)
        return model

    def modules(self) -> nn.Module | None:
        return self.align

    def data(self, model: nn.Module, ctx: AdaptContext) -> list[DataStream]:
        d = self.options.unlabelled
        if d is None:
            return []
        schema = model.schemas[self.head]
        name = d.schema_name or (schema.name if d.synth is not None else None)
        spec = {"ann": d.ann, "images": d.images, "synth": d.synth, "schema": name, "augment": d.augment}
        dataset = ctx.build_dataset(spec, f"{ctx.key}.unlabelled", model, self.head, match_head=False)
        return [DataStream(DomainTagged(dataset, schema, model.codec, 0, False), d.ratio, self.head, name="unlabelled")]

    def on_epoch_start(self, model: nn.Module, epoch: int) -> dict[str, float]:
        self.factor = max(0.0, 1.0 - epoch / self.epochs) if self.options.decay else 1.0
        return {"weight": self.factor}

    def before_step(self, batch: dict[str, Any], model: nn.Module) -> None:
        if not self.options.labels:
            batch["target_weight"] = torch.zeros_like(batch["target_weight"])

    def teacher_paths(self) -> list[Path | None]:
        teacher = self.options.teacher
        if isinstance(teacher, list):
            return list(teacher)
        return [teacher]

    @torch.no_grad()
    def teacher_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, heatmaps of the matched keypoints) of the frozen teacher on the batch's crops; an
        ensemble's are the means over its members (members fine-tuned from one start share a feature space).
        With `flip_test` the heatmaps are the flip-test merge; the features stay the crop's own."""
        assert self.teachers
        feats_sum, heat_sum = None, None
        for teacher in self.teachers:
            if next(teacher.parameters()).device != images.device:
                teacher.to(images.device)
            teacher.eval()
            pixels = crops_to_pixels(images, teacher)
            feats = teacher.forward_features(pixels, 0)
            heatmaps = teacher.head_outputs(feats, 0).float()
            if self.options.flip_test:
                mirrored = teacher.head_outputs(teacher.forward_features(pixels.flip(-1), 0), 0).float()
                shift = not teacher.codec.udp  # MSRA heatmaps mirror one pixel off
                heatmaps = 0.5 * (heatmaps + flip_heatmaps_back(mirrored, teacher.schemas[0].flip_index, shift))
            heatmaps = heatmaps[:, self.teacher_channels]
            feats_sum = feats.float() if feats_sum is None else feats_sum + feats.float()
            heat_sum = heatmaps if heat_sum is None else heat_sum + heatmaps
        assert feats_sum is not None and heat_sum is not None
        n = len(self.teachers)
        return feats_sum / n, heat_sum / n

    def losses(self, batch: dict[str, Any], out: StepOutputs, model: nn.Module) -> dict[str, torch.Tensor]:
        o = self.options
        rows = batch["dataset_index"] == self.head
        if self.factor == 0.0 or not bool(rows.any()):
            self.stats = {}
            return {}
        t_feats, t_heat = self.teacher_outputs(batch["image"][rows])
        terms: dict[str, torch.Tensor] = {}
        if o.logit_weight > 0:
            s_heat = out.heatmaps[rows][:, self.student_channels].float()
            if s_heat.shape[-2:] != t_heat.shape[-2:]:
                t_heat = F.interpolate(t_heat, size=s_heat.shape[-2:], mode="bilinear", align_corners=True)
            terms["logit"] = self.factor * o.logit_weight * heatmap_distill_loss(s_heat, t_heat, o.logit_loss, o.beta)
        if o.feature_weight > 0:
            if out.features is None:
                raise PoseAdaptError("distill: the model exposes no backbone features (needs forward_features)")
            assert self.align is not None
            aligned = self.align(out.features[rows].float())
            if aligned.shape[-2:] != t_feats.shape[-2:]:
                aligned = F.interpolate(aligned, size=t_feats.shape[-2:], mode="bilinear", align_corners=False)
            terms["feature"] = self.factor * o.feature_weight * F.mse_loss(aligned, t_feats)
        self.stats = {k: v.detach() for k, v in terms.items()}
        return terms

    def logs(self) -> dict[str, float]:
        return {**{k: float(v) for k, v in self.stats.items()}, "weight": self.factor}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"teacher": self.fingerprint}
        if self.align is not None:
            state["align"] = {k: v.detach().cpu().clone() for k, v in self.align.state_dict().items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("teacher") != self.fingerprint:
            raise PoseAdaptError("cannot resume: the distillation teacher differs from the saved run's")
        if self.align is not None and "align" in state:
            self.align.load_state_dict(state["align"])

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "teacher_fingerprint": self.fingerprint}


def heatmap_distill_loss(
    student: torch.Tensor, teacher: torch.Tensor, kind: str = "mse", beta: float = 10.0
) -> torch.Tensor:
    """Student vs teacher heatmaps (B, K, H, W), every keypoint weighted 1 (the teacher supervises them all)."""
    if kind == "mse":
        return F.mse_loss(student, teacher)
    s = F.log_softmax(beta * student.flatten(2), dim=-1)
    t = F.log_softmax(beta * teacher.flatten(2), dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="none").sum(-1).mean()


def _width(model: nn.Module) -> int | None:
    return getattr(getattr(getattr(model, "config", None), "backbone", None), "embed_dim", None)


def _channels(model: nn.Module, key: str, who: str) -> int:
    cfg = getattr(getattr(model, "config", None), "backbone", None)
    channels = getattr(cfg, "embed_dim", None)
    if channels is None or not hasattr(model, "forward_features"):
        raise PoseAdaptError(f"recipe key '{key}': the {who} exposes no backbone features; set feature_weight: 0")
    return int(channels)
