"""`poseadapt demo`: the main job end to end on synthetic adults and infants.

1. render adults (front view, as most adult pose data is shot) and infants (top view, as from a cot-side camera);
2. pre-train the demo ViT on adults, or take it from the cache (keyed by a hash of everything it depends on);
3. score the adult model on adults and on infants (the domain gap);
4. fine-tune it on infants with each strategy (full, LoRA, head only, full + rehearsal of adults), the coco17
   head swapped for an infant21 head (a schema change);
5. score every fine-tuned model on infants and on adults (forgetting);
6. print the table and write `report.md`, `demo_summary.json` and the plots.

Every training run is a recipe run by the real engine (`poseadapt.demo.training`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from poseadapt.demo.data import RenderedSet, render_sets
from poseadapt.demo.evaluation import TestSet, load_test_set, predict, score
from poseadapt.demo.settings import DemoSettings, StrategySpec
from poseadapt.demo.training import RunResult, finetune_recipe, initial_checkpoint, pretrain_recipe, run
from poseadapt.errors import PoseAdaptError

ADULT = "adult"
PRETRAIN_FILES = ("adult.safetensors", "train_log.csv", "val_log.csv", "recipe.yaml", "info.json")


def default_cache_dir() -> Path:
    """$POSEADAPT_CACHE_DIR, else $XDG_CACHE_HOME/poseadapt, else ~/.cache/poseadapt; the demo uses `demo/` in it."""
    root = os.environ.get("POSEADAPT_CACHE_DIR")
    if root:
        return Path(root) / "demo"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "poseadapt" / "demo"


@dataclass
class Timer:
    """Wall-clock seconds per named step, in order."""

    steps: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.steps[name] = self.steps.get(name, 0.0) + seconds

    @property
    def total(self) -> float:
        return sum(self.steps.values())


@dataclass
class ModelScores:
    """One row of the table: a model's AP on the test sets (None where it cannot be measured)."""

    key: str
    label: str
    infant_ap_infant21: float | None
    infant_ap_coco17: float
    adult_ap_coco17: float
    per_keypoint: dict[str, float]
    trainable: int | None = None
    total: int | None = None
    train_seconds: float | None = None
    checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ------------------------------------------------------------------------------------------------ timing
def measure_throughput(checkpoint: Path, batch_size: int) -> tuple[int, float]:
    """(threads, images/s) of a training step of the demo model: 1 or 2 torch threads, whichever is faster now.

    Two threads rarely pay off for a model this small (each matrix product is tiny, and on a machine that runs
    anything else beside the demo, thread synchronisation costs more than it saves), so it is measured.
    """
    import torch

    from poseadapt.interop.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    w, h = model.input_size
    x = torch.randn(batch_size, 3, h, w)
    best: tuple[int, float] = (1, 0.0)
    for threads in (1, 2) if (os.cpu_count() or 1) > 1 else (1,):
        torch.set_num_threads(threads)
        times = []
        for _ in range(4):
            t0 = time.perf_counter()
            loss = model(x, 0).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - t0)
        ips = batch_size / float(np.median(times[1:]))
        if ips > best[1]:
            best = (threads, ips)
    torch.set_num_threads(best[0])
    return best


def estimate_seconds(settings: DemoSettings, ips: float, pretrain_cached: bool, rendered: bool) -> dict[str, float]:
    """Rough seconds per step from the measured training speed (inference ~3x faster, the flip test doubles it)."""
    s = settings
    eval_ips = 1.5 * ips
    n_adult_test, n_infant_test = s.adult_test.n, s.infant_test.n
    render = 0.0 if rendered else sum(d.n for d in (s.adult_train, s.adult_test, s.infant_train, s.infant_test)) / 200
    pre_iters = s.pretrain_epochs * (s.adult_train.n // s.batch_size) * s.batch_size
    pretrain = 0.0 if pretrain_cached else pre_iters / ips + s.pretrain_epochs * n_adult_test / eval_ips
    ft = 0.0
    for st in s.strategies:
        n = s.infant_train.n / (1 - st.rehearsal_ratio) if st.rehearsal_ratio else s.infant_train.n
        ft += s.finetune_epochs * (n / ips + n_infant_test / eval_ips)
    evaluation = (1 + len(s.strategies)) * (n_adult_test + 2 * n_infant_test) / eval_ips
    return {"render": render, "pretrain": pretrain, "finetune": ft, "evaluate": evaluation}


# ------------------------------------------------------------------------------------------------ the demo
class Demo:
    """The demo's state between steps (settings, folders, console, timings, results)."""

    def __init__(
        self, settings: DemoSettings, out: Path, cache_dir: Path | None, console: Console | None = None
    ) -> None:
        self.s = settings
        self.out = out
        self.cache_dir = cache_dir
        self.console = console or make_console()
        self.timer = Timer()
        self.progress = self.console.is_terminal
        self.rows: list[ModelScores] = []
        self.runs: dict[str, RunResult] = {}
        self.threads = 1
        self.ips = 0.0

    # -------------------------------------------------------------------------------------------- steps
    def run(self) -> dict[str, Any]:
        from poseadapt.interop.checkpoint import load_checkpoint

        t_start = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        s = self.s
        cached = self.cached_pretrain()
        init = initial_checkpoint(s, self.out / "runs" / "init.safetensors")
        self.threads, self.ips = measure_throughput(init, s.batch_size)
        self.print_plan(cached)

        self.step("1/5 rendering synthetic adults and infants")
        t0 = time.perf_counter()
        sets = self.render()
        adult_train, adult_test, infant_train, infant_test = sets
        self.timer.add("render", time.perf_counter() - t0)

        self.step("2/5 the adult model (coco17)")
        t0 = time.perf_counter()
        adult_ckpt = self.pretrain(cached, init, adult_train, adult_test)
        self.timer.add("pretrain", time.perf_counter() - t0)

        self.step("3/5 the domain gap: the adult model on adults and infants")
        t0 = time.perf_counter()
        tests = {ADULT: load_test_set(adult_test), "infant": load_test_set(infant_test)}
        adult_model = load_checkpoint(adult_ckpt)
        source_preds = predict(adult_model, tests["infant"])
        self.rows.append(self.score_model(ADULT, "adult model", adult_model, tests, source_preds))
        self.rows[-1].checkpoint = str(adult_ckpt)
        self.rows[-1].train_seconds = self.pretrain_seconds
        self.print_row(self.rows[-1])
        self.timer.add("evaluate", time.perf_counter() - t0)

        self.step("4/5 fine-tuning on infants (infant21 head)")
        preds_after: dict[str, Any] = {}
        for strategy in s.strategies:
            self.console.print(f"[bold]{strategy.label}[/bold] (strategy '{strategy.strategy}', lr {strategy.lr:g})")
            t0 = time.perf_counter()
            res = self.finetune(strategy, adult_ckpt, infant_train, infant_test, adult_train)
            self.timer.add("finetune", time.perf_counter() - t0)
            t0 = time.perf_counter()
            model = load_checkpoint(res.checkpoint)
            preds_after[strategy.key] = predict(model, tests["infant"])
            row = self.score_model(strategy.key, strategy.label, model, tests, preds_after[strategy.key])
            row.trainable, row.total, row.train_seconds = res.trainable, res.total, res.seconds
            row.checkpoint = str(res.checkpoint)
            self.rows.append(row)
            self.print_row(row)
            self.timer.add("evaluate", time.perf_counter() - t0)

        self.step("5/5 table and report")
        t0 = time.perf_counter()
        targets = self.targets()
        self.print_table(targets)
        summary = self.summary(targets, time.perf_counter() - t_start)
        from poseadapt.demo.outputs import write_outputs

        write_outputs(self, summary, tests["infant"], source_preds, preds_after)
        self.timer.add("report", time.perf_counter() - t0)
        summary["timing"]["steps_s"] = {k: round(v, 1) for k, v in self.timer.steps.items()}
        summary["timing"]["total_s"] = round(time.perf_counter() - t_start, 1)
        from poseadapt.demo.outputs import write_summary

        write_summary(self, summary)
        self.console.print(
            f"\nreport: {self.out / 'report.md'}   summary: {self.out / 'demo_summary.json'}   "
            f"total {summary['timing']['total_s'] / 60:.1f} min"
        )
        return summary

    def render(self) -> list[RenderedSet]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        s = self.s
        specs = [s.adult_train, s.adult_test, s.infant_train, s.infant_test]
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.progress,
        ) as bar:
            tasks = {spec.name: bar.add_task(spec.name, total=spec.n) for spec in specs}

            def report(name: str, done: int, total: int) -> None:
                bar.update(tasks[name], completed=done)

            sets = render_sets(
                self.out / "data", specs, s.image_size, workers=min(2, os.cpu_count() or 1), progress=report
            )
        self.console.print(f"data in {self.out / 'data'} (COCO keypoint files in coco17 and infant21 per set)")
        return sets

    # -------------------------------------------------------------------------------------------- pre-training
    @property
    def cache_entry(self) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{self.s.preset}-{self.s.pretrain_key()}"

    def cached_pretrain(self) -> Path | None:
        entry = self.cache_entry
        if entry is not None and all((entry / f).is_file() for f in PRETRAIN_FILES):
            return entry
        return None

    def pretrain(self, cached: Path | None, init: Path, train: RenderedSet, test: RenderedSet) -> Path:
        run_dir = self.out / "runs" / "pretrain_adult"
        if cached is not None:
            info = json.loads((cached / "info.json").read_text())
            self.pretrain_seconds = float(info.get("seconds", 0.0))
            self.pretrain_dir = cached
            self.console.print(f"adult model from the cache: {cached / 'adult.safetensors'} (pre-training skipped)")
            return cached / "adult.safetensors"
        recipe = pretrain_recipe(self.s, init, train, test, self.progress)
        res = run(recipe, run_dir, "pretrain_adult")
        self.pretrain_seconds = res.seconds
        self.pretrain_dir = run_dir
        self.console.print(f"adult model: {res.checkpoint} ({res.seconds:.0f} s)")
        entry = self.cache_entry
        if entry is None:
            return res.checkpoint
        return self.store_in_cache(res, entry)

    def store_in_cache(self, res: RunResult, entry: Path) -> Path:
        """Copy the adult model and its logs into the cache as one folder, renamed into place when complete."""
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        shutil.copy2(res.checkpoint, tmp / "adult.safetensors")
        for name in ("train_log.csv", "val_log.csv", "recipe.yaml"):
            shutil.copy2(res.run_dir / name, tmp / name)
        info = {"settings": self.s.to_dict(), "key": self.s.pretrain_key(), "seconds": res.seconds}
        (tmp / "info.json").write_text(json.dumps(info, indent=2))
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(tmp, entry)
        self.console.print(f"cached for the next run: {entry}")
        return entry / "adult.safetensors"

    # -------------------------------------------------------------------------------------------- fine-tuning
    def finetune(
        self,
        strategy: StrategySpec,
        adult_ckpt: Path,
        infants: RenderedSet,
        infant_test: RenderedSet,
        adults: RenderedSet,
    ) -> RunResult:
        recipe = finetune_recipe(self.s, strategy, adult_ckpt, infants, infant_test, adults, self.progress)
        res = run(recipe, self.out / "runs" / strategy.key, strategy.key)
        self.runs[strategy.key] = res
        return res

    # -------------------------------------------------------------------------------------------- scoring
    def score_model(
        self, key: str, label: str, model: Any, tests: dict[str, TestSet], infant_preds: Any
    ) -> ModelScores:
        schema = model.schemas[0].name
        infant = tests["infant"]
        own = score(infant_preds, schema, infant, schema, per_keypoint=True)
        coco = own if schema == "coco17" else score(infant_preds, schema, infant, "coco17", per_keypoint=False)
        adult_preds = predict(model, tests[ADULT])
        adult = score(adult_preds, schema, tests[ADULT], "coco17", per_keypoint=False)
        return ModelScores(
            key=key,
            label=label,
            infant_ap_infant21=own.ap if schema == "infant21" else None,
            infant_ap_coco17=coco.ap,
            adult_ap_coco17=adult.ap,
            per_keypoint=own.per_keypoint,
        )

    def targets(self) -> list[dict[str, Any]]:
        """The issue's targets, each with its numbers and whether it was met (gains on the coco17 points)."""
        rows = {r.key: r for r in self.rows}
        source = rows[ADULT]
        out = []
        full = rows.get("full")
        if full is not None:
            gain = full.infant_ap_coco17 - source.infant_ap_coco17
            out.append(
                {
                    "name": "full fine-tuning lifts infant AP by >= 15 points over the adult model",
                    "value": f"+{100 * gain:.1f} points ({fmt(source.infant_ap_coco17)} -> {fmt(full.infant_ap_coco17)}"
                    ", coco17 points)",
                    "met": bool(gain >= 0.15),
                }
            )
        reh = rows.get("rehearsal")
        if reh is not None and full is not None:
            drop = source.adult_ap_coco17 - reh.adult_ap_coco17
            out.append(
                {
                    "name": "rehearsal keeps adult AP within 3 points of the adult model",
                    "value": f"{fmt(source.adult_ap_coco17)} -> {fmt(reh.adult_ap_coco17)} ({-100 * drop:+.1f} points;"
                    f" full fine-tuning: {fmt(full.adult_ap_coco17)})",
                    "met": bool(drop <= 0.03),
                }
            )
            full_gain = full.infant_ap_coco17 - source.infant_ap_coco17
            reh_gain = reh.infant_ap_coco17 - source.infant_ap_coco17
            ratio = reh_gain / full_gain if full_gain > 0 else math.nan
            out.append(
                {
                    "name": "rehearsal keeps >= 90% of full fine-tuning's infant gain",
                    "value": f"{100 * reh_gain:+.1f} vs {100 * full_gain:+.1f} points ({100 * ratio:.0f}%)"
                    if math.isfinite(ratio)
                    else "full fine-tuning gained nothing",
                    "met": bool(math.isfinite(ratio) and ratio >= 0.9),
                }
            )
        return out

    # -------------------------------------------------------------------------------------------- printing
    def step(self, title: str) -> None:
        self.console.rule(f"[bold]{title}")

    def print_plan(self, cached: Path | None) -> None:
        s = self.s
        from poseadapt.demo.data import is_complete, rendered_set

        specs = [s.adult_train, s.adult_test, s.infant_train, s.infant_test]
        rendered = all(is_complete(rendered_set(self.out / "data", d, s.image_size)) for d in specs)
        est = estimate_seconds(s, self.ips, cached is not None, rendered)
        m = s.model
        lines = [
            f"poseadapt demo ({s.preset}): synthetic adults -> infants, output in {self.out}",
            f"model: ViT {m.embed_dim}-d x {m.depth} blocks, {m.head_channels}-channel deconvolution head, "
            f"input {m.input_size[0]}x{m.input_size[1]} (w x h), "
            f"heatmaps {m.input_size[0] // 4}x{m.input_size[1] // 4}",
            f"data: {s.adult_train.n} adults ({s.adult_train.view} view) + {s.infant_train.n} infants "
            f"({s.infant_train.view} view) to train; "
            f"{s.adult_test.n} adults and {s.infant_test.n} infants to test; rendered at {s.image_size} px",
            f"schedule: pre-train {s.pretrain_epochs} epochs on adults"
            + (" (cached: skipped)" if cached else "")
            + f"; fine-tune {s.finetune_epochs} epochs per strategy: {', '.join(st.key for st in s.strategies)}",
            f"speed: {self.ips:.0f} training images/s measured with {self.threads} torch thread(s)",
            "estimated time: "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in est.items() if v > 0)
            + f"; total ~{sum(est.values()) / 60:.1f} min",
        ]
        if cached is None and self.cache_entry is not None:
            lines.append(f"the adult model will be cached in {self.cache_entry}")
        for line in lines:
            self.console.print(line, highlight=False, markup=False)

    def print_row(self, row: ModelScores) -> None:
        self.console.print(
            f"  infant AP: {fmt(row.infant_ap_infant21)} (infant21), {fmt(row.infant_ap_coco17)} (coco17 points);"
            f"  adult AP: {fmt(row.adult_ap_coco17)} (coco17)",
            highlight=False,
        )

    def table_rows(self) -> list[list[str]]:
        source = self.rows[0]
        out = []
        for r in self.rows:
            params = f"{100 * r.trainable / r.total:.0f}%" if r.trainable is not None and r.total else "-"
            if r.key == ADULT:
                params = "-"
            d_inf = 100 * (r.infant_ap_coco17 - source.infant_ap_coco17)
            d_ad = 100 * (r.adult_ap_coco17 - source.adult_ap_coco17)
            out.append(
                [
                    r.label,
                    params,
                    fmt(r.infant_ap_infant21),
                    fmt(r.infant_ap_coco17),
                    fmt(r.adult_ap_coco17),
                    "" if r.key == ADULT else f"{d_inf:+.1f}",
                    "" if r.key == ADULT else f"{d_ad:+.1f}",
                    f"{r.train_seconds:.0f}" if r.train_seconds is not None else "-",
                ]
            )
        return out

    TABLE_HEADERS = ["model", "trained", "infant AP21", "infant AP17", "adult AP17", "gain inf", "adults", "train s"]

    def print_table(self, targets: list[dict[str, Any]]) -> None:
        from rich.table import Table

        table = Table(title="poseadapt demo: OKS AP x 100 on the test sets", title_justify="left")
        for i, h in enumerate(self.TABLE_HEADERS):
            table.add_column(h, justify="left" if i == 0 else "right")
        for row in self.table_rows():
            table.add_row(*row)
        self.console.print(table)
        self.console.print(
            "AP21: all 21 infant21 keypoints (only the fine-tuned models predict them); AP17: the 17 coco17 points"
            " every model predicts, the fair comparison with the adult model; 'gain inf' and 'adults': AP points"
            " against the adult model (a drop on adults is forgetting); 'trained': parameters the strategy trains.",
            highlight=False,
        )
        for t in targets:
            mark = "[green]MET[/green]" if t["met"] else "[red]NOT MET[/red]"
            self.console.print(f"target {mark}: {t['name']}: {t['value']}", highlight=False)

    # -------------------------------------------------------------------------------------------- summary
    def summary(self, targets: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
        return {
            "preset": self.s.preset,
            "settings": self.s.to_dict(),
            "results": [r.to_dict() for r in self.rows],
            "targets": targets,
            "timing": {"threads": self.threads, "train_images_per_s": round(self.ips, 1), "total_s": round(seconds, 1)},
            "pretrain_cache": str(self.cache_entry) if self.cache_entry is not None else None,
            "pretrain_cached": self.pretrain_dir != self.out / "runs" / "pretrain_adult",
        }


def make_console() -> Console:
    """Rich console for stdout; when piped (no terminal, no $COLUMNS) 120 columns, so the table stays on one line."""
    console = Console(soft_wrap=True)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(soft_wrap=True, width=120)
    return console


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def run_demo(
    out: Path,
    *,
    quick: bool = False,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the whole demo into `out`; returns the summary written to `out/demo_summary.json`."""
    from poseadapt.demo.settings import settings_for

    if out.exists() and not out.is_dir():
        raise PoseAdaptError(f"--out {out} exists and is not a folder")
    cache = (cache_dir or default_cache_dir()) if use_cache else None
    return Demo(settings_for(quick), out, cache, console).run()
