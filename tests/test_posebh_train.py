"""The `prototypes` method through the engine: every dataset's prototypes move (the reference's indexing bug),
the three stages with clusters and CSS, and a run stopped inside stage 2 resumes exactly."""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any

import torch

SCHEMAS = ["coco17", "mpii16", "aic14"]
SMALL = {"dim": 8, "channels": 16, "hidden": 8, "clusters": 8, "momentum": 0.9, "max_pixels": 256}


def posebh_recipe(tiny: dict[str, Any], n: int = 6, **options: Any) -> dict[str, Any]:
    r = copy.deepcopy(tiny)
    r["model"].update({"schema": SCHEMAS, "experts": 3, "head": "simple"})
    r["data"] = {
        "train": [
            {"synth": {"population": "adult", "n": n, "size": 96, "seed": 20 + i}, "schema": s}
            for i, s in enumerate(SCHEMAS)
        ]
    }
    r["train"].update({"batch_size": 6})
    r["adapt"] = [{"prototypes": {**SMALL, "stages": [1, 2], **options}}]
    return r


def test_every_dataset_prototypes_move(tiny_recipe, tmp_path: Path) -> None:
    from poseadapt.train.build import build_trainer
    from poseadapt.train.recipe import recipe_from_dict

    recipe = recipe_from_dict(posebh_recipe(tiny_recipe, stages=[5, 5]))
    trainer = build_trainer(recipe, tmp_path / "run")
    method = trainer.methods[0]
    bank = method.aux["bank"]
    before = bank.prototypes.clone()
    trainer.fit()
    assert trainer.iteration == 3
    for d in range(3):
        o, k = bank.offsets[d], bank.counts[d]
        moved = method.moved[o : o + k]
        assert moved.float().mean() > 0.9, (SCHEMAS[d], moved.float().mean())
        assert not torch.equal(bank.prototypes[o : o + k], before[o : o + k]), SCHEMAS[d]
    # stage 1: the model itself did not change (only the embedding and the prototypes learn)
    assert all(not p.requires_grad for p in trainer.module.parameters())


def test_three_stages_clusters_and_css(tiny_recipe, cli_train, tmp_path: Path) -> None:
    out = tmp_path / "stages"
    recipe = posebh_recipe(tiny_recipe, css_threshold=0.0, css_distance=100.0)
    recipe["schedule"]["epochs"] = 3
    cli_train(recipe, out)
    rows = list(csv.DictReader((out / "train_log.csv").open()))
    assert {"prototypes/proto", "prototypes/phm"} <= set(rows[0])
    assert float(rows[-1]["prototypes/css"]) > 0 and float(rows[-1]["prototypes/cluster"]) > 0
    state = torch.load(out / "last.pt", weights_only=True)["methods"]["adapt.0.prototypes"]
    assert state["stage"] == 3 and state["clusters"] is not None
    assert state["clusters"]["members"].shape == (8, 3)


def test_resume_inside_stage_two_is_exact(tiny_recipe, cli_train, tmp_path: Path) -> None:
    recipe = posebh_recipe(tiny_recipe, n=2, stages=[1, 3])
    recipe["schedule"]["epochs"] = 2
    recipe["train"]["batch_size"] = 2  # 3 steps per epoch
    full, part = tmp_path / "full", tmp_path / "part"
    cli_train(recipe, full)
    cli_train(recipe, part, "train.max_iters=4")  # stopped in the middle of epoch 1 (stage 2)
    stopped = torch.load(part / "last.pt", weights_only=True)
    assert stopped["epoch"] == 1 and stopped["methods"]["adapt.0.prototypes"]["stage"] == 2
    assert stopped["methods"]["adapt.0.prototypes"]["clusters"] is not None
    cli_train(recipe, part, "train.max_iters=null", resume=True)
    a = torch.load(full / "last.pt", weights_only=True)
    b = torch.load(part / "last.pt", weights_only=True)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    sa, sb = a["methods"]["adapt.0.prototypes"], b["methods"]["adapt.0.prototypes"]
    assert torch.equal(sa["prototypes"], sb["prototypes"])
    for key, value in sa["embedding"].items():
        assert torch.equal(value, sb["embedding"][key]), key
