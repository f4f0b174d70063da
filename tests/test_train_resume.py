"""Stopping and resuming: a run interrupted at iteration k and resumed reproduces the uninterrupted run's losses.

The interruption is a hook raising KeyboardInterrupt after step k (what a second Ctrl-C does) or a real SIGINT
(the first Ctrl-C: finish the step, save, stop). Mid-epoch and epoch-boundary stops, DataLoader workers, drop
path (torch RNG), augmentation, EMA and validation are all in play, so every piece of saved state is exercised.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import torch

from poseadapt.errors import PoseAdaptError
from poseadapt.train import Hook, build_trainer, recipe_from_dict
from poseadapt.train.checkpointing import load_train_state

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_recipe(workers: int = 0, **train: object) -> dict:
    return {
        "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "simple", "drop_path": 0.1},
        "data": {
            "train": {"synth": {"population": "adult", "n": 24, "size": 96, "seed": 3}},
            "val": {"synth": {"population": "adult", "n": 6, "size": 96, "seed": 4}},
        },
        "optim": {"lr": 1e-3, "layer_decay": 0.8},
        "schedule": {"epochs": 3, "warmup_iters": 4, "policy": "step", "milestones": [2]},
        "train": {
            "batch_size": 4,
            "workers": workers,
            "device": "cpu",
            "progress": False,
            "tensorboard": False,
            "ema": 0.9,
            "ema_warmup": 2,
            "flip_test": False,
            **train,
        },
    }


class RecordLoss(Hook):
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def after_step(self, trainer, logs) -> None:
        self.losses[trainer.iteration] = float(logs["losses"]["loss"])


class StopAt(Hook):
    """Interrupt after step `k`: with a raised KeyboardInterrupt, or with a real SIGINT to this process."""

    def __init__(self, k: int, signal_: bool = False) -> None:
        self.k, self.signal = k, signal_

    def after_step(self, trainer, logs) -> None:
        if trainer.iteration == self.k:
            if self.signal:
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise KeyboardInterrupt


def run(recipe: dict, out: Path, *hooks: Hook, resume: bool = False):
    trainer = build_trainer(recipe_from_dict(recipe), out, resume=resume, hooks=hooks)
    return trainer, trainer.fit(resume=resume)


@pytest.mark.parametrize(("stop_at", "workers"), [(7, 0), (12, 2)], ids=["mid-epoch", "epoch-end-2-workers"])
def test_resume_reproduces_uninterrupted_run(tmp_path: Path, stop_at: int, workers: int) -> None:
    recipe = tiny_recipe(workers)
    full = RecordLoss()
    t_full, r_full = run(recipe, tmp_path / "full", full)
    assert r_full.status == "completed" and r_full.iteration == 18 == len(full.losses)

    first = RecordLoss()
    _, r_stop = run(recipe, tmp_path / "split", first, StopAt(stop_at))
    assert r_stop.status == "interrupted" and r_stop.iteration == stop_at
    assert not (tmp_path / "split" / "final.safetensors").exists()
    state = load_train_state(tmp_path / "split" / "last.pt")
    assert state["iteration"] == stop_at

    second = RecordLoss()
    t_res, r_res = run(recipe, tmp_path / "split", second, resume=True)
    assert r_res.status == "completed" and min(second.losses) == stop_at + 1

    resumed = {**first.losses, **second.losses}
    assert sorted(resumed) == sorted(full.losses)
    for it, loss in full.losses.items():
        assert abs(resumed[it] - loss) <= 1e-6, f"iteration {it}: {resumed[it]} vs {loss}"
    for (k, a), b in zip(t_full.module.state_dict().items(), t_res.module.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k
    for a, b in zip(t_full.ema.module.state_dict().values(), t_res.ema.module.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    val_full = next(h for h in t_full.hooks if h.name == "validation").history
    val_res = next(h for h in t_res.hooks if h.name == "validation").history
    assert [e for e, _ in val_res] == [e for e, _ in val_full] == [1, 2, 3]
    assert [a for _, a in val_res] == pytest.approx([a for _, a in val_full], abs=1e-6)

    # the CSV log continues across the resume: one row per log interval, no gaps or repeats
    def logged(run_dir: str) -> list[int]:
        return [int(r.split(",")[0]) for r in (tmp_path / run_dir / "train_log.csv").read_text().splitlines()[1:]]

    assert logged("split") == logged("full")


def test_sigint_finishes_the_step_saves_and_stops(tmp_path: Path) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    recipe = tiny_recipe()
    recipe["schedule"]["epochs"] = 1
    rec = RecordLoss()
    previous = signal.getsignal(signal.SIGINT)
    trainer, result = run(recipe, tmp_path, rec, StopAt(3, signal_=True))
    assert result.status == "interrupted" and result.iteration == 3 and max(rec.losses) == 3
    assert load_train_state(tmp_path / "last.pt")["iteration"] == 3
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is only installed while training
    # more epochs may be added on resume; what fixes the data order may not change
    changed = tiny_recipe(batch_size=2)
    with pytest.raises(PoseAdaptError, match="recipe key 'train.batch_size' changed since it was saved"):
        run(changed, tmp_path, resume=True)


def test_run_folder_guards(tmp_path: Path) -> None:
    recipe = tiny_recipe()
    with pytest.raises(PoseAdaptError, match="nothing to resume"):
        build_trainer(recipe_from_dict(recipe), tmp_path, resume=True)
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PoseAdaptError, match="already holds a training run"):
        build_trainer(recipe_from_dict(recipe), tmp_path)
    with pytest.raises(PoseAdaptError, match="cannot read training state"):
        build_trainer(recipe_from_dict(recipe), tmp_path, resume=True).fit(resume=True)
