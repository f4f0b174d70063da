"""Can the student of the big teacher get within 2 AP of it? Four changes to DWPose stage 1, one run each.

    .venv/bin/python benchmarks/distill_big_variants.py [--out bench_out/distill_few] [--tests bench_out/unl_s5]

Setting (benchmarks/distill_few_labels.py `--long`, run `kd_big_long_ti`): the big teacher is the built-in model
fine-tuned at 256x192 on 1000 labelled top-view infants (benchmarks/distill_resolution.py, 2.16 GFLOPs); the
student is its own weights fed 2x-downsampled crops (0.51 GFLOPs, 23.5%), with 100 labelled infants of its own and
2000 unlabelled ones only the teacher supervises (3/4 of each batch), 20 epochs x 2000 samples, constant heatmap
distillation. That student lands 3.1 AP below the teacher; the target is 2. Each variant changes one thing:
- `flip`: the teacher's flip-test heatmaps (`distill.flip_test`), the merge its 52.6 AP was measured with;
- `pool8k`: 8000 unlabelled infants instead of 2000 (same seed, so a superset), the same steps;
- `kl`: DWPose's loss form, KL between spatial softmaxes of 10 x heatmaps, instead of MSE;
- `e40`: twice the steps (40 epochs x 2000 samples); then 5 seeds of it (`kd_big_e40`) and 3 of the student
  without the teacher at the same steps (`no_teacher_e40`).
Scored with `poseadapt compare --seeds` on the 200 top-view test infants: every run against the four seeds of the
same student without the teacher (`no_teacher_long`, benchmarks/seed_spread.py `distill`), then against the big
teacher. Test sets: benchmarks/unlabelled_methods_ap.py's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distill_few_labels import DECAY, LONG_STEPS, RECIPE, long_kd, long_student
from unlabelled_methods_ap import FM, sh, test_sets, train

E40 = ("schedule.epochs=40", "train.samples_per_epoch=2000")


def cell(d: dict | None) -> str:
    return "-" if d is None else f"{100 * d['delta_AP']:+.1f} [{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out/distill_few"))
    ap.add_argument("--tests", type=Path, default=Path("bench_out/unl_s5"))
    ap.add_argument("--big-teacher", type=Path, default=Path("bench_out/distill_res/teacher256/final.safetensors"))
    args = ap.parse_args()
    out, big = args.out.resolve(), args.big_teacher.resolve()
    if not big.is_file():
        raise SystemExit(f"run benchmarks/distill_resolution.py first: {big} is missing")
    infants = test_sets(args.tests.resolve() / "data", check=True)["infant_top"]
    student = long_student(big)
    models: dict[str, Path] = {"big_teacher": big}
    groups: dict[str, list[str]] = {"no_teacher_long": [], "no_teacher_e40": [], "kd_big_e40": []}
    for s in range(4):  # the student without a teacher, 4 seeds (benchmarks/seed_spread.py distill; folders as cached)
        tail = f"_s{s}" if s else ""
        models[f"nt{s}"] = train(RECIPE, out / f"no_teacher_long2000{tail}", *long_student(FM), *LONG_STEPS,
                                 f"adapt=[{DECAY}]", f"train.seed={s}")  # fmt: skip
        groups["no_teacher_long"].append(f"nt{s}")
    models["kd_big_long_ti"] = train(RECIPE, out / "kd_big_long2000_nodecay_ti", *student, *LONG_STEPS, long_kd(big))
    models["flip"] = train(RECIPE, out / "kd_big_long2000_ti_flip", *student, *LONG_STEPS, long_kd(big, flip=True))
    models["pool8k"] = train(RECIPE, out / "kd_big_long2000_ti_8k", *student, *LONG_STEPS, long_kd(big, pool=8000))
    models["kl"] = train(RECIPE, out / "kd_big_long2000_ti_kl", *student, *LONG_STEPS, long_kd(big, loss="kl"))
    # twice the steps: 5 seeds of the distilled student, 3 of the student alone at the same steps
    for s in range(5):
        tail = f"_s{s}" if s else ""
        name = "e40" if s == 0 else f"e40_s{s}"
        models[name] = train(
            RECIPE, out / f"kd_big_long2000_ti_e40{tail}", *student, *E40, long_kd(big), f"train.seed={s}"
        )
        groups["kd_big_e40"].append(name)
        if s < 3:
            models[f"nt_e40_{s}"] = train(RECIPE, out / f"no_teacher_e40{tail}", *long_student(FM), *E40,
                                          f"adapt=[{DECAY}]", f"train.seed={s}")  # fmt: skip
            groups["no_teacher_e40"].append(f"nt_e40_{s}")
    summaries = {}
    for baseline in ("no_teacher_long", "no_teacher_e40", "big_teacher"):
        summaries[baseline] = json.loads(
            sh(
                "compare",
                *[a for k, p in models.items() for a in ("--model", f"{k}={p}")],
                "--test",
                f"infant_top={infants}",
                *[a for g, ms in groups.items() for a in ("--seeds", f"{g}={','.join(ms)}")],
                "--baseline",
                baseline,
                "--bootstrap",
                "1000",
                "--out",
                str(out / f"compare_big_variants_{baseline}"),
                "--json",
            )
        )
    print("| run | infant top AP [95%] | Δ vs the student alone (4 seeds) [95%] | Δ vs the big teacher [95%] |")
    print("|---|---|---|---|")
    vs = {b: {r["model"]: r["forgetting"] for r in s["results"]} for b, s in summaries.items()}
    members = {m for ms in groups.values() for m in ms} - {"e40"}
    for r in summaries["no_teacher_long"]["results"]:
        if r["model"] not in members:
            lo, hi = r["AP_ci"]
            ap_text = f"{100 * r['AP']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
            changes = " | ".join(cell(vs[b][r["model"]]) for b in ("no_teacher_long", "big_teacher"))
            print(f"| {r['model']} | {ap_text} | {changes} |")
    print()
    print(
        "| group | runs | mean AP [95%, images and runs] | Δ vs no_teacher_long | Δ vs no_teacher_e40 | Δ vs teacher |"
    )
    print("|---|---|---|---|---|---|")
    rows = {b: {g["group"]: g for g in s["seed_groups"]} for b, s in summaries.items()}
    for g, row in rows["big_teacher"].items():
        runs = ", ".join(f"{100 * a:.1f}" for a in row["AP_runs"])
        lo, hi = row["AP_ci"]
        changes = " | ".join(cell(rows[b][g]["vs_baseline"]) for b in summaries)
        print(f"| {g} | {runs} | {100 * row['AP']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | {changes} |")


if __name__ == "__main__":
    main()
