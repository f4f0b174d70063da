"""Fine-tuning step speed on CPU: bf16 autocast vs fp32, ViT-S (ViTPose-S size, classic head), 256x192.

One step = forward + heatmap MSE + backward (the part autocast changes; the optimizer step runs in fp32 either
way and is left out). The same model and batch alternate between fp32 and `torch.autocast("cpu", bfloat16)`, one
warm-up step each, then `--runs` interleaved rounds (fp32, bf16, fp32, ...); the figure is the ratio of the
medians (the per-round median ratio is printed too). The bf16 loss is checked against fp32 first. Meaningful only
on a CPU with native bf16 (AVX-512 BF16 or AMX), which is where `amp: auto` turns bf16 on.

    .venv/bin/python benchmarks/bench_bf16_train.py [--runs 7] [--batch 8] [--model vit_small]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from poseadapt.models.factory import create_model
from poseadapt.train.engine import cpu_bf16_speedup, cpu_flags, resolve_amp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--model", default="vit_small")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = create_model(args.model, "coco17").train()
    x = torch.randn(args.batch, 3, 256, 192)
    with torch.no_grad():
        target = torch.rand_like(model(x))

    def step(bf16: bool) -> float:
        context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        model.zero_grad(set_to_none=True)
        with context:
            out = model(x)
        loss = torch.nn.functional.mse_loss(out.float(), target)
        loss.backward()
        return float(loss.detach())

    loss32, loss16 = step(False), step(True)  # also the warm-up
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.runs):
        for mode in ("fp32", "bf16"):
            start = time.perf_counter()
            step(mode == "bf16")
            times[mode].append(time.perf_counter() - start)
    med = {mode: statistics.median(t) for mode, t in times.items()}
    per_round = statistics.median(a / b for a, b in zip(times["fp32"], times["bf16"], strict=True))
    flags = sorted(cpu_flags() & {"avx512_bf16", "amx_bf16", "amx_tile"})
    threads = torch.get_num_threads()
    print(f"{args.model}, classic head, batch {args.batch}, 256x192, {threads} threads, CPU flags {flags}")
    print(f"loss fp32 {loss32:.6f}, bf16 {loss16:.6f} (relative difference {abs(loss16 - loss32) / loss32:.1e})")
    for mode in ("fp32", "bf16"):
        print(f"{mode}: forward+backward {med[mode]:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times[mode])})")
    print(f"bf16 speed-up: {med['fp32'] / med['bf16']:.2f}x (per round {per_round:.2f}x), medians of {args.runs}")
    auto = resolve_amp("auto", torch.device("cpu"))
    print(f"amp auto's GEMM probe: bf16 {cpu_bf16_speedup():.2f}x fp32 -> bf16 autocast {'on' if auto else 'off'}")


if __name__ == "__main__":
    main()
