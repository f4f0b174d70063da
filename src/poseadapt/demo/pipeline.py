"""`poseadapt demo`: the main job end to end, built from the product's own parts.

1. render infants seen from above (the training set) and three test sets: infants from above, infants from a
   diagonal camera the training never had, adults of every view (forgetting);
2. take the embedded foundation model `builtin:synthpose-vit-tiny` (or pre-train one with `--from-scratch`);
3. adapt it with each run of the settings: the shipped recipe `demo-infant` with the run's `adapt:` list
   (full, LoRA, head only, full + rehearsal of adults), a schema change coco17 -> infant21 on the way;
4. `poseadapt compare` every model on every test set (AP with bootstrap intervals, forgetting against the
   foundation model), the diagonal set also with the upright test -> report.html, report.md, plots, summary.json;
   print the table.

`--scenario unlabelled` hides the infants' labels: a mean teacher and two rounds of self-training adapt on the same
images without them (`demo.settings`), beside full fine-tuning with them, and the demo prints the share of that
gain each recovers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from poseadapt.demo.data import render_set
from poseadapt.demo.settings import (
    FOUNDATION,
    MEAN_TEACHER_RECIPE,
    PRETRAIN_RECIPE,
    RECIPE,
    DemoSettings,
    RunSpec,
    settings_for,
)
from poseadapt.errors import PoseAdaptError

SOURCE = "foundation model"


def run_demo(
    out: Path,
    *,
    quick: bool = False,
    from_scratch: bool = False,
    scenario: str = "labelled",
    console: Console | None = None,
) -> dict:
    """Run the demo into `out`; returns the summary written to `out/demo_summary.json`."""
    settings = settings_for(quick, scenario)
    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    data_dir = out / "data"
    with console.status("rendering the synthetic sets"):
        train = render_set(data_dir, settings.infant_train, settings.image_size)
        tests = {name: render_set(data_dir, spec, settings.image_size) for name, spec in settings.tests.items()}
        prior = fit_demo_prior(out, data_dir, settings)
    timings["render"] = time.perf_counter() - t0
    console.print(f"rendered {settings.infant_train.n} training infants and {len(tests)} test sets in {data_dir}")

    t0 = time.perf_counter()
    source = pretrain(out / "runs" / "pretrain", settings) if from_scratch else FOUNDATION
    timings["pretrain"] = time.perf_counter() - t0

    checkpoints: dict[str, str] = {}
    run_seconds: dict[str, float] = {}
    for run in settings.runs:
        console.print(f"[bold]{run.label}[/bold]: {json.dumps(run.adapt)}")
        t0 = time.perf_counter()
        run_dir = out / "runs" / run.key
        if not run.zero_labels:
            path = adapt_run(run_dir, settings, run, source, train)
        elif run.rounds:
            path = self_training_run(run_dir, settings, run, source, train, console)
        else:
            path = mean_teacher_run(run_dir, settings, source, train, prior)
        checkpoints[run.label] = str(path)
        run_seconds[run.label] = time.perf_counter() - t0
    timings["adapt"] = sum(run_seconds.values())

    from poseadapt.evaluate.compare import ModelSpec, TestSpec, compare_report

    t0 = time.perf_counter()
    models = [ModelSpec(SOURCE, checkpoint=str(source))] + [ModelSpec(k, checkpoint=v) for k, v in checkpoints.items()]
    test_specs = [TestSpec(name, ts.annotations["coco17"], ts.images) for name, ts in tests.items()]
    test_specs += [
        TestSpec(f"{name}, upright test", tests[name].annotations["coco17"], tests[name].images, upright_test=True)
        for name in settings.upright_tests
    ]
    with console.status("comparing every model on every test set"):
        summary = compare_report(models, test_specs, out, baseline=SOURCE, samples=settings.bootstrap)
    timings["compare"] = time.perf_counter() - t0

    print_table(console, summary, run_seconds)
    recovered = gain_recovered(summary, settings)
    for label, share in (recovered or {}).items():
        text = "n/a (full fine-tuning gained nothing)" if share is None else f"{100 * share:.1f}%"
        console.print(f"{label}: {text} of the AP gain full fine-tuning reaches with labels")
    result = {
        "preset": settings.preset,
        "scenario": settings.scenario,
        "gain_recovered": recovered,
        "source": str(source),
        "runs": {r.label: {"adapt": r.adapt, "lr": r.lr, "checkpoint": checkpoints[r.label]} for r in settings.runs},
        "seconds": {**timings, "total": sum(timings.values())},
        "run_seconds": run_seconds,
        "compare": summary,
    }
    (out / "demo_summary.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"report: {out / 'report.html'} (and report.md, summary.json, plots) - {sum(timings.values()):.0f} s")
    return result


def _recipe(name: str, edit: Any) -> Any:
    from poseadapt.train.recipe import load_recipe, recipe_from_dict

    data = load_recipe(name).to_dict()
    edit(data)
    return recipe_from_dict(data, source=f"demo: recipe '{name}'")


def _train(recipe: Any, run_dir: Path) -> Path:
    import shutil

    from poseadapt.train.build import run_recipe

    if run_dir.exists():
        shutil.rmtree(run_dir)  # only ever a folder this demo created under its --out
    result = run_recipe(recipe, run_dir)
    if result.status != "completed" or result.final_checkpoint is None:
        raise PoseAdaptError(f"demo run stopped early ({result.status}); partial results in {run_dir}")
    return result.final_checkpoint


def adapt_run(
    run_dir: Path,
    settings: DemoSettings,
    run: RunSpec,
    source: str | Path,
    train: Any,
    sets: tuple[str, ...] = (),
) -> Path:
    """One adaptation run: the shipped `demo-infant` recipe on the demo's data, then `sets` (`--set` overrides)."""
    return _train(adapt_recipe(settings, run, source, train, sets), run_dir)


def adapt_recipe(
    settings: DemoSettings, run: RunSpec, source: str | Path, train: Any, sets: tuple[str, ...] = ()
) -> Any:
    """The recipe of one adaptation run: `demo-infant` pointed at the demo's data, with the preset's sizes."""
    from poseadapt.train.recipe import apply_overrides

    def edit(d: dict[str, Any]) -> None:
        d["model"]["checkpoint"] = str(source)
        d["data"]["train"][0].update(ann=str(train.annotations["infant21"]), images=str(train.images))
        d["schedule"]["epochs"] = settings.epochs
        if settings.input_size is not None:
            d["model"]["input_size"] = list(settings.input_size)
        d["optim"]["lr"] = run.lr
        d["adapt"] = run.adapt
        apply_overrides(d, sets)

    return _recipe(RECIPE, edit)


def fit_demo_prior(out: Path, data_dir: Path, settings: DemoSettings) -> Path | None:
    """Unlabelled scenario: the infant pose prior, fitted on another render than any training or test image."""
    if settings.prior_poses is None:
        return None
    from poseadapt.priors import fit_prior_from_coco

    poses = render_set(data_dir, settings.prior_poses, settings.image_size)
    path = out / "priors" / f"infant-top-coco17-{settings.prior_poses.name}.safetensors"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fit_prior_from_coco(poses.annotations["coco17"]).save(path)
    return path


def mean_teacher_run(run_dir: Path, settings: DemoSettings, source: str | Path, train: Any, prior: Path | None) -> Path:
    """The shipped mean-teacher recipe on the demo's data: the infants' images WITHOUT labels, adults with."""
    assert settings.anchor is not None
    anchor = settings.anchor

    def edit(d: dict[str, Any]) -> None:
        d["model"]["checkpoint"] = str(source)
        _anchor_adults(d, settings)
        d["schedule"]["epochs"] = settings.epochs
        for entry in d["adapt"]:
            if "mean_teacher" in entry:  # the coco17 file's keypoints are ignored: only its boxes are read
                unlabelled = {"ann": str(train.annotations["coco17"]), "images": str(train.images)}
                entry["mean_teacher"].update(unlabelled=unlabelled, prior=None if prior is None else str(prior))
                # ramp the unlabelled losses up over at most the first quarter of the run
                steps = settings.epochs * (anchor.n + settings.infant_train.n) // d["train"]["batch_size"]
                entry["mean_teacher"]["rampup_iters"] = min(entry["mean_teacher"]["rampup_iters"], max(1, steps // 4))

    return _train(_recipe(MEAN_TEACHER_RECIPE, edit), run_dir)


def _anchor_adults(d: dict[str, Any], settings: DemoSettings) -> None:
    """Zero-label runs: the mean-teacher recipe's labelled adults (its first training set) at the demo's sizes."""
    assert settings.anchor is not None
    anchor = settings.anchor
    d["data"]["train"][0]["synth"].update(n=anchor.n, seed=anchor.seed, size=settings.image_size)
    d["data"]["val"] = None


def self_training_run(
    run_dir: Path, settings: DemoSettings, run: RunSpec, source: str | Path, train: Any, console: Console
) -> Path:
    """Offline self-training (train/self_training.py, `poseadapt self-train`): each round, the model of the round
    before (round 1: `source`) labels the infants' boxes (flip test; keypoints scoring below 0.4 left unlabelled),
    and a fresh copy of `source` trains on those labels plus the labelled adults. The infants' keypoints are never
    read."""
    import shutil

    from poseadapt.evaluate.pseudo_labels import pseudo_label_file, read_boxes_file
    from poseadapt.interop.checkpoint import load_checkpoint
    from poseadapt.train.self_training import pseudo_source, self_training_rounds

    boxes = read_boxes_file(train.annotations["coco17"])  # boxes only: its keypoints are dropped below
    if run_dir.exists():
        shutil.rmtree(run_dir)  # only ever a folder this demo created under its --out: no round is kept

    def label(labeller: str | Path, round_: int) -> tuple[dict[str, Any], dict[str, Any]]:
        return pseudo_label_file(load_checkpoint(labeller), boxes, train.images, min_score=0.4)

    def recipe_for(labels_path: Path) -> Any:
        def edit(d: dict[str, Any]) -> None:
            d["model"]["checkpoint"] = str(source)
            _anchor_adults(d, settings)
            d["data"]["train"].insert(0, pseudo_source(labels_path, train.images))
            d["schedule"]["epochs"] = settings.epochs
            d["optim"]["lr"] = run.lr
            d["adapt"] = run.adapt

        return _recipe(MEAN_TEACHER_RECIPE, edit)

    def report(result: Any) -> None:
        console.print(f"  round {result.round}: {result.summary['share_kept']:.0%} of the infants' keypoints "
                      "pseudo-labelled")  # fmt: skip

    labelling = {"min_score": 0.4, "flip_test": True}  # as `label` reads: no prior, no debiasing, the first head
    rounds = self_training_rounds(source, run.rounds, run_dir, label, recipe_for, train=_train, report=report,
                                  labelling=labelling)  # fmt: skip
    return rounds[-1].checkpoint


def gain_recovered(summary: dict[str, Any], settings: DemoSettings) -> dict[str, float | None] | None:
    """Unlabelled scenario, per zero-label run: (AP run - AP foundation) / (AP full FT - AP foundation), top-view
    infants; None for every run when full fine-tuning with the labels gained nothing."""
    if settings.scenario != "unlabelled":
        return None
    ap = {(r["model"], r["test"]): r["AP"] for r in summary["results"]}
    test = next(iter(settings.tests))
    labelled = next(r.label for r in settings.runs if not r.zero_labels)
    gain = ap[(labelled, test)] - ap[(SOURCE, test)]
    return {
        r.label: None if gain <= 0 else (ap[(r.label, test)] - ap[(SOURCE, test)]) / gain
        for r in settings.runs
        if r.zero_labels
    }


def pretrain(run_dir: Path, settings: DemoSettings) -> Path:
    """`--from-scratch`: the foundation recipe cut to `pretrain_samples` (one pass, cosine), for those who want to
    see pre-training; the shipped model saw far more."""

    def edit(d: dict[str, Any]) -> None:
        d["data"]["train"][0]["synth"]["n"] = settings.pretrain_samples
        d["data"]["val"] = None
        d["schedule"].update(epochs=1, warmup_iters=min(500, settings.pretrain_samples // 128))
        d["train"].update(val_interval=0, checkpoint_interval=0)

    return _train(_recipe(PRETRAIN_RECIPE, edit), run_dir)


def print_table(console: Console, summary: dict[str, Any], run_seconds: dict[str, float]) -> None:
    """Models x test sets: AP [95% interval], and the change against the foundation model."""
    tests = [t["name"] for t in summary["tests"]]
    table = Table(title="poseadapt demo: OKS AP on the 17 coco17 keypoints [95% bootstrap interval]")
    table.add_column("model")
    for name in tests:
        table.add_column(name, justify="right")
    table.add_column("train s", justify="right")
    rows: dict[str, dict[str, Any]] = {}
    for r in summary["results"]:
        rows.setdefault(r["model"], {})[r["test"]] = r
    for model, cells in rows.items():
        values = []
        for name in tests:
            r = cells[name]
            lo, hi = r["AP_ci"]
            text = f"{100 * r['AP']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
            f = r.get("forgetting")
            if f is not None:
                mark = "*" if f["excludes_zero"] else ""
                text += f" ({100 * f['delta_AP']:+.1f}{mark})"
            values.append(text)
        seconds = run_seconds.get(model)
        table.add_row(model, *values, "-" if seconds is None else f"{seconds:.0f}")
    console.print(table)
    console.print(
        f"(change against the {SOURCE} in brackets; * where its 95% interval excludes zero. Infants are scored on "
        "the coco17 points every model predicts; the diagonal view was never in the adaptation set. 'upright test': "
        "the same images, each crop also read turned by 90, 180 and 270 degrees, the most confident and upright "
        "reading kept.)"
    )
