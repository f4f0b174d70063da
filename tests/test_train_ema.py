"""EMA maths: after n steps the average equals its closed form, on a tiny module and through a real training run."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from poseadapt.interop.checkpoint import load_checkpoint
from poseadapt.train import recipe_from_dict
from poseadapt.train.build import build_trainer
from poseadapt.train.ema import EMAHook
from poseadapt.train.hooks import Hook


def _fake_trainer(module: nn.Module) -> Any:
    return SimpleNamespace(module=module, ema=None)


def test_constant_decay_matches_closed_form() -> None:
    # weights w_t = t (t = 1..n) from e_0 = 0: e_n = (1 - d) * sum_t d^(n - t) * t
    d, n = 0.9, 7
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    hook, trainer = EMAHook(decay=d, warmup=0), _fake_trainer(lin)
    hook.setup(trainer)
    hook.on_train_start(trainer)
    assert trainer.ema is hook
    for t in range(1, n + 1):
        with torch.no_grad():
            lin.weight.fill_(float(t))
        hook.after_step(trainer, {})
    # sum_{t=1}^n d^(n-t) t = (n - (n+1) d + d^(n+1)) / (1 - d)^2
    closed = (1 - d) * (n - (n + 1) * d + d ** (n + 1)) / (1 - d) ** 2
    assert hook.module.weight.item() == pytest.approx(closed, rel=1e-6)
    assert lin.weight.item() == n  # the raw weights are untouched


def test_warmup_decay_matches_product_form() -> None:
    # constant weights c from e_0: e_n = c + (e_0 - c) * prod_t d_t, d_t = decay * (1 - exp(-t / warmup))
    decay, warmup, n, e0, c = 0.99, 3, 5, 2.0, -1.0
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(e0)
    hook, trainer = EMAHook(decay=decay, warmup=warmup), _fake_trainer(lin)
    hook.setup(trainer)
    hook.on_train_start(trainer)
    with torch.no_grad():
        lin.weight.fill_(c)
    for _ in range(n):
        hook.after_step(trainer, {})
    prod = math.prod(decay * (1 - math.exp(-t / warmup)) for t in range(1, n + 1))
    assert hook.module.weight.item() == pytest.approx(c + (e0 - c) * prod, rel=1e-6)
    assert hook.current_decay() == pytest.approx(decay * (1 - math.exp(-n / warmup)))


def test_non_float_buffers_are_copied() -> None:
    bn = nn.BatchNorm1d(2)
    hook, trainer = EMAHook(decay=0.5, warmup=0), _fake_trainer(bn)
    hook.setup(trainer)
    hook.on_train_start(trainer)
    bn.num_batches_tracked.fill_(7)
    with torch.no_grad():
        bn.running_mean.fill_(4.0)
    hook.after_step(trainer, {})
    assert int(hook.module.num_batches_tracked) == 7
    assert torch.allclose(hook.module.running_mean, torch.full((2,), 2.0))  # float buffers are averaged


class Record(Hook):
    """The raw weights after each step (runs after the EMA hook, which the recipe puts first)."""

    name = "record"

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []

    def after_step(self, trainer: Any, logs: dict[str, Any]) -> None:
        self.weights.append(trainer.module.state_dict()["heads.coco17.final_layer.weight"].clone())


def test_training_run_exports_the_closed_form_average(tmp_path: Path, tiny_recipe: dict) -> None:
    decay, warmup = 0.6, 2
    tiny_recipe["train"].update({"ema": decay, "ema_warmup": warmup, "amp": False})
    tiny_recipe["schedule"]["epochs"] = 2
    rec = Record()
    trainer = build_trainer(recipe_from_dict(tiny_recipe), tmp_path / "run", hooks=(rec,))
    start = trainer.module.state_dict()["heads.coco17.final_layer.weight"].clone()
    result = trainer.fit()
    assert len(rec.weights) == 4
    expected = start.double()
    for t, w in enumerate(rec.weights, start=1):
        d = decay * (1 - math.exp(-t / warmup))
        expected = d * expected + (1 - d) * w.double()
    final = load_checkpoint(result.final_checkpoint)
    got = final.state_dict()["heads.coco17.final_layer.weight"].double()
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(got, rec.weights[-1].double())  # the export is the average, not the raw weights
