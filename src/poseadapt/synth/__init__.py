"""Synthetic populations: articulated 3D bodies rendered to COCO keypoint datasets, with no download.

The embedded default behind `poseadapt demo` and many tests, and a data source in its own right (synthetic
infants, older adults and wheelchair users close real gaps: SyRIP, MINI-RGBD, WheelPose).

    from poseadapt.synth import render_dataset, write_dataset
    images, coco = render_dataset("infant", view="top", n=64, size=256, seed=0)          # in memory
    write_dataset("out/", "wheelchair", view="diagonal", n=1000, seed=1, preview=True)   # files

Sample `i` of seed `s` depends only on (s, i): any subset, in any order or process, renders identically.
Images are uint8 BGR arrays, as cv2.imread returns them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from poseadapt.errors import PoseAdaptError
from poseadapt.schemas import KeypointSchema, get_schema
from poseadapt.synth.camera import VIEWS, check_view
from poseadapt.synth.populations import POPULATIONS, Population, get_population
from poseadapt.synth.scene.background import BackgroundSource
from poseadapt.synth.scene.compose import KEYPOINT_NAMES, PersonRecord, RenderOptions, SynthSample, render_scene

__all__ = [
    "KEYPOINT_NAMES",
    "POPULATIONS",
    "VIEWS",
    "DatasetFiles",
    "PersonRecord",
    "Population",
    "SynthSample",
    "get_population",
    "iter_samples",
    "render_dataset",
    "render_sample",
    "write_dataset",
]

MAX_SIZE = 4096
LOOKS = ("visible", "thermal")


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample `index`: independent of every other sample, so subsets render identically."""
    return np.random.default_rng([int(seed), int(index)])


def _options(
    view: str, size: int | tuple[int, int], people: int | tuple[int, int], look: str = "visible"
) -> RenderOptions:
    check_view(view)
    if look not in LOOKS:
        raise PoseAdaptError(f"unknown look {look!r}; known: {', '.join(LOOKS)}")
    w, h = (size, size) if isinstance(size, int) else size
    if not (16 <= w <= MAX_SIZE and 16 <= h <= MAX_SIZE):
        raise PoseAdaptError(f"image size must be between 16 and {MAX_SIZE} pixels, got {w}x{h}")
    lo, hi = (people, people) if isinstance(people, int) else people
    if not 1 <= lo <= hi <= 8:
        raise PoseAdaptError(f"people per image must be a range within 1..8, got {lo}..{hi}")
    return RenderOptions(width=int(w), height=int(h), view=view, people=(int(lo), int(hi)), look=look)


def _check_seed(seed: int) -> int:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise PoseAdaptError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def render_sample(
    index: int,
    population: str | Population = "adult",
    *,
    view: str = "random",
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    people: int | tuple[int, int] = 1,
    backgrounds: BackgroundSource | Sequence[str | Path] | str | Path | None = None,
    look: str = "visible",
) -> SynthSample:
    """Render sample `index` of a dataset: the image and, per person, keypoints, visibility and silhouettes.

    `look` is the camera: "visible" (colour) or "thermal" (long-wave infrared: the same scene, bodies and labels,
    imaged by heat)."""
    pop = get_population(population)
    source = backgrounds if isinstance(backgrounds, BackgroundSource) else BackgroundSource(backgrounds)
    options = _options(view, size, people, look)
    return render_scene(sample_rng(_check_seed(seed), index), pop, options, source, index=index)


def iter_samples(
    population: str | Population = "adult",
    *,
    view: str = "random",
    n: int = 16,
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    people: int | tuple[int, int] = 1,
    backgrounds: Sequence[str | Path] | str | Path | None = None,
    start: int = 0,
    look: str = "visible",
) -> Iterator[SynthSample]:
    """Samples `start .. start+n-1`, rendered lazily (the way to stream a large set through training)."""
    pop = get_population(population)
    options = _options(view, size, people, look)
    seed = _check_seed(seed)
    if n < 0:
        raise PoseAdaptError(f"n must be >= 0, got {n}")
    source = BackgroundSource(backgrounds)
    for i in range(start, start + n):
        yield render_scene(sample_rng(seed, i), pop, options, source, index=i)


def render_dataset(
    population: str | Population = "adult",
    *,
    view: str = "random",
    n: int = 16,
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    schema: str | Path | KeypointSchema = "coco17",
    people: int | tuple[int, int] = 1,
    backgrounds: Sequence[str | Path] | str | Path | None = None,
    look: str = "visible",
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Render `n` images in memory: (BGR uint8 images, COCO keypoint dict in `schema`).

    `file_name`s in the dict are the names `write_dataset` would give the images.
    """
    from poseadapt.synth.coco_writer import CocoBuilder

    pop = get_population(population)
    kschema = get_schema(schema)
    builder = CocoBuilder(kschema, pop.name, view, seed)
    images = []
    for sample in iter_samples(
        pop, view=view, n=n, size=size, seed=seed, people=people, backgrounds=backgrounds, look=look
    ):
        builder.add(sample, image_file_name(pop.name, sample.index, "jpg"))
        images.append(sample.image)
    return images, builder.to_dict()


def image_file_name(population: str, index: int, ext: str) -> str:
    return f"{population}_{index:06d}.{ext}"


@dataclass(frozen=True)
class DatasetFiles:
    """Where `write_dataset` put things: image folder, one annotation file per schema, optional preview."""

    images: Path
    annotations: dict[str, Path]
    preview: Path | None


def write_dataset(
    out_dir: str | Path,
    population: str | Population = "adult",
    *,
    view: str = "random",
    n: int = 100,
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    schemas: Sequence[str | Path | KeypointSchema] | None = None,
    people: int | tuple[int, int] = 1,
    backgrounds: Sequence[str | Path] | str | Path | None = None,
    image_format: str = "jpg",
    jpeg_quality: int = 92,
    preview: bool = False,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    look: str = "visible",
) -> DatasetFiles:
    """Render `n` images to `out_dir/images/` and COCO files to `out_dir/annotations/{population}_{schema}.json`.

    schemas: default coco17 and the population's native schema. `preview` writes `out_dir/preview.png`, a
    contact sheet of the first 16 images with the skeleton drawn on (the native schema's, if written).
    `progress(k)` is called after each image with the number done. `workers` > 1 renders in that many
    processes; the output is identical.
    """
    from poseadapt.synth.writer import write_dataset_files

    pop = get_population(population)
    names = list(schemas) if schemas else ["coco17", pop.native_schema]
    kschemas: list[KeypointSchema] = []
    for s in names:
        k = get_schema(s)
        if k.name not in [q.name for q in kschemas]:
            kschemas.append(k)
    if image_format not in ("jpg", "png"):
        raise PoseAdaptError(f"image format must be jpg or png, got '{image_format}'")
    if not 1 <= jpeg_quality <= 100:
        raise PoseAdaptError(f"JPEG quality must be within 1..100, got {jpeg_quality}")
    if n < 1:
        raise PoseAdaptError(f"n must be >= 1, got {n}")
    if workers < 1:
        raise PoseAdaptError(f"workers must be >= 1, got {workers}")
    options = _options(view, size, people, look)
    BackgroundSource(backgrounds)  # validate the paths now, before any work
    return write_dataset_files(
        Path(out_dir),
        pop,
        options,
        n=n,
        seed=_check_seed(seed),
        schemas=kschemas,
        backgrounds=backgrounds,
        image_format=image_format,
        jpeg_quality=jpeg_quality,
        preview=preview,
        workers=workers,
        progress=progress,
    )
