"""Plain ViT backbone in the ViTPose layout, with optional ViTPose++ task-specific FFN experts.

One class covers ViTPose S/B/L/H, Sapiens 0.3b-2b and MAE / DINOv2 initialisations: they differ only in sizes,
in whether blocks carry LayerScale (DINOv2), and in the experts. What is ViTPose-specific:

- the patch embedding is a stride-16 conv with padding 2 (256x192 -> 16x12 tokens);
- there is no cls token in the sequence. ViTPose stores pos_embed as (1, N+1, C) and adds pos[:, 1:] + pos[:, :1];
  we store the already-summed grid (1, N, C) so every source layout maps onto one parameter exactly;
- a final LayerNorm, then the tokens are reshaped to a (B, C, h, w) feature map for the heads.

Experts (ViTPose++): fc1 and fc2 are shared, fc2 produces C - P channels and expert `i` (chosen per sample by the
dataset index) produces the last P channels. The routing gathers each sample's expert weights and runs one batched
matmul, which has no data-dependent control flow, so it also traces and exports to ONNX.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from poseadapt.errors import PoseAdaptError


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of a ViT backbone; `img_size` is (height, width) of the input crop."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_dim: int
    img_size: tuple[int, int] = (256, 192)
    patch_size: int = 16
    patch_padding: int = 2
    in_chans: int = 3
    qkv_bias: bool = True
    ln_eps: float = 1e-6
    drop_path_rate: float = 0.0
    num_experts: int = 0
    part_features: int = 0
    layer_scale: bool = False
    conv_stem: int = 0  # >0: that many stride-2 3x3 conv layers before the patch projection (Xiao et al. 2021)

    def __post_init__(self) -> None:
        object.__setattr__(self, "img_size", tuple(int(v) for v in self.img_size))
        if self.embed_dim % self.num_heads:
            raise PoseAdaptError(f"ViT embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.num_experts == 1 or self.num_experts < 0:
            raise PoseAdaptError(f"ViT num_experts must be 0 (dense) or >= 2, got {self.num_experts}")
        if self.conv_stem and self.patch_size % (2**self.conv_stem):
            raise PoseAdaptError(
                f"ViT patch_size {self.patch_size} is not divisible by 2**conv_stem ({self.conv_stem})"
            )
        if self.num_experts and not 0 < self.part_features < self.embed_dim:
            raise PoseAdaptError(
                f"ViT part_features must be in (0, {self.embed_dim}) with experts, got {self.part_features}"
            )

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid (h, w) for `img_size`: the conv output size with padding."""
        return tuple(  # type: ignore[return-value]
            (s + 2 * self.patch_padding - self.patch_size) // self.patch_size + 1 for s in self.img_size
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["img_size"] = list(self.img_size)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PoseAdaptError(f"unknown ViT config field(s) {unknown}")
        return cls(**data)


def _onednn_linear_available() -> bool:
    """Whether the private `torch.ops.mkldnn._linear_pointwise` exists here *and* computes what we use it for:
    both variants (plain, and with the fused exact GELU) are checked by value against F.linear / F.gelu on a
    small case with a bias, so a changed signature, argument order or GELU flavour turns the fast path off."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        g = torch.Generator().manual_seed(0)  # its own generator: importing the model must not move the global RNG
        x = torch.randn(5, 7, generator=g)
        w = torch.randn(6, 7, generator=g)
        b = torch.randn(6, generator=g)
        ref = F.linear(x, w, b)
        plain = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
        fused = torch.ops.mkldnn._linear_pointwise(x, w, b, "gelu", [], "none")
        return (
            tuple(plain.shape) == tuple(fused.shape) == (5, 6)
            and torch.allclose(plain, ref, rtol=1e-4, atol=1e-5)
            and torch.allclose(fused, F.gelu(ref), rtol=1e-4, atol=1e-5)
            and not torch.allclose(fused, F.gelu(ref, approximate="tanh"), rtol=1e-7, atol=1e-7)
        )
    except (AttributeError, RuntimeError, NotImplementedError, TypeError):
        return False


_ONEDNN_LINEAR = _onednn_linear_available()


def _onednn_bf16_linear_available() -> bool:
    """The same kernel on bf16 operands, which `Linear` runs under CPU bf16 autocast: both variants checked by value
    against F.linear / F.gelu of the same bf16 operands computed in fp32 (to bf16 rounding), output dtype bf16."""
    if not _ONEDNN_LINEAR:
        return False
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        g = torch.Generator().manual_seed(1)
        x, w, b = (t.to(torch.bfloat16) for t in (torch.randn(5, 7, generator=g), torch.randn(6, 7, generator=g),
                                                   torch.randn(6, generator=g)))  # fmt: skip
        ref = F.linear(x.float(), w.float(), b.float())
        plain = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
        fused = torch.ops.mkldnn._linear_pointwise(x, w, b, "gelu", [], "none")
        return (
            plain.dtype == fused.dtype == torch.bfloat16
            and tuple(plain.shape) == tuple(fused.shape) == (5, 6)
            and torch.allclose(plain.float(), ref, rtol=2e-2, atol=5e-2)
            and torch.allclose(fused.float(), F.gelu(ref), rtol=2e-2, atol=5e-2)
        )
    except (AttributeError, RuntimeError, NotImplementedError, TypeError):
        return False


_ONEDNN_LINEAR_BF16 = _onednn_bf16_linear_available()


class Linear(nn.Linear):
    """nn.Linear whose CPU fp32 inference runs oneDNN's GEMM (what torch.compile uses for CPU linears).

    On the project's CPU it is ~1.1-1.35x faster than the default addmm on ViT shapes, with the same results to
    float rounding. CPU inference under bf16 autocast runs the same kernel on bf16 operands (weights cast at each
    call, as autocast does). Training, fp16 autocast, tracing / export and other devices take the ordinary path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast_path(x):
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        if self._bf16_path(x):
            return torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), *self._bf16_params(), "none", [], "")
        return F.linear(x, self.weight, self.bias)

    def forward_gelu(self, x: torch.Tensor) -> torch.Tensor:
        """gelu(linear(x)) (exact erf GELU); fused into the GEMM epilogue on the fast path."""
        if self._fast_path(x):
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "gelu", [], "none")
        if self._bf16_path(x):
            return torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), *self._bf16_params(), "gelu", [], "none")
        return F.gelu(F.linear(x, self.weight, self.bias))

    def _bf16_path(self, x: torch.Tensor) -> bool:
        return (
            _ONEDNN_LINEAR_BF16
            and not torch.is_grad_enabled()
            and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.bfloat16)
            and self.weight.dtype == torch.float32
            and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
        )

    def _bf16_params(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """bf16 copies of weight and bias, made at each call as autocast does (no cache that could go stale)."""
        bias = None if self.bias is None else self.bias.to(torch.bfloat16)
        return self.weight.to(torch.bfloat16), bias

    def _fast_path(self, x: torch.Tensor) -> bool:
        return (
            _ONEDNN_LINEAR
            and not torch.is_grad_enabled()
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
        )


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability `p` while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerScale(nn.Module):
    """Per-channel residual scale (DINOv2 / CaiT); only present when the source checkpoint has it."""

    def __init__(self, dim: int, init: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class PatchEmbed(nn.Module):
    """Patchify with one strided conv, or (`conv_stem` > 0) with stride-2 3x3 convs first and a smaller patch conv.

    Early convolutions make small ViTs trained from scratch converge much faster and more stably ("Early
    Convolutions Help Transformers See Better", Xiao et al. 2021); the token grid is the same either way.
    """

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, stride = cfg.in_chans, cfg.patch_size
        for i in range(cfg.conv_stem):
            out = max(16, cfg.embed_dim // 2 ** (cfg.conv_stem - i))
            layers += [nn.Conv2d(channels, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels, stride = out, stride // 2
        self.stem = nn.Sequential(*layers) if layers else None
        padding = cfg.patch_padding * stride // cfg.patch_size
        self.proj = nn.Conv2d(channels, cfg.embed_dim, stride, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        if self.stem is not None:
            x = self.stem(x)
        x = self.proj(x)
        h, w = x.shape[-2:]
        # contiguous (B, N, C): otherwise every later add / LayerNorm inherits the conv's (B, C, N) strides
        return x.flatten(2).transpose(1, 2).contiguous(), (h, w)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection and torch's scaled_dot_product_attention."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2; with experts, fc2 gives C - P channels and the sample's expert the last P."""

    def __init__(self, dim: int, hidden: int, num_experts: int = 0, part_features: int = 0) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim - part_features if num_experts else dim)
        self.experts = nn.ModuleList(nn.Linear(hidden, part_features) for _ in range(num_experts))

    def forward(self, x: torch.Tensor, dataset_index: torch.Tensor | None = None) -> torch.Tensor:
        # fused GEMM + GELU on the fast path; a wrapped fc1 (LoRA, ...) without forward_gelu takes the plain path
        h = self.fc1.forward_gelu(x) if hasattr(self.fc1, "forward_gelu") else F.gelu(self.fc1(x))
        out = self.fc2(h)
        if not len(self.experts):
            return out
        if dataset_index is None:
            raise PoseAdaptError(f"this model has {len(self.experts)} task experts: pass dataset_index")
        weight = torch.stack([e.weight for e in self.experts])[dataset_index]  # (B, P, hidden)
        bias = torch.stack([e.bias for e in self.experts])[dataset_index]  # (B, P)
        part = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
        return torch.cat([out, part], dim=-1)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)), each with drop path."""

    def __init__(self, cfg: ViTConfig, drop_path: float) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.ln_eps)
        self.attn = Attention(dim, cfg.num_heads, cfg.qkv_bias)
        self.ls1 = LayerScale(dim) if cfg.layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=cfg.ln_eps)
        self.mlp = Mlp(dim, cfg.mlp_dim, cfg.num_experts, cfg.part_features)
        self.ls2 = LayerScale(dim) if cfg.layer_scale else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, dataset_index: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x), dataset_index)))


def resize_pos_embed(pos: torch.Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int]) -> torch.Tensor:
    """Bicubic-resize a (1, h*w, C) grid position embedding to another grid (as ViTPose / mmpretrain do)."""
    if tuple(src_grid) == tuple(dst_grid):
        return pos
    c = pos.shape[-1]
    grid = pos.reshape(1, src_grid[0], src_grid[1], c).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=dst_grid, mode="bicubic", align_corners=False).to(pos.dtype)
    return grid.permute(0, 2, 3, 1).reshape(1, dst_grid[0] * dst_grid[1], c)


def as_index(dataset_index: torch.Tensor | int | None, batch: int, device: torch.device) -> torch.Tensor | None:
    """Normalise a dataset index (int or (B,) tensor) to a (B,) long tensor."""
    if dataset_index is None:
        return None
    if isinstance(dataset_index, int):
        return torch.full((batch,), dataset_index, dtype=torch.long, device=device)
    idx = torch.as_tensor(dataset_index, device=device).long().reshape(-1)
    if idx.numel() == 1 and batch != 1:
        idx = idx.expand(batch)
    return idx


class VisionTransformer(nn.Module):
    """ViT backbone: pixels (B, 3, H, W) -> feature map (B, C, H/16, W/16) for the heads."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.grid_size = cfg.grid_size
        self.patch_embed = PatchEmbed(cfg)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size[0] * self.grid_size[1], cfg.embed_dim))
        rates = torch.linspace(0, cfg.drop_path_rate, cfg.depth).tolist() if cfg.depth > 1 else [0.0]
        self.blocks = nn.ModuleList(Block(cfg, rates[i]) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.ln_eps)
        self.grad_checkpointing = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal init (std 0.02) for pos_embed and Linear weights, zero biases, as ViTPose does."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in the backward pass: trades ~30% compute for much less memory."""
        self.grad_checkpointing = enable

    @property
    def num_features(self) -> int:
        return self.cfg.embed_dim

    def forward(self, x: torch.Tensor, dataset_index: torch.Tensor | int | None = None) -> torch.Tensor:
        b = x.shape[0]
        idx = as_index(dataset_index, b, x.device)
        x, grid = self.patch_embed(x)
        x = x + resize_pos_embed(self.pos_embed, self.grid_size, grid)
        for block in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, idx, use_reentrant=False)
            else:
                x = block(x, idx)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(b, -1, grid[0], grid[1])


def layer_id(name: str, depth: int) -> int:
    """Layer-wise lr-decay id of a backbone parameter: 0 for embeddings, i+1 for block i, depth+1 otherwise."""
    if name.startswith(("pos_embed", "patch_embed")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1
