"""What the demo renders, trains and compares: one frozen dataclass per preset (`default`, `quick`).

The sizes are set by time, not taste: the default must finish in under 15 minutes on 2 CPU cores, `--quick` in
about 2. Every run is the shipped recipe `demo-infant` with the run's `adapt:` list and sizes set on top; the
model is the embedded foundation model `builtin:synthpose-vit-tiny` (or, with `--from-scratch`, one pre-trained
by the `synthpose-vit-tiny` recipe cut to `pretrain_samples`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RECIPE = "demo-infant"
PRETRAIN_RECIPE = "synthpose-vit-tiny"
FOUNDATION = "builtin:synthpose-vit-tiny"


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
class RunSpec:
    """One adaptation run: a label for the table and the recipe's `adapt:` list."""

    key: str
    label: str
    adapt: list[dict[str, Any]]
    lr: float = 1e-3


@dataclass(frozen=True)
class DemoSettings:
    preset: str
    image_size: int
    infant_train: DataSpec
    tests: dict[str, DataSpec]  # table name -> rendered test set (scored on the coco17 points they all share)
    epochs: int
    runs: tuple[RunSpec, ...]
    pretrain_samples: int  # --from-scratch only
    bootstrap: int = 1000
    extra: dict[str, Any] = field(default_factory=dict)


def _runs(adults: DataSpec) -> tuple[RunSpec, ...]:
    replay = {"synth": {"population": adults.population, "view": adults.view, "n": adults.n, "seed": adults.seed,
                        "size": 192}, "schema": "coco17"}  # fmt: skip
    return (
        RunSpec("full", "full FT", [{"full": {}}]),
        RunSpec("lora", "LoRA r8 + head", [{"lora": {"r": 8, "alpha": 16, "head": "all"}}], lr=2.5e-3),
        RunSpec("head_only", "head only", [{"head_only": {}}], lr=2.5e-3),
        RunSpec("rehearsal", "full FT + rehearsal", [{"full": {}}, {"rehearsal": {"source": replay, "ratio": 0.5}}]),
    )


def default_settings() -> DemoSettings:
    return DemoSettings(
        preset="default",
        image_size=192,
        infant_train=DataSpec("infant", "top", 800, 1),
        tests={
            "infants (top)": DataSpec("infant", "top", 300, 100_001),
            "infants (diagonal)": DataSpec("infant", "diagonal", 300, 100_002),
            "adults (any view)": DataSpec("adult", "random", 300, 100_000),
        },
        epochs=8,
        runs=_runs(DataSpec("adult", "random", 800, 3)),
        pretrain_samples=40_000,
    )


def quick_settings() -> DemoSettings:
    """Small enough for the test suite."""
    return DemoSettings(
        preset="quick",
        image_size=160,
        infant_train=DataSpec("infant", "top", 256, 1),
        tests={
            "infants (top)": DataSpec("infant", "top", 64, 100_001),
            "infants (diagonal)": DataSpec("infant", "diagonal", 64, 100_002),
            "adults (any view)": DataSpec("adult", "random", 64, 100_000),
        },
        epochs=3,
        runs=_runs(DataSpec("adult", "random", 128, 3)),
        pretrain_samples=2_048,
        bootstrap=200,
    )


def settings_for(quick: bool) -> DemoSettings:
    return quick_settings() if quick else default_settings()
