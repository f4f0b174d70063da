"""Parameter-choosing methods through `poseadapt train`: what trained and what did not, read from the run's files.

The initial weights are rebuilt from the recipe (`build_model` seeds with `train.seed`, as the run does); the trained
ones come from the run's `last.pt`. Frozen parameters must be bit-identical (AdamW skips a parameter without a
gradient, weight decay included), trained ones must have moved.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from poseadapt.train import recipe_from_dict
from poseadapt.train.build import build_model
from poseadapt.train.checkpointing import load_train_state

DEPTH = 2  # vit_tiny's blocks


pytestmark = pytest.mark.usefixtures("one_thread")


def initial_weights(recipe: dict) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in build_model(recipe_from_dict(recipe)).state_dict().items()}


def moved(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str = "") -> dict[str, bool]:
    """Parameter (and buffer) name -> whether it changed, for names starting with `prefix`."""
    keys = [k for k, v in before.items() if k.startswith(prefix) and v.is_floating_point()]
    return {k: not torch.equal(before[k], after[k]) for k in keys}


def test_freeze_blocks_trains_only_the_last_blocks_and_heads(tmp_path: Path, tiny_recipe, cli_train) -> None:
    tiny_recipe["adapt"] = [{"freeze_blocks": {"blocks": 1}}]
    init = initial_weights(tiny_recipe)
    summary = cli_train(tiny_recipe, tmp_path / "run")
    assert summary["status"] == "completed" and summary["iteration"] == 2
    state = load_train_state(tmp_path / "run" / "last.pt")["model"]
    changed = moved(init, state)
    frozen = ("backbone.patch_embed.", "backbone.pos_embed", "backbone.blocks.0.")
    assert [k for k, c in changed.items() if k.startswith(frozen) and c] == []  # bit-identical
    assert any(k.startswith("backbone.blocks.0.") for k in changed)
    trained = [k for k in changed if k.startswith(("backbone.blocks.1.", "backbone.norm.", "heads."))]
    assert trained and all(changed[k] for k in trained if "weight" in k), [k for k in trained if not changed[k]]


def test_layer_decay_scales_lr_per_block_and_trains_everything(tmp_path: Path, tiny_recipe, cli_train) -> None:
    rate = 0.5
    tiny_recipe["adapt"] = [{"layer_decay": {"rate": rate}}]
    init = initial_weights(tiny_recipe)
    cli_train(tiny_recipe, tmp_path / "run")
    saved = load_train_state(tmp_path / "run" / "last.pt")
    changed = moved(init, saved["model"])
    assert all(changed[k] for k in changed if k.endswith(".weight")), [k for k, c in changed.items() if not c]
    groups = saved["optimizer"]["param_groups"]
    scales = {g["layer_id"]: g["lr_scale"] for g in groups}
    # embeddings rate^3, block 0 rate^2, block 1 rate, final norm and heads 1
    assert scales == pytest.approx({0: rate**3, 1: rate**2, 2: rate, 3: 1.0})
    for g in groups:
        assert g["initial_lr"] == pytest.approx(1e-3 * rate ** (DEPTH + 1 - g["layer_id"]))
    # the same gradient step at a smaller lr: early layers moved less than late ones (Adam steps ~ lr)
    first = (saved["model"]["backbone.blocks.0.attn.qkv.weight"] - init["backbone.blocks.0.attn.qkv.weight"]).abs()
    last = (saved["model"]["backbone.blocks.1.attn.qkv.weight"] - init["backbone.blocks.1.attn.qkv.weight"]).abs()
    assert first.max() < last.max()


def test_layer_decay_and_optim_layer_decay_together_is_one_line(tmp_path: Path, tiny_recipe, capsys) -> None:
    import yaml

    from poseadapt.cli.main import main

    tiny_recipe["adapt"] = [{"layer_decay": {"rate": 0.5}}]
    tiny_recipe["optim"]["layer_decay"] = 0.8
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    with pytest.raises(SystemExit) as exc:
        main(["train", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: layer decay is set twice") and err.count("\n") == 1


def test_head_then_full_freezes_the_backbone_until_the_switch(tmp_path: Path, tiny_recipe, cli_train) -> None:
    tiny_recipe["adapt"] = [{"head_then_full": {"head_epochs": 1}}]
    init = initial_weights(tiny_recipe)
    out = tmp_path / "run"
    first = cli_train(tiny_recipe, out)  # epoch 1 only: heads alone
    assert first["epoch"] == 1
    after_one = load_train_state(out / "last.pt")["model"]
    assert not any(moved(init, after_one, "backbone.").values())  # bit-identical backbone
    assert any(moved(init, after_one, "heads.").values())

    second = cli_train(tiny_recipe, out, "schedule.epochs=2", resume=True)  # the switch: everything trains
    assert second["status"] == "completed" and second["epoch"] == 2 and second["iteration"] == 4
    after_two = load_train_state(out / "last.pt")["model"]
    backbone = moved(after_one, after_two, "backbone.")
    assert all(backbone[k] for k in backbone if k.endswith(".weight")), [k for k, c in backbone.items() if not c]
    assert any(moved(after_one, after_two, "heads.").values())
    logged = (out / "adapt_log.csv").read_text()
    assert "head_then_full/stage_switch" in logged.splitlines()[0]
