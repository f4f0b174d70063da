"""`poseadapt demo --quick` end to end, as a user runs it: renders, pre-trains, fine-tunes four ways, reports.

One subprocess run (about 1.5 minutes on 2 cores; the issue's bound is 3) feeds every check. The improvement
checked is measured, not asserted into existence: the adult model and the fully fine-tuned model are both scored
on the same infant test images and the same 17 keypoints.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from poseadapt.demo.pipeline import Demo
from poseadapt.demo.settings import default_settings, quick_settings

PLOTS = ("learning_curves.png", "per_keypoint_ap.png", "overlays.png", "results.png")
STRATEGIES = ("full", "lora", "head_only", "rehearsal")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess, float]:
    root = tmp_path_factory.mktemp("demo")
    out, cache = root / "out", root / "cache"
    env = {**os.environ, "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "poseadapt.cli.main", "demo", "--quick", "--out", str(out), "--cache-dir", str(cache)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    return out, cache, proc, time.perf_counter() - t0


@pytest.mark.slow
def test_quick_demo_prints_the_table_and_writes_the_report(quick_run) -> None:
    out, _, proc, seconds = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "poseadapt demo: OKS AP" in proc.stdout
    for label in ("adult model", "full FT", "LoRA r8", "head only", "rehearsal"):
        assert label in proc.stdout
    assert proc.stdout.count("target ") >= 3  # every target printed with MET / NOT MET
    report = (out / "report.md").read_text()
    for name in PLOTS:
        assert f"({name})" in report
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 200, name
    assert "## Targets" in report and ("**met**" in report or "**not met**" in report)
    for key in STRATEGIES:  # each strategy was a real engine run, with its recipe and logs
        assert (out / "runs" / key / "recipe.yaml").is_file()
        assert (out / "runs" / key / "final.safetensors").is_file()
    print(f"quick demo: {seconds:.0f} s")


@pytest.mark.slow
def test_quick_demo_summary_has_finite_numbers_and_a_real_gain(quick_run) -> None:
    out, _, proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "demo_summary.json").read_text())
    rows = {r["key"]: r for r in summary["results"]}
    assert list(rows) == ["adult", *STRATEGIES]
    for key, row in rows.items():
        values = [row["infant_ap_coco17"], row["adult_ap_coco17"], *row["per_keypoint"].values()]
        if key != "adult":
            values.append(row["infant_ap_infant21"])
            assert len(row["per_keypoint"]) == 21 and 0 < row["trainable"] <= row["total"]
        else:
            assert row["infant_ap_infant21"] is None and len(row["per_keypoint"]) == 17
        assert all(isinstance(v, float) and math.isfinite(v) and -1.0 <= v <= 1.0 for v in values), key
    # the adult model was trained for real: it scores on adults, and fine-tuning on infants helps on infants
    assert rows["adult"]["adult_ap_coco17"] > 0.05
    assert rows["full"]["infant_ap_coco17"] > rows["adult"]["infant_ap_coco17"]
    # head-only and LoRA train fewer parameters than full fine-tuning
    assert rows["head_only"]["trainable"] < rows["full"]["trainable"]
    assert rows["lora"]["trainable"] < rows["lora"]["total"]
    assert {t["name"] for t in summary["targets"]} and all(isinstance(t["met"], bool) for t in summary["targets"])
    assert summary["pretrain_cached"] is False and summary["timing"]["total_s"] > 0


@pytest.mark.slow
def test_quick_demo_cached_the_adult_model_under_its_settings_hash(quick_run) -> None:
    out, cache, proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    demo = Demo(quick_settings(), out / "unused", cache)
    entry = demo.cached_pretrain()
    assert entry is not None and (entry / "adult.safetensors").is_file()
    assert entry.name.endswith(quick_settings().pretrain_key())
    # a different preset (other model and data) does not hit that entry
    assert Demo(default_settings(), out / "unused", cache).cached_pretrain() is None
    assert str(entry) in proc.stdout.replace("\n", "")


def test_cache_key_changes_with_what_the_adult_model_depends_on() -> None:
    from dataclasses import replace

    s = quick_settings()
    assert s.pretrain_key() == quick_settings().pretrain_key()
    assert replace(s, pretrain_epochs=s.pretrain_epochs + 1).pretrain_key() != s.pretrain_key()
    assert replace(s, model=replace(s.model, depth=5)).pretrain_key() != s.pretrain_key()
    # fine-tuning settings do not invalidate the adult model
    assert replace(s, finetune_epochs=s.finetune_epochs + 1).pretrain_key() == s.pretrain_key()
