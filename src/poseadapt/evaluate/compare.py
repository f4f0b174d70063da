"""`poseadapt compare`: every model on every test set, with confidence intervals, per keypoint and per subgroup.

A model is a poseadapt checkpoint (or `builtin:NAME`), predicted through `poseadapt.evaluate.topdown` with the
test set's GT boxes, or a COCO results file per test set from any other tool. For each model x test set:
OKS AP/AR with 95% bootstrap intervals over images (fixed seed, the same draws for every model, so differences
are paired), PCK@0.05 of the box, per-keypoint AP, per-subgroup AP (COCO `images[].attributes` or image fields
named with `group_by`) with the worst-served subgroup named, and forgetting against a baseline model (its
interval, and whether that interval excludes zero). Seed groups (`poseadapt.evaluate.seeds`) pool several training
runs of one recipe into one row whose interval covers the runs as well as the images. `compare()` returns a
JSON-ready summary; the report (`poseadapt.evaluate.report_compare`) renders it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from poseadapt.errors import DataError, PoseAdaptError
from poseadapt.evaluate import bootstrap as bs
from poseadapt.evaluate.seeds import SeedGroup, change_vs_group, check_groups, group_replicates, group_rows, parse_group

PCK_ALPHA = 0.05
MIN_SUBGROUP_IMAGES = 1


@dataclass
class ModelSpec:
    """NAME=CKPT (a .safetensors path or builtin:NAME) or NAME=RESULTS.json / NAME=TEST:RESULTS.json,..."""

    name: str
    checkpoint: str | None = None
    results: dict[str, Path] = field(default_factory=dict)  # test name -> COCO results file ("*" for any)

    @property
    def kind(self) -> str:
        return "checkpoint" if self.checkpoint is not None else "results"


@dataclass
class TestSpec:
    """NAME=ANN.json[:IMAGES]"""

    name: str
    ann: Path
    images: Path | None = None
    upright_test: bool | None = None  # this set read with the upright test; None: as `compare(upright_test=)` says


def parse_model(text: str) -> ModelSpec:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise PoseAdaptError(f"--model must be NAME=CHECKPOINT or NAME=RESULTS.json, got '{text}'")
    if value.startswith("builtin:") or not value.endswith(".json"):
        return ModelSpec(name, checkpoint=value)
    results: dict[str, Path] = {}
    for part in value.split(","):
        test, colon, path = part.rpartition(":")
        results[test if colon else "*"] = Path(path)
    return ModelSpec(name, results=results)


def parse_test(text: str) -> TestSpec:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise PoseAdaptError(f"--test must be NAME=ANN.json[:IMAGES], got '{text}'")
    ann, colon, images = value.partition(".json:")
    if colon:
        return TestSpec(name, Path(ann + ".json"), Path(images))
    return TestSpec(name, Path(value))


# ---------------------------------------------------------------------------------------------- test sets
@dataclass
class TestSet:
    name: str
    gt: Any  # CocoKeypoints
    images: Path
    image_records: list[dict]  # the file's images[] entries (attributes and other fields for subgroups)
    upright_test: bool = False


def load_test_set(spec: TestSpec, schema: Any = None, upright_test: bool = False) -> TestSet:
    """Parse the GT once; find the image folder (given, or next to the annotations); refuse an empty set.

    `upright_test` is the default for a spec that does not say (`TestSpec.upright_test` None)."""
    from poseadapt.data.validate import read_json
    from poseadapt.evaluate.topdown import ground_truth_from_dict

    if not spec.ann.is_file():
        raise DataError(f"test set '{spec.name}': annotation file not found: {spec.ann}")
    data = read_json(spec.ann, "annotation file")
    gt = ground_truth_from_dict(data, spec.ann, schema)
    if len(gt) == 0 or not (~np.asarray(gt.iscrowd, bool)).any():
        raise PoseAdaptError(f"test set '{spec.name}' ({spec.ann}) has no people to evaluate")
    records = [im for im in data.get("images", []) if isinstance(im, dict)]
    upright = upright_test if spec.upright_test is None else spec.upright_test
    return TestSet(spec.name, gt, _image_folder(spec, gt), records, upright)


def _image_folder(spec: TestSpec, gt: Any) -> Path:
    first = next(iter(gt.images.values()))
    candidates = [spec.images] if spec.images is not None else [spec.ann.parent, spec.ann.parent.parent / "images"]
    for folder in candidates:
        if folder is not None and (folder / first.file_name).is_file():
            return folder
    where = spec.images if spec.images is not None else spec.ann.parent
    raise DataError(f"test set '{spec.name}': image {first.file_name} not found in {where} (give NAME=ANN.json:IMAGES)")


def subgroups(test: TestSet, group_by: Sequence[str] = ()) -> dict[str, dict[str, list[int]]]:
    """{key: {value: [image ids]}} from images[].attributes and from the named image fields."""
    out: dict[str, dict[str, list[int]]] = {}
    for im in test.image_records:
        attributes = im.get("attributes") if isinstance(im.get("attributes"), dict) else {}
        fields: dict[str, Any] = dict(attributes)
        for key in group_by:
            value = im.get(key, attributes.get(key))
            if value is not None:
                fields[key] = value
        for key, value in fields.items():
            if isinstance(value, str | int | float | bool):
                out.setdefault(str(key), {}).setdefault(str(value), []).append(int(im["id"]))
    missing = [k for k in group_by if k not in out]
    if missing:
        raise PoseAdaptError(f"test set '{test.name}': no image has the field(s) {', '.join(missing)} to group by")
    return {k: v for k, v in out.items() if len(v) > 1}


# ---------------------------------------------------------------------------------------------- models
def load_model_for(spec: ModelSpec) -> Any:
    """The PoseModel of a checkpoint spec; any failure to load is one line naming the model."""
    from poseadapt.interop.checkpoint import load_checkpoint

    try:  # the loader's own lines (not found, a folder, not a checkpoint), named by the model
        return load_checkpoint(spec.checkpoint or "")
    except PoseAdaptError as exc:
        raise PoseAdaptError(f"model '{spec.name}': {exc}") from None
    except Exception as exc:  # a corrupt or foreign file: safetensors / json errors
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PoseAdaptError(f"model '{spec.name}': cannot load {spec.checkpoint} ({first})") from None


def results_predictions(spec: ModelSpec, test: TestSet) -> Any:
    """A results-file model's predictions on one test set (in the test set's schema)."""
    from poseadapt.data.coco import predictions_from_list
    from poseadapt.data.validate import read_json

    path = spec.results.get(test.name, spec.results.get("*"))
    if path is None:
        raise PoseAdaptError(f"model '{spec.name}' has no results file for test set '{test.name}'")
    if not path.is_file():
        raise DataError(f"model '{spec.name}': results file not found: {path}")
    return predictions_from_list(read_json(path, "results file"), test.gt, source=path)


# ---------------------------------------------------------------------------------------------- the comparison
def head_for(model: Any, gt_schema: Any) -> int:
    """The head a checkpoint is scored with on a test set: the head predicting the test set's schema (a multi-head
    model scores each dataset with its own head), else the first head (read in the test set's schema as before)."""
    name = getattr(gt_schema, "name", gt_schema)
    names = [s.name for s in model.schemas]
    if name in names:
        return names.index(name)
    base = str(name).split(":")[0]  # a test set labelling a subset of a head's keypoints ("coco17:12")
    return names.index(base) if base in names else 0


@dataclass
class Cell:
    """One model on one test set: predictions in the GT schema and the scoring view."""

    model: str
    test: str
    preds: Any
    view: Any
    stats: dict[str, float]


def compare(
    models: Sequence[ModelSpec],
    tests: Sequence[TestSpec],
    *,
    baseline: str | None = None,
    group_by: Sequence[str] = (),
    samples: int = bs.DEFAULT_SAMPLES,
    seed: int = bs.DEFAULT_SEED,
    flip_test: bool = True,
    upright_test: bool = False,
    progress: Callable[[str], None] | None = None,
    prior: Any = None,
    decode_prior: Any = None,
    seed_groups: Sequence[SeedGroup | str] = (),
    invert_images: Sequence[str] = (),
) -> tuple[dict[str, Any], dict[tuple[str, str], Cell], dict[str, TestSet]]:
    """Score every model on every test set; returns (summary, cells, test sets). Checks every input first.

    `prior` (a PosePrior or its file) adds each row's implausible-pose rate; `decode_prior` decodes every
    checkpoint model with prior-guided decoding (`poseadapt.evaluate.prior_decode`); `upright_test` reads each crop
    at the four quarter turns (`poseadapt.evaluate.topdown.Predictor`). `seed_groups` (NAME=MODEL,MODEL,... or
    `SeedGroup`s) adds one row per group and test set: the runs' mean AP, its interval over images and runs, and
    its change against `baseline` (a model, or a group: then the per-model rows carry no forgetting).
    The checkpoint models named in `invert_images` read every test image inverted (255 - value), relative to how
    their checkpoint reads (`models.surgery.with_input_inverted`): e.g. colour-trained models on a white-hot
    thermal test set, beside models trained with `model.invert_input`, which need no flag.
    """
    from poseadapt.evaluate.topdown import evaluate_model, scoring_view

    names = [m.name for m in models]
    if not models or not tests:
        raise PoseAdaptError("compare needs at least one --model and one --test")
    for what, seq in (("model", names), ("test set", [t.name for t in tests])):
        dup = sorted({n for n in seq if seq.count(n) > 1})
        if dup:
            raise PoseAdaptError(f"{what} name(s) used twice: {', '.join(dup)}")
    run_groups = [parse_group(g) if isinstance(g, str) else g for g in seed_groups]
    check_groups(run_groups, names)
    choices = names + [g.name for g in run_groups]
    if baseline is not None and baseline not in choices:
        raise PoseAdaptError(f"--baseline '{baseline}' is not one of the models or seed groups ({', '.join(choices)})")
    checkpoints = [m.name for m in models if m.kind == "checkpoint"]
    unknown = sorted({n for n in invert_images if n not in checkpoints})
    if unknown:
        raise PoseAdaptError(
            f"--invert-images names a model that is not a checkpoint --model: {', '.join(unknown)} "
            f"(checkpoints: {', '.join(checkpoints) or 'none'})"
        )
    loaded = {m.name: load_model_for(m) for m in models if m.kind == "checkpoint"}
    if invert_images:
        from poseadapt.models.surgery import with_input_inverted

        for name in set(invert_images):
            loaded[name] = with_input_inverted(loaded[name], not loaded[name].config.input_inverted).eval()
    first_schema = next((mdl.schemas[0] for mdl in loaded.values()), None)
    test_sets = {t.name: load_test_set(t, first_schema, upright_test) for t in tests}
    groups = {name: subgroups(ts, group_by) for name, ts in test_sets.items()}
    prior, decode_prior = (_load_prior(p) for p in (prior, decode_prior))
    for ts in test_sets.values():  # a prior that lacks the test's keypoints fails before any prediction
        if prior is not None:
            prior.columns_for(list(ts.gt.schema.keypoints))
    for m in models:  # every pairing is checked before the first prediction
        for ts in test_sets.values():
            if m.kind == "checkpoint":
                model = loaded[m.name]
                scoring_view(ts.gt, model.schemas[head_for(model, ts.gt.schema)])
                if decode_prior is not None:
                    decode_prior.columns_for(list(model.schemas[head_for(model, ts.gt.schema)].keypoints))
                    if model.config.codec.get("type") == "SimCC":
                        raise PoseAdaptError(f"--decode-prior needs heatmap models; '{m.name}' decodes SimCC")
            elif test_sets and ts.name not in m.results and "*" not in m.results:
                raise PoseAdaptError(f"model '{m.name}' has no results file for test set '{ts.name}'")
    cells: dict[tuple[str, str], Cell] = {}
    for m in models:
        for ts in test_sets.values():
            if progress is not None:
                progress(f"{m.name} on {ts.name}")
            if m.kind == "checkpoint":
                model = loaded[m.name]
                head = head_for(model, ts.gt.schema)
                decoder = None
                if decode_prior is not None:
                    from poseadapt.evaluate.prior_decode import PriorDecoder, codec_refiner

                    schema = model.schemas[head]
                    decoder = PriorDecoder(
                        decode_prior, schema.keypoints, schema.flip_index, codec_refiner(model.codec)
                    )
                ev = evaluate_model(
                    model, ts.gt, ts.images, head=head, flip_test=flip_test, decoder=decoder,
                    upright_test=ts.upright_test,
                )  # fmt: skip
                preds, view, stats = ev.view.to_gt_schema(ev.predictions), ev.view, ev.stats
            else:
                from poseadapt.evaluate.topdown import score_ap

                view = scoring_view(ts.gt, None)
                preds = results_predictions(m, ts)
                stats = score_ap(view, preds)
            cells[(m.name, ts.name)] = Cell(m.name, ts.name, preds, view, stats)
    summary = _summarise(models, test_sets, cells, groups, baseline, samples, seed, run_groups)
    from poseadapt.adapt.flops import count_flops

    for entry in summary["models"]:  # what each model costs per crop (a student against its teacher)
        model = loaded.get(entry["name"])
        if model is not None:
            entry["reads_inverted"] = entry["name"] in invert_images
        entry["gflops"] = count_flops(model) / 1e9 if model is not None else None
        entry["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6 if model is not None else None
    if prior is not None:
        from poseadapt.evaluate.plausibility import implausible_rate

        for row in summary["results"]:
            cell = cells[(row["model"], row["test"])]
            rate = implausible_rate(prior, cell.preds.keypoints, test_sets[row["test"]].gt.schema.keypoints)
            row["implausible_rate"] = rate["implausible_rate"]
            row["implausible_ci"] = rate["implausible_interval"]
        summary["prior"] = {"schema": prior.schema_name, "threshold": prior.threshold}
    if decode_prior is not None:
        summary["decode_prior"] = {"schema": decode_prior.schema_name, "threshold": decode_prior.threshold}
    return summary, cells, test_sets


def _load_prior(prior: Any) -> Any:
    if prior is None or not isinstance(prior, str | Path):
        return prior
    from poseadapt.priors import PosePrior

    return PosePrior.load(prior)


def _summarise(
    models: Sequence[ModelSpec],
    test_sets: dict[str, TestSet],
    cells: dict[tuple[str, str], Cell],
    groups: dict[str, dict[str, dict[str, list[int]]]],
    baseline: str | None,
    samples: int,
    seed: int,
    seed_groups: Sequence[SeedGroup] = (),
) -> dict[str, Any]:
    from poseadapt.evaluate.pck import compute_pck_metric
    from poseadapt.evaluate.score import keypoint_data, per_keypoint_ap

    rows, group_summary = [], []
    model_baseline = baseline if baseline in {m.name for m in models} else None
    group_baseline = next((g for g in seed_groups if g.name == baseline), None)
    for ts in test_sets.values():
        image_draws = bs.draws(ts.gt.images.keys(), samples, seed)
        indexed = {m.name: bs.to_index_dicts(cells[(m.name, ts.name)].view.gt, cells[(m.name, ts.name)].preds)
                   for m in models}  # fmt: skip
        boot = bs.bootstrap_stats(indexed, image_draws)
        boot_ap = {k: v["AP"] for k, v in boot.items()}
        replicates = group_replicates(seed_groups, boot_ap, seed)
        model_ap = {m.name: cells[(m.name, ts.name)].stats["AP"] for m in models}
        for m in models:
            cell = cells[(m.name, ts.name)]
            gt = cell.view.gt
            shared = set(cell.view.shared)
            pck = compute_pck_metric(keypoint_data(gt, cell.preds), gt.schema, "pck", alpha=PCK_ALPHA, normalize="bbox")
            per_kp = {k: v for i, (k, v) in enumerate(per_keypoint_ap(gt, cell.preds).items()) if i in shared}
            row: dict[str, Any] = {
                "model": m.name,
                "test": ts.name,
                "kind": m.kind,
                **{k: float(v) for k, v in cell.stats.items()},
                "AP_ci": bs.percentile_interval(cell.stats["AP"], boot[m.name]["AP"]).to_list(),
                "AR_ci": bs.percentile_interval(cell.stats["AR"], boot[m.name]["AR"]).to_list(),
                "PCK": float(pck.value),
                "instances": len(cell.preds),
                "images": len(ts.gt.images),
                "scored_keypoints": len(shared),
                "per_keypoint": per_kp,
                "forgetting": None,
                "subgroups": [],
                "worst_subgroup": None,
            }
            if model_baseline is not None and m.name != model_baseline:
                base = cells[(model_baseline, ts.name)]
                delta = boot[m.name]["AP"] - boot[model_baseline]["AP"]
                iv = bs.percentile_interval(cell.stats["AP"] - base.stats["AP"], delta)
                row["forgetting"] = {"baseline": model_baseline, "delta_AP": iv.value, "ci": iv.to_list(),
                                     "excludes_zero": iv.excludes_zero}  # fmt: skip
            elif group_baseline is not None and m.name not in group_baseline.members:
                row["forgetting"] = change_vs_group(
                    cell.stats["AP"], boot[m.name]["AP"], group_baseline, model_ap, replicates[group_baseline.name]
                )
            for key, values in groups[ts.name].items():
                for value, ids in sorted(values.items()):
                    ap = indexed[m.name].stats(ids)["AP"]
                    row["subgroups"].append({"key": key, "value": value, "images": len(ids), "AP": float(ap)})
            scored = [g for g in row["subgroups"] if g["AP"] >= 0]
            if scored:
                worst = min(scored, key=lambda g: g["AP"])
                row["worst_subgroup"] = {"key": worst["key"], "value": worst["value"], "AP": worst["AP"]}
            rows.append(row)
        if seed_groups:
            group_summary += group_rows(seed_groups, ts.name, model_ap, boot_ap, baseline, replicates)
    return {
        "models": [
            {"name": m.name, "kind": m.kind, "source": m.checkpoint or {k: str(v) for k, v in m.results.items()}}
            for m in models
        ],  # fmt: skip
        "tests": [
            {
                "name": t.name,
                "annotations": str(t.gt.path),
                "images": len(t.gt.images),
                "people": int((~np.asarray(t.gt.iscrowd, bool)).sum()),
                "schema": t.gt.schema.name,
                "upright_test": t.upright_test,
            }
            for t in test_sets.values()
        ],  # fmt: skip
        "baseline": baseline,
        "bootstrap": {"samples": int(samples), "seed": int(seed), "level": bs.LEVEL, "unit": "image"},
        "pck_alpha": PCK_ALPHA,
        "results": rows,
        "seed_groups": group_summary,
    }


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2) + "\n"


# ---------------------------------------------------------------------------------------------- the report
def report_files(
    summary: dict[str, Any], cells: dict[tuple[str, str], Cell], test_sets: dict[str, TestSet], overlays: int = 4
) -> dict[str, bytes]:
    """Every output file of a compare run by name: plots, overlay grids, report.md, report.html, summary.json."""
    from poseadapt.evaluate import report_compare as rc
    from poseadapt.evaluate.topdown import read_image

    plots: dict[str, bytes] = {"ap.png": rc.plot_ap(summary)}
    models = [m["name"] for m in summary["models"]]
    for name, ts in test_sets.items():
        plots[f"keypoints_{_slug(name)}.png"] = rc.plot_per_keypoint(summary, name)
        groups = rc.plot_subgroups(summary, name)
        if groups is not None:
            plots[f"subgroups_{_slug(name)}.png"] = groups
        ids = sorted(ts.gt.images)[:overlays]
        images = [read_image(ts.gt.image_path(i, ts.images)) for i in ids]
        preds = {m: cells[(m, name)].preds for m in models}
        rows = {m: [p.keypoints[p.image_ids == i] for i in ids] for m, p in preds.items()}
        plots[f"overlays_{_slug(name)}.png"] = rc.overlay_grid(images, rows, ts.gt.schema)
    files = dict(plots)
    files["report.md"] = rc.render_markdown(summary, plots).encode()
    files["report.html"] = rc.render_html(summary, plots).encode()
    files["summary.json"] = summary_json(summary).encode()
    return files


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def write_report(out: str | Path, files: dict[str, bytes]) -> Path:
    """All files or none: built in a temporary sibling folder, then moved into `out`."""
    from poseadapt.cli.io import atomic_folder

    with atomic_folder(out) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
    return Path(out)


def compare_report(
    models: Sequence[ModelSpec | str],
    tests: Sequence[TestSpec | str],
    out: str | Path,
    **options: Any,
) -> dict[str, Any]:
    """The whole `poseadapt compare`: score, render and write `out/` (report.html, report.md, plots, summary.json).

    `models` / `tests` are specs or the CLI's NAME=... strings; `options` go to `compare()`. Returns the summary.
    """
    model_specs = [parse_model(m) if isinstance(m, str) else m for m in models]
    test_specs = [parse_test(t) if isinstance(t, str) else t for t in tests]
    summary, cells, test_sets = compare(model_specs, test_specs, **options)
    write_report(out, report_files(summary, cells, test_sets))
    return summary
