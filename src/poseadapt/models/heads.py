"""Keypoint heads on a (B, C, h, w) feature map.

- `HeatmapHead` covers three published decoders with one layer layout (`deconv_layers`, `conv_layers`,
  `final_layer`, the mmpose names, so foreign checkpoints map onto it key for key):
  * classic (ViTPose / SimpleBaseline): 2x [ConvTranspose k4 s2 -> BatchNorm -> ReLU], 1x1 conv to K;
  * simple (ViTPose): ReLU -> bilinear x4 -> 3x3 conv to K;
  * Sapiens: 2x [ConvTranspose -> InstanceNorm -> SiLU], 2x [1x1 conv -> InstanceNorm -> SiLU], 1x1 conv to K.
- `SimCCHead`: the RTMPose RTMCC head (7x7 conv -> flatten -> ScaleNorm + Linear -> GAU -> x / y bin logits).
- `HeadSet`: several heads keyed by dataset name; the dataset index of each sample picks its head.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from poseadapt.errors import PoseAdaptError


@dataclass(frozen=True)
class HeatmapHeadConfig:
    """A heatmap decoder; `upsample` > 0 means the simple head (ReLU + bilinear upsampling before the final conv)."""

    deconv_channels: tuple[int, ...] = (256, 256)
    deconv_kernels: tuple[int, ...] = (4, 4)
    conv_channels: tuple[int, ...] = ()
    conv_kernels: tuple[int, ...] = ()
    final_kernel: int = 1
    norm: str = "batch"  # batch | instance
    act: str = "relu"  # relu | silu
    upsample: int = 0
    kind: str = field(default="heatmap", init=False)

    def __post_init__(self) -> None:
        for name in ("deconv_channels", "deconv_kernels", "conv_channels", "conv_kernels"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.deconv_channels) != len(self.deconv_kernels):
            raise PoseAdaptError("heatmap head: deconv_channels and deconv_kernels differ in length")
        if len(self.conv_channels) != len(self.conv_kernels):
            raise PoseAdaptError("heatmap head: conv_channels and conv_kernels differ in length")
        bad = [k for k in self.deconv_kernels if k not in (2, 3, 4)]
        if bad:
            raise PoseAdaptError(f"heatmap head: deconv kernel sizes must be 2, 3 or 4, got {bad}")
        if self.norm not in ("batch", "instance") or self.act not in ("relu", "silu"):
            raise PoseAdaptError(
                f"heatmap head: norm must be batch|instance and act relu|silu, got {self.norm}/{self.act}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def classic_head() -> HeatmapHeadConfig:
    return HeatmapHeadConfig()


def light_head() -> HeatmapHeadConfig:
    """The classic head at half width (two 128-channel deconvs): for small backbones, where 256 would dominate."""
    return HeatmapHeadConfig(deconv_channels=(128, 128))


def simple_head() -> HeatmapHeadConfig:
    return HeatmapHeadConfig(deconv_channels=(), deconv_kernels=(), final_kernel=3, upsample=4)


def sapiens_head(channels: int = 768) -> HeatmapHeadConfig:
    return HeatmapHeadConfig(
        deconv_channels=(channels, channels),
        deconv_kernels=(4, 4),
        conv_channels=(channels, channels),
        conv_kernels=(1, 1),
        norm="instance",
        act="silu",
    )


def _norm_act(cfg: HeatmapHeadConfig, channels: int) -> list[nn.Module]:
    norm = nn.BatchNorm2d(channels) if cfg.norm == "batch" else nn.InstanceNorm2d(channels)
    return [norm, nn.ReLU(inplace=True) if cfg.act == "relu" else nn.SiLU(inplace=True)]


class HeatmapHead(nn.Module):
    """Feature map (B, C, h, w) -> heatmaps (B, K, h*s, w*s)."""

    def __init__(self, cfg: HeatmapHeadConfig, in_channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_keypoints = num_keypoints
        layers: list[nn.Module] = []
        c = in_channels
        for out, k in zip(cfg.deconv_channels, cfg.deconv_kernels, strict=True):
            padding, out_pad = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[k]
            layers += [nn.ConvTranspose2d(c, out, k, stride=2, padding=padding, output_padding=out_pad, bias=False)]
            layers += _norm_act(cfg, out)
            c = out
        self.deconv_layers = nn.Sequential(*layers)
        layers = []
        for out, k in zip(cfg.conv_channels, cfg.conv_kernels, strict=True):
            layers += [nn.Conv2d(c, out, k, padding=(k - 1) // 2)]
            layers += _norm_act(cfg, out)
            c = out
        self.conv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(c, num_keypoints, cfg.final_kernel, padding=(cfg.final_kernel - 1) // 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """ViTPose / mmpose init: conv weights N(0, 0.001), biases 0, norm weights 1."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def output_stride_factor(self) -> int:
        return 2 ** len(self.cfg.deconv_channels) * max(self.cfg.upsample, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.upsample:
            x = F.interpolate(F.relu(x), scale_factor=self.cfg.upsample, mode="bilinear", align_corners=False)
        return self.final_layer(self.conv_layers(self.deconv_layers(x)))


# ---------------------------------------------------------------------------------------------- SimCC
@dataclass(frozen=True)
class SimCCHeadConfig:
    """RTMCC head; `input_size` is (w, h) of the crop, bins per axis = size * split_ratio."""

    input_size: tuple[int, int] = (192, 256)
    split_ratio: float = 2.0
    final_kernel: int = 7
    hidden_dims: int = 256
    s: int = 128
    expansion_factor: float = 2.0
    kind: str = field(default="simcc", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class ScaleNorm(nn.Module):
    """x / ||x|| * sqrt(dim) * g with one learned scalar g (RTMPose)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = dim**-0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class GAUBlock(nn.Module):
    """Gated attention unit over keypoint tokens (RTMCC block, self-attention, no relative bias)."""

    def __init__(self, dim: int, s: int, expansion_factor: float) -> None:
        super().__init__()
        self.e = int(dim * expansion_factor)
        self.s = s
        self.ln = ScaleNorm(dim)
        self.uv = nn.Linear(dim, 2 * self.e + s, bias=False)
        self.gamma = nn.Parameter(torch.rand(2, s))
        self.beta = nn.Parameter(torch.rand(2, s))
        self.o = nn.Linear(self.e, dim, bias=False)
        self.res_scale = Scale(dim)
        nn.init.xavier_uniform_(self.uv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        uv = F.silu(self.uv(self.ln(x)))
        u, v, base = torch.split(uv, [self.e, self.e, self.s], dim=-1)
        base = base.unsqueeze(2) * self.gamma + self.beta  # (B, K, 2, s)
        q, k = base.unbind(2)
        kernel = torch.square(F.relu(q @ k.transpose(1, 2) / math.sqrt(self.s)))
        return self.res_scale(x) + self.o(u * (kernel @ v))


class SimCCHead(nn.Module):
    """Feature map (B, C, h, w) -> (x logits (B, K, W*r), y logits (B, K, H*r))."""

    def __init__(self, cfg: SimCCHeadConfig, in_channels: int, num_keypoints: int, feat_size: tuple[int, int]) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_keypoints = num_keypoints
        self.final_layer = nn.Conv2d(in_channels, num_keypoints, cfg.final_kernel, padding=cfg.final_kernel // 2)
        flat = feat_size[0] * feat_size[1]
        self.mlp = nn.Sequential(ScaleNorm(flat), nn.Linear(flat, cfg.hidden_dims, bias=False))
        self.gau = GAUBlock(cfg.hidden_dims, cfg.s, cfg.expansion_factor)
        w, h = cfg.input_size
        self.cls_x = nn.Linear(cfg.hidden_dims, int(w * cfg.split_ratio), bias=False)
        self.cls_y = nn.Linear(cfg.hidden_dims, int(h * cfg.split_ratio), bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.mlp(self.final_layer(x).flatten(2))
        x = self.gau(x)
        return self.cls_x(x), self.cls_y(x)


HeadConfig = HeatmapHeadConfig | SimCCHeadConfig


def head_config_from_dict(data: dict[str, Any]) -> HeadConfig:
    data = dict(data)
    kind = data.pop("kind", "heatmap")
    cls = {"heatmap": HeatmapHeadConfig, "simcc": SimCCHeadConfig}.get(kind)
    if cls is None:
        raise PoseAdaptError(f"unknown head kind '{kind}' (known: heatmap, simcc)")
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PoseAdaptError(f"unknown {kind} head config field(s) {unknown}")
    return cls(**data)


def build_head(cfg: HeadConfig, in_channels: int, num_keypoints: int, feat_size: tuple[int, int]) -> nn.Module:
    if isinstance(cfg, SimCCHeadConfig):
        return SimCCHead(cfg, in_channels, num_keypoints, feat_size)
    return HeatmapHead(cfg, in_channels, num_keypoints)


# ---------------------------------------------------------------------------------------------- several heads
class HeadSet(nn.ModuleDict):
    """Heads keyed by dataset name, in dataset-index order (index i -> the i-th head).

    A batch whose samples all share one index runs one head. A mixed batch of heatmap heads runs each head on its
    samples and zero-pads the keypoint axis to the largest head, so the result is still one (B, Kmax, H, W) tensor.
    """

    def forward(self, feats: torch.Tensor, dataset_index: torch.Tensor | int | None = None) -> Any:
        heads = list(self.values())
        if len(heads) == 1:
            return heads[0](feats)
        if dataset_index is None:
            raise PoseAdaptError(f"this model has {len(heads)} heads ({', '.join(self.keys())}): pass dataset_index")
        if isinstance(dataset_index, int):
            return heads[self._check(dataset_index)](feats)
        idx = torch.as_tensor(dataset_index).reshape(-1)
        if idx.numel() == 1:
            return heads[self._check(int(idx))](feats)
        present = [int(i) for i in torch.unique(idx)]
        if len(present) == 1:
            return heads[self._check(present[0])](feats)
        if any(not isinstance(heads[self._check(i)], HeatmapHead) for i in present):
            raise PoseAdaptError("a batch mixing datasets is only supported for heatmap heads")
        outs = {i: heads[i](feats[idx == i]) for i in present}
        kmax = max(o.shape[1] for o in outs.values())
        first = next(iter(outs.values()))
        result = first.new_zeros((feats.shape[0], kmax, *first.shape[2:]))
        for i, o in outs.items():
            result[idx == i, : o.shape[1]] = o
        return result

    def _check(self, i: int) -> int:
        if not 0 <= i < len(self):
            raise PoseAdaptError(f"dataset_index {i} out of range: the model has {len(self)} heads")
        return i
