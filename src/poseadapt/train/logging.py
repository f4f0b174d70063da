"""Training logs (rank 0 only): CSV files always, TensorBoard events when `tensorboard` is installed, and a rich
progress bar.

`train_log.csv` gets one row every `log_interval` iterations (iteration, epoch, each loss term, lr, grad norm,
images/s) and `val_log.csv` one row per validation. The files are appended to and flushed row by row, so a
resumed run continues them and a crash loses at most one row. TensorBoard is optional (`pip install tensorboard`):
torch's SummaryWriter needs it, and it pulls in grpc / protobuf, which a CSV-first trainer does not need.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from poseadapt.train.hooks import Hook

if TYPE_CHECKING:
    from poseadapt.train.engine import Trainer


class CsvLog:
    """Append rows of scalars to a CSV file; a row with new keys widens the header (the file is rewritten once,
    atomically: adaptation methods log different scalars at different times)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file() and path.stat().st_size:
            with path.open(newline="") as f:
                self.fields = next(csv.reader(f), None)

    def write(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        elif any(k not in self.fields for k in row):
            self._widen([k for k in row if k not in self.fields])
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _widen(self, extra: list[str]) -> None:
        import os

        with self.path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert self.fields is not None
        self.fields = [*self.fields, *extra]
        tmp = self.path.with_name(f".tmp-{self.path.name}")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)


def tensorboard_writer(log_dir: Path) -> Any | None:
    """A SummaryWriter if tensorboard is importable, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(log_dir))


class MetricLogger:
    """Where `trainer.log_metrics` goes: CSV per kind ('train', 'val') and TensorBoard scalars."""

    def __init__(self, out_dir: Path, tensorboard: bool = True) -> None:
        self.out_dir = out_dir
        self.csv: dict[str, CsvLog] = {}
        self.tb = tensorboard_writer(out_dir / "tb") if tensorboard else None

    def log(self, metrics: dict[str, float], step: int, kind: str = "train") -> None:
        if kind not in self.csv:
            self.csv[kind] = CsvLog(self.out_dir / f"{kind}_log.csv")
        self.csv[kind].write({"iteration": step, **metrics})
        if self.tb is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float) and key != "epoch":
                    self.tb.add_scalar(key if "/" in key else f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class LogHook(Hook):
    """Every `interval` iterations: averages the step logs since the last row, adds throughput, logs it."""

    def __init__(self, interval: int = 10) -> None:
        self.interval = max(int(interval), 1)
        self._sums: dict[str, torch.Tensor | float] = {}
        self._count = 0
        self._t0 = time.perf_counter()
        self._images = 0
        self.last: dict[str, float] = {}

    def on_epoch_start(self, trainer: Trainer) -> None:
        self._t0, self._images = time.perf_counter(), 0

    def after_step(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        for key, value in logs["losses"].items():
            self._sums[key] = self._sums.get(key, 0.0) + value.detach()
        self._count += 1
        self._images += logs["batch_size"] * trainer.dist.world_size
        if trainer.iteration % self.interval and trainer.epoch_iteration != trainer.iters_per_epoch:
            return
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        row: dict[str, float] = {"epoch": trainer.epoch + trainer.epoch_iteration / trainer.iters_per_epoch}
        row.update({k: float(v) / self._count for k, v in self._sums.items()})
        row["lr"] = logs["lr"]
        if logs.get("grad_norm") is not None:
            row["grad_norm"] = float(logs["grad_norm"])
        row["images_per_s"] = self._images / elapsed
        self.last = row
        if trainer.dist.is_main:
            trainer.log_metrics(row, kind="train")
        self._sums, self._count = {}, 0
        self._t0, self._images = time.perf_counter(), 0


class ProgressHook(Hook):
    """A rich progress bar over the whole run: epoch, loss, lr, images/s, ETA (rank 0)."""

    def __init__(self, log_hook: LogHook) -> None:
        self.log_hook = log_hook
        self.progress: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        if not trainer.dist.is_main:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[ips]} img/s"),
            TimeRemainingColumn(),
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train",
            total=trainer.total_iters,
            completed=trainer.iteration,
            epoch=trainer.epoch + 1,
            epochs=trainer.max_epochs,
            loss="-",
            lr="-",
            ips="-",
        )

    def after_step(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        if self.progress is None:
            return
        row = self.log_hook.last
        fields = {"epoch": min(trainer.epoch + 1, trainer.max_epochs)}
        if row:
            fields.update(loss=f"{row['loss']:.3g}", lr=f"{row['lr']:.2e}", ips=f"{row['images_per_s']:.1f}")
        self.progress.update(self.task, completed=trainer.iteration, **fields)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
