"""Pose samplers: joint angles, pelvis orientation and support (floor, chair, wheelchair) for each pose kind.

Angles follow body.py's conventions (degrees; flexion forward +, abduction away from the midline +, twist to the
left +). Samplers aim at the posture's typical distribution, then `clip_angles` enforces the population's ranges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from poseadapt.synth.body import JointAngles, clip_angles, rot_x, rot_y
from poseadapt.synth.populations import Population

SIDES = ("left", "right")


@dataclass
class PoseSample:
    """A sampled posture: `support` says how it touches the world ('floor', 'chair', 'wheelchair')."""

    kind: str
    angles: JointAngles
    root_rotation: np.ndarray
    support: str = "floor"
    aids: list[str] = field(default_factory=list)  # walking aids in the hands: 'cane' / 'walker'


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _n(rng: np.random.Generator, mean: float, sd: float) -> float:
    return float(rng.normal(mean, sd))


def _upright(rng: np.random.Generator) -> np.ndarray:
    return rot_y(_u(rng, -180, 180))


def _posture(rng: np.random.Generator, pop: Population, a: JointAngles) -> None:
    """Trunk and head shared by every upright pose: kyphosis bends the thorax, the neck extends to look ahead."""
    kyph = _u(rng, *pop.kyphosis_deg)
    a["kyphosis"] = kyph
    a["spine_flex"] = a.get("spine_flex", 0.0) + _n(rng, 2, 4)
    a["spine_lat"] = a.get("spine_lat", 0.0) + _n(rng, 0, 3)
    a["neck_flex"] = a.get("neck_flex", 0.0) + _n(rng, 0, 8) - 0.55 * kyph
    a["neck_twist"] = a.get("neck_twist", 0.0) + _n(rng, 0, 18)
    a["neck_lat"] = a.get("neck_lat", 0.0) + _n(rng, 0, 5)


def _relaxed_arms(rng: np.random.Generator, a: JointAngles) -> None:
    for s in SIDES:
        a[f"{s}_shoulder_flex"] = _n(rng, 5, 12)
        a[f"{s}_shoulder_abd"] = abs(_n(rng, 8, 6))
        a[f"{s}_shoulder_rot"] = _n(rng, 10, 15)
        a[f"{s}_elbow_flex"] = _u(rng, 5, 45)
        a[f"{s}_wrist_flex"] = _n(rng, 0, 12)


def standing(rng: np.random.Generator, pop: Population) -> PoseSample:
    a: JointAngles = {}
    _relaxed_arms(rng, a)
    bend = _u(rng, *pop.knee_bend_deg)
    for s in SIDES:
        a[f"{s}_hip_flex"] = _n(rng, 0.6 * bend, 4)
        a[f"{s}_hip_abd"] = _n(rng, 4, 4)
        a[f"{s}_hip_rot"] = _n(rng, -5, 8)
        a[f"{s}_knee_flex"] = bend + _u(rng, 0, 6)
        a[f"{s}_ankle_flex"] = 0.4 * bend + _n(rng, 0, 4)
    _posture(rng, pop, a)
    return PoseSample("standing", a, _upright(rng), aids=_aids(rng, pop))


def walking(rng: np.random.Generator, pop: Population) -> PoseSample:
    """A snapshot of the gait cycle at a random phase; `gait_amplitude` < 1 gives the shorter, slower stride."""
    a: JointAngles = {}
    amp, phase = pop.gait_amplitude, _u(rng, 0, 2 * np.pi)
    bend = _u(rng, *pop.knee_bend_deg)
    for s, ph in (("left", phase), ("right", phase + np.pi)):
        a[f"{s}_hip_flex"] = 6 + 0.5 * bend + 24 * amp * np.sin(ph) + _n(rng, 0, 3)
        a[f"{s}_hip_abd"] = _n(rng, 3, 2)
        a[f"{s}_hip_rot"] = _n(rng, -4, 5)
        a[f"{s}_knee_flex"] = bend + 5 + 55 * amp * max(0.0, np.cos(ph - 0.3)) ** 2 + _n(rng, 0, 4)
        a[f"{s}_ankle_flex"] = 8 * amp * np.sin(ph + 0.5) + _n(rng, 0, 4)
        a[f"{s}_shoulder_flex"] = 3 - 22 * amp * np.sin(ph) + _n(rng, 0, 4)  # arms swing against the legs
        a[f"{s}_shoulder_abd"] = abs(_n(rng, 7, 4))
        a[f"{s}_shoulder_rot"] = _n(rng, 10, 10)
        a[f"{s}_elbow_flex"] = 12 + 18 * amp + _u(rng, 0, 15)
    a["spine_twist"] = 7 * amp * np.sin(phase)
    a["spine_flex"] = _n(rng, 3, 2)
    _posture(rng, pop, a)
    return PoseSample("walking", a, _upright(rng), aids=_aids(rng, pop))


def reaching(rng: np.random.Generator, pop: Population) -> PoseSample:
    sample = standing(rng, pop)
    a = sample.angles
    arms = [str(rng.choice(SIDES))] if rng.random() < 0.65 else list(SIDES)
    for s in arms:
        a[f"{s}_shoulder_flex"] = _u(rng, 40, 170)
        a[f"{s}_shoulder_abd"] = _u(rng, 0, 80)
        a[f"{s}_shoulder_rot"] = _n(rng, 0, 20)
        a[f"{s}_elbow_flex"] = _u(rng, 0, 50)
    a["spine_flex"] += _u(rng, 0, 35)
    a["spine_twist"] = _n(rng, 0, 15)
    a["spine_lat"] += _n(rng, 0, 8)
    return PoseSample("reaching", a, sample.root_rotation, aids=[])


def sitting(rng: np.random.Generator, pop: Population) -> PoseSample:
    """On a chair when the population has one (and the draw says so), otherwise on the floor."""
    a: JointAngles = {}
    on_chair = rng.random() < pop.props.get("chair", 0.0)
    _relaxed_arms(rng, a)
    for s in SIDES:
        a[f"{s}_shoulder_flex"] = _u(rng, 5, 55)
        a[f"{s}_elbow_flex"] = _u(rng, 30, 110)
    if on_chair:
        for s in SIDES:
            a[f"{s}_hip_flex"] = _u(rng, 78, 100)
            a[f"{s}_hip_abd"] = _u(rng, 0, 18)
            a[f"{s}_hip_rot"] = _n(rng, 0, 8)
            a[f"{s}_knee_flex"] = _u(rng, 70, 110)
            a[f"{s}_ankle_flex"] = _n(rng, 0, 8)
    elif pop.style == "infant" or rng.random() < 0.5:  # long sitting / tailor sitting
        cross = rng.random() < 0.5
        for s in SIDES:
            a[f"{s}_hip_flex"] = _u(rng, 70, 95)
            a[f"{s}_hip_abd"] = _u(rng, 30, 55) if cross else _u(rng, 5, 30)
            a[f"{s}_hip_rot"] = _u(rng, -35, -10) if cross else _n(rng, 0, 8)
            a[f"{s}_knee_flex"] = _u(rng, 110, 140) if cross else _u(rng, 10, 60)
        a["spine_flex"] = _u(rng, 5, 30)
    else:  # kneeling on the heels
        for s in SIDES:
            a[f"{s}_hip_flex"] = _u(rng, 0, 30)
            a[f"{s}_hip_abd"] = _u(rng, 0, 12)
            a[f"{s}_knee_flex"] = _u(rng, 125, 140)
            a[f"{s}_ankle_flex"] = _u(rng, -40, -25)
    _posture(rng, pop, a)
    return PoseSample("sitting", a, _upright(rng), support="chair" if on_chair else "floor")


def wheelchair(rng: np.random.Generator, pop: Population) -> PoseSample:
    """Seated in a wheelchair, hands on the push rims, in the lap or reaching."""
    a: JointAngles = {}
    for s in SIDES:
        a[f"{s}_hip_flex"] = _u(rng, 80, 100)
        a[f"{s}_hip_abd"] = _u(rng, 0, 12)
        a[f"{s}_hip_rot"] = _n(rng, 0, 6)
        a[f"{s}_knee_flex"] = _u(rng, 80, 115)
        a[f"{s}_ankle_flex"] = _n(rng, 0, 8)
        hands = rng.choice(["rim", "lap", "reach"], p=[0.45, 0.35, 0.2])
        if hands == "rim":
            a[f"{s}_shoulder_flex"] = _u(rng, -25, 20)
            a[f"{s}_shoulder_abd"] = _u(rng, 12, 28)
            a[f"{s}_elbow_flex"] = _u(rng, 15, 60)
        elif hands == "lap":
            a[f"{s}_shoulder_flex"] = _u(rng, 15, 45)
            a[f"{s}_shoulder_abd"] = _u(rng, 0, 15)
            a[f"{s}_shoulder_rot"] = _u(rng, 10, 40)
            a[f"{s}_elbow_flex"] = _u(rng, 60, 110)
        else:
            a[f"{s}_shoulder_flex"] = _u(rng, 50, 140)
            a[f"{s}_shoulder_abd"] = _u(rng, 0, 60)
            a[f"{s}_elbow_flex"] = _u(rng, 0, 45)
    a["spine_flex"] = _n(rng, 4, 8)
    _posture(rng, pop, a)
    return PoseSample("wheelchair", a, _upright(rng), support="wheelchair")


def _lying_limbs(rng: np.random.Generator, a: JointAngles, flexed: bool) -> None:
    """Limbs of a lying body; `flexed` gives the infant's flexed, abducted, kicking limbs."""
    for s in SIDES:
        if flexed:
            a[f"{s}_hip_flex"] = _u(rng, 25, 115)
            a[f"{s}_hip_abd"] = _u(rng, 12, 55)
            a[f"{s}_hip_rot"] = _u(rng, -35, 10)
            a[f"{s}_knee_flex"] = _u(rng, 25, 135)
            a[f"{s}_ankle_flex"] = _n(rng, 0, 15)
            a[f"{s}_shoulder_flex"] = _u(rng, -15, 100)
            a[f"{s}_shoulder_abd"] = _u(rng, 15, 110)
            a[f"{s}_shoulder_rot"] = _n(rng, 0, 30)
            a[f"{s}_elbow_flex"] = _u(rng, 20, 140)
            a[f"{s}_wrist_flex"] = _n(rng, 10, 20)
        else:
            a[f"{s}_hip_flex"] = _u(rng, -5, 60)
            a[f"{s}_hip_abd"] = _u(rng, 0, 25)
            a[f"{s}_hip_rot"] = _n(rng, 0, 10)
            a[f"{s}_knee_flex"] = _u(rng, 0, 70)
            a[f"{s}_ankle_flex"] = _n(rng, -15, 10)
            a[f"{s}_shoulder_flex"] = _u(rng, -10, 150)
            a[f"{s}_shoulder_abd"] = _u(rng, 0, 90)
            a[f"{s}_shoulder_rot"] = _n(rng, 0, 25)
            a[f"{s}_elbow_flex"] = _u(rng, 0, 100)


def _lying(rng: np.random.Generator, pop: Population, kind: str) -> PoseSample:
    infant = pop.style == "infant"
    a: JointAngles = {}
    # draw only when asked, so populations without flexed adults render exactly as before
    flexed = infant or (pop.flexed_lying > 0 and rng.random() < pop.flexed_lying)
    _lying_limbs(rng, a, flexed=flexed)
    a["spine_lat"] = _n(rng, 0, 8)
    a["spine_flex"] = _n(rng, 5, 8)
    a["kyphosis"] = _u(rng, *pop.kyphosis_deg)
    a["neck_twist"] = _u(rng, -70, 70) if infant else _n(rng, 0, 30)
    a["neck_lat"] = _n(rng, 0, 8)
    a["neck_flex"] = _n(rng, 0, 10)
    roll = _n(rng, 0, 12)
    if kind == "prone":
        a["neck_flex"] = _u(rng, -55, -10)  # lifting the head
        tilt = 90.0
        if infant:  # forearms under or beside the head
            for s in SIDES:
                a[f"{s}_shoulder_flex"] = _u(rng, 40, 130)
                a[f"{s}_shoulder_abd"] = _u(rng, 40, 110)
                a[f"{s}_elbow_flex"] = _u(rng, 50, 140)
                a[f"{s}_hip_flex"] = _u(rng, 0, 60)
    elif kind == "side_lying":
        tilt, roll = -90.0, float(rng.choice([-1.0, 1.0])) * _u(rng, 70, 95)
        a["spine_flex"] += _u(rng, 5, 30)
    else:
        tilt = -90.0
    # lie down (body up-axis horizontal, anterior up for supine), roll about the body axis, random heading
    root = rot_y(_u(rng, -180, 180)) @ rot_x(tilt) @ rot_y(roll)
    return PoseSample(kind, a, root)


def supine(rng: np.random.Generator, pop: Population) -> PoseSample:
    return _lying(rng, pop, "supine")


def prone(rng: np.random.Generator, pop: Population) -> PoseSample:
    return _lying(rng, pop, "prone")


def side_lying(rng: np.random.Generator, pop: Population) -> PoseSample:
    return _lying(rng, pop, "side_lying")


def lying(rng: np.random.Generator, pop: Population) -> PoseSample:
    kind = str(rng.choice(["supine", "prone", "side_lying"], p=[0.55, 0.25, 0.2]))
    return _lying(rng, pop, kind)


def _aids(rng: np.random.Generator, pop: Population) -> list[str]:
    draw = rng.random()
    cane, walker = pop.props.get("cane", 0.0), pop.props.get("walker", 0.0)
    if draw < walker:
        return ["walker"]
    if draw < walker + cane:
        return ["cane"]
    return []


SAMPLERS: dict[str, Callable[[np.random.Generator, Population], PoseSample]] = {
    "standing": standing,
    "walking": walking,
    "reaching": reaching,
    "sitting": sitting,
    "lying": lying,
    "supine": supine,
    "prone": prone,
    "side_lying": side_lying,
    "wheelchair": wheelchair,
}


def sample_pose(rng: np.random.Generator, pop: Population, kind: str | None = None) -> PoseSample:
    """A posture of `kind` (default: drawn from the population's mixture) with angles clipped to its ranges."""
    sample = SAMPLERS[kind or pop.pick_pose(rng)](rng, pop)
    _adapt_arms_for_aids(rng, sample)
    sample.angles = clip_angles(sample.angles, pop.limits())
    return sample


def _adapt_arms_for_aids(rng: np.random.Generator, sample: PoseSample) -> None:
    """Hands where a walking aid needs them: one hand on a cane, both forward on a walker's grips."""
    a = sample.angles
    if "walker" in sample.aids:
        for s in SIDES:
            a[f"{s}_shoulder_flex"] = _u(rng, 20, 40)
            a[f"{s}_shoulder_abd"] = _u(rng, 5, 15)
            a[f"{s}_shoulder_rot"] = _u(rng, 0, 15)
            a[f"{s}_elbow_flex"] = _u(rng, 20, 40)
        a["spine_flex"] = a.get("spine_flex", 0.0) + _u(rng, 5, 20)
    elif "cane" in sample.aids:
        s = str(rng.choice(SIDES))
        a[f"{s}_shoulder_flex"] = _u(rng, 5, 20)
        a[f"{s}_shoulder_abd"] = _u(rng, 5, 15)
        a[f"{s}_elbow_flex"] = _u(rng, 15, 30)
        a[f"{s}_wrist_flex"] = _u(rng, -30, -10)
        sample.aids = [f"cane_{s}"]
