"""`poseadapt demo --quick` end to end, as a user runs it: renders, adapts the built-in model four ways, compares.

One subprocess run feeds every check. The gain checked is measured, not asserted into existence: the foundation
model and the fully fine-tuned model are scored by `compare` on the same infant test images and keypoints.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

LABELS = ("full FT", "LoRA r8 + head", "head only", "full FT + rehearsal")
KEYS = ("full", "lora", "head_only", "rehearsal")
TESTS = ("infants (top)", "infants (diagonal)", "adults (any view)", "infants (diagonal), upright test")
# the module's demos run in two xdist groups ("demo", and "demo_quick_demo" for the tests of the module's quick run,
# so that run is made once); each demo gets one torch thread, as the suite runs on 2 workers (two threads each on
# 2 cores slowed the demos several-fold)
pytestmark = pytest.mark.xdist_group("demo")
DEMO_ENV = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess, float]]:
    out = tmp_path_factory.mktemp("demo") / "out"
    cmd = [sys.executable, "-m", "poseadapt.cli.main", "demo", "--quick", "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=DEMO_ENV, timeout=900)
    yield out, proc, time.perf_counter() - t0
    shutil.rmtree(out.parent, ignore_errors=True)  # ~200 MB of checkpoints; CI's disk is not always roomy


@pytest.mark.slow
@pytest.mark.xdist_group("quick_demo")  # one worker builds the module's quick demo, once
def test_quick_demo_prints_the_table_and_writes_the_compare_report(quick_run) -> None:
    out, proc, seconds = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "poseadapt demo: OKS AP" in proc.stdout
    for label in ("foundation model", *LABELS, *TESTS):
        assert label in proc.stdout, label
    assert str(out / "report.html") in proc.stdout.replace("\n", "")
    for name in ("report.html", "report.md", "summary.json", "demo_summary.json"):
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text()
    assert "<img" in html and "http://" not in html and "https://" not in html  # self-contained
    for key in KEYS:  # each run was the shipped recipe, run by the real engine, from the built-in model
        recipe = yaml.safe_load((out / "runs" / key / "recipe.yaml").read_text())
        assert recipe["model"]["checkpoint"] == "builtin:synthpose-vit-tiny"
        assert recipe["model"]["schema"] == ["infant21"]
        assert (out / "runs" / key / "final.safetensors").is_file()
    print(f"quick demo: {seconds:.0f} s")


@pytest.mark.slow
@pytest.mark.xdist_group("quick_demo")  # one worker builds the module's quick demo, once
def test_quick_demo_numbers_are_finite_with_intervals_and_a_real_gain(quick_run) -> None:
    out, proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "demo_summary.json").read_text())
    assert list(summary["runs"]) == list(LABELS)
    rows = {(r["model"], r["test"]): r for r in summary["compare"]["results"]}
    assert len(rows) == (1 + len(LABELS)) * len(TESTS)
    for (model, _test), r in rows.items():
        lo, hi = r["AP_ci"]
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (r["AP"], lo, hi))
        assert lo <= r["AP"] + 1e-9 and r["AP"] <= hi + 1e-9
        assert r["scored_keypoints"] == 17
        assert (r["forgetting"] is None) == (model == "foundation model")
    # adapting to infants helps on infants: the fine-tuned model beats the model it started from
    top = "infants (top)"
    assert rows[("full FT", top)]["AP"] > rows[("foundation model", top)]["AP"]
    assert summary["seconds"]["total"] > 0


@pytest.mark.slow
def test_quick_unlabelled_scenario_trains_a_mean_teacher_without_infant_labels(tmp_path: Path) -> None:
    out = tmp_path / "unl"
    cmd = [sys.executable, "-m", "poseadapt.cli.main", "demo", "--quick", "--scenario", "unlabelled", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=DEMO_ENV, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["scenario"] == "unlabelled"
    zero = ["mean teacher, 0 infant labels", "self-training x2, 0 infant labels"]
    assert list(summary["runs"]) == ["full FT, infant labels", *zero]
    # the zero-label run is the shipped mean-teacher recipe: labelled adults, the infants' file as unlabelled crops
    recipe = yaml.safe_load((out / "runs" / "mean_teacher" / "recipe.yaml").read_text())
    assert recipe["data"]["train"][0]["synth"]["population"] == "adult"
    teacher = next(a["mean_teacher"] for a in recipe["adapt"] if "mean_teacher" in a)
    assert teacher["unlabelled"]["ann"].endswith("infant_coco17.json")
    assert Path(teacher["prior"]).is_file()
    rows = {(r["model"], r["test"]): r["AP"] for r in summary["compare"]["results"]}
    top, src = "infants (top)", "foundation model"
    gain = rows[("full FT, infant labels", top)] - rows[(src, top)]
    assert gain > 0  # labels help; the share printed is the mean teacher's part of that gain
    for label in zero:
        share = (rows[(label, top)] - rows[(src, top)]) / gain
        assert summary["gain_recovered"][label] == pytest.approx(share)
        assert f"{label}: {100 * share:.1f}% of the AP gain" in proc.stdout
    # self-training: round 2 trains on round 1's model's labels of the infants' boxes, never on their keypoints
    st = out / "runs" / "self_training"
    recipe = yaml.safe_load((st / "round2" / "recipe.yaml").read_text())
    assert recipe["data"]["train"][0]["ann"] == str(st / "round2_labels.json")
    assert recipe["data"]["train"][1]["synth"]["population"] == "adult"
    from poseadapt.demo.data import set_folder
    from poseadapt.demo.settings import settings_for

    quick = settings_for(True, "unlabelled")
    truth_file = set_folder(out / "data", quick.infant_train, quick.image_size) / "annotations/infant_coco17.json"
    truth = json.loads(truth_file.read_text())
    gt = {a["id"]: a["keypoints"] for a in truth["annotations"]}
    for r in (1, 2):
        labels = json.loads((st / f"round{r}_labels.json").read_text())["annotations"]
        assert len(labels) == len(gt) and all(a["keypoints"] != gt[a["id"]] for a in labels)
    r1, r2 = (json.loads((st / f"round{r}_labels.json").read_text())["annotations"] for r in (1, 2))
    assert any(a["keypoints"] != b["keypoints"] for a, b in zip(r1, r2, strict=True))  # round 2: a new labeller
    assert json.loads((st / "self_training.json").read_text())["labelling"] == {"min_score": 0.4, "flip_test": True}


def test_default_demo_adapts_at_its_larger_crops_and_the_small_presets_keep_the_recipes(tmp_path: Path) -> None:
    from poseadapt.demo.data import RenderedSet
    from poseadapt.demo.pipeline import adapt_recipe
    from poseadapt.demo.settings import settings_for
    from poseadapt.train.recipe import load_recipe

    recipe_size = list(load_recipe("demo-infant").model.input_size)
    sizes = {}
    for name, settings in (("default", settings_for(False)), ("quick", settings_for(True)),
                           ("unlabelled", settings_for(False, "unlabelled"))):  # fmt: skip
        train = RenderedSet(settings.infant_train, tmp_path, tmp_path / "images", {"infant21": tmp_path / "a.json"})
        recipe = adapt_recipe(settings, settings.runs[0], "builtin:synthpose-vit-tiny", train)
        sizes[name] = list(recipe.model.input_size)
        assert recipe.schedule.epochs == settings.epochs
        assert str(recipe.data.train[0].ann) == str(tmp_path / "a.json")
    assert recipe_size == [96, 128]
    assert sizes == {"default": [144, 192], "quick": recipe_size, "unlabelled": recipe_size}
