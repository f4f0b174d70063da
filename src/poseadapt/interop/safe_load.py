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


def safe_torch_load(path: str | Path) -> Any:
    """torch.load(weights_only=True) with the allow-list; a refused or unreadable file raises PoseAdaptError."""
    path = Path(path)
    if not path.is_file():
        raise PoseAdaptError(f"checkpoint not found: {path}")
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


def load_state_dict_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors of a .safetensors or .pth/.pt/.bin file, unwrapped from 'state_dict' / 'model' / 'module' entries.

    Returns (tensors, other top-level entries) so callers can report what they ignored.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not path.is_file():
            raise PoseAdaptError(f"checkpoint not found: {path}")
        try:
            return load_file(str(path)), {}
        except (SafetensorError, OSError) as exc:
            raise PoseAdaptError(f"cannot read safetensors file {path}: {exc}") from None
    obj = safe_torch_load(path)
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
