"""The demo's training runs, as recipes for the real engine (`poseadapt.train.run_recipe`, what `poseadapt train`
runs): pre-training on adults and one fine-tuning run per strategy on infants.

Each run writes its recipe (`recipe.yaml`), CSV logs and checkpoints to its own folder, so any run can be
repeated or varied with `poseadapt train RUN/recipe.yaml --out ELSEWHERE`. The demo's ViT is smaller than any
entry of the model table, so the adult run starts from a checkpoint of the freshly initialised network (recipes
name models by table entry, or by a checkpoint).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from poseadapt.demo.data import RenderedSet
from poseadapt.demo.settings import DemoSettings, StrategySpec
from poseadapt.train.hooks import Hook

ARCH = "demo_vit"


@dataclass
class RunResult:
    """Where a finished run put its weights and logs, and how long it took."""

    key: str
    checkpoint: Path
    run_dir: Path
    seconds: float
    trainable: int | None = None
    total: int | None = None


def initial_checkpoint(settings: DemoSettings, path: Path) -> Path:
    """The demo ViT (coco17 head), freshly initialised with the demo seed, saved as a poseadapt checkpoint."""
    import torch

    from poseadapt.interop.checkpoint import save_checkpoint
    from poseadapt.models import create_model
    from poseadapt.models.heads import HeatmapHeadConfig

    m = settings.model
    w, h = m.input_size
    torch.manual_seed(settings.seed)
    model = create_model(
        "vit_small",  # the ViTPose-S layout (patch 16, 4x deconvolution head), at the demo's width and depth
        "coco17",
        HeatmapHeadConfig(deconv_channels=(m.head_channels, m.head_channels)),
        img_size=(h, w),
        embed_dim=m.embed_dim,
        depth=m.depth,
        num_heads=m.num_heads,
        mlp_dim=m.mlp_dim,
        drop_path_rate=0.0,
    )
    with torch.no_grad():
        model.backbone.pos_embed.copy_(sincos_pos_embed(m.embed_dim, model.config.backbone.grid_size))
    codec = {**model.config.codec, "sigma": m.heatmap_sigma}
    model.config = replace(model.config, arch=f"{ARCH}_{m.embed_dim}x{m.depth}", codec=codec)
    return save_checkpoint(model, path, provenance={"created_by": "poseadapt demo", "weights": "random init"})


def sincos_pos_embed(dim: int, grid: tuple[int, int]) -> Any:
    """MAE's 2-D sine-cosine position embedding (1, h*w, dim), the demo model's starting point (still trained).

    From the usual random init (std 0.02) a ViT trained from scratch must first learn where its tokens are; starting
    from positions helped a little in the demo's measurements (8.8 vs 9.1 px median error after 800 steps).
    """
    import torch

    h, w = grid
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    parts = []
    for coord in (ys.reshape(-1), xs.reshape(-1)):
        angles = coord[:, None] * omega[None]
        parts += [torch.sin(angles), torch.cos(angles)]
    emb = torch.cat(parts, dim=1)
    if emb.shape[1] < dim:
        emb = torch.cat([emb, torch.zeros(h * w, dim - emb.shape[1], dtype=torch.float64)], dim=1)
    return emb[None].float()


def _train_section(settings: DemoSettings, val_interval: int, progress: bool) -> dict[str, Any]:
    return {
        "batch_size": settings.batch_size,
        "workers": 0,  # decoding a 160 px JPEG and cropping it costs ~0.5 ms: not worth a process on 2 cores
        "amp": False,
        "device": "cpu",
        "seed": settings.seed,
        "val_interval": val_interval,
        "val_batch_size": 64,
        "flip_test": True,
        "tensorboard": False,
        "progress": progress,
        "log_interval": 5,
        "grad_clip": 1.0,
    }


def _source(rs: RenderedSet, schema: str) -> dict[str, Any]:
    return {"ann": str(rs.annotations[schema]), "images": str(rs.images)}


def _train_source(settings: DemoSettings, rs: RenderedSet, schema: str) -> dict[str, Any]:
    return {**_source(rs, schema), "augment": settings.augment_specs()}


def pretrain_recipe(
    settings: DemoSettings, init: Path, train: RenderedSet, val: RenderedSet, progress: bool
) -> dict[str, Any]:
    """Adults, coco17, from scratch: AdamW, linear warm-up then cosine decay, the demo's mild augmentation."""
    m = settings.model
    return {
        "model": {"name": ARCH, "input_size": list(m.input_size), "schema": "coco17", "checkpoint": str(init)},
        "data": {"train": [_train_source(settings, train, "coco17")], "val": _source(val, "coco17")},
        "optim": {"lr": settings.pretrain_lr, "weight_decay": 0.05},
        "schedule": {
            "epochs": settings.pretrain_epochs,
            "warmup_iters": settings.warmup_iters,
            "policy": "cosine",
            "min_lr_ratio": 0.01,
        },
        "train": _train_section(settings, val_interval=1, progress=progress),
    }


def finetune_recipe(
    settings: DemoSettings,
    strategy: StrategySpec,
    source_checkpoint: Path,
    infants: RenderedSet,
    infant_val: RenderedSet,
    adults: RenderedSet,
    progress: bool,
) -> dict[str, Any]:
    """Infants, infant21: the adult model's coco17 head is swapped for an infant21 head (shared points keep their
    weights), then trained with the strategy; rehearsal replays adults labelled in coco17, the four infant21
    points they lack filled in by the frozen adult model."""
    m = settings.model
    adapt: list[dict[str, Any]] = [{strategy.strategy: dict(strategy.options)}]
    if strategy.rehearsal_ratio is not None:
        source = {**_source(adults, "coco17"), "schema": "coco17"}
        adapt.append({"rehearsal": {"source": source, "ratio": strategy.rehearsal_ratio, "pseudo_label": True}})
    return {
        "model": {
            "name": ARCH,
            "input_size": list(m.input_size),
            "schema": "infant21",
            "checkpoint": str(source_checkpoint),
        },
        "data": {"train": [_train_source(settings, infants, "infant21")], "val": _source(infant_val, "infant21")},
        "optim": {"lr": strategy.lr, "weight_decay": 0.05},
        "schedule": {
            "epochs": settings.finetune_epochs,
            "warmup_iters": settings.warmup_iters,
            "policy": "cosine",
            "min_lr_ratio": 0.01,
        },
        "train": _train_section(settings, val_interval=1, progress=progress),
        "adapt": adapt,
    }


def run(recipe_dict: dict[str, Any], run_dir: Path, key: str) -> RunResult:
    """Train one recipe in a fresh `run_dir` (a previous demo run's folder there is replaced)."""
    import time

    from poseadapt.errors import PoseAdaptError
    from poseadapt.train.build import run_recipe
    from poseadapt.train.recipe import recipe_from_dict

    recipe = recipe_from_dict(recipe_dict, source=f"demo recipe '{key}'")
    if run_dir.exists():
        shutil.rmtree(run_dir)  # only ever a folder this demo created under its --out
    counter = ParameterCounter()
    t0 = time.perf_counter()
    result = run_recipe(recipe, run_dir, hooks=(counter,))
    seconds = time.perf_counter() - t0
    if result.status != "completed" or result.final_checkpoint is None:
        raise PoseAdaptError(f"demo run '{key}' stopped early ({result.status}); partial results in {run_dir}")
    return RunResult(key, result.final_checkpoint, run_dir, seconds, counter.trainable, counter.total)


class ParameterCounter(Hook):
    """Notes how many parameters the strategy trains, once its setup has frozen the rest."""

    def __init__(self) -> None:
        self.trainable: int | None = None
        self.total: int | None = None

    def on_train_start(self, trainer: Any) -> None:
        params = list(trainer.module.parameters())
        self.trainable = sum(p.numel() for p in params if p.requires_grad)
        self.total = sum(p.numel() for p in params)
