"""Shared machinery of the importers: key tables, loading with a report, head and grid inference, schemas.

Each importer maps foreign keys onto ours with one readable table of (regex, replacement) rows, applies the few
value transforms its layout needs (pos_embed cls slot, split qkv), infers the architecture from tensor shapes, and
calls `load_weights`, which fails on any shape mismatch or missing weight and reports unused keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from poseadapt.errors import PoseAdaptError, SchemaError
from poseadapt.models.heads import HeatmapHeadConfig, SimCCHeadConfig
from poseadapt.models.pose_model import PoseModel
from poseadapt.schemas import KeypointSchema, get_schema

KeyTable = list[tuple[str, str]]

# keypoint count -> the built-in schema a checkpoint with that many keypoints most likely uses
SCHEMA_BY_COUNT = {17: "coco17", 14: "aic14", 16: "mpii16", 26: "halpe26", 133: "coco_wholebody133", 308: "goliath308"}
# ViTPose++ dataset index -> (head name, schema): keypoint_head, then associate_keypoint_heads.0..4
VITPOSE_PLUS_DATASETS = [
    ("coco", "coco17"),
    ("aic", "aic14"),
    ("mpii", "mpii16"),
    ("ap10k", "ap10k17"),
    ("apt36k", "ap10k17"),
    ("wholebody", "coco_wholebody133"),
]
# embed dim -> attention heads, per family (head count is not recoverable from weights)
NUM_HEADS = {
    "vitpose": {384: 12, 768: 12, 1024: 16, 1280: 16},
    "sapiens": {1024: 16, 1280: 16, 1536: 24, 1920: 32},
    "timm": {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16, 1536: 24},
}


@dataclass
class ImportReport:
    """What an import did: counts, keys left unused, weights initialised fresh, and notes."""

    source: str
    format: str
    loaded: int = 0
    unused: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "loaded": self.loaded,
            "unused": self.unused,
            "missing": self.missing,
            "notes": self.notes,
        }


class Renamed(dict):
    """Mapped tensors that remember each key's name in the source file (`origin`), for the report."""

    origin: dict[str, str]


def rename(tensors: dict[str, torch.Tensor], table: KeyTable) -> tuple[Renamed, list[str]]:
    """Apply the first fully matching (pattern, replacement) row to each key; keys no row matches are unused."""
    compiled = [(re.compile(p), r) for p, r in table]
    out = Renamed()
    out.origin = {}
    unused: list[str] = []
    for key, value in tensors.items():
        for pattern, repl in compiled:
            if pattern.fullmatch(key):
                new = pattern.sub(repl, key)
                out[new] = value
                out.origin[new] = key
                break
        else:
            unused.append(key)
    return out, unused


def load_weights(
    model: PoseModel,
    tensors: dict[str, torch.Tensor],
    report: ImportReport,
    may_be_missing: Callable[[str], bool] = lambda key: False,
) -> None:
    """Copy mapped tensors into `model`: shape mismatches and unexpected missing weights raise; the rest is reported."""
    own = model.state_dict()
    usable: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if key not in own:
            report.unused.append(getattr(tensors, "origin", {}).get(key, key))
            continue
        if tuple(value.shape) != tuple(own[key].shape):
            raise PoseAdaptError(
                f"{report.source}: weight '{key}' has shape {tuple(value.shape)} but the model expects "
                f"{tuple(own[key].shape)}"
            )
        usable[key] = value.to(own[key].dtype)
    missing = [k for k in own if k not in usable]
    bad = [k for k in missing if not k.endswith("num_batches_tracked") and not may_be_missing(k)]
    if bad:
        more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
        raise PoseAdaptError(f"{report.source}: no weights for {', '.join(bad[:5])}{more}")
    model.load_state_dict(usable, strict=False)
    report.loaded = len(usable)
    report.missing = [k for k in missing if not k.endswith("num_batches_tracked")]


def strip_prefix(tensors: dict[str, torch.Tensor], prefixes: Iterable[str]) -> dict[str, torch.Tensor]:
    """Drop a wrapper prefix ('module.', ...) shared by every key."""
    for prefix in prefixes:
        if tensors and all(k.startswith(prefix) for k in tensors):
            return {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def sub_dict(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def count_indexed(tensors: dict[str, torch.Tensor], pattern: str) -> int:
    """1 + the largest integer captured by `pattern` (e.g. r'backbone\\.blocks\\.(\\d+)\\.') in any key, or 0."""
    rx = re.compile(pattern)
    found = [int(m.group(1)) for k in tensors if (m := rx.match(k))]
    return max(found) + 1 if found else 0


def guess_num_heads(family: str, embed_dim: int, num_heads: int | None) -> int:
    if num_heads:
        return num_heads
    table = NUM_HEADS[family]
    if embed_dim in table:
        return table[embed_dim]
    raise PoseAdaptError(f"cannot tell the attention head count of a {embed_dim}-wide ViT: pass --num-heads")


def grid_from_tokens(n: int, grid: tuple[int, int] | None = None) -> tuple[int, int]:
    """Token grid (h, w) of a stored pos_embed: the given grid, else 4:3 portrait (pose crops), else square."""
    if grid is not None:
        if grid[0] * grid[1] != n:
            raise PoseAdaptError(f"pos_embed has {n} tokens, not {grid[1]}x{grid[0]} (w x h)")
        return grid
    w = math.isqrt(n * 3 // 4)
    if w * (w * 4 // 3) == n and w % 3 == 0:
        return w * 4 // 3, w
    s = math.isqrt(n)
    if s * s == n:
        return s, s
    raise PoseAdaptError(f"cannot infer the token grid of a {n}-token pos_embed: pass --img-size")


def infer_heatmap_head(head: dict[str, torch.Tensor], where: str) -> HeatmapHeadConfig:
    """Read a classic / simple / Sapiens heatmap head's layout from its weights (mmpose key names)."""
    if "final_layer.weight" not in head:
        raise PoseAdaptError(f"{where}: no 'final_layer.weight' in the head")
    deconv_c, deconv_k, conv_c, conv_k = [], [], [], []
    norms: set[str] = set()
    i = 0
    while f"deconv_layers.{i}.weight" in head:
        w = head[f"deconv_layers.{i}.weight"]
        deconv_c.append(w.shape[1])
        deconv_k.append(w.shape[-1])
        norms.add("batch" if f"deconv_layers.{i + 1}.running_mean" in head else "instance")
        i += 3
    i = 0
    while f"conv_layers.{i}.weight" in head:
        w = head[f"conv_layers.{i}.weight"]
        conv_c.append(w.shape[0])
        conv_k.append(w.shape[-1])
        norms.add("batch" if f"conv_layers.{i + 1}.running_mean" in head else "instance")
        i += 3
    if len(norms) > 1:
        raise PoseAdaptError(f"{where}: head mixes BatchNorm and InstanceNorm layers")
    norm = norms.pop() if norms else "batch"
    final_k = head["final_layer.weight"].shape[-1]
    simple = not deconv_c and not conv_c
    return HeatmapHeadConfig(
        deconv_channels=tuple(deconv_c),
        deconv_kernels=tuple(deconv_k),
        conv_channels=tuple(conv_c),
        conv_kernels=tuple(conv_k),
        final_kernel=final_k,
        norm=norm,
        act="relu" if norm == "batch" else "silu",
        upsample=4 if simple else 0,
    )


def infer_simcc_head(
    head: dict[str, torch.Tensor], where: str, input_size: tuple[int, int], grid: tuple[int, int]
) -> SimCCHeadConfig:
    """Read an mmpose 1.x RTMCCHead's layout (final_layer, mlp, gau, cls_x / cls_y) from its weights.

    `input_size` (w, h) is the crop and `grid` (h, w) the backbone's feature map; the checkpoint must fit both
    (mlp.1 flattens the feature map, cls_x / cls_y have input * split_ratio bins). Variants RTMPose does not use
    (relative position bias `gau.w`, biases in the GAU, cross-attention) are refused by name. The GAU's activation
    is not in the weights: SiLU, as every RTMPose config sets it (mmpose's RTMCCHead default would be ReLU).
    """
    need = ["final_layer.weight", "mlp.0.g", "mlp.1.weight", "gau.ln.g", "gau.uv.weight", "gau.gamma", "gau.beta",
            "gau.o.weight", "gau.res_scale.scale", "cls_x.weight", "cls_y.weight"]  # fmt: skip
    missing = [k for k in need if k not in head]
    if missing:
        raise PoseAdaptError(f"{where}: not an RTMCC head, no {', '.join(missing)}")
    unsupported = [k for k in ("gau.w", "gau.a", "gau.k_fc.weight", "gau.uv.bias", "gau.o.bias") if k in head]
    if unsupported:
        raise PoseAdaptError(
            f"{where}: RTMCC head variant not supported ({', '.join(unsupported)}): only RTMPose's self-attention "
            "GAU without relative position bias or linear biases imports"
        )
    final = head["final_layer.weight"]
    hidden, flat = head["mlp.1.weight"].shape
    s = head["gau.gamma"].shape[1]
    e = head["gau.o.weight"].shape[1]
    w, h = input_size
    gh, gw = grid
    if flat != gh * gw:
        raise PoseAdaptError(
            f"{where}: the head flattens a {flat}-cell feature map but the backbone gives {gw}x{gh} (w x h) = {gh * gw}"
        )
    x_bins, y_bins = head["cls_x.weight"].shape[0], head["cls_y.weight"].shape[0]
    ratio = x_bins / w
    if int(h * ratio) != y_bins or int(w * ratio) != x_bins:
        raise PoseAdaptError(
            f"{where}: {x_bins} x-bins and {y_bins} y-bins do not fit a {w}x{h} (w x h) crop with one split ratio"
        )
    if head["gau.uv.weight"].shape[0] != 2 * e + s:
        raise PoseAdaptError(f"{where}: gau.uv has {head['gau.uv.weight'].shape[0]} rows, expected 2 * {e} + {s}")
    return SimCCHeadConfig(
        input_size=(w, h),
        split_ratio=ratio,
        final_kernel=final.shape[-1],
        hidden_dims=hidden,
        s=s,
        expansion_factor=e / hidden,
    )


def resolve_schema(
    num_keypoints: int, requested: str | None, preferred: str | None, report: ImportReport
) -> KeypointSchema:
    """The schema for a head with `num_keypoints` outputs: the requested one (checked), a built-in, or generic names."""
    if requested:
        schema = get_schema(requested)
        if len(schema) != num_keypoints:
            raise SchemaError(
                f"schema '{schema.name}' has {len(schema)} keypoints but the checkpoint's head predicts {num_keypoints}"
            )
        return schema
    for name in (preferred, SCHEMA_BY_COUNT.get(num_keypoints)):
        if not name:
            continue
        try:
            schema = get_schema(name)
        except SchemaError:
            continue
        if len(schema) == num_keypoints:
            return schema
    name = f"{preferred or 'keypoints'}_generic{num_keypoints}"
    report.notes.append(
        f"no built-in schema with {num_keypoints} keypoints for head '{preferred or 'head'}': using generic names "
        f"kp_0..kp_{num_keypoints - 1} (schema '{name}'); pass --schema to name them"
    )
    return KeypointSchema(
        name=name, keypoints=tuple(f"kp_{i}" for i in range(num_keypoints)), sigmas=(0.05,) * num_keypoints
    )


def pos_embed_with_cls_slot(pos: torch.Tensor) -> torch.Tensor:
    """ViTPose's (1, N+1, C) pos_embed -> our (1, N, C): every token gets pos[:, 1:] + pos[:, :1], as its forward."""
    return pos[:, 1:] + pos[:, :1]
