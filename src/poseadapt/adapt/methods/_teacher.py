"""Loading and checking the frozen source model that `rehearsal` and `memory_replay` take labels from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from poseadapt.adapt.replay import frozen_teacher
from poseadapt.errors import PoseAdaptError


def load_teacher(path: Path | None, source_model: Any | None, student: Any, key: str) -> Any:
    """The frozen teacher: the checkpoint at `path`, else `model.checkpoint` as loaded (before head surgery)."""
    if path is not None:
        where = f"{key}.teacher"
        teacher = frozen_teacher(path)
    elif source_model is None:
        raise PoseAdaptError(
            f"recipe key '{key}.teacher': this method needs a source model: set it, or start from model.checkpoint"
        )
    else:
        where = "model.checkpoint"
        teacher = frozen_teacher(source_model)  # a copy: the student may be the loaded model itself
    if teacher.config.codec.get("type") == "SimCC":
        raise PoseAdaptError(f"recipe key '{where}': the teacher must be a heatmap model, not SimCC")
    if tuple(teacher.input_size) != tuple(student.input_size) or teacher.heatmap_size != student.heatmap_size:
        (w, h), (sw, sh) = teacher.input_size, student.input_size
        raise PoseAdaptError(
            f"recipe key '{where}': the teacher takes {w}x{h} crops with {teacher.heatmap_size} heatmaps, "
            f"the model {sw}x{sh} with {student.heatmap_size}: they must match"
        )
    return teacher


def check_teacher_file(path: Path | None, key: str) -> None:
    if path is not None and not str(path).startswith("builtin:") and not Path(path).is_file():
        raise PoseAdaptError(f"recipe key '{key}.teacher': file not found: {path}")
