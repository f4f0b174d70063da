"""Training logs (rank 0 only): CSV files always, TensorBoard events when `tensorboard` is installed, and a rich
progress bar.

`train_log.csv` gets one row every `log_interval` iterations (iteration, epoch, each loss term, lr, grad norm,
images/s) and `val_log.csv` one row per validation. The files are appended to and flushed row by row, so a
resumed run continues them and a crash loses at most one row. At the end of training (or when it stops on a
non-finite loss) `learning_curve.png` plots the training loss and the validation AP against the iteration, from
those two files (matplotlib, Agg: no display needed). TensorBoard is optional (`pip install tensorboard`):
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
        write_learning_curve(self.out_dir)


def _read_columns(path: Path, x: str, y: str) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    if not path.is_file():
        return xs, ys
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                xs.append(float(row[x]))
                ys.append(float(row[y]))
            except (KeyError, TypeError, ValueError):
                continue
    return xs, ys


CURVE_FILE = "learning_curve.png"


def write_learning_curve(out_dir: Path) -> Path | None:
    """`learning_curve.png` in `out_dir`: training loss (left axis) and validation AP (right axis) against the
    iteration, from `train_log.csv` and `val_log.csv`; None (and no file) when there is nothing to plot or no
    matplotlib. A plot never fails a run."""
    its, loss = _read_columns(out_dir / "train_log.csv", "iteration", "loss")
    v_its, ap = _read_columns(out_dir / "val_log.csv", "iteration", "val/AP")
    if not its and not v_its:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import os

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        ax.plot(its, loss, color="tab:blue", label="train loss")
        ax.set_xlabel("iteration")
        ax.set_ylabel("train loss", color="tab:blue")
        if v_its:
            ax2 = ax.twinx()
            ax2.plot(v_its, ap, "o-", color="tab:orange", label="val AP")
            ax2.set_ylabel("val AP", color="tab:orange")
            best = max(range(len(ap)), key=ap.__getitem__)
            ax.set_title(f"best val AP {ap[best]:.4f} at iteration {int(v_its[best])}")
        else:
            ax.set_title("training loss (no validation)")
        fig.tight_layout()
        path = out_dir / CURVE_FILE
        tmp = out_dir / f".tmp-{CURVE_FILE}"
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
        return path
    except (OSError, ValueError):
        return None
    finally:
        plt.close(fig)


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


def planned_epochs(trainer: Trainer) -> int:
    """Epochs the run will reach: the schedule's, or fewer when `train.max_iters` stops it early (a partial last
    epoch counts). The progress display and the final summary both use it, so they agree."""
    per = max(trainer.iters_per_epoch, 1)
    return min(trainer.max_epochs, -(-trainer.total_iters // per))


def _fmt_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def start_summary(trainer: Trainer, train_sizes: list[tuple[str, int]], val_sizes: dict[str, int]) -> str:
    """The lines printed before the first step: model, device, what trains, head surgery, data, iterations."""
    model = trainer.module
    recipe = trainer.recipe
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    aux = sum(p.numel() for p in trainer.aux.parameters())
    config = getattr(model, "config", None)
    arch = getattr(config, "arch", type(model).__name__)
    size = getattr(model, "input_size", recipe.model.input_size)
    heads = (
        ", ".join(f"{n} ({len(s)} keypoints)" for n, s in zip(model.head_names, model.schemas, strict=True))
        if (hasattr(model, "head_names"))
        else "-"
    )
    start = f"from {recipe.model.checkpoint}" if recipe.model.checkpoint else "from scratch"
    lines = [
        f"model:    {arch} {start}, {total / 1e6:.2f}M parameters, input {size[0]}x{size[1]} (w x h), heads: {heads}",
        f"device:   {trainer.device} ({'bf16 autocast' if trainer.autocast else 'float32'}), "
        f"{trainer.dist.world_size} process(es)",
        f"trains:   {trainable / 1e6:.2f}M of {total / 1e6:.2f}M parameters ({100 * trainable / max(total, 1):.1f}%)"
        + (f" + {aux / 1e6:.2f}M in auxiliary modules" if aux else "")
        + (f"; methods: {', '.join(m.name for m in trainer.methods)}" if trainer.methods else "; full fine-tuning"),
    ]
    report = getattr(model, "surgery_report", None)
    if report is not None:
        kept = [new if old == new else f"{new}<-{old}" for old, new in report.carried]
        # `fresh` already holds the approximate matches (e.g. a neck as the shoulders' midpoint): mark, not repeat
        fresh = [f"{n} (~)" if n in report.approximate else n for n in report.fresh]
        lines.append(
            f"head:     '{report.source_head}' -> '{report.new_head}': {len(kept)} keypoints keep their weights "
            f"({', '.join(kept) or '-'}), {len(fresh)} start fresh ({', '.join(fresh) or '-'})"
        )
    data = ", ".join(f"{name} {n}" for name, n in train_sizes)
    val = ", ".join(f"{name or 'val'} {n}" for name, n in val_sizes.items()) or "none"
    lines.append(f"data:     train: {data} people; validation: {val}")
    lines.append(
        f"schedule: {planned_epochs(trainer)} epochs x {trainer.iters_per_epoch} iterations (batch "
        f"{trainer.batch_size}) = {trainer.total_iters} iterations; lr {recipe.optim.lr:g}, warm-up "
        f"{recipe.schedule.warmup_iters} iterations, {recipe.schedule.policy} policy"
    )
    lines.append(f"run:      {trainer.out_dir}")
    return "\n".join(lines) + "\n"


class ProgressHook(Hook):
    """Progress over the whole run (rank 0): a rich bar on a terminal; plain lines (epoch, loss, lr, images/s,
    ETA) at each epoch end, and at most every `every_s` seconds in between, when stdout is a file or a pipe.
    A line per validation with its AP and the best so far, in both modes."""

    def __init__(self, log_hook: LogHook, *, plain: bool | None = None, every_s: float = 30.0) -> None:
        self.log_hook = log_hook
        self.progress: Any = None
        self.plain = plain
        self.every_s = every_s
        self._seen_val = 0
        self._t_start = 0.0
        self._i_start = 0
        self._t_line = 0.0

    def _write(self, line: str) -> None:
        import sys

        if self.progress is not None:
            self.progress.console.print(line, highlight=False, markup=False)
        else:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def on_train_start(self, trainer: Trainer) -> None:
        if not trainer.dist.is_main:
            return
        import sys

        if self.plain is None:
            self.plain = not sys.stdout.isatty()
        self._t_start = self._t_line = time.perf_counter()
        self._i_start = trainer.iteration
        history = self._history(trainer)
        self._seen_val = 0 if trainer.iteration == 0 else len(history)  # a resumed run printed its own before
        self._print_validations(history)
        if self.plain:
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
            epochs=planned_epochs(trainer),
            loss="-",
            lr="-",
            ips="-",
        )

    def after_step(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        if not trainer.dist.is_main:
            return
        row = self.log_hook.last
        epochs = planned_epochs(trainer)
        if self.plain:
            now = time.perf_counter()
            epoch_end = trainer.epoch_iteration == trainer.iters_per_epoch
            if not (epoch_end or now - self._t_line >= self.every_s or trainer.iteration >= trainer.total_iters):
                return
            self._t_line = now
            done = trainer.iteration - self._i_start
            rate = (now - self._t_start) / max(done, 1)
            eta = _fmt_duration(rate * (trainer.total_iters - trainer.iteration))
            epoch = min(trainer.epoch + 1, epochs)
            stats = f"loss {row['loss']:.4g}  lr {row['lr']:.2e}  {row['images_per_s']:.1f} img/s  " if row else ""
            self._write(f"epoch {epoch}/{epochs}  iter {trainer.iteration}/{trainer.total_iters}  {stats}ETA {eta}")
            return
        if self.progress is None:
            return
        fields = {"epoch": min(trainer.epoch + 1, epochs)}
        if row:
            fields.update(loss=f"{row['loss']:.3g}", lr=f"{row['lr']:.2e}", ips=f"{row['images_per_s']:.1f}")
        self.progress.update(self.task, completed=trainer.iteration, **fields)

    @staticmethod
    def _history(trainer: Trainer) -> list[tuple[int, float]]:
        for hook in trainer.hooks:
            if hasattr(hook, "history") and hasattr(hook, "best_ap"):
                return list(hook.history)
        return []

    def on_epoch_end(self, trainer: Trainer) -> None:
        if not trainer.dist.is_main:
            return
        self._print_validations(self._history(trainer))

    def _print_validations(self, history: list[tuple[int, float]]) -> None:
        """A line for each validation not yet printed; epoch 0 is the start weights' (`train.val_at_start`)."""
        for epoch, ap in history[self._seen_val :]:
            best_epoch, best = max(((e, a) for e, a in history if e <= epoch), key=lambda x: x[1])
            when = f"after epoch {epoch}" if epoch else "before training (the start weights)"
            self._write(f"validation {when}: AP {ap:.4f} (best {best:.4f}, epoch {best_epoch})")
        self._seen_val = len(history)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
