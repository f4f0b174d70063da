"""Import an original ViTPose / ViTPose++ checkpoint (mmpose 0.x layout, `.pth` with a 'state_dict' entry).

Layout: backbone.{patch_embed.proj, pos_embed (1, N+1, C), blocks.i.*, last_norm}, keypoint_head.* (COCO) and,
for ViTPose++, blocks.i.mlp.experts.k.* and associate_keypoint_heads.{0..4}.* (AIC, MPII, AP-10K, APT-36K,
WholeBody). Its forward adds pos[:, 1:] + pos[:, :1] (no cls token in the sequence); `cls_token` is unused.
"""

from __future__ import annotations

from pathlib import Path

import torch

from poseadapt.errors import PoseAdaptError
from poseadapt.interop.common import (
    VITPOSE_PLUS_DATASETS,
    ImportReport,
    count_indexed,
    grid_from_tokens,
    guess_num_heads,
    infer_heatmap_head,
    load_weights,
    pos_embed_with_cls_slot,
    rename,
    resolve_schema,
    strip_prefix,
    sub_dict,
)
from poseadapt.interop.safe_load import load_state_dict_file
from poseadapt.models.factory import with_codec
from poseadapt.models.pose_model import HeadSpec, PoseModel, PoseModelConfig
from poseadapt.models.vit import ViTConfig

_B = r"backbone\.blocks\.(\d+)\."
BACKBONE_KEYS = [
    (r"backbone\.patch_embed\.proj\.(weight|bias)", r"backbone.patch_embed.proj.\1"),
    (r"backbone\.pos_embed", "backbone.pos_embed"),
    (_B + r"(norm1|norm2)\.(weight|bias)", r"backbone.blocks.\1.\2.\3"),
    (_B + r"attn\.(qkv|proj)\.(weight|bias)", r"backbone.blocks.\1.attn.\2.\3"),
    (_B + r"mlp\.(fc1|fc2)\.(weight|bias)", r"backbone.blocks.\1.mlp.\2.\3"),
    (_B + r"mlp\.experts\.(\d+)\.(weight|bias)", r"backbone.blocks.\1.mlp.experts.\2.\3"),
    (r"backbone\.last_norm\.(weight|bias)", r"backbone.norm.\1"),
]


def head_keys(names: list[str]) -> list[tuple[str, str]]:
    """keypoint_head -> the first head; associate_keypoint_heads.i -> head i + 1 (ViTPose++ dataset order)."""
    rows = [(r"keypoint_head\.(.+)", rf"heads.{names[0]}.\1")]
    rows += [(rf"associate_keypoint_heads\.{i}\.(.+)", rf"heads.{name}.\1") for i, name in enumerate(names[1:])]
    return rows


def backbone_config(
    tensors: dict[str, torch.Tensor],
    *,
    family: str,
    num_heads: int | None,
    grid: tuple[int, int] | None,
    pos_has_cls_slot: bool,
    block_prefix: str,
    fc1_key: str,
    expert_key: str | None = None,
) -> ViTConfig:
    """A ViT config read from backbone tensor shapes (keys already relative to the backbone)."""
    proj = tensors.get("patch_embed.proj.weight", tensors.get("patch_embed.projection.weight"))
    if proj is None or "pos_embed" not in tensors:
        raise PoseAdaptError("no patch embedding / pos_embed weights: not a ViT backbone")
    embed, in_chans, patch = proj.shape[0], proj.shape[1], proj.shape[-1]
    depth = count_indexed(tensors, rf"{block_prefix}\.(\d+)\.")
    if depth == 0:
        raise PoseAdaptError("no transformer blocks found in the backbone")
    n = tensors["pos_embed"].shape[1] - (1 if pos_has_cls_slot else 0)
    gh, gw = grid_from_tokens(n, grid)
    experts = count_indexed(tensors, rf"{block_prefix}\.0\.{expert_key}\.(\d+)\.") if expert_key else 0
    part = tensors[f"{block_prefix}.0.{expert_key}.0.weight"].shape[0] if experts else 0
    return ViTConfig(
        embed_dim=embed,
        depth=depth,
        num_heads=guess_num_heads(family, embed, num_heads),
        mlp_dim=tensors[f"{block_prefix}.0.{fc1_key}.weight"].shape[0],
        img_size=(gh * patch, gw * patch),
        patch_size=patch,
        in_chans=in_chans,
        qkv_bias=f"{block_prefix}.0.attn.qkv.bias" in tensors,
        num_experts=experts if experts > 1 else 0,
        part_features=part if experts > 1 else 0,
    )


def import_vitpose(
    src: str | Path, schema: str | None = None, num_heads: int | None = None, grid: tuple[int, int] | None = None
) -> tuple[PoseModel, ImportReport]:
    """Original ViTPose / ViTPose++ `.pth` -> PoseModel (all heads kept, in ViTPose++ dataset order)."""
    report = ImportReport(source=str(src), format="vitpose")
    tensors, _ = load_state_dict_file(src, "ViTPose checkpoint")
    tensors = strip_prefix(tensors, ("module.",))
    bb = sub_dict(tensors, "backbone.")
    backbone = backbone_config(
        bb, family="vitpose", num_heads=num_heads, grid=grid, pos_has_cls_slot=True, block_prefix="blocks",
        fc1_key="mlp.fc1", expert_key="mlp.experts",
    )  # fmt: skip
    n_assoc = count_indexed(tensors, r"associate_keypoint_heads\.(\d+)\.")
    head_prefixes = ["keypoint_head."] + [f"associate_keypoint_heads.{i}." for i in range(n_assoc)]
    heads, schemas = [], []
    for i, prefix in enumerate(head_prefixes):
        head = sub_dict(tensors, prefix)
        if not head:
            raise PoseAdaptError(f"{src}: no '{prefix}*' weights")
        cfg = infer_heatmap_head(head, f"{src} {prefix.rstrip('.')}")
        k = head["final_layer.weight"].shape[0]
        if len(head_prefixes) == 1:
            key_schema = resolve_schema(k, schema, "coco17", report)
            name = key_schema.name
        else:
            name, preferred = VITPOSE_PLUS_DATASETS[i] if i < len(VITPOSE_PLUS_DATASETS) else (f"dataset{i}", None)
            key_schema = resolve_schema(k, schema if i == 0 else None, preferred, report)
        heads.append(HeadSpec(name, key_schema.name, cfg))
        schemas.append(key_schema)
    table = BACKBONE_KEYS + head_keys([h.name for h in heads])
    mapped, report.unused = rename(tensors, table)
    mapped["backbone.pos_embed"] = pos_embed_with_cls_slot(mapped["backbone.pos_embed"])
    model = PoseModel(PoseModelConfig(backbone=backbone, heads=tuple(heads), arch="vitpose"), schemas)
    load_weights(model, mapped, report)
    with_codec(model)
    model.provenance = {"imported_from": str(src), "format": "vitpose"}
    return model.eval(), report
