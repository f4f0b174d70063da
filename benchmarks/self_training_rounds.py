"""Zero infant labels, offline: rounds of pseudo-labelling (`poseadapt pseudo-label`) and training a fresh student.

    .venv/bin/python benchmarks/self_training_rounds.py [--out bench_out/selftrain] [--tests bench_out/unl_s5]

The same data as the mean-teacher benchmark (benchmarks/unlabelled_methods_ap.py --only mt): 1000 top-view infants
(seed 0) whose labels are never read, 1000 labelled adults (seed 3000), the built-in model. Round r: the model of
round r-1 (round 0: the built-in model) labels the infants' boxes (flip test, prior-guided decoding with a prior
fitted on 2000 other top-view infants, keypoints scoring < 0.4 left unlabelled); a fresh copy of the built-in model
trains 10 epochs (`--epochs`) on those pseudo-labels plus the labelled adults (synth-infant-prior with layer decay
only, as the benchmark's `supervised` run, which is trained alike when `--epochs` is not 10). Scored with
`poseadapt compare --bootstrap 1000` against the built-in model; the supervised run (the same 1000 infants WITH
labels) is the reference for the share of the gain.

`--debias` (session 17): every round's labels are debiased (`pseudo-label --debias-source` = the 1000 labelled
adults the rounds train on, written to OUT/source_adults; `--debias-target` = the prior's 2000 infant poses), and the
plain rounds of `--plain` (default bench_out/selftrain, run first) are compared with them, paired.

`--either` (session 18): the pseudo-labels train with `left_right: either` (the loss takes the nearer of the
labels and their mirror; only the adults' left / right is trusted); compared with `--plain`'s rounds, paired.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unlabelled_methods_ap import FM, compare, sh, table, test_sets, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out/selftrain"))
    ap.add_argument("--tests", type=Path, default=Path("bench_out/unl_s5"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-score", type=float, default=0.4)
    ap.add_argument("--epochs", type=int, default=10, help="per round; the supervised reference is trained alike")
    ap.add_argument("--debias", action="store_true", help="debias every round's labels (evaluate/proportions.py)")
    ap.add_argument("--either", action="store_true", help="train on the labels with left_right: either")
    ap.add_argument("--plain", type=Path, default=Path("bench_out/selftrain"),
                    help="--debias / --either: the plain rounds")  # fmt: skip
    args = ap.parse_args()
    out, bench = args.out.resolve(), args.tests.resolve()
    tests = test_sets(bench / "data", check=True)
    out.mkdir(parents=True, exist_ok=True)
    unl = out / "unlabelled"
    if not (unl / "annotations").is_dir():
        sh("synth", "--population", "infant", "--view", "top", "--n", "1000", "--seed", "0", "--size", "256",
           "--out", str(unl))  # fmt: skip
    prior = out / "prior.safetensors"
    if not prior.is_file():
        sh("synth", "--population", "infant", "--view", "top", "--n", "2000", "--seed", "70", "--size", "256",
           "--out", str(out / "prior_poses"))  # fmt: skip
        sh("prior", "fit", str(out / "prior_poses/annotations/infant_coco17.json"), "--out", str(prior))
    boxes, images = unl / "annotations/infant_coco17.json", unl / "images"  # its keypoints are never read
    adults = "{synth: {population: adult, view: random, n: 1000, size: 256, seed: 3000}}"
    debias: tuple[str, ...] = ()
    if args.debias:
        source = out / "source_adults"
        if not (source / "annotations").is_dir():  # the same people as `adults`
            sh("synth", "--population", "adult", "--view", "random", "--n", "1000", "--seed", "3000", "--size", "256",
               "--out", str(source))  # fmt: skip
        debias = ("--debias-source", str(source / "annotations/adult_coco17.json"),
                  "--debias-target", str(out / "prior_poses/annotations/infant_coco17.json"))  # fmt: skip
    teacher, models = FM, {"foundation": FM}
    for r in range(1, args.rounds + 1):
        labels = out / f"round{r}_labels.json"
        if not labels.is_file():
            print(sh("pseudo-label", "--checkpoint", teacher, "--ann", str(boxes), "--images", str(images),
                     "--out", str(labels), "--min-score", str(args.min_score), "--decode-prior", str(prior),
                     *debias))  # fmt: skip
        either = ", left_right: either" if args.either else ""
        data = f"data.train=[{{ann: {labels}, images: {images}{either}}}, {adults}]"
        schedule = (f"schedule.epochs={args.epochs}", "schedule.warmup_iters=10", f"model.checkpoint={FM}")
        teacher = str(train("synth-infant-prior", out / f"round{r}", data, "adapt=[{layer_decay: {rate: 0.75}}]",
                            *schedule))  # fmt: skip
        models[f"round{r}"] = teacher
    # the mean-teacher benchmark's supervised run, else the plain rounds', else one trained here
    trained = [bench / "runs/supervised"] if args.epochs == 10 else []
    trained += [args.plain.resolve() / "supervised"] if args.debias or args.either else []
    supervised = next((d / "final.safetensors" for d in trained if (d / "final.safetensors").is_file()), None)
    if supervised is None:
        supervised = train("synth-infant-prior", out / "supervised", "data.train.synth.n=1000",
                           "adapt=[{layer_decay: {rate: 0.75}}]", f"schedule.epochs={args.epochs}",
                           "schedule.warmup_iters=10", f"model.checkpoint={FM}")  # fmt: skip
    if supervised.is_file():
        models["supervised"] = str(supervised)
    if args.debias or args.either:  # the plain rounds beside, paired
        plain = args.plain.resolve()
        models |= {f"plain_round{r}": str(plain / f"round{r}/final.safetensors") for r in range(1, args.rounds + 1)
                   if (plain / f"round{r}/final.safetensors").is_file()}  # fmt: skip
    summary = compare(out / "compare", models, tests, "foundation")
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print(table(summary))
    ap_top = {r["model"]: r["AP"] for r in summary["results"] if r["test"] == "infant_top"}
    if "supervised" in ap_top:
        gain = ap_top["supervised"] - ap_top["foundation"]
        for r in range(1, args.rounds + 1):
            share = (ap_top[f"round{r}"] - ap_top["foundation"]) / gain
            print(f"round {r}: {share:.0%} of the supervised gain")


if __name__ == "__main__":
    main()
