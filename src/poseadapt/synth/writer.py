"""Writing a synthetic dataset to disk: images, one COCO file per schema, an optional contact sheet.

Each image is rendered, encoded and written by one call of `_render_one`, in this process or in a pool of
workers; the call returns only the small annotation dicts, which the parent assembles in index order, so the JSON
is byte-identical whatever the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from poseadapt.errors import PoseAdaptError
from poseadapt.schemas import KeypointSchema
from poseadapt.synth.coco_writer import CocoBuilder, write_bytes_atomic, write_json_atomic
from poseadapt.synth.populations import Population
from poseadapt.synth.scene.background import BackgroundSource
from poseadapt.synth.scene.compose import RenderOptions, render_scene

if TYPE_CHECKING:
    from poseadapt.synth import DatasetFiles

PREVIEW_COUNT = 16

_state: dict[str, Any] = {}


def _init(
    pop: Population,
    options: RenderOptions,
    seed: int,
    schemas: list[KeypointSchema],
    backgrounds: Any,
    image_dir: Path,
    image_format: str,
    jpeg_quality: int,
    preview: bool,
    single_thread: bool,
) -> None:
    if single_thread:
        cv2.setNumThreads(1)
    _state.update(
        pop=pop,
        options=options,
        seed=seed,
        builders=[CocoBuilder(s, pop.name, options.view, seed) for s in schemas],
        source=BackgroundSource(backgrounds),
        image_dir=image_dir,
        image_format=image_format,
        jpeg_quality=jpeg_quality,
        preview=preview,
    )


def _render_one(index: int) -> tuple[int, list[tuple[dict, list[dict]]], np.ndarray | None]:
    from poseadapt.draw import draw_annotations
    from poseadapt.synth import image_file_name, sample_rng

    s = _state
    sample = render_scene(sample_rng(s["seed"], index), s["pop"], s["options"], s["source"], index=index)
    name = image_file_name(s["pop"].name, index, s["image_format"])
    if s["image_format"] == "jpg":
        ok, data = cv2.imencode(".jpg", sample.image, [cv2.IMWRITE_JPEG_QUALITY, s["jpeg_quality"]])
    else:
        ok, data = cv2.imencode(".png", sample.image)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 BGR image
        raise RuntimeError(f"could not encode image {name}")
    write_bytes_atomic(s["image_dir"] / name, data.tobytes())
    per_schema = []
    for builder in s["builders"]:
        builder.images.clear()
        builder.annotations.clear()
        builder.add(sample, name)
        per_schema.append((builder.images[0], list(builder.annotations)))
    tile = None
    if s["preview"] and index < PREVIEW_COUNT:  # drawn in the population's own schema when it is written
        k = next((i for i, b in enumerate(s["builders"]) if b.schema.name == s["pop"].native_schema), 0)
        tile = draw_annotations(sample.image, per_schema[k][1], s["builders"][k].schema)
    return index, per_schema, tile


UNGUARDED = (
    "synth workers could not start: a script that writes with workers > 1 must call it under "
    "`if __name__ == '__main__':` (each worker imports the script), or pass workers=1"
)


def render_in_workers(workers: int, n: int, init_args: tuple, collect: Callable[[Any, int], None]) -> None:
    """`_render_one` over range(n) in a pool, results in index order.

    Not "fork": forking a process that runs other threads (torch, OpenCV, pytest-xdist) can deadlock the children on
    a lock held at fork time (seen in the test suite); forkserver children start clean. They import the caller's
    script, so a call outside a `__main__` guard runs again in every worker: there it stops at once, and the
    parent's executor (unlike `multiprocessing.Pool`, which respawns dead workers forever) reports it on one line.
    """
    if getattr(mp.process.current_process(), "_inheriting", False):  # a worker importing the caller's script
        raise PoseAdaptError(UNGUARDED)
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    chunk = max(1, min(32, n // (workers * 4) or 1))
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(*init_args, True)) as pool:
            for done, result in enumerate(pool.map(_render_one, range(n), chunksize=chunk), start=1):
                collect(result, done)
    except BrokenProcessPool:
        raise PoseAdaptError(UNGUARDED) from None


def write_dataset_files(
    out_dir: Path,
    pop: Population,
    options: RenderOptions,
    *,
    n: int,
    seed: int,
    schemas: Sequence[KeypointSchema],
    backgrounds: Any,
    image_format: str,
    jpeg_quality: int,
    preview: bool,
    workers: int,
    progress: Callable[[int], None] | None,
) -> DatasetFiles:
    from poseadapt.draw import contact_sheet
    from poseadapt.synth import DatasetFiles

    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    builders = [CocoBuilder(s, pop.name, options.view, seed) for s in schemas]
    init_args = (pop, options, seed, list(schemas), backgrounds, image_dir, image_format, jpeg_quality, preview)
    tiles: dict[int, np.ndarray] = {}

    def collect(result: tuple[int, list[tuple[dict, list[dict]]], np.ndarray | None], done: int) -> None:
        _index, per_schema, tile = result
        for builder, (image, anns) in zip(builders, per_schema, strict=True):
            builder.images.append(image)
            builder.annotations.extend(anns)
        if tile is not None:
            tiles[_index] = tile
        if progress is not None:
            progress(done)

    if workers == 1:
        _init(*init_args, single_thread=False)
        for done, i in enumerate(range(n), start=1):
            collect(_render_one(i), done)
    else:
        render_in_workers(workers, n, init_args, collect)
    ann_dir = out_dir / "annotations"
    paths = {}
    for builder in builders:
        path = ann_dir / f"{pop.name}_{builder.schema.name}.json"
        write_json_atomic(path, builder.to_dict())
        paths[builder.schema.name] = path
    preview_path = None
    if preview and tiles:
        sheet = contact_sheet([tiles[i] for i in sorted(tiles)], columns=4)
        ok, data = cv2.imencode(".png", sheet)
        preview_path = out_dir / "preview.png"
        write_bytes_atomic(preview_path, data.tobytes())
    return DatasetFiles(images=image_dir, annotations=paths, preview=preview_path)
