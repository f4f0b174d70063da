"""Distillation at a quarter of the teacher's FLOPs: a 256x192 teacher, a student computing at 128x96.

    .venv/bin/python benchmarks/distill_resolution.py [--out bench_out/distill_res] [--tests bench_out/unl_s5]

Teacher: `builtin:synthpose-vit-tiny` fine-tuned at 256x192 crops (`model.input_size`: its position embedding
resized, 4.3x the FLOPs) on the 1000 labelled top-view infants of the `supervised` run of
benchmarks/unlabelled_methods_ap.py (synth-infant-prior with layer decay only, 10 epochs). Student: the same
weights with `model.input_downsample: 2`: it takes the teacher's 256x192 crops and codec, averages them down to
its own 128x96 and enlarges its heatmaps back, at 23.5% of the teacher's FLOPs. Runs, every one from the built-in
model on the same 1000 labelled infants, seed 0:
- `no_teacher` (10 epochs) and `no_teacher_20ep` (20: as many steps as `distilled_unl`);
- `distilled_logit_20ep`: logit distillation, 20 epochs (against `no_teacher_20ep`);
- `distilled`: + `distill` (logit weight 1, feature weight 0.01, both decaying as 1 - epoch/epochs);
- `distilled_logit`: the same with heatmap (logit) distillation only;
- `distilled_unl`: logit only, plus 2000 unlabelled top-view infants (seed 5000) that only the teacher supervises,
  half of each epoch.
Test sets: benchmarks/unlabelled_methods_ap.py's (`--tests`: rendered there first). `poseadapt compare --bootstrap
1000`, paired against `no_teacher`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unlabelled_methods_ap import FM, compare, table, test_sets, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out/distill_res"))
    ap.add_argument("--tests", type=Path, default=Path("bench_out/unl_s5"))
    args = ap.parse_args()
    out, data = args.out.resolve(), args.tests.resolve() / "data"
    tests = test_sets(data, check=True)
    common = ("data.train.synth.n=1000", "schedule.warmup_iters=10", f"model.checkpoint={FM}")
    decay = "{layer_decay: {rate: 0.75}}"
    teacher = train("synth-infant-prior", out / "teacher256", *common, "schedule.epochs=10", f"adapt=[{decay}]",
                    "model.input_size=[192, 256]")  # fmt: skip
    student = (*common, "model.input_size=[192, 256]", "model.input_downsample=2")

    def distill(feature: float, extra: str = "") -> str:
        return (f"adapt=[{decay}, {{distill: {{teacher: {teacher}, logit_weight: 1.0, feature_weight: {feature}, "
                f"decay: true{extra}}}}}]")  # fmt: skip

    unlabelled = ", unlabelled: {synth: {population: infant, view: top, n: 2000, size: 256, seed: 5000}, ratio: 0.5}"
    recipe = "synth-infant-prior"
    runs = {
        "no_teacher": train(recipe, out / "no_teacher", *student, "schedule.epochs=10", f"adapt=[{decay}]"),
        "distilled": train(recipe, out / "distilled", *student, "schedule.epochs=10", distill(0.01)),
        "distilled_logit": train(recipe, out / "distilled_logit", *student, "schedule.epochs=10", distill(0.0)),
        "distilled_unl": train(recipe, out / "distilled_unl", *student, "schedule.epochs=10", distill(0.0, unlabelled)),
        "no_teacher_20ep": train(recipe, out / "no_teacher_20ep", *student, "schedule.epochs=20", f"adapt=[{decay}]"),
        "distilled_logit_20ep": train(
            recipe, out / "distilled_logit_20ep", *student, "schedule.epochs=20", distill(0.0)
        ),
        "teacher": teacher,
    }
    summary = compare(out / "compare", {k: str(v) for k, v in runs.items()}, tests, "no_teacher")
    long = {k: str(runs[k]) for k in ("no_teacher_20ep", "distilled_logit_20ep", "teacher")}
    summary20 = compare(out / "compare_20ep", long, tests, "no_teacher_20ep")
    from poseadapt.adapt.flops import flops_summary

    flops = flops_summary({"teacher": str(teacher), "student": str(runs["no_teacher"])})
    flops["student_share"] = flops["student"]["gflops"] / flops["teacher"]["gflops"]
    (out / "results.json").write_text(json.dumps({"compare": summary, "compare_20ep": summary20, "flops": flops}))
    print(table(summary))
    print(table(summary20))
    print(json.dumps(flops, indent=2))


if __name__ == "__main__":
    main()
