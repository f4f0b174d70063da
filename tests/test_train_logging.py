"""Training logs: CSV rows that survive a resume, and TensorBoard scalars when tensorboard is installed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from poseadapt.train.logging import MetricLogger


def test_csv_logs_append_across_loggers(tmp_path: Path) -> None:
    first = MetricLogger(tmp_path, tensorboard=False)
    first.log({"epoch": 0.5, "loss": 0.25, "lr": 1e-3}, 2)
    first.log({"val/AP": 0.5}, 4, kind="val")
    first.close()
    again = MetricLogger(tmp_path, tensorboard=False)  # what a resumed run does: same header, appended rows
    again.log({"epoch": 1.0, "loss": 0.125, "lr": 1e-3, "new_key": 1.0}, 4)
    rows = list(csv.DictReader((tmp_path / "train_log.csv").open()))
    assert [r["iteration"] for r in rows] == ["2", "4"] and float(rows[1]["loss"]) == 0.125
    # a new key widens the header (rewritten once); earlier rows leave it empty
    assert list(rows[0]) == ["iteration", "epoch", "loss", "lr", "new_key"]
    assert rows[0]["new_key"] == "" and rows[1]["new_key"] == "1.0"
    assert list(csv.DictReader((tmp_path / "val_log.csv").open()))[0]["val/AP"] == "0.5"
    assert not (tmp_path / "tb").exists()


def test_tensorboard_scalars(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = MetricLogger(tmp_path, tensorboard=True)
    logger.log({"epoch": 0.5, "loss": 0.25, "lr": 1e-3}, 2)
    logger.log({"loss": 0.125, "epoch": 1.0, "lr": 5e-4}, 4)
    logger.log({"val/AP": 0.5}, 4, kind="val")
    logger.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"train/loss", "train/lr", "val/AP"}
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(2, 0.25), (4, 0.125)]
