"""Do the label-free and few-label methods help the embedded adult model on infants?  Short runs, 2 CPU cores.

    nice -n 5 .venv/bin/python benchmarks/unlabelled_methods_ap.py [--out bench_out/unl] [--only mt,adv,prior,distill]

Source: `builtin:synthpose-vit-tiny` (coco17, rendered adults). Every recipe is the shipped one, shrunk by `--set`
(data sizes, epochs, warm-up, ramp-up; method options untouched). Test sets are fresh renders with seeds no
training used: infants top view (9101), adults every view (9102), infants diagonal view (9103), 200 images each.

1. `mt`: ZERO infant labels. synth-infant-mean-teacher (adults labelled + the same N unlabelled top-view infants,
   EMA teacher + infant pose prior + silhouettes) vs supervised fine-tuning on those infants WITH labels
   (synth-infant-prior with `adapt=[layer_decay]`: same optimiser, lr, layer decay) vs the foundation model.
   Share of the supervised gain recovered = (AP_mt - AP_fm) / (AP_sup - AP_fm) on top-view infants.
2. `adv`: 50 labelled infants. synth-infant-adversarial vs synth-infant-50-finetune (paired, baseline finetune).
3. `prior`: 100 labelled infants. synth-infant-prior with the prior vs `adapt.1.prior.weight=0`; AP and the
   implausible-pose rate (`poseadapt eval --prior`).
4. `distill`: synth-distill student (vit_tiny, from scratch) vs the same student without the teacher vs the teacher,
   with FLOPs.
Step budgets (`train.max_iters`) are what fitted 2 shared, heavily loaded CPU cores (about 1-3 images/s): the
measured runs planned the schedule's epochs and were stopped (Ctrl-C, then `--resume --set train.max_iters=N`)
after N steps: mt 49 steps of 32 (half adults, half unlabelled infants), sup 56 of 16, adv and finetune50 22 of 32.
Every comparison is `poseadapt compare --bootstrap 1000` (95% intervals over images, paired against --baseline).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

FM = "builtin:synthpose-vit-tiny"


def sh(*args: str) -> str:
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "poseadapt.cli.main", *args], capture_output=True, text=True)
    print(f"[{time.time() - t0:6.1f}s] poseadapt {' '.join(args)}", flush=True)
    if proc.returncode:
        raise SystemExit(f"poseadapt {' '.join(args)}\n{proc.stderr[-3000:]}")
    return proc.stdout


def train(recipe: str, run: Path, *sets: str) -> Path:
    final = run / "final.safetensors"
    if not final.is_file():
        common = ("data.val=null", "train.progress=false")
        sh("train", recipe, "--out", str(run), *[a for s in (*common, *sets) for a in ("--set", s)])
    return final


def compare(out: Path, models: dict[str, str], tests: dict[str, Path], baseline: str) -> dict:
    summary = json.loads(
        sh(
            "compare",
            *[a for k, p in models.items() for a in ("--model", f"{k}={p}")],
            *[a for k, p in tests.items() for a in ("--test", f"{k}={p}")],
            "--out",
            str(out),
            "--baseline",
            baseline,
            "--bootstrap",
            "1000",
            "--json",
        )  # fmt: skip
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def test_sets(data: Path, check: bool = False) -> dict[str, Path]:
    """The three test sets under `data` (rendered by main()); with `check`, exit with one line if any is missing."""
    tests = {
        "infant_top": data / "infant_top_test/annotations/infant_coco17.json",
        "adult": data / "adult_test/annotations/adult_coco17.json",
        "infant_diag": data / "infant_diag_test/annotations/infant_coco17.json",
    }
    missing = [str(p) for p in tests.values() if not p.is_file()]
    if check and missing:
        out = data.parent
        raise SystemExit(f"render the test sets first (benchmarks/unlabelled_methods_ap.py --out {out}): {missing}")
    return tests


def table(summary: dict) -> str:
    """Markdown rows: model, test, AP [95%], paired AP change vs the baseline [95%]."""
    rows = ["| model | test | AP [95% CI] | ΔAP vs " + summary["baseline"] + " [95% CI] |", "|---|---|---|---|"]
    for r in summary["results"]:
        ci, f = r["AP_ci"], r.get("forgetting") or {}
        d = f"{100 * f['delta_AP']:+.1f} [{100 * f['ci'][0]:+.1f}, {100 * f['ci'][1]:+.1f}]" if f.get("ci") else "-"
        ap = f"{100 * r['AP']:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
        rows.append(f"| {r['model']} | {r['test']} | {ap} | {d} |")
    return "\n".join(rows)


def main() -> None:
    global FM
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out/unl"))
    ap.add_argument("--only", default="mt,adv,prior,distill")
    ap.add_argument("--n-unlabelled", type=int, default=300, help="top-view infants (mt: unlabelled; sup: labelled)")
    ap.add_argument("--epochs", type=int, default=6, help="epochs of the mt and sup runs")
    ap.add_argument(
        "--full", action="store_true", help="the recipes' own schedules (no step cap); --n-unlabelled 1000, 10 epochs"
    )
    ap.add_argument("--model", default=FM, help="the source model every run starts from")
    args = ap.parse_args()
    FM = args.model
    src = (f"model.checkpoint={FM}",)
    cap = (lambda k: ()) if args.full else (lambda k: (f"train.max_iters={k}",))
    out: Path = args.out.resolve()
    data, runs = out / "data", out / "runs"
    data.mkdir(parents=True, exist_ok=True)
    renders = {
        "infant_top_test": ("infant", "top", 200, 9101),
        "adult_test": ("adult", "random", 200, 9102),
        "infant_diag_test": ("infant", "diagonal", 200, 9103),
        "infant_prior": ("infant", "top", 500, 7),  # the prior's poses: another render than any training image
    }
    for key, (pop, view, n, seed) in renders.items():
        if not (data / key / "annotations").is_dir():
            sh("synth", "--population", pop, "--view", view, "--n", str(n), "--seed", str(seed), "--size", "256",
               "--out", str(data / key))  # fmt: skip
    tests = test_sets(data)
    prior = out / "priors/infant-top-coco17.safetensors"
    if not prior.is_file():
        prior.parent.mkdir(parents=True, exist_ok=True)
        sh("prior", "fit", str(data / "infant_prior/annotations/infant_coco17.json"), "--out", str(prior))
    only = set(args.only.split(","))
    results: dict[str, dict] = {}
    n, ep = (1000, 10) if args.full else (args.n_unlabelled, args.epochs)

    if "mt" in only:  # 1. zero infant labels
        mt = train(
            "synth-infant-mean-teacher", runs / "mean_teacher",
            f"data.train.synth.n={n}", f"adapt.1.mean_teacher.unlabelled.synth.n={n}",
            f"adapt.1.mean_teacher.prior={prior}", f"schedule.epochs={ep}", "schedule.warmup_iters=10",
            *(() if args.full else ("adapt.1.mean_teacher.rampup_iters=20",)), *cap(49), *src,
        )  # fmt: skip
        sup = train(
            "synth-infant-prior", runs / "supervised",
            f"data.train.synth.n={n}", "adapt=[{layer_decay: {rate: 0.75}}]", f"schedule.epochs={ep}",
            "schedule.warmup_iters=10", *cap(56), *src,
        )  # fmt: skip
        results["mt"] = compare(out / "compare_mt", {"foundation": FM, "supervised": str(sup), "mean_teacher": str(mt)},
                                tests, "foundation")  # fmt: skip

    if "adv" in only:  # 2. 50 labelled infants
        few = ("data.train.synth.n=50", *src) + (
            () if args.full else ("schedule.epochs=10", "schedule.warmup_iters=10", *cap(22))
        )
        adv = train(
            "synth-infant-adversarial",
            runs / "adversarial",
            *few,
            "adapt.0.adversarial.source.synth.n=300",
            "adapt.0.adversarial.target_unlabelled.synth.n=200",
        )
        ft = train("synth-infant-50-finetune", runs / "finetune50", *few)
        models = {"finetune50": str(ft), "adversarial": str(adv), "foundation": FM}
        results["adv"] = compare(out / "compare_adv", models, tests, "finetune50")

    if "prior" in only:  # 3. prior on / off with 100 labels
        base = ("data.train.synth.n=100", f"adapt.1.prior.prior={prior}", *src,
                *(() if args.full else ("schedule.epochs=3", "schedule.warmup_iters=5")))  # fmt: skip
        on = train("synth-infant-prior", runs / "prior_on", *base)
        off = train("synth-infant-prior", runs / "prior_off", *base, "adapt.1.prior.weight=0")
        models = {"prior_off": str(off), "prior_on": str(on), "foundation": FM}
        results["prior"] = compare(out / "compare_prior", models, tests, "prior_off")
        rates = {}
        for name, ck in (("prior_off", off), ("prior_on", on), ("foundation", FM)):
            res = json.loads(
                sh(
                    "eval",
                    "--checkpoint",
                    str(ck),
                    "--ann",
                    str(tests["infant_top"]),
                    "--images",
                    str(data / "infant_top_test/images"),
                    "--prior",
                    str(prior),
                    "--json",
                )
            )
            rates[name] = res
        results["prior_eval"] = rates

    if "distill" in only:  # 4. distillation, shrunk hard
        small = ("data.train.synth.n=1500", "data.train.synth.stream=false", f"adapt.0.distill.teacher={FM}",
                 f"schedule.epochs={10 if args.full else 3}", "schedule.warmup_iters=20")  # fmt: skip
        st = train("synth-distill", runs / "distill", *small)
        st0 = train("synth-distill", runs / "no_teacher", *small, "adapt=[]")
        results["distill"] = compare(out / "compare_distill",
                                     {"no_teacher": str(st0), "student": str(st), "teacher": FM},
                                     {"adult": tests["adult"]}, "no_teacher")  # fmt: skip
        from poseadapt.adapt.flops import flops_summary

        results["flops"] = flops_summary({"teacher": FM, "student": str(st)})

    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    for key in ("mt", "adv", "prior", "distill"):
        if key in results:
            print(f"\n## {key}\n" + table(results[key]))
    if "mt" in results:
        ap = {(r["model"], r["test"]): r["AP"] for r in results["mt"]["results"]}
        fm, sup, mt = (ap[(m, "infant_top")] for m in ("foundation", "supervised", "mean_teacher"))
        print(f"\nshare of the supervised AP gain the mean teacher recovers: {(mt - fm) / (sup - fm):.0%}")
    for key in ("prior_eval", "flops"):
        if key in results:
            print(f"\n## {key}\n" + json.dumps(results[key], indent=1, default=str)[:3000])


if __name__ == "__main__":
    main()
