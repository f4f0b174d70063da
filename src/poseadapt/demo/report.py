"""The demo's report: PNG plots (matplotlib, Agg backend: no display needed) and `report.md` linking them.

Plots: learning curves (training loss and validation AP per epoch, adult pre-training and every fine-tuning
strategy), per-keypoint AP on infants, predictions drawn on infant test images before and after fine-tuning
(each with its schema's skeleton), and a bar chart of the final table.
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

COLORS = {
    "adult": "#7f7f7f",
    "full": "#1f77b4",
    "lora": "#ff7f0e",
    "head_only": "#2ca02c",
    "rehearsal": "#d62728",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Save a figure atomically (temp file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _pyplot().close(fig)
    return path


# ------------------------------------------------------------------------------------------------ logs
def read_curves(run_dir: Path) -> dict[str, list[float]]:
    """Loss per logged step and validation AP per validation, both against (fractional) epochs."""
    train_rows = _read_csv(run_dir / "train_log.csv")
    val_rows = _read_csv(run_dir / "val_log.csv")
    out: dict[str, list[float]] = {"loss_epoch": [], "loss": [], "ap_epoch": [], "ap": []}
    iters_per_epoch = None
    for row in train_rows:
        epoch, it = float(row["epoch"]), float(row["iteration"])
        out["loss_epoch"].append(epoch)
        out["loss"].append(float(row["loss"]))
        if epoch > 0:
            iters_per_epoch = it / epoch
    for row in val_rows:
        it = float(row["iteration"])
        out["ap_epoch"].append(round(it / iters_per_epoch, 2) if iters_per_epoch else it)
        out["ap"].append(float(row["val/AP"]))
    return out


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------------ plots
def plot_learning_curves(
    pretrain: dict[str, list[float]], finetune: dict[str, dict[str, list[float]]], labels: dict[str, str], path: Path
) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (a, b), (c, d) = axes
    a.plot(pretrain["loss_epoch"], pretrain["loss"], color=COLORS["adult"])
    a.set(title="pre-training on adults: loss", xlabel="epoch", ylabel="heatmap MSE", yscale="log")
    b.plot(pretrain["ap_epoch"], pretrain["ap"], "o-", color=COLORS["adult"])
    b.set(title="pre-training: adult validation AP (coco17)", xlabel="epoch", ylabel="OKS AP", ylim=(0, 1))
    for key, curves in finetune.items():
        color = COLORS.get(key)
        c.plot(curves["loss_epoch"], curves["loss"], color=color, label=labels.get(key, key))
        d.plot(curves["ap_epoch"], curves["ap"], "o-", color=color, label=labels.get(key, key))
    c.set(title="fine-tuning on infants: loss", xlabel="epoch", ylabel="heatmap MSE", yscale="log")
    d.set(title="fine-tuning: infant validation AP (infant21)", xlabel="epoch", ylabel="OKS AP", ylim=(0, 1))
    c.legend(fontsize=8)
    d.legend(fontsize=8)
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_per_keypoint(
    keypoints: list[str], per_model: dict[str, dict[str, float]], labels: dict[str, str], path: Path
) -> Path:
    """Grouped bars: per-keypoint AP on infants; a model without a keypoint gets no bar (shown as 'n/a')."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(10, 0.75 * len(keypoints)), 4.8))
    n = len(per_model)
    width = 0.8 / max(n, 1)
    x = np.arange(len(keypoints))
    for i, (key, values) in enumerate(per_model.items()):
        ys = [values.get(k, np.nan) for k in keypoints]
        ax.bar(x + (i - (n - 1) / 2) * width, ys, width, color=COLORS.get(key), label=labels.get(key, key))
        for j, y in enumerate(ys):
            if not np.isfinite(y):
                ax.text(x[j] + (i - (n - 1) / 2) * width, 0.01, "n/a", rotation=90, fontsize=6, ha="center")
    ax.set_xticks(x, [k.replace("_", " ") for k in keypoints], rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="OKS AP of the keypoint alone", ylim=(0, 1), title="Per-keypoint AP on infant test images")
    ax.legend(fontsize=8, ncol=min(n, 5))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_results(rows: list[dict[str, Any]], path: Path) -> Path:
    """The final table as grouped bars: infant AP (coco17 points, infant21) and adult AP per model."""
    plt = _pyplot()
    metrics = [
        ("infant_ap_coco17", "infants, coco17 points"),
        ("infant_ap_infant21", "infants, all 21 points"),
        ("adult_ap_coco17", "adults, coco17 (forgetting)"),
    ]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(rows))
    width = 0.26
    for i, (key, label) in enumerate(metrics):
        ys = [r[key] if r.get(key) is not None else np.nan for r in rows]
        bars = ax.bar(x + (i - 1) * width, ys, width, label=label, color=["#4c72b0", "#55a868", "#c44e52"][i])
        for bar, y in zip(bars, ys, strict=True):
            if np.isfinite(y):
                ax.text(bar.get_x() + bar.get_width() / 2, y + 0.01, f"{100 * y:.1f}", ha="center", fontsize=7)
    ax.set_xticks(x, [r["label"] for r in rows], fontsize=8)
    ax.set(ylabel="OKS AP", ylim=(0, 1.05), title="Adult model vs fine-tuning strategies (test sets)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_overlays(panels: list[dict[str, Any]], columns: list[str], path: Path) -> Path:
    """A grid: one row per infant test image, one column per model; `panels` rows hold image + poses."""
    plt = _pyplot()
    rows = len(panels)
    fig, axes = plt.subplots(rows, len(columns), figsize=(3.2 * len(columns), 3.2 * rows), squeeze=False)
    for r, panel in enumerate(panels):
        for c, title in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(panel["image"])
            pose = panel["poses"][c]
            draw_skeleton(ax, pose["keypoints"], pose["skeleton"], pose["color"])
            ax.set_title(f"{title}\nOKS {pose['oks']:.2f}" if pose.get("oks") is not None else title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def draw_skeleton(
    ax: Any, keypoints: np.ndarray, skeleton: list[tuple[int, int]], color: str, thr: float = 0.2
) -> None:
    """Keypoints (K, 3) with scores, joined by the schema's skeleton edges (both ends above `thr`)."""
    for a, b in skeleton:
        if keypoints[a, 2] > thr and keypoints[b, 2] > thr:
            ax.plot(keypoints[[a, b], 0], keypoints[[a, b], 1], "-", color=color, linewidth=1.6, alpha=0.9)
    shown = keypoints[:, 2] > thr
    ax.scatter(keypoints[shown, 0], keypoints[shown, 1], s=9, c="white", edgecolors=color, linewidths=0.8, zorder=3)


# ------------------------------------------------------------------------------------------------ report.md
def fmt_ap(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_text_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
