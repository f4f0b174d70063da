"""`poseadapt synth`: render a synthetic population to a COCO dataset, with a progress bar."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from poseadapt.errors import PoseAdaptError


def parse_people(text: str) -> int | tuple[int, int]:
    """'2' -> 2, '1-3' -> (1, 3)."""
    try:
        if "-" in text:
            lo, hi = text.split("-", 1)
            return int(lo), int(hi)
        return int(text)
    except ValueError:
        raise PoseAdaptError(f"--people must be N or LO-HI (e.g. 1-3), got '{text}'") from None


def _os_reason(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc.__class__.__name__}{where}"


def _prepare_out(out: Path) -> Path | None:
    """Create `--out` up front, so a path that cannot be a folder fails in one line before any rendering; returns
    the topmost folder this created (None if `out` was there), for `_remove_if_empty` when the run fails."""
    created = None
    for folder in (out, *out.parents):
        if folder.exists():
            break
        created = folder
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PoseAdaptError(f"--out {out}: cannot create the folder: {_os_reason(exc)}") from None
    if not out.is_dir():
        raise PoseAdaptError(f"--out {out}: not a folder")
    return created


def _remove_if_empty(created: Path | None) -> None:
    """Take back the folders `_prepare_out` made when nothing was written in them (a rejected option)."""
    if created is not None and created.is_dir() and not any(p.is_file() for p in created.rglob("*")):
        shutil.rmtree(created, ignore_errors=True)


def run(
    population: str,
    view: str,
    n: int,
    size: int,
    out: Path,
    seed: int,
    schemas: list[str] | None,
    people: str,
    backgrounds: Path | None,
    image_format: str,
    workers: int,
    preview: bool,
    json_out: bool,
    look: str = "visible",
) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from poseadapt.synth import write_dataset

    created = _prepare_out(out)
    console = Console(stderr=True)
    with Progress(
        TextColumn(f"synth {population} ({view}{', thermal' if look == 'thermal' else ''})"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=json_out or n < 50 or not console.is_terminal,
    ) as bar:
        task = bar.add_task("render", total=n)
        try:
            files = write_dataset(
                out,
                population,
                view=view,
                n=n,
                size=size,
                seed=seed,
                schemas=schemas or None,
                people=parse_people(people),
                backgrounds=backgrounds,
                image_format=image_format,
                preview=preview,
                workers=workers,
                look=look,
                progress=lambda done: bar.update(task, completed=done),
            )
        except OSError as exc:  # disk full, permissions changed mid-run: one line, not a traceback
            _remove_if_empty(created)
            raise PoseAdaptError(f"cannot write the dataset under {out}: {_os_reason(exc)}") from None
        except PoseAdaptError:  # an option rejected before anything was rendered
            _remove_if_empty(created)
            raise
    result = {
        "images": str(files.images),
        "annotations": {k: str(v) for k, v in files.annotations.items()},
        "preview": str(files.preview) if files.preview else None,
        "n": n,
    }
    if json_out:
        import json

        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    lines = [f"wrote {n} images to {files.images}"]
    lines += [f"  {name}: {path}" for name, path in files.annotations.items()]
    if files.preview:
        lines.append(f"  preview: {files.preview}")
    sys.stdout.write("\n".join(lines) + "\n")
