"""Distillation where it should pay: few labels, many unlabelled images, a teacher at 4x the student's FLOPs.

    .venv/bin/python benchmarks/distill_few_labels.py [--out bench_out/distill_few] [--tests bench_out/unl_s5]

Every model starts from `builtin:synthpose-vit-tiny` and sees the same 100 labelled top-view infants (seed 0, the
`synth-infant-prior` recipe's set, prior off). Teacher: fine-tuned at 256x192 crops (`model.input_size`, 2.16
GFLOPs). Student: the same weights with `model.input_downsample: 2` (0.51 GFLOPs, 23.5% of the teacher).
- `teacher`: 256x192, the 100 labels;
- `no_teacher`: the student on the 100 labels, as many steps as the distilled run (`--epochs` x 400 samples);
- `no_teacher_short`: the same at the recipe's own schedule (20 epochs of the 100);
- `distilled`: the student, the 100 labels plus 2000 unlabelled top-view infants (seed 5000, their labels never
  read; 3/4 of each epoch) that only the teacher supervises, heatmap (logit) distillation decaying as
  1 - epoch/epochs (DWPose stage 1; constant with `--no-decay`);
- `distilled_big` / `big_teacher`: the same distillation from benchmarks/distill_resolution.py's 256x192 teacher,
  trained on 1000 labelled infants (the same population, other images): a big model trained elsewhere on more
  labels, the student's own labels still 100 (skipped when that teacher is absent);
- `from_big_kd` / `from_big`: the student initialised from the big teacher's own weights (the same network, fed
  2x-downsampled crops), with its heatmap distillation / on the 100 labels alone;
- `pseudo` / `pseudo_big`: hard targets instead of heatmaps (data distillation, Radosavovic et al. 2018): each
  teacher's confident keypoints on the same 2000 images written by `poseadapt pseudo-label`, the student trained on
  them and the 100 labels (1/4 of each epoch), no `distill` term.
The comparison that matters is `distilled` against `no_teacher`: the same student, the same labels, the same steps;
what the teacher adds is its heatmaps on images nobody labelled. Test sets: benchmarks/unlabelled_methods_ap.py's.

`--long`: five times the steps (20 epochs x 2000 samples), which 2000 teacher-labelled images can use and 100
labels cannot. Constant distillation weight. Runs: `no_teacher_long`; `kd_long` / `kd_big_long` (heatmaps of each
teacher); `kd_long_ti` / `kd_big_long_ti` (the same, the student initialised from that teacher's weights);
`pseudo_big_long` / `pseudo_big_long_ti` (the big teacher's hard labels); `no_teacher_long_s1` / `kd_long_ti_s1`
(training seed 1). Needs the runs above (teachers, labels).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unlabelled_methods_ap import FM, compare, sh, table, test_sets, train

RECIPE, DECAY = "synth-infant-prior", "{layer_decay: {rate: 0.75}}"
UNLABELLED = "{synth: {population: infant, view: top, n: 2000, size: 256, seed: 5000}, ratio: 0.75}"
LONG_STEPS = ("schedule.epochs=20", "train.samples_per_epoch=2000")


def long_student(init: Path | str) -> tuple[str, ...]:
    """The student of the long runs: `init`'s weights fed 2x-downsampled 256x192 crops."""
    return ("schedule.warmup_iters=10", f"model.checkpoint={init}", "model.input_size=[192, 256]",
            "model.input_downsample=2")  # fmt: skip


def long_kd(teacher: Path, *, pool: int = 2000, flip: bool = False, loss: str = "mse") -> str:
    """The long runs' `adapt`: layer decay and constant heatmap distillation from `teacher` on `pool` unlabelled
    infants (seed 5000, 3/4 of each batch); `flip` / `loss`: distill.flip_test / distill.logit_loss."""
    unlabelled = UNLABELLED.replace("n: 2000", f"n: {pool}")
    return (f"adapt=[{DECAY}, {{distill: {{teacher: {teacher}, logit_weight: 1.0, feature_weight: 0.0, decay: false, "
            f"flip_test: {str(flip).lower()}, logit_loss: {loss}, unlabelled: {unlabelled}}}}}]")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out/distill_few"))
    ap.add_argument("--tests", type=Path, default=Path("bench_out/unl_s5"))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--logit-weight", type=float, default=1.0)
    ap.add_argument(
        "--no-decay",
        action="store_true",
        help="keep the distillation weight constant (the unlabelled images then supervise to the end)",
    )
    ap.add_argument(
        "--big-teacher",
        type=Path,
        default=Path("bench_out/distill_res/teacher256/final.safetensors"),
        help="trained on 1000 labelled infants (benchmarks/distill_resolution.py); skipped if absent",
    )
    ap.add_argument("--long", action="store_true", help="the long-schedule runs (see the docstring)")
    args = ap.parse_args()
    out, data = args.out.resolve(), args.tests.resolve() / "data"
    tests = test_sets(data, check=True)
    recipe, decay, unlabelled = RECIPE, DECAY, UNLABELLED
    common = ("schedule.warmup_iters=10", f"model.checkpoint={FM}", "model.input_size=[192, 256]")
    steps = (f"schedule.epochs={args.epochs}", "train.samples_per_epoch=400")
    teacher = train(recipe, out / "teacher", *common, *steps, f"adapt=[{decay}]")
    student = (*common, "model.input_downsample=2")

    def kd(t: Path) -> str:
        return (f"adapt=[{decay}, {{distill: {{teacher: {t}, logit_weight: {args.logit_weight}, feature_weight: 0.0, "
                f"decay: {str(not args.no_decay).lower()}, unlabelled: {unlabelled}}}}}]")  # fmt: skip

    tag = f"w{args.logit_weight:g}" + ("_nodecay" if args.no_decay else "")
    runs = {
        "no_teacher": train(recipe, out / "no_teacher", *student, *steps, f"adapt=[{decay}]"),
        "no_teacher_short": train(
            recipe, out / "no_teacher_short", *student, "schedule.epochs=20", f"adapt=[{decay}]"
        ),  # fmt: skip
        "distilled": train(recipe, out / f"distilled_{tag}", *student, *steps, kd(teacher)),
        "teacher": teacher,
    }
    big = args.big_teacher.resolve()
    if big.is_file():  # a teacher that saw 1000 labelled infants: what the student's 100 labels cannot teach
        runs["distilled_big"] = train(recipe, out / f"distilled_big_{tag}", *student, *steps, kd(big))
        runs["big_teacher"] = big
        # the student starts from the teacher's weights instead of the foundation model's (as DistilBERT does)
        from_big = (*common[:-2], f"model.checkpoint={big}", "model.input_size=[192, 256]", "model.input_downsample=2")
        runs["from_big_kd"] = train(recipe, out / "ti_big_kd", *from_big, *steps, kd(big))
        runs["from_big"] = train(recipe, out / "ti_big_nokd", *from_big, *steps, f"adapt=[{decay}]")
    # hard targets instead of heatmaps: the teacher's confident keypoints as labels (`poseadapt pseudo-label`, flip
    # test, keypoints < 0.4 unlabelled), the student trained on them and the 100 labels (1/4 of each epoch)
    pool = out / "unlabelled"
    if not (pool / "annotations").is_dir():
        sh("synth", "--population", "infant", "--view", "top", "--n", "2000", "--seed", "5000", "--size", "256",
           "--out", str(pool))  # fmt: skip
    for name, t in (("pseudo", teacher), ("pseudo_big", big)):
        if not t.is_file():
            continue
        labels = out / f"{name}_labels.json"
        if not labels.is_file():
            sh("pseudo-label", "--checkpoint", str(t), "--ann", str(pool / "annotations/infant_coco17.json"),
               "--images", str(pool / "images"), "--out", str(labels))  # fmt: skip
        mix = (f"data.train=[{{synth: {{population: infant, view: top, n: 100, size: 256, seed: 0}}, ratio: 0.25}}, "
               f"{{ann: {labels}, images: {pool / 'images'}, ratio: 0.75}}]")  # fmt: skip
        runs[name] = train(recipe, out / name, *student, *steps, f"adapt=[{decay}]", mix)
    if args.long:
        if "big_teacher" not in runs:
            raise SystemExit(f"--long needs the big teacher: run benchmarks/distill_resolution.py first ({big})")
        runs = long_runs(out, runs)
        tag = "long"
    summary = compare(out / f"compare_{tag}", {k: str(v) for k, v in runs.items()}, tests, "no_teacher")
    from poseadapt.adapt.flops import flops_summary

    flops = flops_summary({"teacher": str(teacher), "student": str(runs["no_teacher"])})
    flops["student_share"] = flops["student"]["gflops"] / flops["teacher"]["gflops"]
    results = out / ("results_long.json" if args.long else "results.json")
    results.write_text(json.dumps({"compare": summary, "flops": flops}, indent=2))
    print(table(summary))
    print(json.dumps(flops, indent=2))


def long_runs(out: Path, runs: dict[str, Path]) -> dict[str, Path]:
    """20 epochs x 2000 samples; each run's folder name is the one the session-8 runs were cached under."""
    recipe, decay, steps, student, kd = RECIPE, DECAY, LONG_STEPS, long_student, long_kd
    teacher, big = runs["teacher"], runs["big_teacher"]
    labelled = "{synth: {population: infant, view: top, n: 100, size: 256, seed: 0}, ratio: 0.25}"
    pool = f"{{ann: {out / 'pseudo_big_labels.json'}, images: {out / 'unlabelled/images'}, ratio: 0.75}}"
    pseudo_big = f"data.train=[{labelled}, {pool}]"
    long = {"teacher": teacher, "big_teacher": big, "no_teacher": runs["no_teacher"]}
    long["no_teacher_long"] = train(recipe, out / "no_teacher_long2000", *student(FM), *steps, f"adapt=[{decay}]")
    long["kd_long"] = train(recipe, out / "kd_small_long2000_nodecay", *student(FM), *steps, kd(teacher))
    long["kd_long_ti"] = train(recipe, out / "kd_small_long2000_nodecay_ti", *student(teacher), *steps, kd(teacher))
    long["no_teacher_long_s1"] = train(recipe, out / "no_teacher_long2000_s1", *student(FM), *steps,
                                       f"adapt=[{decay}]", "train.seed=1")  # fmt: skip
    long["kd_long_ti_s1"] = train(recipe, out / "kd_small_long2000_nodecay_ti_s1", *student(teacher), *steps,
                                  kd(teacher), "train.seed=1")  # fmt: skip
    long["kd_big_long"] = train(recipe, out / "kd_big_long2000_nodecay", *student(FM), *steps, kd(big))
    long["kd_big_long_ti"] = train(recipe, out / "kd_big_long2000_nodecay_ti", *student(big), *steps, kd(big))
    long["pseudo_big_long"] = train(recipe, out / "pseudo_big_long2000", *student(FM), *steps, f"adapt=[{decay}]",
                                    pseudo_big)  # fmt: skip
    long["pseudo_big_long_ti"] = train(recipe, out / "pseudo_big_long2000_ti", *student(big), *steps,
                                       f"adapt=[{decay}]", pseudo_big)  # fmt: skip
    return long


if __name__ == "__main__":
    main()
