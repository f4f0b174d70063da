"""The recipe's `finetune` section: which parameters train, how, and what is rehearsed against forgetting.

    finetune:
      strategy: lora            # full | head_only | freeze_blocks | layer_decay | head_then_full | lora
      lora: {r: 8, alpha: 16, dropout: 0.0, targets: [qkv, proj, fc1, fc2], head: final}
      rehearsal:                # optional, with any strategy
        source: {synth: {population: adult, n: 500}}
        ratio: 0.25             # fraction of each epoch's samples drawn from the source set
        pseudo_label: true      # fill the target keypoints the source schema lacks from the frozen source model
        source_checkpoint: adult_vitpose.safetensors   # default: model.checkpoint, as loaded before head surgery

Options that belong to another strategy are rejected (a `freeze_blocks` under `strategy: full` is a typo waiting
to cost a training run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from poseadapt.errors import PoseAdaptError

STRATEGIES = ("full", "head_only", "freeze_blocks", "layer_decay", "head_then_full", "lora")
Strategy = Literal["full", "head_only", "freeze_blocks", "layer_decay", "head_then_full", "lora"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class LoraSettings(_Section):
    """Low-rank adapters on the ViT blocks' linears; `targets` are module-name suffixes inside each block.

    `head` says which head parameters train beside the adapters: `final` (the per-keypoint output layer, the part
    head surgery re-initialises), `all`, or `none`. `final` keeps ViT-B under 2% trainable parameters; the classic
    head's deconvolutions alone are 4.7% of ViT-B.
    """

    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0.0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    targets: list[str] = Field(default_factory=lambda: ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"], min_length=1)
    head: Literal["final", "all", "none"] = "final"

    @property
    def scaling(self) -> float:
        return self.alpha / self.r


class RehearsalSource(_Section):
    """The source-domain data to replay: a COCO keypoint file (+ images) or a synthetic population spec."""

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


class RehearsalSettings(_Section):
    """Replay of source data at `ratio`, with pseudo-labels from the frozen source model where labels are missing."""

    source: RehearsalSource
    ratio: float = Field(0.25, gt=0.0, lt=1.0)
    pseudo_label: bool = True
    source_checkpoint: Path | None = Field(None, description="default: the model as loaded, before head surgery")
    score_threshold: float = Field(0.3, ge=0.0, le=1.0)
    weight_by_confidence: bool = True
    fill_unlabelled: bool = Field(
        False,
        description="also pseudo-label points the source schema has but a sample leaves unlabelled (v=0); off: "
        "in COCO-style labels v=0 mostly means out of frame or not inferable, where a teacher's guess is noise",
    )

    @property
    def ratios(self) -> list[float]:
        """Mixing ratios for (target set, source set), the order the engine's MixedSampler takes them in."""
        return [1.0 - self.ratio, self.ratio]

    def samples_per_epoch(self, target_size: int) -> int:
        """Epoch length at which every target sample is still drawn once per epoch."""
        return max(1, round(target_size / (1.0 - self.ratio)))


class FinetuneConfig(_Section):
    """Fine-tuning strategy and its options (see the module docstring for the YAML form)."""

    strategy: Strategy = "full"
    freeze_blocks: int | None = Field(None, ge=1, description="freeze_blocks: embeddings + this many first blocks")
    head_epochs: int | None = Field(None, ge=1, description="head_then_full: epochs of stage 1 (head only)")
    layer_decay: float | None = Field(None, gt=0.0, lt=1.0, description="layer_decay: lr factor per block")
    lora: LoraSettings | None = None
    rehearsal: RehearsalSettings | None = None

    @model_validator(mode="after")
    def _options_fit_strategy(self) -> FinetuneConfig:
        owner = {"freeze_blocks": "freeze_blocks", "head_epochs": "head_then_full", "layer_decay": "layer_decay"}
        owner["lora"] = "lora"
        for key, strategy in owner.items():
            if getattr(self, key) is not None and self.strategy != strategy:
                raise ValueError(f"'{key}' belongs to strategy '{strategy}', not '{self.strategy}'")
        if self.strategy == "freeze_blocks" and self.freeze_blocks is None:
            raise ValueError("strategy 'freeze_blocks' needs 'freeze_blocks: N' (how many first blocks to freeze)")
        if self.strategy == "head_then_full" and self.head_epochs is None:
            self.head_epochs = 1
        if self.strategy == "layer_decay" and self.layer_decay is None:
            self.layer_decay = 0.75
        if self.strategy == "lora" and self.lora is None:
            self.lora = LoraSettings()
        return self

    @classmethod
    def from_section(cls, data: dict[str, Any] | None, where: str = "finetune") -> FinetuneConfig:
        """Validate a recipe section; a problem is one `PoseAdaptError` line naming the key (`finetune.lora.r`)."""
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join([where, *(str(p) for p in err["loc"])])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
            raise PoseAdaptError(f"recipe key '{key}': {msg}{more}") from None
