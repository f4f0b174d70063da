"""What every command writes with: atomic files and folders, and JSON on stdout.

A command either leaves its complete output or none of it: a file is written to a temporary name next to its
destination and renamed over it; a folder of outputs is built in a temporary sibling folder and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from poseadapt.errors import PoseAdaptError


def print_json(obj: object) -> None:
    """One JSON document on stdout (what `--json` prints)."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def check_output(path: str | Path, option: str, *, folder: bool = False) -> Path:
    """Fail up front, in one `PoseAdaptError` line, when `path` cannot receive a command's output: a folder where a
    file goes (or a file where a folder goes), a file in the way of its parent folders, or a parent not writable.

    Commands call it before any work, so a wrong `--out` costs no inference or training time and leaves nothing.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise PoseAdaptError(f"{option} {path}: a file is in the way, expected a folder")
    if not folder and path.is_dir():
        raise PoseAdaptError(f"{option} {path} is a folder, expected a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise PoseAdaptError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PoseAdaptError(f"{option} {path}: cannot write in {parent} (permission denied)")
    return path


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write `data` to `path` through a temporary file and a rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """`obj` as indented JSON, atomically."""
    return write_atomic(path, json.dumps(obj, indent=2) + "\n")


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success its files replace those of `path`, on error it goes.

    Files in `path` that the new output does not name are kept (a user's own notes survive a re-run).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if not path.exists():
            os.replace(tmp, path)
            return
        for item in sorted(tmp.rglob("*")):
            if item.is_file():
                target = path / item.relative_to(tmp)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def progress_callback(total: int, description: str) -> Any:
    """A callback (done, total) drawing a transient rich progress bar on a terminal; None elsewhere or when short."""
    if not sys.stderr.isatty() or total < 3:
        return None
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task(description, total=total)
    bar.start()

    def update(done: int, _total: int) -> None:
        bar.update(task, completed=done)
        if done >= _total:
            bar.stop()

    return update
