"""Population presets: explicit, user-settable parameters for adults, infants, older adults and wheelchair users.

A `Population` is plain data (a frozen pydantic model): body proportions as fractions of stature, the pose
mixture, joint ranges, posture (kyphosis, knee bend, gait amplitude), props and appearance. Presets are starting
points; override any field with `get_population("elderly", kyphosis_deg=(30, 50))` or from a YAML / dict with
`Population.model_validate`. Sampling a person's shape and joint limits from it lives here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from poseadapt.errors import PoseAdaptError
from poseadapt.synth.body import JOINT_LIMITS, LENGTH_KEYS, RADIUS_KEYS, BodyShape

POSE_KINDS = ("standing", "walking", "reaching", "sitting", "lying", "supine", "prone", "side_lying", "wheelchair")
PROP_KINDS = ("chair", "cane", "walker", "blanket")

_ADULT_LENGTHS = {  # fractions of stature; Winter's table, joint-centre widths (see body.py)
    "head": 0.130,
    "neck": 0.052,
    "thoracic": 0.155,
    "lumbar": 0.115,
    "hip_drop": 0.030,
    "hip_width": 0.110,
    "shoulder_width": 0.200,
    "shoulder_drop": 0.020,
    "upper_arm": 0.186,
    "forearm": 0.146,
    "hand": 0.108,
    "thigh": 0.245,
    "shank": 0.246,
    "ankle_height": 0.039,
    "foot": 0.152,
}
_ADULT_RADII = {
    "head": 0.044,
    "neck": 0.030,
    "chest": 0.062,
    "waist": 0.058,
    "flank": 0.036,
    "shoulder_girdle": 0.034,
    "pelvis": 0.056,
    "upper_arm": 0.026,
    "forearm": 0.021,
    "hand": 0.015,
    "thigh": 0.046,
    "knee": 0.031,
    "shank": 0.031,
    "ankle": 0.019,
    "foot": 0.018,
}
# A toddler (about two years): head a fifth of stature as in classic proportion charts (newborn a quarter, adult
# an eighth), legs about 40% of stature; between the adult and infant tables elsewhere. Used only as the far end
# of `child_proportions`, so that an adult stream can also show children's bodies, as real photos do.
_CHILD_LENGTHS = {
    "head": 0.200,
    "neck": 0.035,
    "thoracic": 0.150,
    "lumbar": 0.115,
    "hip_drop": 0.025,
    "hip_width": 0.100,
    "shoulder_width": 0.185,
    "shoulder_drop": 0.015,
    "upper_arm": 0.160,
    "forearm": 0.125,
    "hand": 0.085,
    "thigh": 0.205,
    "shank": 0.195,
    "ankle_height": 0.035,
    "foot": 0.145,
}
_CHILD_RADII = {
    "head": 0.072,
    "neck": 0.035,
    "chest": 0.072,
    "waist": 0.070,
    "flank": 0.042,
    "shoulder_girdle": 0.039,
    "pelvis": 0.062,
    "upper_arm": 0.030,
    "forearm": 0.025,
    "hand": 0.018,
    "thigh": 0.048,
    "knee": 0.033,
    "shank": 0.033,
    "ankle": 0.021,
    "foot": 0.020,
}
# Newborn to six months: head a quarter of body length, short limbs, a round trunk (WHO growth standards give
# length 0.46-0.70 m; crown-to-chin about a quarter of length as in classic proportion charts).
_INFANT_LENGTHS = {
    "head": 0.250,
    "neck": 0.020,
    "thoracic": 0.140,
    "lumbar": 0.110,
    "hip_drop": 0.020,
    "hip_width": 0.090,
    "shoulder_width": 0.170,
    "shoulder_drop": 0.010,
    "upper_arm": 0.140,
    "forearm": 0.110,
    "hand": 0.070,
    "thigh": 0.170,
    "shank": 0.150,
    "ankle_height": 0.030,
    "foot": 0.140,
}
_INFANT_RADII = {
    "head": 0.095,
    "neck": 0.040,
    "chest": 0.085,
    "waist": 0.085,
    "flank": 0.050,
    "shoulder_girdle": 0.045,
    "pelvis": 0.070,
    "upper_arm": 0.036,
    "forearm": 0.031,
    "hand": 0.022,
    "thigh": 0.052,
    "knee": 0.037,
    "shank": 0.036,
    "ankle": 0.025,
    "foot": 0.024,
}


class Population(BaseModel):
    """Everything that makes one synthetic population what it is. Angles in degrees, lengths in metres."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    native_schema: str = Field(description="Built-in schema the population's own annotations use.")
    stature_m: tuple[float, float] = Field(description="Uniform range of standing height / body length.")
    lengths: dict[str, float] = Field(description="Segment lengths as fractions of stature (body.LENGTH_KEYS).")
    radii: dict[str, float] = Field(description="Capsule radii as fractions of stature (body.RADIUS_KEYS).")
    length_jitter: float = Field(0.04, ge=0, le=0.3, description="Relative s.d. of each segment length.")
    girth: tuple[float, float] = Field((0.85, 1.3), description="Uniform range of a per-person width factor.")
    poses: dict[str, float] = Field(description="Pose kind -> relative weight.")
    joint_limits: dict[str, tuple[float, float]] = Field(default_factory=dict, description="Overrides (degrees).")
    range_scale: float = Field(1.0, gt=0, le=1.5, description="Scales every joint range about neutral.")
    kyphosis_deg: tuple[float, float] = Field((0.0, 6.0), description="Extra thoracic flexion range.")
    knee_bend_deg: tuple[float, float] = Field((0.0, 8.0), description="Knee flexion range when upright.")
    gait_amplitude: float = Field(1.0, gt=0, le=1.5, description="Stride size (hip / knee / arm swing scale).")
    props: dict[str, float] = Field(default_factory=dict, description="Prop -> probability when the pose allows.")
    style: Literal["adult", "infant"] = "adult"
    flexed_lying: float = Field(
        0.0, ge=0, le=1, description="Share of lying adults drawn with flexed, abducted limbs (infants always are)."
    )
    child_proportions: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of people drawn with a child's build: lengths and radii blended from the population's "
        "towards a toddler's by a uniform factor in `child_blend`.",
    )
    child_blend: tuple[float, float] = Field(
        (0.0, 1.0), description="Range of the blend factor of a child's build: 0 the population's, 1 a toddler's."
    )
    one_piece: float = Field(
        0.0, ge=0, le=1, description="Share of adults in one-piece sleepwear or a jumpsuit (neck to ankles)."
    )
    swimwear: float = Field(0.0, ge=0, le=1, description="Share of adults in swimwear: bare torso, arms and legs.")
    hair_probability: float = Field(0.92, ge=0, le=1)
    gray_hair_probability: float = Field(0.08, ge=0, le=1)

    @field_validator("lengths")
    @classmethod
    def _check_lengths(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_fractions(v, LENGTH_KEYS, "lengths")

    @field_validator("radii")
    @classmethod
    def _check_radii(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_fractions(v, RADIUS_KEYS, "radii")

    @field_validator("poses")
    @classmethod
    def _check_poses(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(POSE_KINDS))
        if unknown:
            raise ValueError(f"unknown pose kind(s) {unknown}; known: {', '.join(POSE_KINDS)}")
        if not v or any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("pose weights must be >= 0 with a positive sum")
        return v

    @field_validator("props")
    @classmethod
    def _check_props(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(PROP_KINDS))
        if unknown:
            raise ValueError(f"unknown prop(s) {unknown}; known: {', '.join(PROP_KINDS)}")
        if any(not 0 <= p <= 1 for p in v.values()):
            raise ValueError("prop probabilities must lie in [0, 1]")
        return v

    @field_validator("joint_limits")
    @classmethod
    def _check_limits(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for dof, (lo, hi) in v.items():
            base = dof.removeprefix("left_").removeprefix("right_")
            if base not in JOINT_LIMITS:
                raise ValueError(f"unknown joint '{dof}'; known: {', '.join(JOINT_LIMITS)}")
            if lo > hi:
                raise ValueError(f"joint '{dof}': low {lo} > high {hi}")
        return v

    @model_validator(mode="after")
    def _check_ranges(self) -> Population:
        if self.one_piece + self.swimwear > 1:
            raise ValueError(f"one_piece + swimwear must be at most 1, got {self.one_piece + self.swimwear}")
        lo, hi = self.child_blend
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"child_blend must be a (low, high) range with 0 <= low <= high <= 1, got ({lo}, {hi})")
        for name in ("stature_m", "girth", "kyphosis_deg", "knee_bend_deg"):
            lo, hi = getattr(self, name)
            if lo > hi or (name in ("stature_m", "girth") and lo <= 0):
                raise ValueError(f"{name} must be a (low, high) range with 0 < low <= high, got ({lo}, {hi})")
        return self

    # ------------------------------------------------------------------ sampling
    def limits(self) -> dict[str, tuple[float, float]]:
        """Joint ranges: the anatomical ones scaled by `range_scale` about neutral, then the overrides."""
        out = {k: (lo * self.range_scale, hi * self.range_scale) for k, (lo, hi) in JOINT_LIMITS.items()}
        out["kyphosis"] = JOINT_LIMITS["kyphosis"]
        out.update(self.joint_limits)
        return out

    def sample_shape(self, rng: np.random.Generator) -> BodyShape:
        stature = rng.uniform(*self.stature_m)
        jitter = np.exp(rng.normal(0.0, self.length_jitter, len(LENGTH_KEYS)))
        base_lengths, base_radii = self.lengths, self.radii
        # draw only when asked, so populations without children render exactly as before
        if self.child_proportions > 0 and rng.random() < self.child_proportions:
            t = rng.uniform(*self.child_blend)
            base_lengths = {k: (1 - t) * v + t * _CHILD_LENGTHS[k] for k, v in base_lengths.items()}
            base_radii = {k: (1 - t) * v + t * _CHILD_RADII[k] for k, v in base_radii.items()}
            stature *= 1.0 - 0.45 * t  # a two-year-old stands about 0.9 m
        lengths = {k: base_lengths[k] * j for k, j in zip(LENGTH_KEYS, jitter, strict=True)}
        girth = rng.uniform(*self.girth)
        width = np.exp(rng.normal(0.0, 0.05, len(RADIUS_KEYS)))
        radii = {k: base_radii[k] * girth * w for k, w in zip(RADIUS_KEYS, width, strict=True)}
        radii["head"] = base_radii["head"] * rng.uniform(0.95, 1.05)  # heads do not scale with body mass
        return BodyShape.from_fractions(stature, lengths, radii)

    def pick_pose(self, rng: np.random.Generator) -> str:
        kinds = list(self.poses)
        w = np.array([self.poses[k] for k in kinds], dtype=float)
        return kinds[int(rng.choice(len(kinds), p=w / w.sum()))]


def _check_fractions(v: dict[str, float], keys: tuple[str, ...], what: str) -> dict[str, float]:
    missing, unknown = sorted(set(keys) - set(v)), sorted(set(v) - set(keys))
    if missing or unknown:
        raise ValueError(f"{what}: missing {missing}, unknown {unknown}; need exactly {', '.join(keys)}")
    if any(not 0 < x < 1 for x in v.values()):
        raise ValueError(f"{what}: every fraction of stature must lie in (0, 1)")
    return v


PRESETS: dict[str, Population] = {
    "adult": Population(
        name="adult",
        native_schema="coco17",
        stature_m=(1.50, 1.95),
        lengths=_ADULT_LENGTHS,
        radii=_ADULT_RADII,
        poses={"standing": 0.25, "walking": 0.25, "reaching": 0.2, "sitting": 0.15, "lying": 0.15},
        props={"chair": 0.7},
    ),
    "infant": Population(
        name="infant",
        native_schema="infant21",
        stature_m=(0.46, 0.72),
        lengths=_INFANT_LENGTHS,
        radii=_INFANT_RADII,
        length_jitter=0.035,
        girth=(0.92, 1.2),
        poses={"supine": 0.65, "prone": 0.22, "side_lying": 0.1, "sitting": 0.03},
        # newborns keep physiological flexion: hips and knees do not fully extend
        joint_limits={"knee_flex": (10.0, 150.0), "hip_flex": (-5.0, 140.0), "hip_abd": (-10.0, 70.0)},
        props={"blanket": 0.3},
        style="infant",
        hair_probability=0.6,
        gray_hair_probability=0.0,
    ),
    "elderly": Population(
        name="elderly",
        native_schema="elderly23",
        stature_m=(1.48, 1.85),
        lengths=_ADULT_LENGTHS | {"thoracic": 0.150, "lumbar": 0.110},
        radii=_ADULT_RADII,
        poses={"standing": 0.3, "walking": 0.4, "sitting": 0.15, "reaching": 0.1, "lying": 0.05},
        range_scale=0.8,
        kyphosis_deg=(15.0, 45.0),
        knee_bend_deg=(5.0, 20.0),
        gait_amplitude=0.6,
        props={"chair": 0.8, "cane": 0.3, "walker": 0.2},
        hair_probability=0.8,
        gray_hair_probability=0.75,
    ),
    "wheelchair": Population(
        name="wheelchair",
        native_schema="wheelchair25",
        stature_m=(1.50, 1.95),
        lengths=_ADULT_LENGTHS,
        radii=_ADULT_RADII,
        poses={"wheelchair": 1.0},
    ),
}
POPULATIONS = tuple(PRESETS)


def get_population(name_or_population: str | Population, **overrides: Any) -> Population:
    """A preset by name (or a given Population) with fields overridden; bad values raise PoseAdaptError."""
    if isinstance(name_or_population, Population):
        base = name_or_population
    else:
        if name_or_population not in PRESETS:
            raise PoseAdaptError(f"unknown population '{name_or_population}': choose one of {', '.join(PRESETS)}")
        base = PRESETS[name_or_population]
    if not overrides:
        return base
    return population_from_dict(base.model_dump() | overrides)


def population_from_dict(data: Mapping[str, Any]) -> Population:
    """Validate a population (e.g. loaded from YAML), turning pydantic's report into one clear line."""
    try:
        return Population.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "population"
        raise PoseAdaptError(f"population parameter '{where}': {first['msg']}") from None
