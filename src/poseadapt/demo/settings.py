"""What the demo renders, trains and compares: one frozen dataclass per preset (`default`, `quick`) and scenario.

Scenario `labelled` adapts with the infants' labels four ways; scenario `unlabelled` hides them: a mean teacher
(`synth-infant-mean-teacher`: labelled adults anchor the task, the same infant images come without labels, a pose
prior fitted on another render of infant poses) and two rounds of offline self-training (the model of the round
before labels the infants' boxes, `poseadapt pseudo-label`; a fresh copy trains on those labels and the labelled
adults), against full fine-tuning on the same images with their labels.

The sizes are set by time, not taste: the default must finish in under 15 minutes on 2 CPU cores, `--quick` in
about 2. Every run is the shipped recipe `demo-infant` with the run's `adapt:` list and sizes set on top; the
model is the embedded foundation model `builtin:synthpose-vit-tiny` (or, with `--from-scratch`, one pre-trained
by the `synthpose-vit-tiny` recipe cut to `pretrain_samples`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RECIPE = "demo-infant"
MEAN_TEACHER_RECIPE = "synth-infant-mean-teacher"
SCENARIOS = ("labelled", "unlabelled")
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
    zero_labels: bool = False  # infants unlabelled, adults (`DemoSettings.anchor`) labelled
    rounds: int = 0  # zero-label runs: 0 = the mean teacher (online); n > 0 = n rounds of offline self-training


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
    # test sets scored a second time with the upright test (`compare --upright-test`): people lying at any angle
    upright_tests: tuple[str, ...] = ("infants (diagonal)",)
    scenario: str = "labelled"
    anchor: DataSpec | None = None  # unlabelled scenario: the labelled adults beside the unlabelled infants
    prior_poses: DataSpec | None = None  # unlabelled scenario: infant poses the pose prior is fitted on
    # the adaptation runs' crop size, `model.input_size` [w, h] (None: the recipe's 96x128). The default preset
    # uses 144x192: larger crops lift both views, the unseen diagonal one most (docs/DEMO.md); 192x256 lifts
    # them a little more for twice the time
    input_size: tuple[int, int] | None = None
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


def _unlabelled_runs() -> tuple[RunSpec, ...]:
    return (
        RunSpec("full", "full FT, infant labels", [{"full": {}}]),
        # the recipe's own adapt list (layer decay + mean teacher), its lr; the demo points it at its data
        RunSpec("mean_teacher", "mean teacher, 0 infant labels", [], lr=2e-4, zero_labels=True),
        # the mean-teacher recipe's model, lr and layer decay, its data swapped for pseudo-labels + the adults
        RunSpec(
            "self_training",
            "self-training x2, 0 infant labels",
            [{"layer_decay": {"rate": 0.75}}],
            lr=2e-4,
            zero_labels=True,
            rounds=2,
        ),
    )


def unlabelled(settings: DemoSettings) -> DemoSettings:
    """The same data and test sets; the runs of the zero-label scenario."""
    from dataclasses import replace

    adults = DataSpec("adult", "random", settings.infant_train.n, 3)
    poses = DataSpec("infant", "top", 500 if settings.preset == "default" else 200, 7)
    if settings.preset == "default":  # its 96x128 crops leave time for 8 epochs and 300 test images per set
        settings = replace(settings, tests=_default_tests(300), epochs=8)
    # the recipe's 96x128 crops for both runs: the mean teacher at larger crops would take twice its 110 s or more
    return replace(
        settings, scenario="unlabelled", runs=_unlabelled_runs(), anchor=adults, prior_poses=poses, input_size=None
    )


def _default_tests(n: int) -> dict[str, DataSpec]:
    return {
        "infants (top)": DataSpec("infant", "top", n, 100_001),
        "infants (diagonal)": DataSpec("infant", "diagonal", n, 100_002),
        "adults (any view)": DataSpec("adult", "random", n, 100_000),
    }


def default_settings() -> DemoSettings:
    return DemoSettings(
        preset="default",
        image_size=192,
        infant_train=DataSpec("infant", "top", 800, 1),
        tests=_default_tests(200),
        epochs=6,  # with 8 epochs and 300 test images per set the demo took 14.5 min on a CPU without fast bf16
        runs=_runs(DataSpec("adult", "random", 800, 3)),
        pretrain_samples=40_000,
        input_size=(144, 192),
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


def settings_for(quick: bool, scenario: str = "labelled") -> DemoSettings:
    from poseadapt.errors import PoseAdaptError

    if scenario not in SCENARIOS:
        raise PoseAdaptError(f"unknown demo scenario '{scenario}': choose one of {', '.join(SCENARIOS)}")
    settings = quick_settings() if quick else default_settings()
    return unlabelled(settings) if scenario == "unlabelled" else settings
