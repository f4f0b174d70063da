"""End to end through `poseadapt train`: on easy generated data a short recipe's loss falls and its AP rises,
and the run folder holds what it promises (recipe, logs, last / best / final checkpoints)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from poseadapt.cli.main import main
from poseadapt.interop.checkpoint import load_checkpoint
from poseadapt.train import recipe_from_dict
from poseadapt.train.build import build_dataset, build_model
from poseadapt.train.validate import evaluate_ap

RECIPE = {
    "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "classic"},
    "data": {
        "train": {"synth": {"population": "adult", "view": "front", "n": 64, "size": 128}, "augment": []},
        "val": {"synth": {"population": "adult", "view": "front", "n": 32, "size": 128, "seed": 1}},
    },
    "optim": {"lr": 2e-3, "weight_decay": 0.0},
    "schedule": {"epochs": 12, "warmup_iters": 5, "policy": "constant"},
    "train": {
        "batch_size": 16,
        "workers": 0,
        "device": "cpu",
        "amp": False,  # 'auto' turns bf16 on for CPUs with AVX-512 BF16; the final check re-scores in fp32
        "log_interval": 4,
        "flip_test": False,
        "tensorboard": False,
    },
}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_short_recipe_loss_falls_and_ap_rises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "easy.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    out = tmp_path / "run"

    recipe = recipe_from_dict(RECIPE)
    model = build_model(recipe)  # the same seeded initial weights the run starts from
    val = build_dataset(recipe.data.val, "data.val", model, 0, recipe.data.padding, False, 0)
    ap_before = evaluate_ap(model, val, flip_test=False)["AP"]

    with pytest.raises(SystemExit) as exc:
        main(["train", str(path), "--out", str(out), "--set", "train.val_interval=4", "--json"])
    assert exc.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed" and summary["epoch"] == 12 and summary["iteration"] == 48

    rows = list(csv.DictReader((out / "train_log.csv").open()))
    first = [float(r["loss"]) for r in rows if float(r["epoch"]) <= 1.0]
    last = [float(r["loss"]) for r in rows if float(r["epoch"]) > 11.0]
    assert sum(last) / len(last) < 0.8 * sum(first) / len(first)

    val_rows = list(csv.DictReader((out / "val_log.csv").open()))
    assert [int(r["iteration"]) for r in val_rows] == [16, 32, 48]
    ap_after = float(val_rows[-1]["val/AP"])
    assert ap_before < 0.01 and ap_after > ap_before + 0.02
    assert summary["best_ap"] == pytest.approx(max(float(r["val/AP"]) for r in val_rows))

    assert yaml.safe_load((out / "recipe.yaml").read_text())["train"]["val_interval"] == 4
    final = load_checkpoint(out / "final.safetensors")
    assert final.provenance["training"]["iteration"] == 48
    assert evaluate_ap(final, val, flip_test=False)["AP"] == pytest.approx(ap_after, abs=1e-9)
    assert (out / "best.safetensors").is_file() and (out / "last.pt").is_file()


def test_val_at_start_logs_the_start_weights_ap_at_iteration_0_and_leaves_training_alone(
    tmp_path: Path, tiny_recipe: dict, cli_train, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train.val_at_start`: one more validation row, at iteration 0, whose AP is the start weights' own (scored
    apart); the trained weights are bit-identical to the same run without it (validation draws no random number
    training uses)."""
    from safetensors.torch import load_file

    tiny_recipe["model"] = {"name": "vit_synth", "input_size": [96, 128], "schema": "coco17", "head": "light",
                            "checkpoint": "builtin:synthpose-vit-tiny"}  # fmt: skip
    tiny_recipe["data"]["val"] = {"synth": {"population": "adult", "n": 6, "size": 128, "seed": 5}}
    tiny_recipe["train"].update(val_interval=1, flip_test=False, amp=False)
    tiny_recipe["schedule"]["epochs"] = 2
    recipe = recipe_from_dict(tiny_recipe)
    model = build_model(recipe)  # the seeded initial weights the run starts from
    val = build_dataset(recipe.data.val, "data.val", model, 0, recipe.data.padding, False, 0)
    start_ap = evaluate_ap(model, val, flip_test=False)["AP"]
    assert start_ap > 0.2  # the built-in model reads these adults: a row of zeros would not tell the weights apart

    plain, at_start = tmp_path / "plain", tmp_path / "at_start"
    cli_train(tiny_recipe, plain)
    path = tmp_path / "at_start.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    with pytest.raises(SystemExit) as exc:  # not --json: the progress lines name the start's validation
        main(["train", str(path), "--out", str(at_start), "--set", "train.val_at_start=true", "--set",
              "train.progress=true"])  # fmt: skip
    assert exc.value.code == 0
    assert f"validation before training (the start weights): AP {start_ap:.4f}" in capsys.readouterr().out
    rows = [list(csv.DictReader((run / "val_log.csv").open())) for run in (plain, at_start)]
    assert [int(r["iteration"]) for r in rows[0]] == [2, 4]
    assert [int(r["iteration"]) for r in rows[1]] == [0, 2, 4]
    assert float(rows[1][0]["val/AP"]) == pytest.approx(start_ap, abs=1e-9)
    assert [r["val/AP"] for r in rows[1][1:]] == [r["val/AP"] for r in rows[0]]
    assert float(rows[0][-1]["val/AP"]) != pytest.approx(start_ap, abs=1e-6)  # the rows after it saw trained weights
    weights = [load_file(run / "final.safetensors") for run in (plain, at_start)]
    assert weights[0].keys() == weights[1].keys()
    assert all(bool((weights[0][k] == weights[1][k]).all()) for k in weights[0])
