"""Fine-tuning strategies: full, head only, frozen first blocks, layer-wise lr decay, head first then full, LoRA
(merged back for export), and rehearsal of source data with pseudo-labels against forgetting.

`Finetuner` is what the training engine drives; the functions beneath it are usable on their own.
"""

from poseadapt.adapt.finetune.config import (
    STRATEGIES,
    FinetuneConfig,
    LoraSettings,
    RehearsalSettings,
    RehearsalSource,
)
from poseadapt.adapt.finetune.finetuner import Finetuner, prepare_model
from poseadapt.adapt.finetune.freeze import (
    apply_stage,
    apply_train_mode,
    count_parameters,
    stage_for_epoch,
    trainable_parameter_groups,
)
from poseadapt.adapt.finetune.lora import has_lora, inject_lora, merge_for_export
from poseadapt.adapt.finetune.rehearsal import RehearsalTargets, SourceAsTarget, frozen_teacher

__all__ = [
    "STRATEGIES",
    "FinetuneConfig",
    "Finetuner",
    "LoraSettings",
    "RehearsalSettings",
    "RehearsalSource",
    "RehearsalTargets",
    "SourceAsTarget",
    "apply_stage",
    "apply_train_mode",
    "count_parameters",
    "frozen_teacher",
    "has_lora",
    "inject_lora",
    "merge_for_export",
    "prepare_model",
    "stage_for_epoch",
    "trainable_parameter_groups",
]
