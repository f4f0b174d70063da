"""One entry point over the foreign formats: `import_checkpoint(fmt, src, ...)` -> (PoseModel, ImportReport)."""

from __future__ import annotations

from typing import Any

from poseadapt.errors import PoseAdaptError
from poseadapt.interop.common import ImportReport
from poseadapt.models.pose_model import PoseModel

FORMATS = ("hf", "vitpose", "mmpose", "sapiens", "timm")


def import_checkpoint(
    fmt: str,
    src: str,
    schema: str | None = None,
    num_heads: int | None = None,
    img_size: tuple[int, int] | None = None,
    head: str = "classic",
) -> tuple[PoseModel, ImportReport]:
    """Load a foreign checkpoint; `img_size` (h, w) is the crop for timm, else the stored grid * patch if ambiguous."""
    kwargs: dict[str, Any] = {"schema": schema}
    if fmt == "hf":
        from poseadapt.interop.hf import import_hf

        return import_hf(src, **kwargs)
    if fmt == "timm":
        from poseadapt.interop.timm import import_timm

        return import_timm(src, num_heads=num_heads, img_size=img_size or (256, 192), head=head, **kwargs)
    grid = None
    if img_size is not None:
        grid = (img_size[0] // 16, img_size[1] // 16)
    if fmt == "vitpose":
        from poseadapt.interop.vitpose import import_vitpose

        return import_vitpose(src, num_heads=num_heads, grid=grid, **kwargs)
    if fmt == "mmpose":
        from poseadapt.interop.mmpose import import_mmpose

        return import_mmpose(src, num_heads=num_heads, grid=grid, **kwargs)
    if fmt == "sapiens":
        from poseadapt.interop.sapiens import import_sapiens

        return import_sapiens(src, num_heads=num_heads, grid=grid, **kwargs)
    raise PoseAdaptError(f"unknown import format '{fmt}' (known: {', '.join(FORMATS)})")
