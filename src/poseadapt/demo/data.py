"""Step 1 of the demo: render the infant and test sets to disk, once.

Each set is written with `poseadapt.synth.write_dataset` in both schemas the demo compares on (coco17, and the
infant schema infant21), so a model is always scored against labels in its own schema and, for comparisons
across schemas, against the shared coco17 points. Training then reads the files like any COCO dataset (the same
path `poseadapt train` takes). A set is re-used when its files are already there: rendering is deterministic, so
the folder name (population, view, count, seed, size) says exactly what is inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from poseadapt.demo.settings import DataSpec

SCHEMAS = ("coco17", "infant21")


@dataclass(frozen=True)
class RenderedSet:
    """A rendered set on disk: the image folder and one annotation file per schema."""

    spec: DataSpec
    root: Path
    images: Path
    annotations: dict[str, Path]


def set_folder(data_dir: Path, spec: DataSpec, size: int) -> Path:
    return data_dir / f"{spec.name}_{size}px"


def rendered_set(data_dir: Path, spec: DataSpec, size: int) -> RenderedSet:
    root = set_folder(data_dir, spec, size)
    anns = {s: root / "annotations" / f"{spec.population}_{s}.json" for s in SCHEMAS}
    return RenderedSet(spec, root, root / "images", anns)


def is_complete(rs: RenderedSet) -> bool:
    """Annotations are written last (atomically), so their presence means the images are all there."""
    return all(p.is_file() for p in rs.annotations.values()) and rs.images.is_dir()


def render_set(data_dir: Path, spec: DataSpec, size: int, *, workers: int = 2) -> RenderedSet:
    """Render the set unless it is on disk already (rendering is deterministic: the folder name says it all)."""
    from poseadapt.synth import write_dataset

    rs = rendered_set(data_dir, spec, size)
    if not is_complete(rs):
        write_dataset(rs.root, spec.population, view=spec.view, n=spec.n, size=size, seed=spec.seed,
                      schemas=list(SCHEMAS), workers=workers)  # fmt: skip
    return rs
