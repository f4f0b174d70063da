"""Trainer hooks: how anything optional joins the loop without a branch in it.

A hook overrides the events it cares about. The trainer calls every hook, in list order, at each event:

    setup            model built, before the optimizer and DDP (freeze layers, wrap adapters); runs again on
                     resume before the saved state is loaded, so the model has the same structure
    on_train_start   optimizer, scheduler and loader are ready (and a resumed state is loaded)
    on_epoch_start   before the first batch of an epoch
    before_step      with the device batch, before the forward pass
    after_step       with the step's logs (loss tensors, lr, grad norm): EMA update, logging, stage switches
    on_epoch_end     after the last batch of an epoch (validation, checkpoint)
    on_train_end     after the last epoch or a stop (also on Ctrl-C)
    export_model     the model to write as the final / best checkpoint (e.g. average weights)

Under DDP the set of trainable parameters is fixed when the model is wrapped (before `on_train_start`); a hook
that changes `requires_grad` later (unfreezing a stage) calls `trainer.wrap_ddp()` afterwards.

`state_dict` / `load_state_dict` put a hook's state (EMA weights, best AP, a stage flag) into the training
checkpoint under the hook's `name`, so a resumed run continues with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from poseadapt.train.engine import Trainer


class Hook:
    """Base class: every event is a no-op; subclasses override what they need."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def setup(self, trainer: Trainer) -> None: ...

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer) -> None: ...

    def before_step(self, trainer: Trainer, batch: dict[str, Any]) -> None: ...

    def after_step(self, trainer: Trainer, logs: dict[str, Any]) -> None: ...

    def on_epoch_end(self, trainer: Trainer) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...

    def export_model(self, trainer: Trainer, model: nn.Module) -> nn.Module:
        return model

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
