"""Forward speed: poseadapt's ViT-B (ViTPose-B, classic head) vs transformers' VitPoseForPoseEstimation.

Same weights (a random transformers ViTPose-B saved with save_pretrained and imported with `poseadapt import hf`),
same input (batch 8, 256x192), fp32 on CPU; the heatmaps are checked equal first. Runs are interleaved (ours, theirs,
ours, ...) after warm-up so load from other processes hits both alike; we print medians, minima and the per-pair
ratio. Achieved GFLOP/s use the FLOPs counted by torch's FlopCounterMode on the reference forward, against a
matrix-multiply peak (torch.mm of 2048x2048 matrices, timed inside the same interleaved loop; fraction of peak
compares best runs). bf16 figures use CPU autocast for both models.

    .venv/bin/python benchmarks/bench_forward.py [--runs 7] [--warmup 2] [--batch 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def build_models() -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

    from poseadapt.interop.hf import import_hf

    torch.manual_seed(0)
    backbone = VitPoseBackboneConfig(out_indices=[12], layer_norm_eps=1e-6)  # ViT-B: 768 wide, 12 layers, 12 heads
    hf = VitPoseForPoseEstimation(VitPoseConfig(backbone_config=backbone, use_simple_decoder=False, num_labels=17))
    hf.eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours, _ = import_hf(tmp)
    return ours.eval(), (lambda x: hf(x).heatmaps)


def interleaved(fns: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(warmup + runs):
        for name, fn in fns.items():
            elapsed = _timed(fn)
            if i >= warmup:
                times[name].append(elapsed)
    return times


def matmul(dtype: torch.dtype, n: int = 2048) -> tuple[Callable[[], object], Callable[[], object], float]:
    """Two n x n x n GEMMs (torch.mm, i.e. MKL, and oneDNN's linear) and their FLOPs: the peak reference, timed
    inside the same interleaved loop; the faster of the two is the peak."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    mm = lambda: [torch.mm(a, b) for _ in range(3)]  # noqa: E731
    onednn = lambda: [torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "") for _ in range(3)]  # noqa: E731
    return mm, onednn, 3 * 2.0 * n**3


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summarize(times: dict[str, list[float]], flops: float, mm_flops: float) -> dict[str, float]:
    """Medians for the headline, minima (least disturbed by other load) for the fraction of the matmul peak."""
    ours, hf, mm = times["poseadapt"], times["transformers"], times["matmul"] + times["matmul_onednn"]
    med_ours, med_hf = statistics.median(ours), statistics.median(hf)
    peak = mm_flops / min(mm) / 1e9
    return {
        "poseadapt_median_s": med_ours,
        "transformers_median_s": med_hf,
        "speedup_median": med_hf / med_ours,
        "speedup_min": min(hf) / min(ours),
        "speedup_per_pair_median": statistics.median(h / o for h, o in zip(hf, ours, strict=True)),
        "poseadapt_gflops": flops / med_ours / 1e9,
        "transformers_gflops": flops / med_hf / 1e9,
        "matmul_peak_gflops": peak,
        "matmul_mkl_best_gflops": mm_flops / min(times["matmul"]) / 1e9,
        "matmul_onednn_best_gflops": mm_flops / min(times["matmul_onednn"]) / 1e9,
        "poseadapt_fraction_of_peak": flops / min(ours) / 1e9 / peak,
        "transformers_fraction_of_peak": flops / min(hf) / 1e9 / peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    ours, hf = build_models()
    x = torch.randn(args.batch, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    results: dict[str, object] = {"batch": args.batch, "input": "256x192", "threads": torch.get_num_threads()}
    with torch.inference_mode():
        expected, got = hf(x), ours(x)
        results["max_rel_error_fp32"] = float((got - expected).abs().max() / expected.abs().max())
        assert results["max_rel_error_fp32"] < 1e-5, results
        with FlopCounterMode(display=False) as counter:
            hf(x)
        flops = float(counter.get_total_flops())
        results["gflop_per_forward"] = flops / 1e9

        mm, onednn, mm_flops = matmul(torch.float32)
        fns = {"poseadapt": lambda: ours(x), "transformers": lambda: hf(x), "matmul": mm, "matmul_onednn": onednn}
        results["fp32"] = summarize(interleaved(fns, args.runs, args.warmup), flops, mm_flops)

        if not args.no_bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got_bf16 = ours(x).float()
                results["max_rel_error_bf16_vs_fp32"] = float((got_bf16 - expected).abs().max() / expected.abs().max())
                fns["matmul"], fns["matmul_onednn"], mm_flops = matmul(torch.bfloat16)
                results["bf16"] = summarize(interleaved(fns, args.runs, args.warmup), flops, mm_flops)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"ViT-B classic head, batch {args.batch}, 256x192, {results['threads']} threads, CPU")
    print(f"heatmaps equal: max relative error fp32 {results['max_rel_error_fp32']:.1e}")
    print(f"work per forward: {results['gflop_per_forward']:.1f} GFLOP")
    for mode in ("fp32", "bf16"):
        if mode not in results:
            continue
        r = results[mode]
        print(
            f"[{mode}] poseadapt {r['poseadapt_median_s']:.3f} s ({r['poseadapt_gflops']:.0f} GFLOP/s; best run "
            f"{100 * r['poseadapt_fraction_of_peak']:.0f}% of the matmul peak {r['matmul_peak_gflops']:.0f} GFLOP/s) | "
            f"transformers {r['transformers_median_s']:.3f} s ({r['transformers_gflops']:.0f} GFLOP/s; best run "
            f"{100 * r['transformers_fraction_of_peak']:.0f}% of peak) | "
            f"speedup median {r['speedup_median']:.2f}x, min-based {r['speedup_min']:.2f}x, "
            f"per-pair median {r['speedup_per_pair_median']:.2f}x"
        )
    if "max_rel_error_bf16_vs_fp32" in results:
        print(f"bf16 autocast vs fp32 reference: max relative error {results['max_rel_error_bf16_vs_fp32']:.1e}")


if __name__ == "__main__":
    main()
