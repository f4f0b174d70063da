"""Training engine overhead: images/s of `poseadapt train`'s engine with the real data pipeline vs a bare loop.

Engine: a Trainer built from a recipe on a COCO-style dataset on disk (synthetic adults written as 640x480 JPEGs,
as COCO's images are), so every step includes what a real run pays for: JPEG decode, ViTPose augmentation
(flip, half-body, scale / rotation), the UDP affine crop, heatmap encoding, 2 DataLoader workers, collate, the
sampler, hooks and logging. Bare loop: the same model and optimizer (same AdamW groups, grad clipping) stepping
on one pre-made batch already in memory. Overhead = 1 - engine / bare.

Also measured: the loader alone with 2 workers (images/s it can supply), and inside the engine run the fraction
of step time spent waiting for data. "The loader is never the bottleneck" means the loader supplies more than the
model consumes and the engine waits for data only briefly.

Wall-clock images/s on a shared machine swing by tens of percent between runs, so the overhead is also given in
CPU time, which other processes barely disturb: (engine main-process CPU per image + DataLoader worker CPU per
image) / bare-loop CPU per image. Worker CPU per image is measured on the loader alone over whole epochs (the
workers' rusage once they have exited), so prefetched-but-unused batches do not inflate it.

    .venv/bin/python benchmarks/bench_engine.py [--model vit_small] [--batch 8] [--steps 6] [--repeats 3]

Medians of `--repeats` runs. Timings on a shared 2-core machine are noisy (others' tests compete for the cores).
The training process uses one torch thread by default (`--threads`): with two OpenMP threads on two busy cores,
spin-waiting threads made step times swing by 10x and more, which no median can repair.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from poseadapt.train import Hook, build_trainer, recipe_from_dict
from poseadapt.train.batch import collate, model_input
from poseadapt.train.build import build_dataset, build_model
from poseadapt.train.losses import keypoint_mse
from poseadapt.train.optim import build_optimizer


class StepTimer(Hook):
    """Wall and CPU time at the end of each step, and how long the loop waited for the batch before it."""

    def __init__(self) -> None:
        self.done: list[float] = []
        self.cpu: list[float] = []
        self.waits: list[float] = []

    def on_epoch_start(self, trainer) -> None:
        self.done.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def before_step(self, trainer, batch) -> None:
        self.waits.append(time.perf_counter() - self.done[-1])

    def after_step(self, trainer, logs) -> None:
        self.done.append(time.perf_counter())
        self.cpu.append(time.process_time())


def make_recipe(data_dir: Path, ann: Path, args: argparse.Namespace, steps: int) -> dict:
    return {
        "model": {"name": args.model, "input_size": [192, 256], "schema": "coco17", "head": "classic"},
        "data": {"train": {"ann": str(ann), "images": str(data_dir / "images")}},
        "optim": {"lr": 5e-4, "weight_decay": 0.1, "layer_decay": 0.8},
        "schedule": {"epochs": 100, "warmup_iters": 5},
        "train": {
            "batch_size": args.batch,
            "workers": 2,
            "device": "cpu",
            "amp": False,
            "grad_clip": 1.0,
            "max_iters": steps,
            "val_interval": 0,
            "progress": False,
            "tensorboard": False,
            "log_interval": 10_000,
        },
    }


def engine_run(recipe: dict, warmup: int) -> tuple[float, float, float]:
    """(images/s, main-process CPU s per image, fraction of the time spent waiting for data), after `warmup` steps."""
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(recipe_from_dict(recipe), out, hooks=(timer,))
        trainer.fit()
    images = (len(timer.done) - 1 - warmup) * trainer.batch_size
    elapsed = timer.done[-1] - timer.done[warmup]
    cpu = timer.cpu[-1] - timer.cpu[warmup]
    return images / elapsed, cpu / images, sum(timer.waits[warmup:]) / elapsed


def bare_run(recipe: dict, batch: dict, steps: int, warmup: int) -> tuple[float, float]:
    """(images/s, CPU s per image) of forward + loss + backward + clip + AdamW on one pre-made batch."""
    r = recipe_from_dict(recipe)
    model = build_model(r)
    o = r.optim
    optimizer = build_optimizer(model, o.lr, o.weight_decay, o.layer_decay, tuple(o.betas), o.eps)
    images, target, weight = batch["image"], batch["target"], batch["target_weight"]
    stamps, cpu = [], []
    for _ in range(steps):
        out = model(model_input(images, model), batch["dataset_index"])
        loss = keypoint_mse(out, target, weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
    n = (steps - warmup) * images.shape[0]
    return n / (stamps[-1] - stamps[warmup - 1]), (cpu[-1] - cpu[warmup - 1]) / n


def loader_run(recipe: dict, epochs: int = 2) -> tuple[float, float]:
    """(images/s, worker CPU s per image) of the DataLoader with 2 workers and nothing consuming it."""
    from poseadapt.train.sampler import MixedDataset, MixedSampler

    r = recipe_from_dict(recipe)
    model = build_model(r)
    ds = MixedDataset([build_dataset(r.data.train[0], "data.train.0", model, 0, r.data.padding, True, 0)])
    sampler = MixedSampler(ds.sizes)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=r.train.batch_size, sampler=sampler, num_workers=2, collate_fn=collate
    )
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    n = 0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        n += sum(b["image"].shape[0] for b in loader)  # the epoch ends, the workers exit and are reaped
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    return n / wall, cpu / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per run (after 2 warm-up steps)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the training process")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warmup = 2
    steps = warmup + args.steps

    from poseadapt.synth import write_dataset

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "synth"
        n_images = max(4 * args.batch * steps, 64)
        files = write_dataset(data_dir, "adult", n=n_images, size=(640, 480), schemas=["coco17"], seed=0)
        recipe = make_recipe(data_dir, files.annotations["coco17"], args, steps)

        r = recipe_from_dict(recipe)
        model = build_model(r)
        ds = build_dataset(r.data.train[0], "data.train.0", model, 0, r.data.padding, True, 0)
        batch = collate([ds[i] for i in range(args.batch)])

        print(f"model {args.model} 256x192, batch {args.batch}, {args.steps} timed steps, torch threads "
              f"{torch.get_num_threads()}, {n_images} JPEGs 640x480, medians of {args.repeats}")  # fmt: skip
        loader = [loader_run(recipe) for _ in range(args.repeats)]
        loader_ips = statistics.median(x[0] for x in loader)
        loader_cpu = statistics.median(x[1] for x in loader)
        print(f"loader alone (2 workers): {loader_ips:.1f} images/s, worker CPU {loader_cpu * 1e3:.2f} ms/image")
        engine, bare = [], []
        for i in range(args.repeats):  # interleaved, so load from other processes hits both alike
            engine.append(engine_run(recipe, warmup))
            bare.append(bare_run(recipe, batch, steps, warmup))
            (e_ips, e_cpu, wait), (b_ips, b_cpu) = engine[-1], bare[-1]
            print(f"  run {i + 1}: engine {e_ips:.2f} images/s, {e_cpu * 1e3:.0f} ms CPU/image, data wait {wait:.1%}"
                  f" | bare {b_ips:.2f} images/s, {b_cpu * 1e3:.0f} ms CPU/image")  # fmt: skip
        e_ips, e_cpu, wait = (statistics.median(x[k] for x in engine) for k in range(3))
        b_ips, b_cpu = (statistics.median(x[k] for x in bare) for k in range(2))
        print(f"engine + real pipeline:    {e_ips:8.2f} images/s, {e_cpu * 1e3:8.1f} ms CPU/image (main process)")
        print(f"bare loop, pre-made batch: {b_ips:8.2f} images/s, {b_cpu * 1e3:8.1f} ms CPU/image")
        print(f"wall-clock: engine / bare {e_ips / b_ips:.3f} -> overhead {1 - e_ips / b_ips:+.1%}")
        total = e_cpu + loader_cpu
        print(f"CPU time:   (engine {e_cpu * 1e3:.1f} + workers {loader_cpu * 1e3:.2f}) / bare {b_cpu * 1e3:.1f} "
              f"ms per image = {total / b_cpu:.3f} -> overhead {total / b_cpu - 1:+.1%}")  # fmt: skip
        print(f"loader: data wait {wait:.1%} of engine time; it supplies {loader_ips / e_ips:.0f}x what training "
              f"consumes")  # fmt: skip


if __name__ == "__main__":
    main()
