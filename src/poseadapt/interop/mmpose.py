"""Import an mmpose 1.x ViTPose checkpoint (mmpretrain VisionTransformer backbone + HeatmapHead or RTMCCHead).

RTMPose's RTMCC head (final_layer conv, mlp = ScaleNorm + Linear, gau = the GAU block with ScaleNorm, cls_x /
cls_y) imports key for key onto our `SimCCHead`, with the same names. RTMPose's own backbone, CSPNeXt, does not:
only ViT backbones are supported, and a CSPNeXt checkpoint is refused with one line saying so.

Key layout: backbone.{patch_embed.projection, pos_embed, layers.i.{ln1, attn.qkv, attn.proj, ln2, ffn.layers.0.0,
ffn.layers.1}, ln1}, head.{deconv_layers, conv_layers, final_layer}. Mind the pos_embed semantics: with
with_cls_token=False mmpretrain stores (1, N, C) and adds it as is (the converter from the original checkpoints
dropped the cls slot instead of folding it in), so unlike the original ViTPose layout nothing is summed here.
Sapiens pose checkpoints use the same layout (see `sapiens.py`).
"""

from __future__ import annotations

from pathlib import Path

from poseadapt.errors import PoseAdaptError
from poseadapt.interop.common import (
    ImportReport,
    infer_heatmap_head,
    infer_simcc_head,
    load_weights,
    rename,
    resolve_schema,
    strip_prefix,
    sub_dict,
)
from poseadapt.interop.safe_load import load_state_dict_file
from poseadapt.interop.vitpose import backbone_config
from poseadapt.models.factory import with_codec
from poseadapt.models.heads import HeadConfig
from poseadapt.models.pose_model import HeadSpec, PoseModel, PoseModelConfig

_L = r"backbone\.layers\.(\d+)\."
BACKBONE_KEYS = [
    (r"backbone\.patch_embed\.projection\.(weight|bias)", r"backbone.patch_embed.proj.\1"),
    (r"backbone\.pos_embed", "backbone.pos_embed"),
    (_L + r"ln1\.(weight|bias)", r"backbone.blocks.\1.norm1.\2"),
    (_L + r"attn\.(qkv|proj)\.(weight|bias)", r"backbone.blocks.\1.attn.\2.\3"),
    (_L + r"ln2\.(weight|bias)", r"backbone.blocks.\1.norm2.\2"),
    (_L + r"ffn\.layers\.0\.0\.(weight|bias)", r"backbone.blocks.\1.mlp.fc1.\2"),
    (_L + r"ffn\.layers\.1\.(weight|bias)", r"backbone.blocks.\1.mlp.fc2.\2"),
    (r"backbone\.ln1\.(weight|bias)", r"backbone.norm.\1"),
]
HEAD_KEYS = [(r"head\.((?:deconv_layers|conv_layers|final_layer|mlp|gau|cls_x|cls_y)\..+)", r"heads.{head}.\1")]
CSPNEXT_PREFIXES = ("backbone.stem.", "backbone.stage1.", "backbone.stage4.")
FORMAT_NAMES = {"mmpose": "MMPose", "sapiens": "Sapiens"}  # how messages name the file of each format


def import_mmpretrain_layout(
    src: str | Path,
    fmt: str,
    schema: str | None = None,
    num_heads: int | None = None,
    grid: tuple[int, int] | None = None,
) -> tuple[PoseModel, ImportReport]:
    """An mmpretrain-ViT + HeatmapHead checkpoint (mmpose 1.x ViTPose, Sapiens) -> PoseModel."""
    report = ImportReport(source=str(src), format=fmt)
    tensors, _ = load_state_dict_file(src, f"{FORMAT_NAMES.get(fmt, fmt)} checkpoint")
    tensors = strip_prefix(tensors, ("module.",))
    if any(k.startswith(CSPNEXT_PREFIXES) for k in tensors):
        raise PoseAdaptError(
            f"{src}: a CSPNeXt backbone (RTMPose) is not supported: poseadapt imports ViT backbones only "
            "(an RTMCC head imports from an mmpose 1.x checkpoint with a ViT backbone)"
        )
    if "backbone.cls_token" in tensors:
        raise PoseAdaptError(
            f"{src}: the backbone has a cls token in its sequence, which is not the ViTPose / Sapiens layout"
        )
    backbone = backbone_config(
        sub_dict(tensors, "backbone."), family="sapiens" if fmt == "sapiens" else "vitpose", num_heads=num_heads,
        grid=grid, pos_has_cls_slot=False, block_prefix="layers", fc1_key="ffn.layers.0.0",
    )  # fmt: skip
    head = sub_dict(tensors, "head.")
    if not head:
        raise PoseAdaptError(f"{src}: no 'head.*' weights")
    if "cls_x.weight" in head:  # RTMCC (SimCC) head
        h, w = backbone.img_size
        head_cfg: HeadConfig = infer_simcc_head(head, f"{src} head", (w, h), backbone.grid_size)
    else:
        head_cfg = infer_heatmap_head(head, f"{src} head")
    key_schema = resolve_schema(head["final_layer.weight"].shape[0], schema, None, report)
    table = BACKBONE_KEYS + [(p, r.format(head=key_schema.name)) for p, r in HEAD_KEYS]
    mapped, report.unused = rename(tensors, table)
    config = PoseModelConfig(backbone=backbone, heads=(HeadSpec(key_schema.name, key_schema.name, head_cfg),), arch=fmt)
    model = PoseModel(config, [key_schema])
    load_weights(model, mapped, report)
    with_codec(model)
    model.provenance = {"imported_from": str(src), "format": fmt}
    return model.eval(), report


def import_mmpose(
    src: str | Path, schema: str | None = None, num_heads: int | None = None, grid: tuple[int, int] | None = None
) -> tuple[PoseModel, ImportReport]:
    """mmpose 1.x ViTPose `.pth` -> PoseModel."""
    return import_mmpretrain_layout(src, "mmpose", schema, num_heads, grid)
