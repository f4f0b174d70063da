"""Initialise a backbone from ViT weights in timm layout (MAE, DINOv2, ImageNet ViTs): .safetensors or .pth.

timm itself is not needed: the layout is read from the file. Keys: cls_token, pos_embed (1, [1 +] s*s, C),
patch_embed.proj, blocks.i.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}, norm.
What changes on the way in, as ViTPose does when it starts from MAE:
- the patch embedding gains padding 2 (same weights); the patch size is kept (14 for DINOv2);
- no cls token in the sequence: `cls_token` is dropped and the cls slot of pos_embed is added to every token;
- the square pos_embed grid is resized bicubically to the crop's grid (14x14 -> 16x12 for 256x192).
The head is new (nothing of a classifier carries over); its weights are listed as fresh in the report.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from poseadapt.errors import PoseAdaptError
from poseadapt.interop.common import (
    ImportReport,
    count_indexed,
    guess_num_heads,
    load_weights,
    rename,
    strip_prefix,
)
from poseadapt.interop.safe_load import load_state_dict_file
from poseadapt.models.factory import head_config, with_codec
from poseadapt.models.pose_model import HeadSpec, PoseModel, PoseModelConfig
from poseadapt.models.vit import ViTConfig, resize_pos_embed
from poseadapt.schemas import get_schema

_B = r"blocks\.(\d+)\."
BACKBONE_KEYS = [
    (r"patch_embed\.proj\.(weight|bias)", r"backbone.patch_embed.proj.\1"),
    (r"pos_embed", "backbone.pos_embed"),
    (_B + r"(norm1|norm2)\.(weight|bias)", r"backbone.blocks.\1.\2.\3"),
    (_B + r"attn\.(qkv|proj)\.(weight|bias)", r"backbone.blocks.\1.attn.\2.\3"),
    (_B + r"ls(1|2)\.gamma", r"backbone.blocks.\1.ls\2.gamma"),
    (_B + r"mlp\.(fc1|fc2)\.(weight|bias)", r"backbone.blocks.\1.mlp.\2.\3"),
    (r"norm\.(weight|bias)", r"backbone.norm.\1"),
]


def split_pos_embed(pos: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, int]:
    """(cls slot or None, square grid tokens, side) of a timm pos_embed with or without a cls slot."""
    t = pos.shape[1]
    for prefix in (0, 1):
        side = math.isqrt(t - prefix)
        if side * side == t - prefix:
            return (pos[:, :1] if prefix else None), pos[:, prefix:], side
    raise PoseAdaptError(f"pos_embed with {t} tokens is neither a square grid nor a cls slot + square grid")


def import_timm(
    src: str | Path,
    schema: str | None = None,
    num_heads: int | None = None,
    img_size: tuple[int, int] = (256, 192),
    head: str = "classic",
) -> tuple[PoseModel, ImportReport]:
    """timm-layout ViT weights -> PoseModel with that backbone and a fresh head for `schema` (default coco17)."""
    report = ImportReport(source=str(src), format="timm")
    tensors, _ = load_state_dict_file(src, "timm checkpoint")
    tensors = strip_prefix(tensors, ("module.", "model.", "encoder.", "backbone."))
    proj = tensors.get("patch_embed.proj.weight")
    if proj is None or "pos_embed" not in tensors or "blocks.0.mlp.fc1.weight" not in tensors:
        raise PoseAdaptError(f"{src}: not a timm-layout ViT (needs patch_embed.proj, pos_embed, blocks.i.mlp.fc1)")
    embed = proj.shape[0]
    backbone = ViTConfig(
        embed_dim=embed,
        depth=count_indexed(tensors, _B),
        num_heads=guess_num_heads("timm", embed, num_heads),
        mlp_dim=tensors["blocks.0.mlp.fc1.weight"].shape[0],
        img_size=img_size,
        patch_size=proj.shape[-1],
        in_chans=proj.shape[1],
        qkv_bias="blocks.0.attn.qkv.bias" in tensors,
        layer_scale="blocks.0.ls1.gamma" in tensors,
    )
    key_schema = get_schema(schema or "coco17")
    h, w = backbone.img_size
    spec = HeadSpec(key_schema.name, key_schema.name, head_config(head, (w, h)))
    model = PoseModel(PoseModelConfig(backbone=backbone, heads=(spec,), arch="timm-vit"), [key_schema])

    mapped, report.unused = rename(tensors, BACKBONE_KEYS)
    cls_pos, grid, side = split_pos_embed(mapped["backbone.pos_embed"])
    pos = resize_pos_embed(grid, (side, side), backbone.grid_size)
    mapped["backbone.pos_embed"] = pos + cls_pos if cls_pos is not None else pos
    report.notes.append(
        f"pos_embed {side}x{side} resized to {backbone.grid_size[1]}x{backbone.grid_size[0]} (w x h, bicubic)"
        + ("; its cls slot added to every token" if cls_pos is not None else "")
    )
    if "cls_token" in report.unused:
        report.notes.append("cls_token dropped: the ViTPose layout has no cls token in the sequence")
    load_weights(model, mapped, report, may_be_missing=lambda key: key.startswith("heads."))
    report.notes.append(f"head '{spec.name}' ({head}) initialised fresh for schema '{key_schema.name}'")
    with_codec(model)
    model.provenance = {"imported_from": str(src), "format": "timm", "backbone_only": True}
    return model.eval(), report
