"""The unseen diagonal view with and without the upright test, for every method's model: diagonal / top AP.

    .venv/bin/python benchmarks/upright_test.py [--bench bench_out] [--out bench_out/upright]

Each model is a checkpoint an earlier benchmark trained (skipped when absent): benchmarks/unlabelled_methods_ap.py
(bench_out/unl_s5: supervised, finetune50, adversarial, mean teacher, prior on/off), self_training_rounds.py
(bench_out/selftrain_cli), issue12_variants.py (bench_out/s7), distill_resolution.py (bench_out/distill_res) and
distill_few_labels.py (bench_out/distill_few). Every one was fine-tuned on top-view infants only; `poseadapt compare
--bootstrap 1000` scores it on the top-view and the diagonal test renders twice: plain (flip test) and with
`--upright-test` (flip test at each quarter turn, the most confident and upright reading kept).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, default=Path("bench_out"))
    ap.add_argument("--out", type=Path, default=Path("bench_out/upright"))
    ap.add_argument("--only", nargs="*", help="model names to score (default: every one found)")
    args = ap.parse_args()
    bench = args.bench.resolve()
    tests = test_sets(bench / "unl_s5/data", check=True)
    tests = {k: tests[k] for k in ("infant_top", "infant_diag")}
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


if __name__ == "__main__":
    main()
