"""The unseen diagonal view with and without the upright test, for every method's model: diagonal / top AP.

    .venv/bin/python benchmarks/upright_test.py [--bench bench_out] [--out bench_out/upright]

Each model is a checkpoint an earlier benchmark trained (skipped when absent): benchmarks/unlabelled_methods_ap.py
(bench_out/unl_s5: supervised, finetune50, adversarial, mean teacher, prior on/off), self_training_rounds.py
(bench_out/selftrain_cli), issue12_variants.py (bench_out/s7), distill_resolution.py (bench_out/distill_res) and
distill_few_labels.py (bench_out/distill_few). Every one was fine-tuned on top-view infants only; `poseadapt compare
--bootstrap 1000` scores it on the top-view and the diagonal test renders twice: plain (flip test) and with
`--upright-test` (flip test at each quarter turn, the most confident and upright reading kept).

`--paired` adds, for the models named in PAIRED, the change the upright test makes with its paired interval: each
model's predictions written plain and upright by `poseadapt eval --out`, then compared as results files on the
same bootstrap draws.

`--timing` measures what the upright test costs: `evaluate_model` on the 200 diagonal test infants with the
`supervised` model, plain and upright interleaved, 5 runs each, median seconds and their ratio.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unlabelled_methods_ap import FM, sh, test_sets

MODELS = {  # name -> checkpoint under --bench; the row's method in docs/ADAPTATION_RESULTS.md
    "foundation": FM,
    "supervised": "unl_s5/runs/supervised",
    "supervised_rot": "s7/sup_rot",
    "supervised_256_rot": "s7/sup256_rot",
    "finetune50": "unl_s5/runs/finetune50",
    "finetune50_256": "s7/ft50_256",
    "adversarial50": "unl_s5/runs/adversarial",
    "adversarial50_share60": "s7/adv60",
    "prior_off": "unl_s5/runs/prior_off",
    "prior_on": "unl_s5/runs/prior_on",
    "mean_teacher": "unl_s5/runs/mean_teacher",
    "selftrain_round2": "selftrain_cli/round2",
    "selftrain_r3_256_rot": "s7/r3_rot256",
    "distill_teacher_1000": "distill_res/teacher256",
    "distill_student_1000": "distill_res/distilled_logit",
    "distill_no_teacher_1000": "distill_res/no_teacher",
    "distill_student_100": "distill_few/distilled_w1",
    "distill_no_teacher_100": "distill_few/no_teacher",
}
PAIRED = ("supervised", "supervised_256_rot", "selftrain_r3_256_rot", "distill_student_1000")


def paired(models: dict[str, str], tests: dict[str, Path], out: Path) -> None:
    """Upright test minus plain, per model and test set, with the paired 95% interval."""
    print("| model | test | plain AP | upright-test AP | change [95%] |")
    print("|---|---|---|---|---|")
    for name in PAIRED:
        if name not in models:
            continue
        for test, ann in tests.items():
            results = {}
            for mode in ("plain", "upright"):
                results[mode] = out / "paired" / f"{name}_{test}_{mode}.json"
                if not results[mode].is_file():
                    sh("eval", "--checkpoint", models[name], "--ann", str(ann), "--images",
                       str(ann.parent.parent / "images"), "--out", str(results[mode]),
                       *(["--upright-test"] if mode == "upright" else []))  # fmt: skip
            summary = json.loads(sh(
                "compare", "--model", f"plain={results['plain']}", "--model", f"upright={results['upright']}",
                "--test", f"{test}={ann}:{ann.parent.parent / 'images'}", "--baseline", "plain",
                "--out", str(out / "paired" / f"cmp_{name}_{test}"), "--bootstrap", "1000", "--json",
            ))  # fmt: skip
            ap = {r["model"]: r for r in summary["results"]}
            f = ap["upright"]["forgetting"]
            print(f"| {name} | {test} | {100 * ap['plain']['AP']:.1f} | {100 * ap['upright']['AP']:.1f} | "
                  f"{100 * f['delta_AP']:+.1f} [{100 * f['ci'][0]:+.1f}, {100 * f['ci'][1]:+.1f}] |")  # fmt: skip


def timing(checkpoint: str, ann: Path, runs: int = 5) -> None:
    import statistics
    import time

    from poseadapt.evaluate.topdown import evaluate_model, load_ground_truth
    from poseadapt.interop.checkpoint import load_checkpoint

    model, gt = load_checkpoint(checkpoint).eval(), load_ground_truth(ann)
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for upright in (False, True):
            t0 = time.perf_counter()
            evaluate_model(model, gt, ann.parent.parent / "images", upright_test=upright)
            seconds[upright].append(time.perf_counter() - t0)
    plain, turned = statistics.median(seconds[False]), statistics.median(seconds[True])
    print(f"evaluate_model, {len(gt.images)} images: plain {plain:.1f} s, upright test {turned:.1f} s "
          f"(median of {runs}, interleaved): {turned / plain:.2f}x; runs {seconds}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, default=Path("bench_out"))
    ap.add_argument("--out", type=Path, default=Path("bench_out/upright"))
    ap.add_argument("--only", nargs="*", help="model names to score (default: every one found)")
    ap.add_argument("--paired", action="store_true", help="also the paired change for the models in PAIRED")
    ap.add_argument("--timing", action="store_true", help="only time plain vs upright inference, then stop")
    args = ap.parse_args()
    bench = args.bench.resolve()
    tests = test_sets(bench / "unl_s5/data", check=True)
    tests = {k: tests[k] for k in ("infant_top", "infant_diag")}
    if args.timing:
        timing(str(bench / MODELS["supervised"] / "final.safetensors"), tests["infant_diag"])
        return
    models = {}
    for name, rel in MODELS.items():
        path = rel if rel.startswith("builtin:") else str(bench / rel / "final.safetensors")
        if (args.only and name not in args.only) or not (rel.startswith("builtin:") or Path(path).is_file()):
            continue
        models[name] = path
    rows = {}
    for mode in ("plain", "upright"):
        out = args.out.resolve() / mode
        summary_file = out / "summary.json"
        if not summary_file.is_file() or set(json.loads(summary_file.read_text())["models_run"]) != set(models):
            flags = ["--upright-test"] if mode == "upright" else []
            summary = json.loads(sh(
                "compare", *[a for k, p in models.items() for a in ("--model", f"{k}={p}")],
                *[a for k, p in tests.items() for a in ("--test", f"{k}={p}")],
                "--out", str(out), "--bootstrap", "1000", "--json", *flags,
            ))  # fmt: skip
            summary["models_run"] = list(models)
            summary_file.write_text(json.dumps(summary, indent=2))
        for r in json.loads(summary_file.read_text())["results"]:
            rows.setdefault(r["model"], {})[(mode, r["test"])] = (r["AP"], r["AP_ci"])
    print("| model | top AP | diagonal AP | diagonal / top | top AP, upright test | diagonal AP, upright test | "
          "diagonal / top, upright test |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        cells = []
        for mode in ("plain", "upright"):
            (top, tci), (diag, dci) = r[(mode, "infant_top")], r[(mode, "infant_diag")]
            cells += [f"{100 * top:.1f} [{100 * tci[0]:.1f}, {100 * tci[1]:.1f}]",
                      f"{100 * diag:.1f} [{100 * dci[0]:.1f}, {100 * dci[1]:.1f}]", f"{diag / top:.2f}"]  # fmt: skip
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.paired:
        paired(models, tests, args.out.resolve())


if __name__ == "__main__":
    main()
