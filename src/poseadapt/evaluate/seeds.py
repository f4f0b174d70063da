"""Several training runs of one recipe (seeds) as one row: mean AP with an interval over test images AND runs.

A single run's bootstrap interval covers only which test images were drawn. A second training seed of the same
recipe can move AP by more than that interval, so a gain claimed from one run per method may be one method's lucky
seed. A seed group is scored by a two-level (hierarchical) bootstrap: each replicate takes the image draw that every
model shares (`poseadapt.evaluate.bootstrap.draws`, so differences stay paired over images) and, independently for
each group, draws the group's runs with replacement; the replicate's value is the mean AP of the drawn runs on the
drawn images. Runs of two groups are not paired: seed 1 of one recipe shares nothing that matters with seed 1 of
another once training has diverged.

With k runs, resampling them underestimates the variance of their mean by the factor (k - 1) / k. Each replicate
therefore spreads the runs around their mean by sqrt(k / (k - 1)) before drawing (a variance-corrected bootstrap);
the mean itself is unchanged. With 2-3 runs the seed level of the interval is still coarse: the summary lists every
run's AP and their standard deviation beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from poseadapt.errors import PoseAdaptError
from poseadapt.evaluate import bootstrap as bs

MIN_RUNS = 2


@dataclass(frozen=True)
class SeedGroup:
    """NAME=MODEL,MODEL[,...]: models (named with --model) that are runs of one recipe with different seeds."""

    name: str
    members: tuple[str, ...]


def parse_group(text: str) -> SeedGroup:
    name, sep, value = text.partition("=")
    members = tuple(m.strip() for m in value.split(",") if m.strip())
    if not sep or not name or not members:
        raise PoseAdaptError(f"--seeds must be NAME=MODEL,MODEL[,...] (models named with --model), got '{text}'")
    return SeedGroup(name, members)


def check_groups(groups: Sequence[SeedGroup], models: Sequence[str]) -> None:
    """One line for a group that names an unknown model, repeats one, has too few runs, or takes a model's name."""
    names = [g.name for g in groups]
    for g in groups:
        unknown = [m for m in g.members if m not in models]
        if unknown:
            raise PoseAdaptError(f"seed group '{g.name}': no --model named {', '.join(unknown)}")
        if len(set(g.members)) != len(g.members):
            raise PoseAdaptError(f"seed group '{g.name}' names a model twice: {','.join(g.members)}")
        if len(g.members) < MIN_RUNS:
            raise PoseAdaptError(f"seed group '{g.name}' needs at least {MIN_RUNS} runs, got {len(g.members)}")
        if g.name in models or names.count(g.name) > 1:
            raise PoseAdaptError(f"seed group name '{g.name}' is already used by a model or another group")


def run_replicates(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(samples,) replicate means from (runs, samples) per-run bootstrap values: runs redrawn per replicate.

    The runs are spread around their replicate mean by sqrt(k / (k - 1)) first (see the module docstring)."""
    v = np.asarray(values, dtype=np.float64)
    k, samples = v.shape
    if k == 1:
        return v[0].copy()
    centre = v.mean(axis=0, keepdims=True)
    spread = centre + (v - centre) * np.sqrt(k / (k - 1.0))
    picks = rng.integers(0, k, size=(samples, k))
    return spread[picks, np.arange(samples)[:, None]].mean(axis=1)


def group_replicates(
    groups: Sequence[SeedGroup], boot_ap: Mapping[str, np.ndarray], seed: int = bs.DEFAULT_SEED
) -> dict[str, np.ndarray]:
    """Each group's (samples,) two-level replicates of its mean AP, from the models' per-image-draw values."""
    rng = np.random.default_rng([int(seed), 1])  # one stream per test set call, fixed: the report is reproducible
    return {g.name: run_replicates(np.stack([boot_ap[m] for m in g.members]), rng) for g in groups}


def group_rows(
    groups: Sequence[SeedGroup],
    test: str,
    ap: Mapping[str, float],
    boot_ap: Mapping[str, np.ndarray],
    baseline: str | None,
    replicates: Mapping[str, np.ndarray],
) -> list[dict[str, Any]]:
    """One summary row per group on one test set: mean AP of the runs, each run's AP, their SD, the two-level
    interval (`replicates`, from group_replicates) and, when `baseline` names a model or a group, the change
    against it with its interval."""
    by_name = {g.name: g for g in groups}
    replicates = dict(replicates)
    base_members: tuple[str, ...] | None = None
    if baseline is not None:
        base_members = by_name[baseline].members if baseline in by_name else (baseline,)
        if baseline not in replicates:
            replicates[baseline] = np.asarray(boot_ap[baseline], dtype=np.float64)
    rows = []
    for g in groups:
        runs = [float(ap[m]) for m in g.members]
        mean = float(np.mean(runs))
        row: dict[str, Any] = {
            "group": g.name,
            "test": test,
            "members": list(g.members),
            "AP": mean,
            "AP_runs": runs,
            "AP_sd": float(np.std(runs, ddof=1)),
            "AP_ci": bs.percentile_interval(mean, replicates[g.name]).to_list(),
            "vs_baseline": None,
        }
        if base_members is not None and baseline != g.name:
            base = float(np.mean([ap[m] for m in base_members]))
            row["vs_baseline"] = _change(
                baseline, len(base_members), mean - base, replicates[g.name] - replicates[baseline]
            )
        rows.append(row)
    return rows


def change_vs_group(
    value: float, boot: np.ndarray, group: SeedGroup, ap: Mapping[str, float], replicates: np.ndarray
) -> dict[str, Any]:
    """One run's AP against a seed group's mean: paired over images, the group's runs redrawn (its seed noise);
    the single run's own seed noise is unknown and not in the interval."""
    base = float(np.mean([ap[m] for m in group.members]))
    return _change(group.name, len(group.members), value - base, np.asarray(boot, dtype=np.float64) - replicates)


def _change(baseline: str, runs: int, delta: float, replicates: np.ndarray) -> dict[str, Any]:
    """The summary's change record: `delta` with the percentile interval of its replicates."""
    iv = bs.percentile_interval(delta, replicates)
    return {"baseline": baseline, "baseline_runs": runs, "delta_AP": iv.value, "ci": iv.to_list(),
            "excludes_zero": iv.excludes_zero}  # fmt: skip
