"""Shared fixtures: a tiny training recipe (vit_tiny, 48x64 crops, a handful of synthetic people) and a helper that
trains it through the `poseadapt train` CLI."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

TINY_TRAIN_RECIPE: dict[str, Any] = {
    "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "simple"},
    "data": {"train": {"synth": {"population": "adult", "n": 8, "size": 96, "seed": 3}}},
    "optim": {"lr": 1e-3, "weight_decay": 0.0},
    "schedule": {"epochs": 1, "warmup_iters": 0, "policy": "constant"},
    "train": {
        "batch_size": 4,
        "workers": 0,
        "device": "cpu",
        "progress": False,
        "tensorboard": False,
        "val_interval": 0,
        "ema": None,
        "log_interval": 1,
    },
}


@pytest.fixture
def one_thread() -> Any:
    """Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP oversubscription stalls
    (a test module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def infant_top_poses() -> Any:
    """Complete coco17 poses (N, 17, 2) of 200 rendered top-view infants (96 px images, seed 0)."""
    from poseadapt.data.coco import coco_keypoints_from_dict
    from poseadapt.priors import complete_poses
    from poseadapt.synth import render_dataset

    _, coco = render_dataset("infant", view="top", n=200, size=96, seed=0, schema="coco17")
    return complete_poses(coco_keypoints_from_dict(coco, "coco17").keypoints)


@pytest.fixture(scope="session")
def infant_top_prior(infant_top_poses: Any) -> Any:
    """A pose prior fitted to `infant_top_poses`."""
    from poseadapt.priors import fit_prior
    from poseadapt.schemas import get_schema

    return fit_prior(infant_top_poses, get_schema("coco17"), seed=0)


@pytest.fixture
def tiny_recipe() -> dict[str, Any]:
    """A fresh copy of a recipe that trains in about a second on CPU (2 steps per epoch)."""
    return copy.deepcopy(TINY_TRAIN_RECIPE)


@pytest.fixture
def cli_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., dict[str, Any]]:
    """`cli_train(recipe_dict, out, *sets, resume=False)`: run `poseadapt train` in-process; returns its JSON."""
    from poseadapt.cli.main import main

    def run(recipe: dict[str, Any], out: Path, *sets: str, resume: bool = False) -> dict[str, Any]:
        path = tmp_path / f"recipe-{out.name}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        args = ["train", str(path), "--out", str(out), "--json", *(a for s in sets for a in ("--set", s))]
        with pytest.raises(SystemExit) as exc:
            main([*args, "--resume"] if resume else args)
        captured = capsys.readouterr()
        assert exc.value.code == 0, captured.err
        return json.loads(captured.out)

    return run
