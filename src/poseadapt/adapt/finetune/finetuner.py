"""`Finetuner`: the object the training engine drives; one call per event of the loop.

    ft = Finetuner(FinetuneConfig.from_section(recipe_section))
    model = ft.prepare(model)                       # before the optimizer: LoRA wrap, freezing
    groups = ft.parameter_groups(model, lr, wd, layer_decay)
    ft.attach_rehearsal(teacher, schema, codec)     # when the recipe rehearses with pseudo-labels
    changed = ft.on_epoch_start(model, epoch)       # after model.train(); True when a stage switches
    ft.before_step(batch)                           # pseudo-labels for rehearsal samples
    plain = ft.export(model)                        # LoRA merged back; a plain PoseModel
    ft.state_dict() / ft.load_state_dict(state)     # the stage (and the teacher's fingerprint), for resume

The stage is derived from the epoch, so re-applying it is exact after a resume; the saved stage only decides
whether `on_epoch_start` reports a switch (for the logs). The teacher is not saved (it is the source model, rebuilt
from its checkpoint); its weights' fingerprint is, so a resume whose source checkpoint changed fails at once.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from poseadapt.adapt.finetune.config import FinetuneConfig
from poseadapt.adapt.finetune.freeze import (
    apply_stage,
    apply_train_mode,
    backbone_depth,
    stage_for_epoch,
    trainable_parameter_groups,
)
from poseadapt.adapt.finetune.lora import has_lora, inject_lora, merge_for_export
from poseadapt.adapt.finetune.rehearsal import RehearsalTargets, teacher_fingerprint
from poseadapt.errors import PoseAdaptError


def prepare_model(model: nn.Module, cfg: FinetuneConfig) -> nn.Module:
    """Make `model` ready for `cfg`'s strategy (LoRA adapters, frozen parameters of the first stage), in place."""
    depth = backbone_depth(model)
    if cfg.strategy == "freeze_blocks" and (cfg.freeze_blocks or 0) > depth:
        raise PoseAdaptError(f"finetune.freeze_blocks is {cfg.freeze_blocks} but the model has {depth} blocks")
    if cfg.strategy == "lora":
        assert cfg.lora is not None  # filled in by FinetuneConfig's validator
        model = inject_lora(model, cfg.lora)
    apply_stage(model, cfg, stage_for_epoch(cfg, 0))
    return model


class Finetuner:
    """A fine-tuning strategy bound to its config and stage (see the module docstring for the call order)."""

    def __init__(self, cfg: FinetuneConfig) -> None:
        self.cfg = cfg
        self.stage: str | None = None
        self.rehearsal: RehearsalTargets | None = None
        self.teacher_fingerprint: str | None = None
        self.last_rehearsal_stats: dict[str, float] = {}

    def prepare(self, model: nn.Module) -> nn.Module:
        model = prepare_model(model, self.cfg)
        self.stage = stage_for_epoch(self.cfg, 0)
        return model

    def parameter_groups(
        self, model: nn.Module, base_lr: float, weight_decay: float, layer_decay: float | None = None
    ) -> list[dict[str, Any]]:
        return trainable_parameter_groups(model, self.cfg, base_lr, weight_decay, layer_decay)

    def on_epoch_start(self, model: nn.Module, epoch: int) -> bool:
        """Apply the stage of `epoch` (and eval mode for frozen modules); True when the stage differs from before."""
        stage = stage_for_epoch(self.cfg, epoch)
        apply_stage(model, self.cfg, stage)
        changed = self.stage is not None and stage != self.stage
        self.stage = stage
        return changed

    def train_mode(self, model: nn.Module) -> None:
        """`model.train()` that keeps frozen modules in eval mode (use it when returning from validation)."""
        model.train()
        apply_train_mode(model)

    def attach_rehearsal(self, teacher: nn.Module, target_schema: Any, codec: Any) -> RehearsalTargets | None:
        """Build the pseudo-labeller from the frozen source model, if the recipe rehearses with pseudo-labels."""
        r = self.cfg.rehearsal
        if r is None or not r.pseudo_label:
            return None
        self.rehearsal = RehearsalTargets(
            teacher,
            target_schema,
            codec,
            score_threshold=r.score_threshold,
            weight_by_confidence=r.weight_by_confidence,
        )
        self.teacher_fingerprint = teacher_fingerprint(self.rehearsal.teacher)
        return self.rehearsal

    def before_step(self, batch: dict[str, Any]) -> None:
        if self.rehearsal is not None:
            self.last_rehearsal_stats = self.rehearsal(batch)

    def export(self, model: nn.Module) -> nn.Module:
        """The model to save: LoRA merged into plain layers (a copy), anything else as it is."""
        return merge_for_export(model) if has_lora(model) else model

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"strategy": self.cfg.strategy, "stage": self.stage}
        if self.teacher_fingerprint is not None:
            state["teacher"] = self.teacher_fingerprint
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("strategy", self.cfg.strategy) != self.cfg.strategy:
            raise PoseAdaptError(
                f"the saved run used fine-tuning strategy '{state['strategy']}', this recipe '{self.cfg.strategy}'"
            )
        if state.get("teacher") != self.teacher_fingerprint:
            was = "no rehearsal teacher" if state.get("teacher") is None else "another rehearsal teacher"
            now = "none" if self.teacher_fingerprint is None else "different weights"
            raise PoseAdaptError(
                f"cannot resume: the saved run used {was}, this one has {now} (did the source checkpoint or "
                "finetune.rehearsal change?)"
            )
        self.stage = state.get("stage")
