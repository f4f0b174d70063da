"""RTMPose import: an mmpose 1.x checkpoint's RTMCC head (final_layer conv, mlp = ScaleNorm + Linear, GAU with
ScaleNorm, cls_x / cls_y) imports key for key and computes what a plain reference forward written from mmpose's
published `RTMCCHead` / `RTMCCBlock` layout computes; RTMPose's CSPNeXt backbone is refused with one line.

The reference below uses only torch primitives on the state dict's tensors (no poseadapt model code).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from poseadapt.cli.main import main
from poseadapt.errors import PoseAdaptError
from poseadapt.interop.checkpoint import load_model, save_checkpoint
from poseadapt.interop.importers import import_checkpoint
from test_interop_layouts import HEADS, IMG, MMPRETRAIN_NAMES, _rand, mmpretrain_backbone, ref_vit, rel_err

K, HIDDEN, S, EXPANSION, KERNEL, RATIO = 17, 16, 8, 2, 7, 2.0
GRID = (IMG[0] // 16, IMG[1] // 16)  # (h, w) tokens of the 64x48 crop: 4x3


def rtmcc_head(prefix: str, in_channels: int = 32, k: int = K, grid: tuple[int, int] = GRID) -> dict:
    """mmpose 1.x RTMCCHead keys (RTMPose's gau_cfg: self-attention, no relative bias, no linear biases)."""
    e = int(HIDDEN * EXPANSION)
    h, w = IMG
    return {
        f"{prefix}.final_layer.weight": _rand(k, in_channels, KERNEL, KERNEL, std=0.05),
        f"{prefix}.final_layer.bias": _rand(k),
        f"{prefix}.mlp.0.g": torch.tensor([1.3]),
        f"{prefix}.mlp.1.weight": _rand(HIDDEN, grid[0] * grid[1], std=0.3),
        f"{prefix}.gau.ln.g": torch.tensor([0.8]),
        f"{prefix}.gau.uv.weight": _rand(2 * e + S, HIDDEN, std=0.3),
        f"{prefix}.gau.gamma": torch.rand(2, S),
        f"{prefix}.gau.beta": torch.rand(2, S),
        f"{prefix}.gau.o.weight": _rand(HIDDEN, e, std=0.3),
        f"{prefix}.gau.res_scale.scale": 1.0 + _rand(HIDDEN),
        f"{prefix}.cls_x.weight": _rand(int(w * RATIO), HIDDEN),
        f"{prefix}.cls_y.weight": _rand(int(h * RATIO), HIDDEN),
    }


def ref_scale_norm(x: torch.Tensor, g: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """mmpose ScaleNorm: x / clamp(||x|| * dim^-1/2, eps) * g."""
    norm = torch.sqrt((x * x).sum(-1, keepdim=True)) * x.shape[-1] ** -0.5
    return x / norm.clamp(min=eps) * g


def ref_rtmcc(sd: dict, p: str, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RTMCCHead.forward: final_layer -> flatten(2) -> mlp -> RTMCCBlock (self-attn, SiLU) -> cls_x, cls_y."""
    d = lambda key: sd[f"{p}.{key}"].double()  # noqa: E731
    w = d("final_layer.weight")
    x = F.conv2d(feats.double(), w, d("final_layer.bias"), padding=w.shape[-1] // 2)
    x = x.flatten(2)  # (B, K, h*w), row-major over the feature map
    x = ref_scale_norm(x, d("mlp.0.g")) @ d("mlp.1.weight").T  # (B, K, hidden)
    shortcut = x
    y = ref_scale_norm(x, d("gau.ln.g")) @ d("gau.uv.weight").T
    y = y * torch.sigmoid(y)  # SiLU
    e, s = d("gau.o.weight").shape[1], d("gau.gamma").shape[1]
    u, v, base = y[..., :e], y[..., e : 2 * e], y[..., 2 * e :]
    q = base * d("gau.gamma")[0] + d("gau.beta")[0]
    k = base * d("gau.gamma")[1] + d("gau.beta")[1]
    kernel = torch.clamp(q @ k.transpose(1, 2) / math.sqrt(s), min=0) ** 2
    y = (u * (kernel @ v)) @ d("gau.o.weight").T
    x = shortcut * d("gau.res_scale.scale") + y
    return x @ d("cls_x.weight").T, x @ d("cls_y.weight").T


def _checkpoint(tmp_path, sd: dict, name: str = "rtm.pth"):
    path = tmp_path / name
    torch.save({"meta": {"mmpose_version": "1.3.1"}, "state_dict": sd}, path)
    return path


def test_rtmcc_head_on_a_vit_matches_reference(tmp_path) -> None:
    torch.manual_seed(7)
    sd = mmpretrain_backbone(GRID[0] * GRID[1])
    sd.update(rtmcc_head("head"))
    model, report = import_checkpoint("mmpose", str(_checkpoint(tmp_path, sd)), num_heads=HEADS)
    assert report.unused == [] and report.missing == []
    cfg = model.config.heads[0].config
    assert cfg.kind == "simcc" and cfg.split_ratio == RATIO and cfg.final_kernel == KERNEL
    assert (cfg.hidden_dims, cfg.s, cfg.expansion_factor) == (HIDDEN, S, EXPANSION)
    assert model.config.codec["type"] == "SimCC" and model.schema.name == "coco17"

    x = torch.randn(2, 3, *IMG)
    feats = ref_vit(sd, x, MMPRETRAIN_NAMES, sd["backbone.pos_embed"], GRID)
    ref_x, ref_y = ref_rtmcc(sd, "head", feats)
    with torch.no_grad():
        got_x, got_y = model(x)
    assert got_x.shape == (2, K, IMG[1] * 2) and got_y.shape == (2, K, IMG[0] * 2)
    assert rel_err(got_x, ref_x) < 1e-5 and rel_err(got_y, ref_y) < 1e-5
    # the attention actually mixes keypoints: a reference without the GAU is far off
    assert rel_err(got_x, ref_rtmcc({**sd, "head.gau.o.weight": sd["head.gau.o.weight"] * 0}, "head", feats)[0]) > 1e-3

    # and survives our own checkpoint format
    save_checkpoint(model, tmp_path / "rtm.safetensors")
    again = load_model(tmp_path / "rtm.safetensors")
    with torch.no_grad():
        ax, ay = again(x)
    assert torch.equal(ax, got_x) and torch.equal(ay, got_y)


def test_cspnext_backbone_is_refused_in_one_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    sd = {
        "backbone.stem.0.conv.weight": _rand(16, 3, 3, 3),
        "backbone.stage1.0.conv.weight": _rand(32, 16, 3, 3),
        "backbone.stage4.1.main_conv.conv.weight": _rand(64, 32, 1, 1),
    }
    sd.update(rtmcc_head("head", in_channels=64, grid=(2, 2)))
    path = _checkpoint(tmp_path, sd)
    with pytest.raises(PoseAdaptError, match="CSPNeXt backbone .* not supported.*ViT backbones only"):
        import_checkpoint("mmpose", str(path))
    with pytest.raises(SystemExit) as exc:
        main(["import", "mmpose", str(path), "--out", str(tmp_path / "out.safetensors")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "Traceback" not in err and len(err.splitlines()) == 1
    assert "CSPNeXt" in err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"head.gau.w": torch.rand(33)}, "variant not supported \\(gau.w\\)"),
        ({"head.cls_y.weight": _rand(100, HIDDEN)}, "do not fit a 48x64 \\(w x h\\) crop"),
        (
            {"head.mlp.1.weight": _rand(HIDDEN, 48)},
            "flattens a 48-cell feature map but the backbone gives 3x4 \\(w x h\\) = 12",
        ),
    ],
)
def test_rtmcc_variants_that_do_not_fit_are_refused(tmp_path, change: dict, message: str) -> None:
    torch.manual_seed(8)
    sd = mmpretrain_backbone(GRID[0] * GRID[1])
    sd.update(rtmcc_head("head"))
    sd.update(change)
    with pytest.raises(PoseAdaptError, match=message):
        import_checkpoint("mmpose", str(_checkpoint(tmp_path, sd)), num_heads=HEADS)
