"""Does prior-guided decoding halve the implausible-pose rate of few-label fine-tuning without costing AP?

    .venv/bin/python benchmarks/prior_decoding.py [--out bench_out/prior_decode]

Models (each from `builtin:synthpose-vit-tiny`, the shipped recipes at their schedules, deterministic per seed):
the foundation model; plain fine-tuning on 100 labelled top-view infants (synth-infant-prior with the prior's
weight 0: the `prior_off` run of benchmarks/unlabelled_methods_ap.py); synth-infant-50-finetune (50 infants).
Each is scored on 600 fresh top-view infants (seed 9105, no training image) twice: plain decoding and
`--decode-prior` (a prior fitted on 2000 other top-view infants, seed 70). The implausible-pose rate is measured
with that same prior (what `eval --prior` with the training prior reports) AND with an independent prior fitted
on 2000 more infants (seed 80), since a decoder judged by its own prior is partly judging itself. AP: `poseadapt
compare --bootstrap 1000`, paired against plain decoding of the same model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from poseadapt.evaluate.plausibility import implausible_rate_of_files
from unlabelled_methods_ap import FM, compare, sh, table, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out/prior_decode"))
    args = ap.parse_args()
    out: Path = args.out.resolve()
    data, runs, preds = out / "data", out / "runs", out / "preds"
    for folder in (data, runs, preds):
        folder.mkdir(parents=True, exist_ok=True)
    renders = {"test": ("top", 600, 9105), "prior_decode": ("top", 2000, 70), "prior_measure": ("top", 2000, 80)}
    for key, (view, n, seed) in renders.items():
        if not (data / key / "annotations").is_dir():
            sh("synth", "--population", "infant", "--view", view, "--n", str(n), "--seed", str(seed), "--size", "256",
               "--out", str(data / key))  # fmt: skip
    priors = {}
    for key in ("prior_decode", "prior_measure"):
        priors[key] = out / f"{key}.safetensors"
        if not priors[key].is_file():
            sh("prior", "fit", str(data / key / "annotations/infant_coco17.json"), "--out", str(priors[key]))
    test = data / "test/annotations/infant_coco17.json"
    src = f"model.checkpoint={FM}"
    models = {
        "foundation": FM,
        "finetune100": str(train("synth-infant-prior", runs / "finetune100", "data.train.synth.n=100",
                                 f"adapt.1.prior.prior={priors['prior_decode']}", "adapt.1.prior.weight=0", src)),
        "finetune50": str(train("synth-infant-50-finetune", runs / "finetune50", "data.train.synth.n=50", src)),
    }  # fmt: skip
    results: dict[str, dict] = {}
    for name, ckpt in models.items():
        files = {}
        for mode in ("plain", "prior"):
            res = preds / f"{name}_{mode}.json"
            extra = ["--decode-prior", str(priors["prior_decode"])] if mode == "prior" else []
            summary = json.loads(sh("eval", "--checkpoint", ckpt, "--ann", str(test), "--images",
                                    str(data / "test/images"), "--out", str(res), "--json", *extra))  # fmt: skip
            rates = {k: implausible_rate_of_files(p, test, res) for k, p in priors.items()}
            counts = {k: v for k, v in summary.items() if k.startswith("decode_prior")}
            results[f"{name}_{mode}"] = {"AP": summary["AP"], "rates": rates, **counts}
            files[mode] = res
        cmp = compare(out / f"compare_{name}", {f"{name}_plain": str(files["plain"]), f"{name}_prior":
                      str(files["prior"])}, {"infant_top": test}, f"{name}_plain")  # fmt: skip
        results[f"{name}_compare"] = cmp
        print(f"\n## {name}\n" + table(cmp))
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(
        "\n| model | decoding | implausible, decode prior [95%] | implausible, independent prior [95%] "
        "| poses re-picked |"
    )
    print("|---|---|---|---|---|")
    for key, r in results.items():
        if "rates" not in key and "rates" in r:
            cells = []
            for p in ("prior_decode", "prior_measure"):
                q = r["rates"][p]
                lo, hi = q["implausible_interval"]
                cells.append(f"{100 * q['implausible_rate']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]")
            name, mode = key.rsplit("_", 1)
            print(f"| {name} | {mode} | {cells[0]} | {cells[1]} | {r.get('decode_prior_changed', '-')} |")


if __name__ == "__main__":
    main()
