"""Import a Sapiens pose checkpoint (mmpretrain-layout `.pth`, loaded through the allow-list, never blind unpickling).

Sapiens uses the mmpose 1.x key layout (see `mmpose.py`): an mmpretrain ViT without cls token (pos_embed
(1, 3072, C) for 1024x768 inputs, added as is) and a HeatmapHead with InstanceNorm + SiLU after two deconvs and
two 1x1 convs. Sizes 0.3b / 0.6b / 1b / 2b are told apart by width; their head counts come from the Sapiens table.
Released checkpoints carry mmengine metadata (HistoryBuffer, numpy scalars): `safe_load` admits those as inert data.
"""

from __future__ import annotations

from pathlib import Path

from poseadapt.interop.common import ImportReport
from poseadapt.interop.mmpose import import_mmpretrain_layout
from poseadapt.models.pose_model import PoseModel


def import_sapiens(
    src: str | Path, schema: str | None = None, num_heads: int | None = None, grid: tuple[int, int] | None = None
) -> tuple[PoseModel, ImportReport]:
    """Sapiens pose `.pth` -> PoseModel (17 / 133 / 308 keypoints map to coco17 / coco_wholebody133 / goliath308)."""
    return import_mmpretrain_layout(src, "sapiens", schema, num_heads, grid)
