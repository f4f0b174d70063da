"""Issue 12's few-label comparisons again with several training seeds per recipe (`compare --seeds`).

    .venv/bin/python benchmarks/seed_spread.py GROUP [--seeds 4] [--tests bench_out/unl_s5]

Session 8 found that a second training seed moved the student without a teacher from 46.1 to 49.7 AP: more than
the interval over test images, and enough to turn "distillation helps" round. Each group re-runs both sides of one
claim with `train.seed` 0..N-1 and scores them with `poseadapt compare --seeds`: each recipe's mean AP over its
runs, an interval over test images and runs, and the change between the recipes with both kinds of noise.
- `distill` (`--seeds 4`): the long-schedule distillation of benchmarks/distill_few_labels.py (`--long`; its
  folders: seed 0 is the run cached there): `kd_long_ti` (the student started from the 100-label teacher, heatmap
  distillation on 2000 unlabelled infants) against `no_teacher_long` (the same student, the same 100 labels and
  steps, no teacher). The teacher is the one checkpoint every distilled run learned from.
- `adv` (`--seeds 5`): 50 labelled infants. `finetune50` (synth-infant-50-finetune) against `adv_eq` and its control
  `adv_eq_control` (benchmarks/issue12_variants.py `adv`: the labelled infants 60% of each batch, seen as often as
  in finetune50; the control has no reversed gradient); and, on the first 3 seeds, `advw` / `advw_control`: the same
  with the source adults warped towards infant proportions (`ProportionWarp` p 1.0 on every adult crop), the
  analogue of FiDIP's labelled synthetic infants.
Test sets: benchmarks/unlabelled_methods_ap.py's (render them there first).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distill_few_labels import DECAY, LONG_STEPS, RECIPE, long_kd, long_student
from issue12_variants import AUG, adversarial
from unlabelled_methods_ap import FM, sh, test_sets, train


def distill_runs(out: Path, seeds: int) -> tuple[dict[str, Path], dict[str, list[str]], str]:
    teacher = out / "teacher/final.safetensors"
    if not teacher.is_file():
        raise SystemExit(f"run benchmarks/distill_few_labels.py --out {out} first: {teacher} is missing")
    models: dict[str, Path] = {"teacher": teacher}
    groups: dict[str, list[str]] = {"no_teacher_long": [], "kd_long_ti": []}
    for s in range(seeds):
        tail, seed = (f"_s{s}" if s else ""), f"train.seed={s}"
        models[f"nt{s}"] = train(RECIPE, out / f"no_teacher_long2000{tail}", *long_student(FM), *LONG_STEPS,
                                 f"adapt=[{DECAY}]", seed)  # fmt: skip
        models[f"kd{s}"] = train(RECIPE, out / f"kd_small_long2000_nodecay_ti{tail}", *long_student(teacher),
                                 *LONG_STEPS, long_kd(teacher), seed)  # fmt: skip
        groups["no_teacher_long"].append(f"nt{s}")
        groups["kd_long_ti"].append(f"kd{s}")
    return models, groups, "no_teacher_long"


def adv_runs(out: Path, seeds: int) -> tuple[dict[str, Path], dict[str, list[str]], str]:
    models: dict[str, Path] = {}
    groups: dict[str, list[str]] = {"finetune50": [], "adv_eq": [], "adv_eq_control": [], "advw": [],
                                    "advw_control": []}  # fmt: skip
    warp = f"adapt.0.adversarial.source.augment=[{AUG}, {{type: ProportionWarp, prob: 1.0}}]"
    for s in range(seeds):
        seed = f"train.seed={s}"
        models[f"ft{s}"] = train("synth-infant-50-finetune", out / f"finetune50_s{s}", "data.train.synth.n=50",
                                 f"model.checkpoint={FM}", seed)  # fmt: skip
        models[f"adv{s}"] = train("synth-infant-adversarial", out / f"adv_eq_s{s}", *adversarial(238, False), seed)
        models[f"ctl{s}"] = train("synth-infant-adversarial", out / f"adv_eq_control_s{s}", *adversarial(238, True),
                                  seed)  # fmt: skip
        for g, m in (("finetune50", "ft"), ("adv_eq", "adv"), ("adv_eq_control", "ctl")):
            groups[g].append(f"{m}{s}")
        if s < 3:
            models[f"w{s}"] = train("synth-infant-adversarial", out / f"advw_eq_s{s}", *adversarial(238, False), warp,
                                    seed)  # fmt: skip
            models[f"wc{s}"] = train("synth-infant-adversarial", out / f"advw_eq_control_s{s}",
                                     *adversarial(238, True), warp, seed)  # fmt: skip
            groups["advw"].append(f"w{s}")
            groups["advw_control"].append(f"wc{s}")
    groups = {g: ms for g, ms in groups.items() if len(ms) >= 2}
    return models, groups, "finetune50"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("group", choices=("distill", "adv"))
    ap.add_argument("--seeds", type=int, default=None, help="runs per recipe (distill: 4, adv: 5)")
    ap.add_argument("--out", type=Path, default=None, help="distill: bench_out/distill_few; adv: bench_out/s9_adv")
    ap.add_argument("--tests", type=Path, default=Path("bench_out/unl_s5"))
    args = ap.parse_args()
    tests = test_sets(args.tests.resolve() / "data", check=True)
    if args.group == "distill":
        out = (args.out or Path("bench_out/distill_few")).resolve()
        models, groups, baseline = distill_runs(out, args.seeds or 4)
    else:
        out = (args.out or Path("bench_out/s9_adv")).resolve()
        models, groups, baseline = adv_runs(out, args.seeds or 5)
    seed_table(out / f"compare_seeds_{args.group}", models, groups, tests, baseline)
    if args.group == "distill":  # within 2 AP of the teacher: the distilled runs against the one teacher
        kd = {k: v for k, v in models.items() if k == "teacher" or k in groups["kd_long_ti"]}
        seed_table(out / "compare_seeds_distill_vs_teacher", kd, {"kd_long_ti": groups["kd_long_ti"]}, tests, "teacher")


def seed_table(report: Path, models: dict[str, Path], groups: dict[str, list[str]], tests: dict[str, Path],
               baseline: str) -> dict:  # fmt: skip
    """`poseadapt compare --seeds` into `report`; prints the groups' markdown rows and returns the summary."""
    summary = json.loads(sh(
        "compare", *[a for k, p in models.items() for a in ("--model", f"{k}={p}")],
        *[a for k, p in tests.items() for a in ("--test", f"{k}={p}")],
        *[a for g, ms in groups.items() for a in ("--seeds", f"{g}={','.join(ms)}")],
        "--baseline", baseline, "--out", str(report), "--bootstrap", "1000", "--json",
    ))  # fmt: skip
    print("| recipe | test | runs | mean AP [95%, images and runs] | each run | Δ vs " + baseline + " [95%] |")
    print("|---|---|---|---|---|---|")
    for g in summary["seed_groups"]:
        d = g["vs_baseline"]
        delta = f"{100 * d['delta_AP']:+.1f} [{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}]" if d else "-"
        runs = ", ".join(f"{100 * v:.1f}" for v in g["AP_runs"])
        ci = f"{100 * g['AP']:.1f} [{100 * g['AP_ci'][0]:.1f}, {100 * g['AP_ci'][1]:.1f}]"
        print(f"| {g['group']} | {g['test']} | {len(g['AP_runs'])} | {ci} | {runs} | {delta} |")
    for r in summary["results"]:
        if r["model"] == "teacher":
            print(f"teacher on {r['test']}: {100 * r['AP']:.1f} [{100 * r['AP_ci'][0]:.1f}, {100 * r['AP_ci'][1]:.1f}]")
    return summary


if __name__ == "__main__":
    main()
