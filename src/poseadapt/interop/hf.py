"""Import a transformers VitPose / ViTPose++ model (a `save_pretrained` directory or a hub id).

Reads config.json and the safetensors weights directly, so transformers need not be installed. The config is
honoured: sizes, layer_norm_eps (HF's default 1e-12, not ViTPose's 1e-6), qkv_bias, mlp_ratio, experts and
part_features, the simple or classic decoder, and `out_indices` (HF reads the feature map after that layer, so a
model whose out_indices stops early is imported with the layers after it dropped, to give the same heatmaps).
HF keeps only the COCO head of ViTPose++ models; the experts are all kept.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from poseadapt.errors import PoseAdaptError
from poseadapt.interop.common import ImportReport, Renamed, load_weights, rename, resolve_schema
from poseadapt.interop.safe_load import load_state_dict_file
from poseadapt.models.factory import with_codec
from poseadapt.models.heads import classic_head, simple_head
from poseadapt.models.pose_model import HeadSpec, PoseModel, PoseModelConfig
from poseadapt.models.vit import ViTConfig

_L = r"backbone\.encoder\.layer\.(\d+)\."
BACKBONE_KEYS = [
    (r"backbone\.embeddings\.patch_embeddings\.projection\.(weight|bias)", r"backbone.patch_embed.proj.\1"),
    (r"backbone\.embeddings\.position_embeddings", "backbone.pos_embed"),
    (_L + r"layernorm_before\.(weight|bias)", r"backbone.blocks.\1.norm1.\2"),
    (_L + r"attention\.attention\.(query|key|value)\.(weight|bias)", r"backbone.blocks.\1.attn.\2.\3"),
    (_L + r"attention\.output\.dense\.(weight|bias)", r"backbone.blocks.\1.attn.proj.\2"),
    (_L + r"layernorm_after\.(weight|bias)", r"backbone.blocks.\1.norm2.\2"),
    (_L + r"mlp\.(fc1|fc2)\.(weight|bias)", r"backbone.blocks.\1.mlp.\2.\3"),
    (_L + r"mlp\.experts\.(\d+)\.(weight|bias)", r"backbone.blocks.\1.mlp.experts.\2.\3"),
    (r"backbone\.layernorm\.(weight|bias)", r"backbone.norm.\1"),
]
SIMPLE_HEAD_KEYS = [(r"head\.conv\.(weight|bias)", r"heads.{head}.final_layer.\1")]
CLASSIC_HEAD_KEYS = [
    (r"head\.deconv1\.weight", r"heads.{head}.deconv_layers.0.weight"),
    (r"head\.batchnorm1\.(\w+)", r"heads.{head}.deconv_layers.1.\1"),
    (r"head\.deconv2\.weight", r"heads.{head}.deconv_layers.3.weight"),
    (r"head\.batchnorm2\.(\w+)", r"heads.{head}.deconv_layers.4.\1"),
    (r"head\.conv\.(weight|bias)", r"heads.{head}.final_layer.\1"),
]


def _resolve_source(src: str) -> Path:
    path = Path(src)
    if path.exists():
        if not path.is_dir():
            raise PoseAdaptError(f"hf import expects a save_pretrained directory, got the file {path}")
        return path
    if src.count("/") == 1 and not src.startswith((".", "/")):
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise PoseAdaptError(
                f"'{src}' is not a directory; to fetch it from the hub, install huggingface_hub"
            ) from None
        return _download(snapshot_download, src)
    raise PoseAdaptError(f"hf source not found: {src} (a save_pretrained directory or a hub id like org/name)")


def _download(snapshot_download: Any, src: str) -> Path:
    """Fetch a hub id; any failure (offline, unknown id, gated, no disk) is one line, with the hub's own retry
    chatter silenced (offline, huggingface_hub logs a warning per retry and chains three exceptions)."""
    import logging

    loggers = [logging.getLogger(n) for n in ("huggingface_hub", "urllib3", "filelock")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        return Path(snapshot_download(src, allow_patterns=["config.json", "*.safetensors", "*.safetensors.index.json"]))
    except Exception as exc:  # noqa: BLE001 - every hub failure is a user-facing one-liner
        why = _hub_failure(exc)
        raise PoseAdaptError(
            f"cannot fetch '{src}' from the Hugging Face hub: {why}; download it where there is network "
            f"(huggingface-cli download {src} --local-dir DIR) and import the folder: poseadapt import hf DIR"
        ) from None
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _hub_failure(exc: BaseException) -> str:
    """A short reason from a hub exception (its class name says most: offline, not found, gated)."""
    name = type(exc).__name__
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or "offline" in str(exc).lower():
        return "no network (or HF_HUB_OFFLINE is set) and the model is not in the local cache"
    if name == "RepositoryNotFoundError":
        return "no such repository (or it is private / gated: log in with huggingface-cli login)"
    if name == "GatedRepoError":
        return "the repository is gated: accept its terms on the hub and log in with huggingface-cli login"
    if isinstance(exc, OSError | ConnectionError) or "connection" in name.lower() or "timeout" in name.lower():
        return f"no network connection ({name})"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{name}: {first[:160]}" if first else name


def _read_weights(directory: Path) -> dict[str, torch.Tensor]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        tensors: dict[str, torch.Tensor] = {}
        for shard in shards:
            tensors.update(load_state_dict_file(directory / shard)[0])
        return tensors
    single = directory / "model.safetensors"
    if single.is_file():
        return load_state_dict_file(single)[0]
    raise PoseAdaptError(f"{directory}: no model.safetensors (only safetensors weights are read)")


def _backbone_config(cfg: dict[str, Any], where: str) -> tuple[ViTConfig, list[str]]:
    notes: list[str] = []
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise PoseAdaptError(f"{where}: hidden_act '{cfg['hidden_act']}' is not supported (ViTPose uses exact gelu)")
    patch = cfg.get("patch_size", [16, 16])
    patch = patch if isinstance(patch, list) else [patch, patch]
    if patch[0] != patch[1]:
        raise PoseAdaptError(f"{where}: non-square patches {patch} are not supported")
    image = cfg.get("image_size", [256, 192])
    image = image if isinstance(image, list) else [image, image]
    depth = int(cfg.get("num_hidden_layers", 12))
    out = cfg.get("out_indices") or [depth]
    last = out[-1] if out[-1] >= 0 else depth + 1 + out[-1]
    if last != depth:
        notes.append(
            f"config out_indices={out} reads the features after layer {last}: layers {last}..{depth - 1} dropped"
        )
    hidden = int(cfg.get("hidden_size", 768))
    experts = int(cfg.get("num_experts", 1))
    return (
        ViTConfig(
            embed_dim=hidden,
            depth=last,
            num_heads=int(cfg.get("num_attention_heads", 12)),
            mlp_dim=int(hidden * float(cfg.get("mlp_ratio", 4))),
            img_size=(int(image[0]), int(image[1])),
            patch_size=int(patch[0]),
            in_chans=int(cfg.get("num_channels", 3)),
            qkv_bias=bool(cfg.get("qkv_bias", True)),
            ln_eps=float(cfg.get("layer_norm_eps", 1e-12)),
            num_experts=experts if experts > 1 else 0,
            part_features=int(cfg.get("part_features") or 0) if experts > 1 else 0,
        ),
        notes,
    )


def _fuse_qkv(tensors: Renamed, depth: int) -> None:
    """HF splits qkv into query/key/value (rows [0:C], [C:2C], [2C:3C] of ViTPose's qkv): join them back."""
    for i in range(depth):
        for kind in ("weight", "bias"):
            parts = [tensors.pop(f"backbone.blocks.{i}.attn.{n}.{kind}", None) for n in ("query", "key", "value")]
            if all(p is not None for p in parts):
                fused = f"backbone.blocks.{i}.attn.qkv.{kind}"
                tensors[fused] = torch.cat(parts, dim=0)  # type: ignore[arg-type]
                tensors.origin[fused] = f"backbone.encoder.layer.{i}.attention.attention.{{query,key,value}}.{kind}"
            elif any(p is not None for p in parts):
                raise PoseAdaptError(f"layer {i}: query/key/value {kind} incomplete")


def import_hf(src: str, schema: str | None = None) -> tuple[PoseModel, ImportReport]:
    """A transformers VitPoseForPoseEstimation checkpoint -> PoseModel with identical heatmaps."""
    directory = _resolve_source(src)
    report = ImportReport(source=str(src), format="hf")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise PoseAdaptError(f"{directory}: no config.json")
    config = json.loads(config_path.read_text())
    if config.get("model_type") != "vitpose":
        raise PoseAdaptError(f"{config_path}: model_type is '{config.get('model_type')}', expected 'vitpose'")
    backbone, notes = _backbone_config(config.get("backbone_config") or {}, str(config_path))
    report.notes += notes
    tensors = _read_weights(directory)

    simple = bool(config.get("use_simple_decoder", True))
    scale = int(config.get("scale_factor", 4))
    head_cfg = replace(simple_head(), upsample=scale) if simple else classic_head()
    final = tensors.get("head.conv.weight")
    if final is None:
        raise PoseAdaptError(f"{directory}: no head.conv.weight (not a VitPoseForPoseEstimation checkpoint?)")
    key_schema = resolve_schema(final.shape[0], schema, "coco17", report)
    head_name = "coco" if backbone.num_experts else key_schema.name
    table = BACKBONE_KEYS + [
        (p, r.format(head=head_name)) for p, r in (SIMPLE_HEAD_KEYS if simple else CLASSIC_HEAD_KEYS)
    ]
    mapped, report.unused = rename(tensors, table)

    pos = mapped.get("backbone.pos_embed")
    if pos is not None:
        mapped["backbone.pos_embed"] = pos[:, 1:] + pos[:, :1]
    _fuse_qkv(mapped, count_layers(mapped))
    model = PoseModel(
        PoseModelConfig(backbone=backbone, heads=(HeadSpec(head_name, key_schema.name, head_cfg),), arch="hf-vitpose"),
        [key_schema],
    )
    load_weights(model, mapped, report)
    with_codec(model)
    model.provenance = {"imported_from": str(src), "format": "hf", "hf_config": config}
    return model.eval(), report


def count_layers(mapped: dict[str, torch.Tensor]) -> int:
    return 1 + max((int(k.split(".")[2]) for k in mapped if k.startswith("backbone.blocks.")), default=-1)
