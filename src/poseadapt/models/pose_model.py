"""`PoseModel`: a ViT backbone, one head per dataset / schema, the schemas, the codec and the input spec.

Everything needed to run the model on a new image travels with it (and with its checkpoint): which keypoints each
head predicts, how pixels are normalised, the crop size, and how heatmaps decode to coordinates. The codec is kept
as a plain config dict and built on first use, so this module does not depend on the codec implementation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from poseadapt.errors import PoseAdaptError
from poseadapt.models.heads import HeadConfig, HeadSet, HeatmapHead, build_head, head_config_from_dict
from poseadapt.models.vit import VisionTransformer, ViTConfig
from poseadapt.schemas import KeypointSchema

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
_HEAD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class HeadSpec:
    """One output branch: a head named after its dataset, predicting the keypoints of `schema`."""

    name: str
    schema: str
    config: HeadConfig

    def __post_init__(self) -> None:
        if not _HEAD_NAME.match(self.name):
            raise PoseAdaptError(f"head name '{self.name}' must be letters, digits, '_' or '-' (it names weights)")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "schema": self.schema, "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadSpec:
        return cls(name=data["name"], schema=data["schema"], config=head_config_from_dict(data["config"]))


@dataclass(frozen=True)
class PoseModelConfig:
    """Architecture + pre/post-processing of a pose model; `codec` is a codec config dict (its `type` names it)."""

    backbone: ViTConfig
    heads: tuple[HeadSpec, ...]
    codec: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    arch: str = "custom"
    # >1: the crop is shrunk by this factor before the backbone and the heatmaps enlarged by it after the heads,
    # so the model takes (and its codec decodes) crops `input_downsample` x the backbone's size at the backbone's
    # cost: a cheap student for a teacher's crops (distillation), or a high-resolution pipeline on a small model
    input_downsample: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", tuple(self.heads))
        if not self.heads:
            raise PoseAdaptError("a pose model needs at least one head")
        if len(set(v < 0 for v in self.std)) > 1 or any(v == 0 for v in self.std):
            raise PoseAdaptError(f"std must be non-zero and of one sign in every channel, got {list(self.std)}")
        if int(self.input_downsample) < 1:
            raise PoseAdaptError(f"input_downsample must be a positive integer, got {self.input_downsample}")
        if self.input_downsample > 1 and any(h.config.kind != "heatmap" for h in self.heads):
            raise PoseAdaptError("input_downsample needs heatmap heads (SimCC bins are tied to the input size)")
        names = [h.name for h in self.heads]
        if len(set(names)) != len(names):
            raise PoseAdaptError(f"head names must be unique, got {names}")
        experts = self.backbone.num_experts
        if experts and len(self.heads) > 1 and len(self.heads) > experts:
            raise PoseAdaptError(f"{len(self.heads)} heads but only {experts} backbone experts")

    @property
    def input_inverted(self) -> bool:
        """Whether the model reads pixels inverted (255 - value): its std is negative (surgery.with_input_inverted)."""
        return all(v < 0 for v in self.std)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "arch": self.arch,
            "backbone": self.backbone.to_dict(),
            "heads": [h.to_dict() for h in self.heads],
            "codec": dict(self.codec),
            "mean": list(self.mean),
            "std": list(self.std),
        }
        if self.input_downsample != 1:
            data["input_downsample"] = int(self.input_downsample)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PoseModelConfig:
        try:
            return cls(
                backbone=ViTConfig.from_dict(data["backbone"]),
                heads=tuple(HeadSpec.from_dict(h) for h in data["heads"]),
                codec=dict(data.get("codec") or {}),
                mean=tuple(data.get("mean", IMAGENET_MEAN)),
                std=tuple(data.get("std", IMAGENET_STD)),
                arch=str(data.get("arch", "custom")),
                input_downsample=int(data.get("input_downsample", 1)),
            )
        except (KeyError, TypeError) as exc:
            raise PoseAdaptError(f"malformed model config: {exc}") from None


class PoseModel(nn.Module):
    """pixels (B, 3, H, W), normalised -> heatmaps (B, K, H/4, W/4) (or SimCC logits), per dataset index."""

    def __init__(self, config: PoseModelConfig, schemas: list[KeypointSchema] | tuple[KeypointSchema, ...]) -> None:
        super().__init__()
        schemas = tuple(schemas)
        if len(schemas) != len(config.heads):
            raise PoseAdaptError(f"{len(config.heads)} heads but {len(schemas)} schemas")
        for spec, schema in zip(config.heads, schemas, strict=True):
            if spec.schema != schema.name:
                raise PoseAdaptError(f"head '{spec.name}' expects schema '{spec.schema}', got '{schema.name}'")
        self.config = config
        self.schemas = schemas
        self.backbone = VisionTransformer(config.backbone)
        c, grid = config.backbone.embed_dim, config.backbone.grid_size
        self.heads = HeadSet(
            {
                s.name: build_head(s.config, c, len(schema), grid)
                for s, schema in zip(config.heads, schemas, strict=True)
            }
        )
        self.register_buffer("pixel_mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        self._codec: Any = None
        self.provenance: dict[str, Any] = {}

    # ------------------------------------------------------------------ views
    @property
    def input_size(self) -> tuple[int, int]:
        """(w, h) of the input crop, the codec convention."""
        h, w = self.config.backbone.img_size
        d = self.config.input_downsample
        return w * d, h * d

    @property
    def head_names(self) -> list[str]:
        return [h.name for h in self.config.heads]

    @property
    def schema(self) -> KeypointSchema:
        """The schema of the first (or only) head."""
        return self.schemas[0]

    def head_index(self, name: str) -> int:
        if name not in self.head_names:
            raise PoseAdaptError(f"model has no head '{name}' (heads: {', '.join(self.head_names)})")
        return self.head_names.index(name)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(w, h) of the first head's heatmaps."""
        head = next(iter(self.heads.values()))
        if not isinstance(head, HeatmapHead):
            raise PoseAdaptError("the model's head is not a heatmap head")
        gh, gw = self.config.backbone.grid_size
        f = head.output_stride_factor * self.config.input_downsample
        return gw * f, gh * f

    @property
    def codec(self) -> Any:
        """The codec object, built from the stored config on first use."""
        if self._codec is None:
            self._codec = build_codec(self.config.codec)
        return self._codec

    # ------------------------------------------------------------------ forward
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """RGB images (B, 3, H, W) in 0..255 (uint8 or float) -> the model's normalised input."""
        return (images.float() - self.pixel_mean) / self.pixel_std

    def forward_features(self, pixels: torch.Tensor, dataset_index: torch.Tensor | int | None = None) -> torch.Tensor:
        d = self.config.input_downsample
        if d > 1:  # each pixel the mean of a d x d block (box antialiasing; exports to ONNX as AveragePool)
            pixels = nn.functional.avg_pool2d(pixels, d)
        return self.backbone(pixels, self._expert_index(dataset_index, pixels))

    def head_outputs(self, features: torch.Tensor, dataset_index: torch.Tensor | int | None = None) -> Any:
        """The heads on backbone features, heatmaps enlarged to the codec's size when `input_downsample` > 1."""
        out = self.heads(features, dataset_index)
        d = self.config.input_downsample
        if d > 1:
            size = (out.shape[-2] * d, out.shape[-1] * d)
            out = nn.functional.interpolate(out, size=size, mode="bilinear", align_corners=True)
        return out

    def forward(self, pixels: torch.Tensor, dataset_index: torch.Tensor | int | None = None) -> Any:
        return self.head_outputs(self.forward_features(pixels, dataset_index), dataset_index)

    def _expert_index(self, dataset_index: torch.Tensor | int | None, pixels: torch.Tensor) -> Any:
        if self.config.backbone.num_experts and dataset_index is None:
            if len(self.heads) > 1:
                raise PoseAdaptError("this model has task experts and several heads: pass dataset_index")
            return 0
        return dataset_index


def build_codec(config: dict[str, Any]) -> Any:
    """Instantiate `poseadapt.codecs.<type>(**rest)` from a codec config dict."""
    if not config or "type" not in config:
        raise PoseAdaptError("model has no codec config")
    import poseadapt.codecs as codecs

    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k != "type"}
    cls = getattr(codecs, config["type"], None)
    if cls is None:
        raise PoseAdaptError(f"unknown codec type '{config['type']}'")
    return cls(**kwargs)
