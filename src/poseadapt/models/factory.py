"""`create_model(name, schema=...)`: a PoseModel from a small table of published backbone sizes.

The table is the whole registry (timm style): ViTPose S/B/L/H (drop path and ViTPose++ part features as released),
Sapiens 0.3b-2b (1024x768 input, Sapiens head) and a tiny ViT for tests and the demo.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from poseadapt.errors import PoseAdaptError
from poseadapt.models.heads import HeadConfig, SimCCHeadConfig, classic_head, light_head, sapiens_head, simple_head
from poseadapt.models.pose_model import HeadSpec, PoseModel, PoseModelConfig
from poseadapt.models.vit import ViTConfig
from poseadapt.schemas import KeypointSchema, get_schema

# name -> (embed_dim, depth, num_heads, mlp_dim, drop_path_rate, ViTPose++ part_features)
VIT_SIZES: dict[str, tuple[int, int, int, int, float, int]] = {
    "vit_tiny": (64, 2, 2, 256, 0.0, 16),
    "vit_synth": (192, 6, 3, 768, 0.0, 48),  # the embedded foundation model's backbone (with a conv stem)
    "vit_small": (384, 12, 12, 1536, 0.1, 96),
    "vit_base": (768, 12, 12, 3072, 0.3, 192),
    "vit_large": (1024, 24, 16, 4096, 0.5, 256),
    "vit_huge": (1280, 32, 16, 5120, 0.55, 320),
    "sapiens_0.3b": (1024, 24, 16, 4096, 0.0, 0),
    "sapiens_0.6b": (1280, 32, 16, 5120, 0.0, 0),
    "sapiens_1b": (1536, 40, 24, 6144, 0.0, 0),
    "sapiens_2b": (1920, 48, 32, 7680, 0.0, 0),
}
# entries whose layout differs from plain ViTPose beyond the sizes above
VIT_EXTRAS: dict[str, dict[str, Any]] = {"vit_synth": {"conv_stem": 2}}
HEAD_KINDS = ("classic", "light", "simple", "sapiens", "simcc")


def list_models() -> list[str]:
    return list(VIT_SIZES)


def vit_config(name: str, img_size: tuple[int, int] | None = None, num_experts: int = 0, **overrides: Any) -> ViTConfig:
    """Backbone config for a table entry; `img_size` is (h, w) (default 256x192, Sapiens 1024x768)."""
    if name not in VIT_SIZES:
        raise PoseAdaptError(f"unknown model '{name}' (known: {', '.join(VIT_SIZES)})")
    embed, depth, heads, mlp, dpr, part = VIT_SIZES[name]
    if img_size is None:
        img_size = (1024, 768) if name.startswith("sapiens") else (256, 192)
    if num_experts and not part:
        raise PoseAdaptError(f"'{name}' has no ViTPose++ expert layout")
    cfg = ViTConfig(
        embed_dim=embed,
        depth=depth,
        num_heads=heads,
        mlp_dim=mlp,
        img_size=img_size,
        drop_path_rate=dpr,
        num_experts=num_experts,
        part_features=part if num_experts else 0,
        **VIT_EXTRAS.get(name, {}),
    )
    return replace(cfg, **overrides) if overrides else cfg


def head_config(kind: str, input_size: tuple[int, int] = (192, 256)) -> HeadConfig:
    """A head preset by kind; `input_size` (w, h) only matters for SimCC."""
    if kind == "classic":
        return classic_head()
    if kind == "light":
        return light_head()
    if kind == "simple":
        return simple_head()
    if kind == "sapiens":
        return sapiens_head()
    if kind == "simcc":
        return SimCCHeadConfig(input_size=input_size)
    raise PoseAdaptError(f"unknown head kind '{kind}' (known: {', '.join(HEAD_KINDS)})")


def default_codec(head: HeadConfig, input_size: tuple[int, int], heatmap_size: tuple[int, int]) -> dict[str, Any]:
    """UDP heatmaps (sigma 2 at 1/4 resolution, scaled with heatmap size as Sapiens does) or SimCC."""
    if isinstance(head, SimCCHeadConfig):
        return {"type": "SimCC", "input_size": list(input_size), "split_ratio": head.split_ratio, "sigma": [4.9, 5.66]}
    sigma = 6.0 if heatmap_size[1] >= 256 else round(4.0 * heatmap_size[1] / 64.0) / 2.0
    return {"type": "UDPHeatmap", "input_size": list(input_size), "heatmap_size": list(heatmap_size), "sigma": sigma}


def create_model(
    name: str,
    schema: str | KeypointSchema | list[str | KeypointSchema] = "coco17",
    head: str | HeadConfig | None = None,
    *,
    img_size: tuple[int, int] | None = None,
    num_experts: int = 0,
    head_names: list[str] | None = None,
    **backbone_overrides: Any,
) -> PoseModel:
    """A randomly initialised PoseModel: backbone `name`, one head per schema (named after it unless `head_names`)."""
    schemas = [get_schema(s) for s in (schema if isinstance(schema, list) else [schema])]
    backbone = vit_config(name, img_size, num_experts, **backbone_overrides)
    if head is None:
        head = "sapiens" if name.startswith("sapiens") else "classic"
    h, w = backbone.img_size
    hcfg = head_config(head, (w, h)) if isinstance(head, str) else head
    names = head_names or [s.name for s in schemas]
    if len(names) != len(schemas):
        raise PoseAdaptError(f"{len(names)} head names for {len(schemas)} schemas")
    specs = tuple(HeadSpec(n, s.name, hcfg) for n, s in zip(names, schemas, strict=True))
    config = PoseModelConfig(backbone=backbone, heads=specs, arch=name)
    return with_codec(PoseModel(config, schemas))


def with_codec(model: PoseModel) -> PoseModel:
    """Fill in the default codec for a model built from a config without one."""
    if model.config.codec:
        return model
    hcfg = model.config.heads[0].config
    hm = (0, 0) if isinstance(hcfg, SimCCHeadConfig) else model.heatmap_size
    model.config = replace(model.config, codec=default_codec(hcfg, model.input_size, hm))
    return model
