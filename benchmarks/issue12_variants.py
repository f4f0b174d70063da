"""Session-7 variants for issue 12's missed targets. Each group is a set of runs that share a baseline.

    .venv/bin/python benchmarks/issue12_variants.py GROUP [--out bench_out/s7] [--tests bench_out/unl_s5]
        [--selftrain bench_out/selftrain_cli]

Every run starts from `builtin:synthpose-vit-tiny` (stage 6) and is scored on benchmarks/unlabelled_methods_ap.py's
test sets (`--tests`, rendered there first) with `poseadapt compare --bootstrap 1000`, paired against the group's
baseline, which is an earlier benchmark's run read from disk:
- `zero` (zero infant labels; baseline the foundation model): the 1000 labelled adults alone with `ProportionWarp`
  (p 1.0, towards infant ratios) on every crop; round 2 of benchmarks/self_training_rounds.py (`--selftrain`) again
  with the adults warped (p 0.5); round 2's labels with rotation up to 180 degrees (`r2_rot`), the same at
  256x192 crops (`r2_rot256`) and one more round labelled by it (`r3_rot256`, 256x192); round 2 itself; the
  supervised references (the same infants WITH labels) at 128x96 and at 256x192 (`teacher256`, `--distill`).
- `adv` (50 labelled infants; baseline `finetune50` of unlabelled_methods_ap.py): synth-infant-adversarial with the
  labelled infants' share of each batch raised from 35% to 60% (adults and unlabelled infants 20% each), at the
  baseline's 143 samples per epoch (`adv60`) and at 238, so that the labelled infants are seen as often as in the
  baseline (`adv_eq`); each with its control, the same streams with `max_lambda: 0` (no reversed gradient); and
  the baseline's recipe at 256x192 crops (`ft50_256`, for the cross-view ratio).
- `xview` (across camera views; baseline `supervised`: the 1000 top-view infants with labels): the same plus the
  1000 labelled adults of every view (`sup_adults`, the foundation model's views kept by rehearsal), the same with
  those adults warped towards infant proportions (`sup_wadults`); in-plane rotation up to 180 degrees instead of
  the default 80 (`sup_rot`: N(0, 90) clipped, p 0.6; `sup_rot_u`: N(0, 120) clipped, p 1.0, near uniform); the
  same plus `RandomForeshorten` (the floor plane seen from 30-90 degrees elevation; `sup_fs`, `sup_fs2`,
  `sup_rot_u_fs`); `sup_rot` at 256x192 crops (`sup256_rot`, against distill_resolution.py's `teacher256`, the
  same run with the default rotation; `--distill`); and an oracle trained on 1000 labelled DIAGONAL infants
  instead (`sup_diag_oracle`: the ceiling of the diagonal test, not a method).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from unlabelled_methods_ap import FM, compare, sh, table, test_sets, train

AUG = "{type: RandomFlip, prob: 0.5}, {type: RandomHalfBody}, {type: RandomBBoxTransform}"
INFANTS = "{synth: {population: infant, view: top, n: 1000, size: 256, seed: 0}}"
WIDE = "rotate_sigma: 90, rotate_limit: 180"  # in-plane rotation up to 180 degrees (default: N(0, 40) to 80)
DECAY = "adapt=[{layer_decay: {rate: 0.75}}]"
SCHEDULE = ("schedule.epochs=10", "schedule.warmup_iters=10", f"model.checkpoint={FM}")


def adults(warp: float = 0.0) -> str:
    """The 1000 labelled adults of the mean-teacher benchmark, optionally warped towards infant proportions."""
    augment = f", augment: [{AUG}, {{type: ProportionWarp, prob: {warp}}}]" if warp else ""
    return f"{{synth: {{population: adult, view: random, n: 1000, size: 256, seed: 3000}}{augment}}}"


def augment_list(rotate: str = "", tilt: str = "") -> str:
    """The default training augmentation with the box rotation options `rotate` and an optional foreshortening."""
    box = "{type: RandomBBoxTransform" + (f", {rotate}" if rotate else "") + "}"
    extra = f", {{type: RandomForeshorten, {tilt}}}" if tilt else ""
    return f"[{AUG.replace('{type: RandomBBoxTransform}', box)}{extra}]"


def adversarial(samples_per_epoch: int, control: bool) -> tuple[str, ...]:
    return (
        "data.train.synth.n=50", "adapt.0.adversarial.source.synth.n=300",
        "adapt.0.adversarial.target_unlabelled.synth.n=200", "adapt.0.adversarial.source.ratio=0.2",
        "adapt.0.adversarial.target_unlabelled.ratio=0.2", f"train.samples_per_epoch={samples_per_epoch}",
        f"model.checkpoint={FM}", *(("adapt.0.adversarial.max_lambda=0",) if control else ()),
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("group", choices=("zero", "adv", "xview"))
    ap.add_argument("--out", type=Path, default=Path("bench_out/s7"))
    ap.add_argument("--tests", type=Path, default=Path("bench_out/unl_s5"))
    ap.add_argument("--selftrain", type=Path, default=Path("bench_out/selftrain_cli"))
    ap.add_argument("--distill", type=Path, default=Path("bench_out/distill_res"), help="distill_resolution.py's --out")
    args = ap.parse_args()
    out, bench, st = args.out.resolve(), args.tests.resolve(), args.selftrain.resolve()
    teacher256 = args.distill.resolve() / "teacher256/final.safetensors"
    tests = test_sets(bench / "data", check=True)
    tests = {k: tests[k] for k in ("infant_top", "adult", "infant_diag")}
    infant_run = ("synth-infant-prior", DECAY, *SCHEDULE)
    models: dict[str, Path | str] = {"foundation": FM}
    if args.group == "zero":
        round2 = st / "round2/final.safetensors"
        if not round2.is_file():
            raise SystemExit(f"run benchmarks/self_training_rounds.py --out {st} first: {round2} is missing")
        labels = f"{{ann: {st / 'round2_labels.json'}, images: {st / 'unlabelled/images'}}}"
        models["warped_adults"] = train(infant_run[0], out / "warped_adults", *infant_run[1:],
                                        f"data.train=[{adults(1.0)}]")  # fmt: skip
        models["r2_warp"] = train(infant_run[0], out / "r2_warp", *infant_run[1:],
                                  f"data.train=[{labels}, {adults(0.5)}]")  # fmt: skip
        turned = f"{labels[:-1]}, augment: {augment_list(WIDE)}}}"
        models["r2_rot"] = train(infant_run[0], out / "r2_rot", *infant_run[1:], f"data.train=[{turned}, {adults()}]")
        # the same at 256x192 crops, then one more round labelled by that model (flip test, prior-guided decoding)
        big = "model.input_size=[192, 256]"
        r2_256 = train(infant_run[0], out / "r2_rot256", *infant_run[1:], f"data.train=[{turned}, {adults()}]", big)
        labels3 = out / "r3_256_labels.json"
        if not labels3.is_file():
            boxes = st / "unlabelled/annotations/infant_coco17.json"
            sh("pseudo-label", "--checkpoint", str(r2_256), "--ann", str(boxes), "--images",
               str(st / "unlabelled/images"), "--out", str(labels3), "--min-score", "0.4",
               "--decode-prior", str(st / "prior.safetensors"))  # fmt: skip
        turned3 = f"{{ann: {labels3}, images: {st / 'unlabelled/images'}, augment: {augment_list(WIDE)}}}"
        models["r2_rot256"] = r2_256
        models["r3_rot256"] = train(infant_run[0], out / "r3_rot256", *infant_run[1:],
                                    f"data.train=[{turned3}, {adults()}]", big)  # fmt: skip
        models["round2"], baseline = round2, "foundation"
        # the supervised references at both crop sizes: the same 1000 infants WITH labels
        models["supervised"] = bench / "runs/supervised/final.safetensors"
        models["teacher256"] = teacher256
    elif args.group == "adv":
        for name, spe, control in (("adv60", 143, False), ("adv60_control", 143, True), ("adv_eq", 238, False),
                                   ("adv_eq_control", 238, True)):  # fmt: skip
            models[name] = train("synth-infant-adversarial", out / name, *adversarial(spe, control))
        models["ft50_256"] = train("synth-infant-50-finetune", out / "ft50_256", "data.train.synth.n=50",
                                   "model.input_size=[192, 256]", f"model.checkpoint={FM}")  # fmt: skip
        models["finetune50"], baseline = bench / "runs/finetune50/final.safetensors", "finetune50"
    else:

        def infants(rotate: str = "", tilt: str = "") -> str:
            return f"data.train.augment={augment_list(rotate, tilt)}"

        wide, uniform = WIDE, "rotate_sigma: 120, rotate_limit: 180, rotate_prob: 1.0"
        n = "data.train.synth.n=1000"
        runs = {
            "sup_adults": (f"data.train=[{INFANTS}, {adults()}]",),
            "sup_wadults": (f"data.train=[{INFANTS}, {adults(1.0)}]",),
            "sup_rot": (n, infants(wide)),
            "sup_rot_u": (n, infants(uniform)),
            "sup_fs": (n, infants(wide, "prob: 0.5, factor: [0.5, 1.0]")),
            "sup_fs2": (n, infants(wide, "prob: 0.8, factor: [0.45, 1.0]")),
            "sup_rot_u_fs": (n, infants(uniform, "prob: 0.5, factor: [0.5, 1.0]")),
            "sup256_rot": (n, "model.input_size=[192, 256]", infants(wide)),
            "sup_diag_oracle": (n, "data.train.synth.view=diagonal"),
        }
        for name, sets in runs.items():
            models[name] = train(infant_run[0], out / name, *infant_run[1:], *sets)
        models["teacher256"] = teacher256
        models["supervised"], baseline = bench / "runs/supervised/final.safetensors", "supervised"
    missing = [str(p) for p in models.values() if isinstance(p, Path) and not p.is_file()]
    if missing:
        raise SystemExit(f"run the benchmark that makes them first (see this file's docstring): missing {missing}")
    summary = compare(out / f"compare_{args.group}", {k: str(v) for k, v in models.items()}, tests, baseline)
    print(table(summary))


if __name__ == "__main__":
    main()
