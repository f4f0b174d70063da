"""Distillation at a quarter of the teacher's FLOPs: an ensemble of four fine-tuned foundation models teaches one.

    .venv/bin/python benchmarks/distill_ensemble.py [--out bench_out/unl_s5] [--members 4]

No pre-trained pose model bigger than the embedded one exists offline, and training one does not fit 2 CPU cores,
so the big teacher is an ensemble (Hinton et al. 2015): `members` copies of `builtin:synthpose-vit-tiny`
fine-tuned on the same 1000 labelled top-view infants with training seeds 0..members-1 (the `supervised` recipe
of benchmarks/unlabelled_methods_ap.py: synth-infant-prior with layer decay only, 10 epochs), whose mean heatmaps
and features cost `members` x the FLOPs of one. The student is the same architecture at 1/members of the
teacher's FLOPs: trained without the teacher it IS member 0; the distilled student is the same run (seed 0, same
data, same schedule) plus `distill` from the ensemble (logit weight 1, feature weight 0.01, both decaying as
1 - epoch/epochs). Test sets: benchmarks/unlabelled_methods_ap.py's (top-view infants 9101, adults 9102, infants
diagonal 9103, 200 each; rendered there first). AP: `poseadapt compare --bootstrap 1000`, paired against the
student without the teacher; the teacher's own AP by `compare --model NAME=RESULTS.json` on its averaged heatmaps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unlabelled_methods_ap import FM, compare, table, test_sets, train


def ensemble_results(members: list[Path], test: Path, images: Path, out: Path) -> Path:
    """COCO results of the ensemble (heatmaps averaged, flip test on) on one test set."""
    from poseadapt.cli.io import write_json
    from poseadapt.evaluate.topdown import evaluate_model, load_ground_truth
    from poseadapt.interop.checkpoint import load_checkpoint

    models = [load_checkpoint(m).eval() for m in members]
    mean = EnsembleModel(models)
    gt = load_ground_truth(test, models[0].schemas[0])
    result = evaluate_model(mean, gt, images)
    write_json(out, result.results())
    return out


class EnsembleModel:
    """Just enough of a PoseModel for `evaluate_model`: the members' mean heatmaps."""

    def __init__(self, members: list) -> None:
        import torch

        self.members = members
        first = members[0]
        self.schemas, self.input_size, self.config = first.schemas, first.input_size, first.config
        self.codec, self.heads, self.normalize = first.codec, first.heads, first.normalize
        self.head_index = first.head_index
        self.torch = torch

    def parameters(self):  # noqa: ANN201
        return self.members[0].parameters()

    def eval(self) -> EnsembleModel:
        return self

    def train(self, mode: bool = True) -> EnsembleModel:
        return self

    training = False

    def __call__(self, x, index=None):  # noqa: ANN001, ANN204
        return self.torch.stack([m(x, index) for m in self.members]).mean(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out/unl_s5"))
    ap.add_argument("--members", type=int, default=4)
    args = ap.parse_args()
    out: Path = args.out.resolve()
    data, runs = out / "data", out / "runs"
    tests = test_sets(data, check=True)
    sup = ("data.train.synth.n=1000", "adapt=[{layer_decay: {rate: 0.75}}]", "schedule.epochs=10",
           "schedule.warmup_iters=10", f"model.checkpoint={FM}")  # fmt: skip
    members = [train("synth-infant-prior", runs / ("supervised" if s == 0 else f"supervised_seed{s}"), *sup,
                     f"train.seed={s}") for s in range(args.members)]  # fmt: skip
    teacher = "[" + ", ".join(str(m) for m in members) + "]"
    distill = (f"adapt=[{{layer_decay: {{rate: 0.75}}}}, {{distill: {{teacher: {teacher}, logit_weight: 1.0, "
               "feature_weight: 0.01, decay: true}}]")  # fmt: skip
    student = train("synth-infant-prior", runs / f"distilled_from_{args.members}", *sup[:1], distill, *sup[2:],
                    "train.seed=0")  # fmt: skip
    ens = {}
    for name, test in tests.items():
        ens[name] = ensemble_results(members, test, test.parent.parent / "images", out / f"ensemble_{name}.json")
    models = {"no_teacher": str(members[0]), "distilled": str(student),
              "teacher": ",".join(f"{k}:{v}" for k, v in ens.items())}  # fmt: skip
    summary = compare(out / f"compare_distill_ensemble{args.members}", models, tests, "no_teacher")
    from poseadapt.adapt.flops import flops_summary

    flops = flops_summary({"student": str(student)})
    flops["teacher"] = {"gflops": args.members * flops["student"]["gflops"],
                        "params_m": args.members * flops["student"]["params_m"]}  # fmt: skip
    (out / f"distill_ensemble{args.members}.json").write_text(
        json.dumps({"compare": summary, "flops": flops}, indent=2)
    )
    print(table(summary))
    print(json.dumps(flops, indent=2))


if __name__ == "__main__":
    main()
