"""New-skeleton transfer: a merged single-dataset ViT from a PoseBH run, a head for a held-back skeleton, the
embedding loaded and frozen, new prototypes learnt by momentum (backbone frozen), then backbone + head train."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from test_posebh_train import posebh_recipe


def test_transfer_freezes_embedding_and_learns_new_prototypes(tiny_recipe, cli_train, tmp_path: Path) -> None:
    from poseadapt.interop.checkpoint import load_checkpoint, save_checkpoint
    from poseadapt.models.surgery import merge_experts
    from poseadapt.train.build import build_trainer
    from poseadapt.train.recipe import recipe_from_dict

    source = tmp_path / "posebh"
    recipe = posebh_recipe(tiny_recipe)
    recipe["schedule"]["epochs"] = 2
    cli_train(recipe, source)
    merged = merge_experts(load_checkpoint(source / "final.safetensors"), "coco17")
    save_checkpoint(merged, tmp_path / "coco.safetensors")

    transfer = copy.deepcopy(tiny_recipe)
    transfer["model"].update({"schema": "wheelchair25", "checkpoint": str(tmp_path / "coco.safetensors")})
    transfer["data"] = {"train": {"synth": {"population": "wheelchair", "n": 8, "size": 96, "seed": 7},
                                  "schema": "wheelchair25"}}  # fmt: skip
    transfer["schedule"]["epochs"] = 2
    options = {k: v for k, v in recipe["adapt"][0]["prototypes"].items() if k in ("dim", "channels", "hidden")}
    transfer["adapt"] = [{"prototypes": {**options, "stages": [1, 1], "transfer": str(source / "last.pt")}}]
    trainer = build_trainer(recipe_from_dict(transfer), tmp_path / "transfer")
    method = trainer.methods[0]
    saved = torch.load(source / "last.pt", weights_only=True)["methods"]["adapt.0.prototypes"]["embedding"]
    bank = method.aux["bank"]
    assert bank.prototypes.shape[0] == 25  # fresh prototypes for the new skeleton only
    backbone_before = {k: v.clone() for k, v in trainer.module.backbone.state_dict().items()}
    trainer.max_epochs = 1  # stage 1: prototypes learn, backbone frozen, head trains
    trainer.fit()
    assert all(torch.equal(v, trainer.module.backbone.state_dict()[k]) for k, v in backbone_before.items())
    assert method.moved.float().mean() > 0.5
    for key, value in method.aux["embedding"].state_dict().items():
        assert torch.equal(value, saved[key]), key  # frozen: not even BatchNorm statistics move
    assert method.trainable("backbone.blocks.0.attn.qkv.weight", 1, 2)  # then everything fine-tunes
