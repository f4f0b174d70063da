"""Training state on disk: one file holding everything `--resume` needs, written atomically.

`last.pt` holds the model and optimizer / scheduler state, the iteration counters, the sampler position, every
rank's torch / numpy / python (and CUDA) RNG state, the hooks' state (EMA weights, best AP, fine-tuning stage
flags) and the resolved recipe. It is written to a temporary file in the same folder and renamed over the old one,
so a crash mid-write leaves the previous checkpoint intact. Only tensors, numbers, strings, lists and dicts go in,
so it loads with `torch.load(weights_only=True)`: opening a checkpoint never runs code from it.

Model weights for use outside training (best / final) are written separately as poseadapt safetensors
checkpoints (`poseadapt.interop.checkpoint`), the format every other command reads.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poseadapt.errors import PoseAdaptError

FORMAT = "poseadapt-train-state"
FORMAT_VERSION = 1


def capture_rng() -> dict[str, Any]:
    """This process's RNG states as plain tensors / numbers (weights-only loadable)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 - the legacy global is what we save
    version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos)},
        "numpy_gauss": [int(has_gauss), float(gauss)],
        "python": [int(version), list(py_state), py_gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    has_gauss, gauss = state["numpy_gauss"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    np.random.set_state((np_state["kind"], keys, np_state["pos"], has_gauss, gauss))  # noqa: NPY002
    version, py_state, py_gauss = state["python"]
    random.setstate((version, tuple(py_state), py_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(state: dict[str, Any], path: str | Path) -> Path:
    """torch.save `state` (plus format tags) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_train_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training-state file with the weights-only unpickler; a wrong or damaged file is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise PoseAdaptError(f"no training state to resume: {path} not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; all mean "not a state we wrote"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PoseAdaptError(f"cannot read training state {path}: {first}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise PoseAdaptError(f"{path} is not a poseadapt training state")
    if int(state.get("format_version", 0)) > FORMAT_VERSION:
        raise PoseAdaptError(f"{path} was written by a newer poseadapt (format v{state['format_version']})")
    return state
