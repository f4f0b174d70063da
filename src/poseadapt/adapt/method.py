"""The adaptation-method interface: one object per idea (timm's task wrappers, MMPose's codecs), no registry magic.

A method is one file under `poseadapt/adapt/methods/` and one row of the table there. The recipe composes them:

    adapt:
      - lora: {r: 8}
      - rehearsal: {source: {synth: {population: adult, view: front, n: 800}}, ratio: 0.5}
      - memory_replay: {teacher: runs/adult/final.safetensors}

What a method declares, and when the engine asks (the call order; `docs/METHODS.md` walks through an example):

    Options                  pydantic model of its recipe options (unknown key: one line naming it)
    check(ctx)               cheap checks before anything is built (files exist)
    prepare(model, ctx)      after the model and the target datasets are built, before the optimizer: freeze,
                             wrap adapters, swap heads, load a teacher; returns the model to train
    data(ctx)                extra data streams to mix in (labelled source set, unlabelled target images)
    modules()                auxiliary trainable modules (a domain classifier, prototypes): they join the
                             optimizer and the DDP wrapper, never the exported model
    trainable(name, epoch)   only for a method with `chooses_parameters`: whether a model parameter trains in
                             `epoch` (at most one such method per recipe; none means full fine-tuning)
    lr_scale(name, depth)    the parameter's learning-rate factor (layer-wise decay)
    on_epoch_start(...)      per epoch; the engine re-applies `trainable` and re-wraps DDP when the set changed
    before_step(batch, ...)  with the device batch, before the forward (pseudo-labels from a teacher)
    losses(batch, out, ...)  extra loss terms from `StepOutputs` (backbone features and head outputs)
    logs()                   scalars for the training log
    state_dict / load_state_dict   its state for exact resume
    export(model)            the model to save (merge adapters, slice heads)

The engine names no method: it only calls these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn


class MethodOptions(BaseModel):
    """Base of every method's options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


@dataclass
class StepOutputs:
    """What the training forward exposes to losses: backbone features and head outputs (same batch order)."""

    features: torch.Tensor  # (B, C, h, w)
    heatmaps: torch.Tensor  # (B, K, H, W), heads' outputs gathered by dataset index


@dataclass
class DataStream:
    """An extra training dataset a method mixes in, at a fraction `ratio` of each epoch's samples."""

    dataset: Any
    ratio: float
    head: int = 0
    name: str = ""


@dataclass
class AdaptContext:
    """What a method may read while it is set up (built by `poseadapt.train.build`)."""

    recipe: Any
    key: str  # the method's recipe key, e.g. 'adapt.1.rehearsal' (for error messages)
    source_model: Any | None = None  # model.checkpoint as loaded, before head surgery (None without a checkpoint)
    datasets: list[Any] = field(default_factory=list)  # the target training datasets
    heads: list[int] = field(default_factory=list)  # their head indices
    build_dataset: Any = None  # build_dataset(spec, key, model, head, match_head=...) for a data.train-style spec
    seed: int = 0
    mix_offset: int = 0  # position of this method's first data stream in the mix (set by the builder)


class Method:
    """Base class: every step is a no-op; a method overrides what its idea needs (see the module docstring)."""

    name: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()  # of "parameters", "losses", "data", "modules"
    summary: ClassVar[str] = ""
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    chooses_parameters: ClassVar[bool] = False

    def __init__(self, options: MethodOptions) -> None:
        self.options = options
        self.key = self.name

    # ---------------------------------------------------------------------------------------- set-up
    def check(self, ctx: AdaptContext) -> None:
        """Cheap checks (files exist) before any model or data is built."""

    def prepare(self, model: nn.Module, ctx: AdaptContext) -> nn.Module:
        """Change the model before the optimizer sees it; return the model to train."""
        return model

    def data(self, model: nn.Module, ctx: AdaptContext) -> list[DataStream]:
        return []

    def modules(self) -> nn.Module | None:
        return None

    # ---------------------------------------------------------------------------------------- parameters
    def trainable(self, name: str, epoch: int, depth: int) -> bool:
        return True

    def ever_trains(self, name: str, depth: int) -> bool:
        """Whether the parameter trains in any epoch (the optimizer holds exactly these)."""
        return self.trainable(name, 0, depth)

    def lr_scale(self, name: str, depth: int) -> float:
        return 1.0

    # ---------------------------------------------------------------------------------------- the loop
    def on_epoch_start(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """Per-epoch work; returns scalars to log."""
        return {}

    def before_step(self, batch: dict[str, Any], model: nn.Module) -> None: ...

    def losses(self, batch: dict[str, Any], out: StepOutputs, model: nn.Module) -> dict[str, torch.Tensor]:
        return {}

    def logs(self) -> dict[str, float]:
        return {}

    # ---------------------------------------------------------------------------------------- state, export
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def export(self, model: nn.Module) -> nn.Module:
        return model

    def provenance(self) -> dict[str, Any]:
        """What the checkpoint records of this method (its options by default)."""
        return self.options.model_dump(mode="json", by_alias=True, exclude_none=True)


def resolve_path(path: str | Path | None) -> Path | None:
    return None if path is None else Path(path)
