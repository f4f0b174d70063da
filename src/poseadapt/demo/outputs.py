"""The demo's files: plots, `report.md` and `demo_summary.json` (all written atomically)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from poseadapt.demo import report
from poseadapt.demo.evaluation import TestSet, to_schema

if TYPE_CHECKING:
    from poseadapt.demo.pipeline import Demo

PLOTS = {
    "curves": "learning_curves.png",
    "per_keypoint": "per_keypoint_ap.png",
    "overlays": "overlays.png",
    "results": "results.png",
}


def write_outputs(
    demo: Demo, summary: dict[str, Any], infant_test: TestSet, before: Any, after: dict[str, Any]
) -> None:
    """The four plots and report.md into `demo.out`."""
    out = demo.out
    labels = {r.key: r.label for r in demo.rows}
    pretrain = report.read_curves(demo.pretrain_dir)
    finetune = {key: report.read_curves(res.run_dir) for key, res in demo.runs.items()}
    report.plot_learning_curves(pretrain, finetune, labels, out / PLOTS["curves"])

    schema = infant_test.labels["infant21"].schema
    report.plot_per_keypoint(
        list(schema.keypoints), {r.key: r.per_keypoint for r in demo.rows}, labels, out / PLOTS["per_keypoint"]
    )
    report.plot_results(summary["results"], out / PLOTS["results"])
    overlay_panels(demo, infant_test, before, after, out / PLOTS["overlays"])
    report.write_text_atomic(out / "report.md", report_markdown(demo, summary))


def overlay_panels(demo: Demo, test: TestSet, before: Any, after: dict[str, Any], path: Path) -> Path:
    """Ground truth, the adult model and the fine-tuned models on the first few infant test images."""
    from poseadapt.evaluate.oks import oks_matrix
    from poseadapt.schemas import get_schema

    gt = test.labels["infant21"]
    columns = [("ground truth", "infant21", None, "#2ca02c"), ("adult model", "coco17", before, "#7f7f7f")]
    for key in ("full", "rehearsal"):
        if key in after:
            columns.append((next(r.label for r in demo.rows if r.key == key), "infant21", after[key], "#1f77b4"))
    panels = []
    for row in range(min(demo.s.overlay_count, len(gt))):
        info = gt.images[int(gt.image_ids[row])]
        image = cv2.cvtColor(cv2.imread(str(test.images / info.file_name)), cv2.COLOR_BGR2RGB)
        poses = []
        for _title, schema_name, preds, color in columns:
            schema = get_schema(schema_name)
            if preds is None:
                kp = gt.keypoints[row].copy()
                kp[:, 2] = (kp[:, 2] > 0).astype(float)
                oks = None
            else:
                kp = preds.keypoints[row]
                scored = to_schema(preds, schema_name, "coco17")
                coco_gt = test.labels["coco17"]
                oks = float(
                    oks_matrix(
                        scored.keypoints[row : row + 1],
                        coco_gt.keypoints[row : row + 1],
                        coco_gt.areas[row : row + 1],
                        coco_gt.boxes[row : row + 1],
                        coco_gt.schema.sigmas,
                    )[0, 0]
                )
            poses.append({"keypoints": kp, "skeleton": list(schema.skeleton_index), "color": color, "oks": oks})
        panels.append({"image": image, "poses": poses})
    titles = [f"{t} ({s})" for t, s, _, _ in columns]
    return report.plot_overlays(panels, titles, path)


def report_markdown(demo: Demo, summary: dict[str, Any]) -> str:
    s = demo.s
    m = s.model
    lines = [
        "# poseadapt demo: adapting an adult pose model to infants",
        "",
        f"Preset `{s.preset}`, run in {summary['timing']['total_s'] / 60:.1f} min on this machine "
        f"({summary['timing']['threads']} torch thread(s), {summary['timing']['train_images_per_s']:.0f} training "
        "images/s measured at the start).",
        "",
        "A small ViT is pre-trained on synthetic adults seen from the front (the way most adult pose data is shot),"
        " labelled with the 17 COCO keypoints. It is then scored on synthetic infants lying on their back seen from"
        " above (a cot-side camera): the domain gap. Then it is fine-tuned on infants with four strategies; each swaps"
        " the coco17 head for an infant21 head (COCO 17 + head top, neck, big toes; the 17 shared points keep their"
        " weights) and is scored on infants and, for forgetting, again on adults.",
        "",
        "## Results (OKS AP x 100, test sets)",
        "",
        report.markdown_table(demo.TABLE_HEADERS, demo.table_rows()),
        "",
        "- **infant AP21**: all 21 infant21 keypoints, with infant21's OKS sigmas; only the fine-tuned models"
        " predict all of them.",
        "- **infant AP17**: the 17 COCO keypoints only (predictions carried over by name), the same points for"
        " every model: the fair comparison with the adult model, and the basis of the gains.",
        "- **adult AP17**: adults from the front, coco17; a drop after fine-tuning is forgetting.",
        "- *gain inf* and *adults* are AP points against the adult model; *trained* is the share of the model's"
        " parameters the strategy trains; *train s* the wall-clock seconds of the training run.",
        "",
        "## Targets",
        "",
    ]
    for t in summary["targets"]:
        lines.append(f"- {'**met**' if t['met'] else '**not met**'}: {t['name']}: {t['value']}")
    lines += [
        "",
        "## Plots",
        "",
        f"![results]({PLOTS['results']})",
        "",
        f"Learning curves (loss and validation AP per epoch): ![curves]({PLOTS['curves']})",
        "",
        f"Per-keypoint AP on infants: ![per keypoint]({PLOTS['per_keypoint']})",
        "",
        f"Predictions on infant test images before and after fine-tuning (OKS on the coco17 points):"
        f" ![overlays]({PLOTS['overlays']})",
        "",
        "## Settings",
        "",
        f"- model: ViT {m.embed_dim}-d, {m.depth} blocks, {m.num_heads} heads, MLP {m.mlp_dim}, patch 16, "
        f"{m.head_channels}-channel 2x deconvolution head; input {m.input_size[0]}x{m.input_size[1]} (w x h),"
        f" UDP heatmaps {m.input_size[0] // 4}x{m.input_size[1] // 4} (sigma {m.heatmap_sigma}),"
        " DARK-UDP decoding, flip test",
        f"- data (rendered at {s.image_size} px): train {s.adult_train.n} adults ({s.adult_train.view} view),"
        f" {s.infant_train.n} infants ({s.infant_train.view} view); test {s.adult_test.n} adults,"
        f" {s.infant_test.n} infants (other seeds); ground-truth person boxes",
        f"- pre-training: {s.pretrain_epochs} epochs, AdamW lr {s.pretrain_lr:g}, batch {s.batch_size}, cosine;"
        f" fine-tuning: {s.finetune_epochs} epochs, cosine; augmentation: flip, scale 0.8-1.25, rotation"
        " (sigma 15, limit 30 deg)",
    ]
    for st in s.strategies:
        extra = f", rehearsal ratio {st.rehearsal_ratio} of adults (coco17 labels)" if st.rehearsal_ratio else ""
        opts = f", {json.dumps(st.options)}" if st.options else ""
        lines.append(f"- {st.label}: strategy `{st.strategy}`, lr {st.lr:g}{opts}{extra}")
    cache = summary.get("pretrain_cache")
    lines += [
        "",
        "## Timing and files",
        "",
        "| step | seconds |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.0f} |" for k, v in demo.timer.steps.items()]
    lines += [
        "",
        f"- adult model: {'taken from the cache' if summary['pretrain_cached'] else 'trained in this run'}"
        + (f" (cache: `{cache}`)" if cache else " (cache off)"),
        "- every training run's recipe, logs and checkpoints: `runs/<name>/` (re-run one with"
        " `poseadapt train runs/<name>/recipe.yaml --out elsewhere`); the data: `data/`; all numbers:"
        " `demo_summary.json`.",
        "",
    ]
    return "\n".join(lines)


def write_summary(demo: Demo, summary: dict[str, Any]) -> Path:
    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {str(k): clean(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [clean(v) for v in obj]
        if isinstance(obj, np.floating | np.integer):
            return obj.item()
        if isinstance(obj, Path):
            return str(obj)
        return obj

    return report.write_text_atomic(demo.out / "demo_summary.json", json.dumps(clean(summary), indent=2) + "\n")
