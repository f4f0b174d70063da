"""What the demo renders, trains and compares: one frozen dataclass per preset (`default`, `quick`).

The sizes are set by time, not taste: the default must finish in under 15 minutes on 2 CPU cores, `--quick` in
under 3. A ViT-S at 256x192 trains at about 5 images/s on such a machine, so the demo uses a small ViT (128 wide,
4 blocks, a 128-channel deconvolution head) at 128x96 input (32x24 heatmaps), which trains at roughly 100-180
images/s there, and renders at 160x160 (the person still fills more pixels than the crop has).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

# Bump when the demo's data or training changes in a way the settings below do not show: it invalidates the cache.
DEMO_VERSION = 1


@dataclass(frozen=True)
class DataSpec:
    """One rendered set: population, camera view, how many images, seed (sample i of a seed never changes)."""

    population: str
    view: str
    n: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.population}_{self.view}_{self.n}_s{self.seed}"


@dataclass(frozen=True)
class ModelSpec:
    """The demo's ViT: the ViTPose layout (patch 16, classic deconvolution head), shrunk for a CPU."""

    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_dim: int = 512
    head_channels: int = 128
    heatmap_sigma: float = 1.0  # Gaussian sigma in heatmap pixels (ViTPose: 2 at 64x48, the same size relative)
    input_size: tuple[int, int] = (96, 128)  # (w, h)


@dataclass(frozen=True)
class StrategySpec:
    """One fine-tuning run on infants: a parameter-choosing method of `poseadapt.adapt.methods` (+ rehearsal)."""

    key: str  # short name used for run folders and table rows
    label: str  # what the report calls it
    strategy: str  # the parameter-choosing method's name
    lr: float
    options: dict[str, Any] = field(default_factory=dict)  # that method's options
    rehearsal_ratio: float | None = None  # fraction of each batch drawn from the adult (source) set


@dataclass(frozen=True)
class DemoSettings:
    preset: str
    image_size: int
    adult_train: DataSpec
    adult_test: DataSpec
    infant_train: DataSpec
    infant_test: DataSpec
    model: ModelSpec
    batch_size: int
    pretrain_epochs: int
    pretrain_lr: float
    finetune_epochs: int
    strategies: tuple[StrategySpec, ...]
    warmup_iters: int = 100
    # milder than ViTPose's (rotation +-40 deg, scale 0.5-1.5, half-body): measured here, it learns about twice as
    # fast in the few hundred steps the demo can afford
    augment: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (
        ("RandomFlip", (("prob", 0.5),)),
        (
            "RandomBBoxTransform",
            (("scale_sigma", 0.15), ("scale_range", (0.8, 1.25)), ("rotate_sigma", 15.0), ("rotate_limit", 30.0)),
        ),
    )
    overlay_count: int = 4
    seed: int = 0

    def pretrain_key(self) -> str:
        """Hash of everything the adult model depends on: its cache key."""
        relevant = {
            "version": DEMO_VERSION,
            "image_size": self.image_size,
            "adult_train": asdict(self.adult_train),
            "adult_test": asdict(self.adult_test),
            "model": asdict(self.model),
            "batch_size": self.batch_size,
            "epochs": self.pretrain_epochs,
            "lr": self.pretrain_lr,
            "warmup_iters": self.warmup_iters,
            "augment": self.augment,
            "seed": self.seed,
        }
        text = json.dumps(relevant, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def augment_specs(self) -> list[dict[str, Any]]:
        """The augmentation as recipe entries ({"type": ..., options})."""
        return [
            {"type": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in opts}}
            for name, opts in self.augment
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _strategies(lr: float) -> tuple[StrategySpec, ...]:
    return (
        StrategySpec("full", "full FT", "full", lr),
        StrategySpec("lora", "LoRA r8 + head", "lora", 2.5 * lr, {"r": 8, "alpha": 16, "head": "all"}),
        StrategySpec("head_only", "head only", "head_only", 2.5 * lr),
        StrategySpec("rehearsal", "full FT + rehearsal", "full", lr, rehearsal_ratio=0.5),
    )


def default_settings() -> DemoSettings:
    return DemoSettings(
        preset="default",
        image_size=160,
        adult_train=DataSpec("adult", "front", 2400, 0),
        adult_test=DataSpec("adult", "front", 300, 100_000),
        infant_train=DataSpec("infant", "top", 800, 1),
        infant_test=DataSpec("infant", "top", 300, 100_001),
        model=ModelSpec(),
        batch_size=32,
        pretrain_epochs=8,
        pretrain_lr=3e-3,
        finetune_epochs=10,
        strategies=_strategies(2e-3),
        warmup_iters=50,
    )


def quick_settings() -> DemoSettings:
    """Small enough for the test suite (well under 3 minutes with another test process beside it)."""
    return DemoSettings(
        preset="quick",
        image_size=160,
        adult_train=DataSpec("adult", "front", 800, 0),
        adult_test=DataSpec("adult", "front", 64, 100_000),
        infant_train=DataSpec("infant", "top", 256, 1),
        infant_test=DataSpec("infant", "top", 64, 100_001),
        model=ModelSpec(embed_dim=96, depth=3, num_heads=3, mlp_dim=384, head_channels=96),
        batch_size=16,
        pretrain_epochs=4,
        pretrain_lr=3e-3,
        finetune_epochs=6,
        strategies=_strategies(2e-3),
        warmup_iters=20,
        overlay_count=3,
    )


def settings_for(quick: bool) -> DemoSettings:
    return quick_settings() if quick else default_settings()
