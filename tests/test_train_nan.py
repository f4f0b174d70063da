"""A NaN or infinite loss stops training with one line naming the iteration, and `last.pt` keeps the last good state."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from poseadapt.cli.main import main
from poseadapt.errors import PoseAdaptError
from poseadapt.train import recipe_from_dict
from poseadapt.train.build import build_trainer
from poseadapt.train.checkpointing import load_train_state
from poseadapt.train.hooks import Hook
from poseadapt.train.losses import LossTerm


class NaNAt(LossTerm):
    """A loss term that is 0 until iteration `at` (1-based), then NaN."""

    name = "poison"

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, batch: Mapping[str, Any], outputs: Any) -> torch.Tensor:
        self.calls += 1
        return torch.tensor(float("nan") if self.calls >= self.at else 0.0)


class Snapshot(Hook):
    """Hashes last.pt right before each step, i.e. the state the next step starts from."""

    name = "snapshot"

    def __init__(self, path: Path) -> None:
        self.path, self.hashes = path, []

    def before_step(self, trainer: Any, batch: Any) -> None:
        self.hashes.append(hashlib.sha256(self.path.read_bytes()).hexdigest() if self.path.is_file() else None)


def test_nan_term_stops_at_its_iteration_and_keeps_last_good_state(tmp_path: Path, tiny_recipe) -> None:
    tiny_recipe["schedule"]["epochs"] = 3
    tiny_recipe["train"]["checkpoint_interval"] = 1
    out = tmp_path / "run"
    snap = Snapshot(out / "last.pt")
    trainer = build_trainer(recipe_from_dict(tiny_recipe), out, hooks=(snap,))
    trainer.loss_terms.append(NaNAt(3))
    with pytest.raises(PoseAdaptError) as exc:
        trainer.fit()
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("training stopped at iteration 3: the loss is nan (term poison)")
    assert "keeps iteration 2" in message
    state = load_train_state(out / "last.pt", map_location="cpu")
    assert state["iteration"] == 2
    # last.pt is byte for byte what it was before the bad step, and every weight in it is finite
    assert hashlib.sha256((out / "last.pt").read_bytes()).hexdigest() == snap.hashes[-1]
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    # the weights in memory never saw the bad step either (nothing was stepped after the check)
    assert torch.equal(trainer.module.state_dict()["heads.coco17.final_layer.weight"],
                       state["model"]["heads.coco17.final_layer.weight"])  # fmt: skip
    assert not (out / "final.safetensors").exists()


def test_huge_lr_through_the_cli_is_one_line(tmp_path: Path, tiny_recipe, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_recipe["optim"]["lr"] = 1e30
    tiny_recipe["schedule"]["epochs"] = 2
    tiny_recipe["train"]["checkpoint_interval"] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["train", str(path), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert exc.value.code != 0 and "Traceback" not in err
    line = err.splitlines()[-1]
    assert "training stopped at iteration" in line and "the loss is" in line, err
    bad = int(line.split("training stopped at iteration ")[1].split(":")[0])
    assert bad >= 2  # the first step's loss comes from the initial weights, which are fine
    state = load_train_state(out / "last.pt", map_location="cpu")
    assert state["iteration"] == bad - 1 and f"keeps iteration {bad - 1}" in line
