"""Peak memory of one ViT-B fine-tuning step, full fine-tuning vs LoRA (batch 16, 256x192, CPU).

Each measurement is a fresh subprocess: build ViT-B with the classic ViTPose head (coco17), apply the adaptation
method as the training engine does (`Method.prepare`, then its `trainable` choice), build AdamW over the parameters
it trains (`poseadapt.train.optim.param_groups`, with the method's lr scale), run a batch-1 warm-up step (so
AdamW's state exists, as it does at every step after the first), reset the process's peak-RSS counter
(`/proc/self/clear_refs`) and run one forward + backward + optimizer step at the benchmark batch. Reported: the
step's peak RSS above the RSS of the built model (activations, gradients and AdamW state: what the method
changes) and the whole process's peak RSS. Medians of `--runs` runs per method (any parameter-choosing method
of `poseadapt methods`: full, head_only, freeze_blocks needs options, lora, ...).

    .venv/bin/python benchmarks/bench_finetune_memory.py [--runs 3] [--batch 16] [--methods full lora]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def worker(method_name: str, batch: int) -> dict[str, float]:
    from types import SimpleNamespace

    import torch

    from poseadapt.adapt import AdaptContext
    from poseadapt.adapt.methods import build_methods
    from poseadapt.adapt.params import apply_trainable, backbone_depth, count_parameters
    from poseadapt.models import create_model
    from poseadapt.train.losses import keypoint_mse
    from poseadapt.train.optim import param_groups

    torch.manual_seed(0)
    (method,) = build_methods([method_name])
    ctx = AdaptContext(recipe=SimpleNamespace(optim=SimpleNamespace(layer_decay=1.0)), key=method.key)
    model = method.prepare(create_model("vit_base", "coco17"), ctx).train()
    depth = backbone_depth(model)
    apply_trainable(model, lambda name: method.trainable(name, 0, depth))
    named = [(n, p) for n, p in model.named_parameters() if method.ever_trains(n, depth)]
    groups = param_groups(named, 5e-4, 0.1, depth=depth, lr_scale=lambda name: method.lr_scale(name, depth))
    optimizer = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in groups])
    weights_rss = rss_kib("VmRSS")

    def step(n: int) -> None:
        pixels = torch.randn(n, 3, 256, 192)
        loss = keypoint_mse(model(pixels), torch.rand(n, 17, 64, 48), torch.ones(n, 17))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(1)  # warm-up: AdamW allocates its state, which stays for the rest of training
    optimizer.zero_grad(set_to_none=True)
    exact = reset_peak()
    start = time.perf_counter()
    step(batch)
    seconds = time.perf_counter() - start
    peak = rss_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    trainable, total = count_parameters(model)
    return {
        "step_peak_mib": (peak - weights_rss) / 1024,
        "process_peak_mib": peak / 1024,
        "trainable": trainable,
        "total": total,
        "seconds": seconds,
        "exact_reset": exact,
    }


def run(name: str, batch: int) -> dict[str, float]:
    # A fixed mmap threshold makes glibc return every large freed block to the OS at once, so peak RSS tracks the
    # peak of live tensor memory; with glibc's default (a threshold that grows after frees) freed activations stay
    # in the heap and the peak measures the allocator's history more than the method.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", name, "--batch", str(batch)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--methods", nargs="+", default=["full", "lora"], help="parameter-choosing methods")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch)))
        return 0

    results: dict[str, list[dict[str, float]]] = {s: [] for s in args.methods}
    for i in range(args.runs):  # interleaved, so a burst of load on the shared machine hits both sides
        for name in args.methods:
            r = run(name, args.batch)
            results[name].append(r)
            print(
                f"run {i + 1} {name:>6}: step peak {r['step_peak_mib']:7.0f} MiB, process peak "
                f"{r['process_peak_mib']:7.0f} MiB, step {r['seconds']:.1f} s",
                flush=True,
            )
    print(f"\nViT-B (classic head, coco17), batch {args.batch}, 256x192, one AdamW step; medians of {args.runs}")
    medians = {}
    for name, rs in results.items():
        step = statistics.median(r["step_peak_mib"] for r in rs)
        proc = statistics.median(r["process_peak_mib"] for r in rs)
        secs = statistics.median(r["seconds"] for r in rs)
        medians[name] = (step, proc)
        share = rs[0]["trainable"] / rs[0]["total"]
        print(
            f"{name:>6}: trainable {rs[0]['trainable']:>11,} / {rs[0]['total']:,} ({share:6.2%}), "
            f"step peak {step:6.0f} MiB, process peak {proc:6.0f} MiB, step time {secs:.1f} s"
        )
    if "full" in medians and "lora" in medians:
        (fs, fp), (ls, lp) = medians["full"], medians["lora"]
        print(f"full / lora: step peak {fs / ls:.2f}x, process peak {fp / lp:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
