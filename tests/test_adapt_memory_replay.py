"""`memory_replay` through the engine: a union head (target keypoints, then the source-only ones), the frozen source
model supervising the source-only keypoints on target images, and either head in the export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from poseadapt.interop.checkpoint import load_checkpoint, save_checkpoint
from poseadapt.models import create_model
from poseadapt.schemas import get_schema
from poseadapt.train import Hook, build_trainer, recipe_from_dict

INPUT = (48, 64)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def source_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A halpe26 source model with O(1) heatmaps (so its peaks pass the threshold)."""
    torch.manual_seed(5)
    model = create_model("vit_tiny", "halpe26", "simple", img_size=(INPUT[1], INPUT[0]))
    for m in model.heads.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    return save_checkpoint(model, tmp_path_factory.mktemp("src") / "halpe26.safetensors")


class RecordWeights(Hook):
    """Keeps each batch dict: memory replay grows and fills its targets in that dict, after the hooks, before the
    forward."""

    def __init__(self) -> None:
        self.batches: list[dict] = []

    def before_step(self, trainer, batch) -> None:
        self.batches.append(batch)


def test_memory_replay_trains_a_union_head_and_exports_either(tmp_path: Path, tiny_recipe: dict, source_ckpt) -> None:
    tiny_recipe["model"]["schema"] = "coco17"
    tiny_recipe["adapt"] = [{"memory_replay": {"teacher": str(source_ckpt), "score_threshold": 0.05}}]
    rec = RecordWeights()
    trainer = build_trainer(recipe_from_dict(tiny_recipe), tmp_path / "union", hooks=(rec,))
    coco, halpe = get_schema("coco17"), get_schema("halpe26")
    replayed = [k for k in halpe.keypoints if k not in coco.keypoints]
    union = trainer.module.schemas[0]
    assert list(union.keypoints) == [*coco.keypoints, *replayed] and len(union) == 26
    result = trainer.fit()
    assert result.status == "completed"
    for batch in rec.batches:  # the data's own labels stay; the teacher fills source-only keypoints only
        w = batch["target_weight"]
        assert w.shape[1] == 26 and (w[:, 17:] >= 0).all() and (w[:, 17:] <= 1).all()
    assert sum(float((b["target_weight"][:, 17:] > 0).sum()) for b in rec.batches) > 0
    logged = (tmp_path / "union" / "adapt_log.csv").read_text().splitlines()[0]
    assert "memory_replay/pseudo_labels" in logged
    final = load_checkpoint(result.final_checkpoint)
    assert len(final.schemas[0]) == 26 and final.provenance["memory_replay"]["replayed"] == replayed

    tiny_recipe["adapt"][0]["memory_replay"]["export"] = "target"
    result = build_trainer(recipe_from_dict(tiny_recipe), tmp_path / "target").fit()
    final = load_checkpoint(result.final_checkpoint)
    assert list(final.schemas[0].keypoints) == list(coco.keypoints)
    assert [next(iter(m)) for m in final.provenance["adapt"]] == ["memory_replay"]


def test_memory_replay_defaults_to_model_checkpoint_as_teacher(tmp_path: Path, tiny_recipe: dict, source_ckpt):
    tiny_recipe["model"] |= {"schema": "coco17", "checkpoint": str(source_ckpt)}  # head swapped to coco17
    tiny_recipe["adapt"] = ["memory_replay"]
    trainer = build_trainer(recipe_from_dict(tiny_recipe), tmp_path / "run")
    assert len(trainer.module.schemas[0]) == 26
    assert trainer.methods[0].labeller is not None
