"""Exponential moving average of the model weights, as a hook.

After every optimizer step: ema = decay * ema + (1 - decay) * weights (buffers such as BatchNorm statistics are
copied). With an EMA, validation, the best checkpoint and the final checkpoint use the averaged weights, which
are usually smoother and a little better; the raw weights keep training. The effective decay ramps up as
decay * (1 - exp(-updates / warmup)) (as YOLO / mmdet's ExpMomentumEMA), so early averages are not dominated
by the random initialisation.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from poseadapt.train.hooks import Hook

if TYPE_CHECKING:
    from poseadapt.train.engine import Trainer


class EMAHook(Hook):
    """Keeps `module`, an averaged copy of the trainer's model; `trainer.eval_model` returns it."""

    def __init__(self, decay: float = 0.9998, warmup: int = 2000) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = int(warmup)
        self.updates = 0
        self.module: nn.Module | None = None

    @property
    def name(self) -> str:
        return "ema"

    def on_train_start(self, trainer: Trainer) -> None:
        if self.module is None:  # a resumed run restored it in load_state_dict
            self._copy_from(trainer.module)
        trainer.ema = self

    def _copy_from(self, model: nn.Module) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        if self.warmup <= 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-self.updates / self.warmup))

    @torch.no_grad()
    def after_step(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        assert self.module is not None
        self.updates += 1
        d = self.current_decay()
        src = trainer.module.state_dict()
        for key, value in self.module.state_dict().items():
            new = src[key].detach()
            if value.dtype.is_floating_point:
                value.mul_(d).add_(new.to(value.dtype), alpha=1.0 - d)
            else:
                value.copy_(new)

    def state_dict(self) -> dict[str, Any]:
        assert self.module is not None
        return {
            "updates": self.updates,
            "weights": {k: v.detach().clone() for k, v in self.module.state_dict().items()},
        }

    def setup(self, trainer: Trainer) -> None:
        self.module = None
        self._trainer = trainer

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Runs after the trainer restored the model, so the saved average can be laid over a copy of it."""
        self.updates = int(state["updates"])
        self._copy_from(self._trainer.module)
        assert self.module is not None
        self.module.load_state_dict(state["weights"])
