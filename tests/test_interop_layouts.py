"""Foreign checkpoint layouts import exactly: original ViTPose(++), mmpose 1.x, Sapiens and timm (MAE / DINOv2).

Each test builds a state dict from the layout's documented key table with random values, saves it the way the
source does (.pth with mmengine-style metadata, or safetensors), imports it, and compares our model's output with
a deliberately plain forward written here straight from the key table: explicit matmuls over the state dict
tensors, manual attention and softmax, manual LayerNorm / BatchNorm / InstanceNorm. Nothing of poseadapt's model
code is used by the reference.
"""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from poseadapt.errors import PoseAdaptError
from poseadapt.interop.checkpoint import load_model, save_checkpoint
from poseadapt.interop.importers import import_checkpoint

C, HEADS, DEPTH, MLP, PART = 32, 2, 2, 128, 8
IMG = (64, 48)  # (h, w) -> 4x3 tokens


# ---------------------------------------------------------------------------------------------- random layouts
def _rand(*shape: int, std: float = 0.2) -> torch.Tensor:
    return torch.randn(*shape) * std


def _norm_params(prefix: str, dim: int) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": 1 + _rand(dim, std=0.1), f"{prefix}.bias": _rand(dim, std=0.1)}


def _bn_params(prefix: str, dim: int) -> dict[str, torch.Tensor]:
    return {
        **_norm_params(prefix, dim),
        f"{prefix}.running_mean": _rand(dim),
        f"{prefix}.running_var": torch.rand(dim) + 0.5,
        f"{prefix}.num_batches_tracked": torch.tensor(100),
    }


def vitpose_backbone(tokens: int, experts: int = 0) -> dict[str, torch.Tensor]:
    """Original ViTPose / ViTPose++ backbone keys (mmpose 0.x): blocks.i.*, pos_embed with a cls slot, last_norm."""
    sd = {
        "backbone.cls_token": _rand(1, 1, C),
        "backbone.pos_embed": _rand(1, tokens + 1, C),
        "backbone.patch_embed.proj.weight": _rand(C, 3, 16, 16, std=0.05),
        "backbone.patch_embed.proj.bias": _rand(C),
        **_norm_params("backbone.last_norm", C),
    }
    for i in range(DEPTH):
        p = f"backbone.blocks.{i}"
        sd.update(_norm_params(f"{p}.norm1", C))
        sd.update(_norm_params(f"{p}.norm2", C))
        sd.update({f"{p}.attn.qkv.weight": _rand(3 * C, C), f"{p}.attn.qkv.bias": _rand(3 * C)})
        sd.update({f"{p}.attn.proj.weight": _rand(C, C), f"{p}.attn.proj.bias": _rand(C)})
        sd.update({f"{p}.mlp.fc1.weight": _rand(MLP, C), f"{p}.mlp.fc1.bias": _rand(MLP)})
        out = C - PART if experts else C
        sd.update({f"{p}.mlp.fc2.weight": _rand(out, MLP), f"{p}.mlp.fc2.bias": _rand(out)})
        for e in range(experts):
            sd.update({f"{p}.mlp.experts.{e}.weight": _rand(PART, MLP), f"{p}.mlp.experts.{e}.bias": _rand(PART)})
    return sd


def classic_head(prefix: str, k: int, hidden: int = 16) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.deconv_layers.0.weight": _rand(C, hidden, 4, 4),
        **_bn_params(f"{prefix}.deconv_layers.1", hidden),
        f"{prefix}.deconv_layers.3.weight": _rand(hidden, hidden, 4, 4),
        **_bn_params(f"{prefix}.deconv_layers.4", hidden),
        f"{prefix}.final_layer.weight": _rand(k, hidden, 1, 1),
        f"{prefix}.final_layer.bias": _rand(k),
    }


def simple_head(prefix: str, k: int) -> dict[str, torch.Tensor]:
    return {f"{prefix}.final_layer.weight": _rand(k, C, 3, 3), f"{prefix}.final_layer.bias": _rand(k)}


def sapiens_head(prefix: str, k: int, hidden: int = 16) -> dict[str, torch.Tensor]:
    sd = {
        f"{prefix}.deconv_layers.0.weight": _rand(C, hidden, 4, 4),
        f"{prefix}.deconv_layers.3.weight": _rand(hidden, hidden, 4, 4),
        f"{prefix}.final_layer.weight": _rand(k, hidden, 1, 1),
        f"{prefix}.final_layer.bias": _rand(k),
    }
    for i in (0, 3):
        sd.update({f"{prefix}.conv_layers.{i}.weight": _rand(hidden, hidden, 1, 1)})
        sd.update({f"{prefix}.conv_layers.{i}.bias": _rand(hidden)})
    return sd


MMPRETRAIN_RENAMES = [  # original ViTPose name -> mmpretrain name (the documented mmpose 1.x key table)
    ("backbone.patch_embed.proj.", "backbone.patch_embed.projection."),
    (".norm1.", ".ln1."),
    (".norm2.", ".ln2."),
    (".mlp.fc1.", ".ffn.layers.0.0."),
    (".mlp.fc2.", ".ffn.layers.1."),
    ("backbone.blocks.", "backbone.layers."),
    ("backbone.last_norm.", "backbone.ln1."),
]


def mmpretrain_backbone(tokens: int) -> dict[str, torch.Tensor]:
    """mmpose 1.x / Sapiens backbone: mmpretrain names, pos_embed (1, N, C) without a cls slot, no cls token."""
    sd = {}
    for key, value in vitpose_backbone(tokens).items():
        if key == "backbone.cls_token":
            continue
        for a, b in MMPRETRAIN_RENAMES:
            key = key.replace(a, b)
        sd[key] = value
    sd["backbone.pos_embed"] = _rand(1, tokens, C)
    return sd


# ---------------------------------------------------------------------------------------------- plain reference
def ref_layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def ref_gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def ref_vit(
    sd: dict[str, torch.Tensor],
    x: torch.Tensor,
    names: dict[str, str],
    pos: torch.Tensor,
    grid: tuple[int, int],
    expert: list[int] | None = None,
    layer_scale: bool = False,
) -> torch.Tensor:
    """Plain ViT forward from a state dict; `names` maps role -> key pattern with {i} for the layer."""
    w = sd[names["patch_w"]]
    patch = w.shape[-1]
    x = F.pad(x.double(), (2, 2, 2, 2))
    b = x.shape[0]
    gh, gw = grid
    cols = [
        x[:, :, r * patch : r * patch + patch, c * patch : c * patch + patch].reshape(b, -1)
        for r in range(gh)
        for c in range(gw)
    ]
    tokens = torch.stack(cols, 1) @ w.double().reshape(w.shape[0], -1).T + sd[names["patch_b"]].double()
    h = tokens + pos.double()
    d = lambda role, i: sd[names[role].format(i=i)].double()  # noqa: E731
    head_dim = C // HEADS
    for i in range(DEPTH):
        y = ref_layer_norm(h, d("norm1_w", i), d("norm1_b", i))
        qkv = y @ d("qkv_w", i).T + d("qkv_b", i)
        q, k, v = (qkv[..., j * C : (j + 1) * C].reshape(b, -1, HEADS, head_dim).transpose(1, 2) for j in range(3))
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
        scores = torch.exp(scores - scores.amax(-1, keepdim=True))
        attn = (scores / scores.sum(-1, keepdim=True)) @ v
        y = attn.transpose(1, 2).reshape(b, -1, C) @ d("proj_w", i).T + d("proj_b", i)
        h = h + (y * d("ls1", i) if layer_scale else y)
        y = ref_layer_norm(h, d("norm2_w", i), d("norm2_b", i))
        y = ref_gelu(y @ d("fc1_w", i).T + d("fc1_b", i))
        out = y @ d("fc2_w", i).T + d("fc2_b", i)
        if expert is not None:
            parts = []
            for s, e in enumerate(expert):
                we = sd[names["expert_w"].format(i=i, e=e)].double()
                be = sd[names["expert_b"].format(i=i, e=e)].double()
                parts.append(y[s] @ we.T + be)
            out = torch.cat([out, torch.stack(parts)], dim=-1)
        h = h + (out * d("ls2", i) if layer_scale else out)
    h = ref_layer_norm(h, sd[names["norm_w"]].double(), sd[names["norm_b"]].double())
    return h.transpose(1, 2).reshape(b, C, gh, gw)


def ref_heatmap_head(sd: dict[str, torch.Tensor], prefix: str, x: torch.Tensor, kind: str) -> torch.Tensor:
    g = lambda k: sd[f"{prefix}.{k}"].double()  # noqa: E731
    if kind == "simple":
        x = F.interpolate(torch.clamp(x, min=0), scale_factor=4, mode="bilinear", align_corners=False)
        return F.conv2d(x, g("final_layer.weight"), g("final_layer.bias"), padding=1)
    for i in (0, 3):
        x = F.conv_transpose2d(x, g(f"deconv_layers.{i}.weight"), stride=2, padding=1)
        if kind == "classic":
            n = f"deconv_layers.{i + 1}"
            x = (x - g(f"{n}.running_mean")[:, None, None]) / torch.sqrt(g(f"{n}.running_var")[:, None, None] + 1e-5)
            x = torch.clamp(x * g(f"{n}.weight")[:, None, None] + g(f"{n}.bias")[:, None, None], min=0)
        else:
            x = _instance_norm_silu(x)
    if kind == "sapiens":
        for i in (0, 3):
            w = g(f"conv_layers.{i}.weight")[:, :, 0, 0]
            x = _instance_norm_silu(torch.einsum("oc,bchw->bohw", w, x) + g(f"conv_layers.{i}.bias")[:, None, None])
    w = g("final_layer.weight")[:, :, 0, 0]
    return torch.einsum("oc,bchw->bohw", w, x) + g("final_layer.bias")[:, None, None]


def _instance_norm_silu(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean((-2, -1), keepdim=True)
    var = ((x - mean) ** 2).mean((-2, -1), keepdim=True)
    x = (x - mean) / torch.sqrt(var + 1e-5)
    return x * torch.sigmoid(x)


ORIGINAL_NAMES = {
    "patch_w": "backbone.patch_embed.proj.weight",
    "patch_b": "backbone.patch_embed.proj.bias",
    "norm1_w": "backbone.blocks.{i}.norm1.weight",
    "norm1_b": "backbone.blocks.{i}.norm1.bias",
    "qkv_w": "backbone.blocks.{i}.attn.qkv.weight",
    "qkv_b": "backbone.blocks.{i}.attn.qkv.bias",
    "proj_w": "backbone.blocks.{i}.attn.proj.weight",
    "proj_b": "backbone.blocks.{i}.attn.proj.bias",
    "norm2_w": "backbone.blocks.{i}.norm2.weight",
    "norm2_b": "backbone.blocks.{i}.norm2.bias",
    "fc1_w": "backbone.blocks.{i}.mlp.fc1.weight",
    "fc1_b": "backbone.blocks.{i}.mlp.fc1.bias",
    "fc2_w": "backbone.blocks.{i}.mlp.fc2.weight",
    "fc2_b": "backbone.blocks.{i}.mlp.fc2.bias",
    "expert_w": "backbone.blocks.{i}.mlp.experts.{e}.weight",
    "expert_b": "backbone.blocks.{i}.mlp.experts.{e}.bias",
    "norm_w": "backbone.last_norm.weight",
    "norm_b": "backbone.last_norm.bias",
}


def _renamed(names: dict[str, str], renames: list[tuple[str, str]]) -> dict[str, str]:
    out = {}
    for role, key in names.items():
        for a, b in renames:
            key = key.replace(a, b)
        out[role] = key
    return out


MMPRETRAIN_NAMES = _renamed(ORIGINAL_NAMES, MMPRETRAIN_RENAMES)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


# ---------------------------------------------------------------------------------------------- mmengine metadata
@pytest.fixture
def fake_mmengine(monkeypatch: pytest.MonkeyPatch) -> type:
    """An mmengine-like HistoryBuffer class registered under mmengine's module path, so torch.save pickles it."""
    mod = types.ModuleType("mmengine.logging.history_buffer")

    class HistoryBuffer:
        def __init__(self) -> None:
            self._log_history = np.array([0.5, 0.25])
            self._count_history = np.array([1, 1])
            self.max_length = 1000000

    HistoryBuffer.__module__ = mod.__name__
    HistoryBuffer.__qualname__ = "HistoryBuffer"
    mod.HistoryBuffer = HistoryBuffer
    for name in ("mmengine", "mmengine.logging"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    return HistoryBuffer


def mmengine_pth(path, state_dict, history_cls=None) -> None:
    meta = {"epoch": 210, "iter": np.int64(1234), "lr": np.float64(5e-4), "seed": 0}
    obj = {"meta": meta, "state_dict": state_dict}
    if history_cls is not None:
        obj["message_hub"] = {"log_scalars": {"train/loss": history_cls()}}
    torch.save(obj, path)


# ---------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("head", ["classic", "simple"])
def test_original_vitpose_matches_reference(tmp_path, head, fake_mmengine):
    torch.manual_seed(0)
    sd = vitpose_backbone(12)
    sd.update(classic_head("keypoint_head", 17) if head == "classic" else simple_head("keypoint_head", 17))
    mmengine_pth(tmp_path / "vitpose.pth", sd, fake_mmengine)
    model, report = import_checkpoint("vitpose", str(tmp_path / "vitpose.pth"), num_heads=HEADS)
    assert report.unused == ["backbone.cls_token"]
    assert model.schema.name == "coco17" and model.config.backbone.ln_eps == 1e-6

    x = torch.randn(2, 3, *IMG)
    pos = sd["backbone.pos_embed"][:, 1:] + sd["backbone.pos_embed"][:, :1]
    feats = ref_vit(sd, x, ORIGINAL_NAMES, pos, (4, 3))
    expected = ref_heatmap_head(sd, "keypoint_head", feats, head)
    with torch.no_grad():
        got = model(x)
    assert got.shape == (2, 17, 16, 12)
    assert rel_err(got, expected) < 1e-5


def test_original_vitpose_plus_experts_and_heads(tmp_path):
    torch.manual_seed(1)
    sd = vitpose_backbone(12, experts=6)
    sd.update(classic_head("keypoint_head", 17))
    for i, k in enumerate([14, 16, 17, 17, 133]):
        sd.update(classic_head(f"associate_keypoint_heads.{i}", k))
    torch.save({"state_dict": sd}, tmp_path / "vitpose_plus.pth")
    model, report = import_checkpoint("vitpose", str(tmp_path / "vitpose_plus.pth"), num_heads=HEADS)
    assert model.head_names == ["coco", "aic", "mpii", "ap10k", "apt36k", "wholebody"]
    assert [len(s) for s in model.schemas] == [17, 14, 16, 17, 17, 133]
    assert model.config.backbone.num_experts == 6 and model.config.backbone.part_features == PART

    x = torch.randn(3, 3, *IMG)
    pos = sd["backbone.pos_embed"][:, 1:] + sd["backbone.pos_embed"][:, :1]
    for dataset, prefix in [(0, "keypoint_head"), (2, "associate_keypoint_heads.1"), (5, "associate_keypoint_heads.4")]:
        feats = ref_vit(sd, x, ORIGINAL_NAMES, pos, (4, 3), expert=[dataset] * 3)
        expected = ref_heatmap_head(sd, prefix, feats, "classic")
        with torch.no_grad():
            got = model(x, dataset_index=torch.full((3,), dataset))
        assert rel_err(got, expected) < 1e-5, dataset

    # a mixed batch routes every sample through its own expert and head (zero-padded to the widest head)
    idx = [0, 1, 0]
    feats = ref_vit(sd, x, ORIGINAL_NAMES, pos, (4, 3), expert=idx)
    with torch.no_grad():
        got = model(x, dataset_index=torch.tensor(idx))
    assert got.shape == (3, 17, 16, 12)
    assert rel_err(got[1:2, :14], ref_heatmap_head(sd, "associate_keypoint_heads.0", feats[1:2], "classic")) < 1e-5
    assert torch.all(got[1, 14:] == 0)
    assert rel_err(got[0::2], ref_heatmap_head(sd, "keypoint_head", feats[0::2], "classic")) < 1e-5


def test_mmpose1_layout_adds_pos_embed_as_is(tmp_path):
    torch.manual_seed(2)
    sd = mmpretrain_backbone(12)
    sd.update(classic_head("head", 17))
    torch.save({"meta": {"mmpose_version": "1.3.1"}, "state_dict": sd}, tmp_path / "mmpose.pth")
    model, report = import_checkpoint("mmpose", str(tmp_path / "mmpose.pth"), num_heads=HEADS)
    assert report.unused == []
    x = torch.randn(2, 3, *IMG)
    feats = ref_vit(sd, x, MMPRETRAIN_NAMES, sd["backbone.pos_embed"], (4, 3))
    with torch.no_grad():
        got = model(x)
    assert rel_err(got, ref_heatmap_head(sd, "head", feats, "classic")) < 1e-5


def test_sapiens_layout_through_allow_list(tmp_path, fake_mmengine):
    torch.manual_seed(3)
    sd = mmpretrain_backbone(48)  # 8x6 tokens: a 128x96 crop
    sd.update(sapiens_head("head", 17))
    mmengine_pth(tmp_path / "sapiens.pth", sd, fake_mmengine)
    model, report = import_checkpoint("sapiens", str(tmp_path / "sapiens.pth"), num_heads=HEADS)
    head_cfg = model.config.heads[0].config
    assert (head_cfg.norm, head_cfg.act, head_cfg.conv_channels) == ("instance", "silu", (16, 16))
    assert model.config.backbone.img_size == (128, 96)
    x = torch.randn(2, 3, 128, 96)
    feats = ref_vit(sd, x, MMPRETRAIN_NAMES, sd["backbone.pos_embed"], (8, 6))
    with torch.no_grad():
        got = model(x)
    assert got.shape == (2, 17, 32, 24)
    assert rel_err(got, ref_heatmap_head(sd, "head", feats, "sapiens")) < 1e-5


def test_imported_model_survives_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(4)
    sd = mmpretrain_backbone(48)
    sd.update(sapiens_head("head", 17))
    torch.save({"state_dict": sd}, tmp_path / "s.pth")
    model, _ = import_checkpoint("sapiens", str(tmp_path / "s.pth"), num_heads=HEADS)
    save_checkpoint(model, tmp_path / "s.safetensors")
    again = load_model(tmp_path / "s.safetensors")
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert again.provenance["format"] == "sapiens" and not again.training


def test_shape_mismatch_and_missing_weights_fail_loudly(tmp_path):
    torch.manual_seed(5)
    sd = vitpose_backbone(12)
    sd.update(classic_head("keypoint_head", 17))
    sd["backbone.blocks.1.mlp.fc1.weight"] = _rand(MLP + 1, C)
    torch.save({"state_dict": sd}, tmp_path / "bad.pth")
    with pytest.raises(PoseAdaptError, match=r"blocks\.1\.mlp\.fc1\.weight.*shape"):
        import_checkpoint("vitpose", str(tmp_path / "bad.pth"), num_heads=HEADS)
    sd["backbone.blocks.1.mlp.fc1.weight"] = _rand(MLP, C)
    del sd["backbone.blocks.0.attn.proj.bias"]
    torch.save({"state_dict": sd}, tmp_path / "missing.pth")
    with pytest.raises(PoseAdaptError, match=r"no weights for backbone\.blocks\.0\.attn\.proj\.bias"):
        import_checkpoint("vitpose", str(tmp_path / "missing.pth"), num_heads=HEADS)


# ---------------------------------------------------------------------------------------------- timm
def timm_vit(side: int, patch: int, cls: bool, layer_scale: bool) -> dict[str, torch.Tensor]:
    """timm VisionTransformer keys (MAE / DINOv2 style), plus a classifier and MAE decoder keys that must go unused."""
    sd = {
        "patch_embed.proj.weight": _rand(C, 3, patch, patch, std=0.05),
        "patch_embed.proj.bias": _rand(C),
        "pos_embed": _rand(1, side * side + (1 if cls else 0), C),
        **_norm_params("norm", C),
        "head.weight": _rand(10, C),
        "head.bias": _rand(10),
        "decoder_embed.weight": _rand(16, C),
    }
    if cls:
        sd["cls_token"] = _rand(1, 1, C)
    for i in range(DEPTH):
        for key, value in vitpose_backbone(12).items():
            if key.startswith(f"backbone.blocks.{i}."):
                sd[key.removeprefix("backbone.")] = value
        if layer_scale:
            sd[f"blocks.{i}.ls1.gamma"] = 1 + _rand(C)
            sd[f"blocks.{i}.ls2.gamma"] = 1 + _rand(C)
    return sd


TIMM_NAMES = {
    role: key.removeprefix("backbone.").replace("last_norm", "norm") for role, key in ORIGINAL_NAMES.items()
} | {"ls1": "blocks.{i}.ls1.gamma", "ls2": "blocks.{i}.ls2.gamma"}


@pytest.mark.parametrize(
    ("suffix", "patch", "cls", "layer_scale"), [(".pth", 16, True, False), (".safetensors", 14, True, True)]
)
def test_timm_backbone_init_resizes_pos_embed(tmp_path, suffix, patch, cls, layer_scale):
    from safetensors.torch import save_file

    torch.manual_seed(6)
    side = 5
    sd = timm_vit(side, patch, cls, layer_scale)
    path = tmp_path / f"vit{suffix}"
    if suffix == ".pth":
        torch.save({"model": sd}, path)
    else:
        save_file(sd, str(path))
    model, report = import_checkpoint("timm", str(path), schema="coco17", num_heads=HEADS, img_size=IMG)
    assert set(report.unused) == {"head.weight", "head.bias", "decoder_embed.weight", "cls_token"}
    assert all(k.startswith("heads.coco17.") for k in report.missing) and report.missing
    grid = model.config.backbone.grid_size
    assert grid == ((IMG[0] + 4 - patch) // patch + 1, (IMG[1] + 4 - patch) // patch + 1)

    pos = sd["pos_embed"]
    square = pos[:, 1:].reshape(1, side, side, C).permute(0, 3, 1, 2)
    resized = F.interpolate(square, size=grid, mode="bicubic", align_corners=False)
    pos_ref = resized.permute(0, 2, 3, 1).reshape(1, -1, C) + pos[:, :1]
    x = torch.randn(2, 3, *IMG)
    expected = ref_vit(sd, x, TIMM_NAMES, pos_ref, grid, layer_scale=layer_scale)
    with torch.no_grad():
        got = model.backbone(x)
    assert rel_err(got, expected) < 1e-5
