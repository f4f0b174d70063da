"""Load foreign `.pth` checkpoints without running code from them.

A `.pth` is a pickle, and unpickling a stranger's pickle can run anything. We only ever use torch's weights-only
unpickler (tensors, containers, numbers, strings) plus a short allow-list of the inert types that mmengine
checkpoints (original ViTPose, mmpose, Sapiens) carry in their `meta` / `message_hub` entries: numpy scalars and
arrays, and mmengine's HistoryBuffer / ConfigDict. The mmengine types are replaced by inert stand-ins, so mmengine
need not be installed and none of its code runs. Anything else is refused with one clear line.
"""

from __future__ import annotations

import pickle
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poseadapt.errors import PoseAdaptError


class InertObject:
    """Stand-in for an allow-listed foreign class: keeps the pickled state as plain attributes, runs nothing."""

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state


class InertDict(dict):
    """Stand-in for mmengine's ConfigDict (a dict subclass)."""

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state


def _numpy_globals() -> list[Any]:
    """Numpy types that appear in mmengine metadata (scalars, dtypes, small arrays), under numpy 1.x and 2.x names."""
    multiarray = getattr(np, "_core", np.core).multiarray
    items: list[Any] = [np.dtype, np.ndarray]
    for fn in ("scalar", "_reconstruct"):
        obj = getattr(multiarray, fn)
        items += [(obj, f"numpy.core.multiarray.{fn}"), (obj, f"numpy._core.multiarray.{fn}")]
    items += [t for t in vars(np.dtypes).values() if isinstance(t, type) and issubclass(t, np.dtype)]
    return items


_MMENGINE_INERT = [
    (InertObject, "mmengine.logging.history_buffer.HistoryBuffer"),
    (InertObject, "mmengine.logging.message_hub.MessageHub"),
    (InertDict, "mmengine.config.config.ConfigDict"),
]


def allowed_globals() -> list[Any]:
    """The allow-list passed to torch's weights-only unpickler."""
    return _numpy_globals() + list(_MMENGINE_INERT)


def checkpoint_format(path: Path) -> str:
    """What a checkpoint file holds, from its first bytes: 'zip' (torch.save), 'pickle' (legacy torch.save),
    'safetensors', or else what it is instead ("JSON text"), for the error line.

    torch.save writes a zip archive, or (legacy) a pickle of protocol 2+, which starts with the PROTO opcode; a
    safetensors file starts with its 8-byte header length and the header's `{`. Anything else is no checkpoint
    torch or safetensors can read, so it is refused before the unpickler sees it.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise PoseAdaptError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"
    if not head:
        return "an empty file"
    text = head.lstrip()
    if text[:1] in (b"{", b"["):
        return "JSON text"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data in no known format"
    return "plain text"


def safe_torch_load(path: str | Path, kind: str = "checkpoint") -> Any:
    """torch.load(weights_only=True) with the allow-list; a refused or unreadable file raises PoseAdaptError.

    `kind` names the file in messages ("ViTPose checkpoint").
    """
    path = Path(path)
    if path.is_dir():
        raise PoseAdaptError(f"{kind} {path} is a folder, expected a checkpoint file (.pth / .safetensors)")
    if not path.is_file():
        raise PoseAdaptError(f"checkpoint not found: {path}")
    found = checkpoint_format(path)
    if found not in ("zip", "pickle"):
        raise PoseAdaptError(
            f"{path} is not a {kind} poseadapt can read (.pth / .safetensors): it is {found}, not a PyTorch "
            "zip archive or pickle; refusing to unpickle it"
        )
    try:
        with torch.serialization.safe_globals(allowed_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        match = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"the global {match.group(1)}" if match else "pickle instructions outside the weights-only subset"
        raise PoseAdaptError(
            f"refusing to unpickle {path}: it needs {what}, which is not on the allow-list of inert types "
            "(loading it could run code); convert it to safetensors in a trusted environment"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PoseAdaptError(f"cannot read checkpoint {path}: {first}") from None
    except (KeyError, IndexError, TypeError, AttributeError, struct.error) as exc:  # a corrupt pickle stream
        raise PoseAdaptError(f"cannot read checkpoint {path}: corrupt pickle ({type(exc).__name__})") from None


def load_state_dict_file(path: str | Path, kind: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors of a .safetensors or .pth/.pt/.bin file, unwrapped from 'state_dict' / 'model' / 'module' entries.

    Returns (tensors, other top-level entries) so callers can report what they ignored. `kind` names the file in
    messages ("ViTPose checkpoint"). A safetensors file is read as one whatever its suffix.
    """
    path = Path(path)
    if path.suffix == ".safetensors" or (path.is_file() and checkpoint_format(path) == "safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if path.is_dir():
            raise PoseAdaptError(f"{kind} {path} is a folder, expected a checkpoint file (.pth / .safetensors)")
        if not path.is_file():
            raise PoseAdaptError(f"checkpoint not found: {path}")
        try:
            return load_file(str(path)), {}
        except (SafetensorError, OSError) as exc:
            raise PoseAdaptError(f"cannot read safetensors file {path}: {exc}") from None
    obj = safe_torch_load(path, kind)
    extra: dict[str, Any] = {}
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            extra = {k: v for k, v in obj.items() if k != key}
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise PoseAdaptError(f"{path} does not hold a state dict (got {type(obj).__name__})")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise PoseAdaptError(f"{path} holds no tensors")
    return tensors, extra
