"""poseadapt checkpoints: one .safetensors file whose metadata holds a JSON header.

The header carries everything needed to rebuild the model without code from the file: the model config, the full
schema of every head (so custom schemas travel with the weights), the poseadapt version and free-form provenance
(where the weights came from, what was carried over, training notes). Weights are safetensors, so loading never
unpickles anything.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from poseadapt.errors import PoseAdaptError
from poseadapt.models.pose_model import PoseModel, PoseModelConfig
from poseadapt.schemas import KeypointSchema

BUILTIN_PREFIX = "builtin:"
FORMAT = "poseadapt-checkpoint"
FORMAT_VERSION = 1
HEADER_KEY = "poseadapt"


def save_checkpoint(model: PoseModel, path: str | Path, provenance: dict[str, Any] | None = None) -> Path:
    """Write `model` to `path` atomically (temp file + rename); returns the path."""
    from safetensors.torch import save_file

    from poseadapt import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "poseadapt_version": __version__,
        "config": model.config.to_dict(),
        "schemas": [s.to_dict() for s in model.schemas],
        "provenance": provenance or getattr(model, "provenance", {}) or {},
    }
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={HEADER_KEY: json.dumps(header)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def builtin_models() -> list[str]:
    """Names of the checkpoints shipped inside the package (`builtin:NAME`)."""
    from importlib import resources

    folder = resources.files("poseadapt") / "weights"
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".safetensors") for p in folder.iterdir() if p.name.endswith(".safetensors"))


def is_builtin(path: str | Path) -> bool:
    return str(path).startswith(BUILTIN_PREFIX)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint path, with `builtin:NAME` resolved to the file shipped in the package (one line if unknown)."""
    if not is_builtin(path):
        return Path(path)
    from importlib import resources

    name = str(path)[len(BUILTIN_PREFIX) :]
    if name not in builtin_models():
        known = ", ".join(f"builtin:{n}" for n in builtin_models()) or "none shipped"
        raise PoseAdaptError(f"unknown built-in model '{path}' (known: {known})")
    return Path(str(resources.files("poseadapt") / "weights" / f"{name}.safetensors"))


def save_half(model: PoseModel, path: str | Path, provenance: dict[str, Any] | None = None) -> Path:
    """`save_checkpoint` with floating-point tensors stored as fp16 (half the bytes; loading casts back)."""
    import copy

    half = copy.deepcopy(model)
    for t in [*half.parameters(), *half.buffers()]:
        if t.is_floating_point():
            t.data = t.data.half()
    return save_checkpoint(half, path, provenance)


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a poseadapt checkpoint (cheap: reads no tensors)."""
    from safetensors import SafetensorError, safe_open

    path = resolve_checkpoint(path)
    if path.is_dir():
        raise PoseAdaptError(f"checkpoint {path} is a folder, expected a poseadapt checkpoint file (.safetensors)")
    if not path.is_file():
        raise PoseAdaptError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise PoseAdaptError(f"{path} is not a safetensors checkpoint ({exc})") from None
    if HEADER_KEY not in meta:
        raise PoseAdaptError(f"{path} is not a poseadapt checkpoint (no '{HEADER_KEY}' header); use `poseadapt import`")
    try:
        header = json.loads(meta[HEADER_KEY])
    except json.JSONDecodeError as exc:
        raise PoseAdaptError(f"{path}: corrupt checkpoint header ({exc})") from None
    if header.get("format") != FORMAT or int(header.get("format_version", 0)) > FORMAT_VERSION:
        raise PoseAdaptError(
            f"{path}: unsupported checkpoint format {header.get('format')} v{header.get('format_version')}"
        )
    return header


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> PoseModel:
    """Rebuild the PoseModel stored at `path`, in eval mode."""
    from safetensors.torch import load_file

    path = resolve_checkpoint(path)
    header = read_header(path)
    config = PoseModelConfig.from_dict(header["config"])
    schemas = [KeypointSchema.from_dict(s, source=str(path)) for s in header["schemas"]]
    model = PoseModel(config, schemas)
    state = load_file(str(path), device=str(map_location))
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise PoseAdaptError(
            f"{path}: weights do not match the stored config ({str(exc).splitlines()[-1].strip()})"
        ) from None
    if result.missing_keys or result.unexpected_keys:
        raise PoseAdaptError(
            f"{path}: weights do not match the stored config "
            f"(missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})"
        )
    model.provenance = header.get("provenance", {})
    return model.float().to(map_location).eval()


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> PoseModel:
    """Public entry point (`poseadapt.load_model`): a poseadapt checkpoint -> PoseModel in eval mode."""
    return load_checkpoint(path, map_location)
