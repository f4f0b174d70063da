"""The articulated body: segment lengths, joint angles within anatomical limits, and forward kinematics.

Body frame (right-handed, metres): x points to the person's left, y up (towards the head), z forward (anterior).
Every joint rotates its child chain relative to its parent, so a pose is a small set of named angles in degrees
(`JointAngles`) that can be sampled, clipped to anatomical ranges and compared between populations.

Forward kinematics returns every point the renderer knows (`POINT_NAMES`): the COCO-17 body plus head top, head
bottom (chin), neck, upper neck, mid hip, mid spine, hand tips and big toe / small toe / heel, so COCO, Halpe,
MPII, AIC, CrowdPose, PoseTrack and the infant / older-adult / wheelchair schemas can all be written from one body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from poseadapt.errors import SchemaError

# Every point forward kinematics produces, in array order. The COCO-17 points come first, in COCO order.
POINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "head_top",
    "head_bottom",
    "neck",
    "upper_neck",
    "mid_hip",
    "mid_spine",
    "left_hand_tip",
    "right_hand_tip",
    "left_big_toe",
    "right_big_toe",
    "left_small_toe",
    "right_small_toe",
    "left_heel",
    "right_heel",
    # render-only anchors (not keypoints of any schema, but named so segments can refer to them)
    "head_center",
    "head_low",
    "head_high",
    "hair_low",
    "hair_high",
    "chest",
    "left_toes",
    "right_toes",
    "nose_ball",
)
POINT_INDEX: dict[str, int] = {n: i for i, n in enumerate(POINT_NAMES)}
RENDER_ONLY = frozenset(
    {"head_center", "head_low", "head_high", "hair_low", "hair_high", "chest", "left_toes", "right_toes", "nose_ball"}
)
FACE_POINTS = frozenset({"nose", "left_eye", "right_eye", "left_ear", "right_ear"})

# Names other schemas use for points the body has (MPII thorax/pelvis, COCO-WholeBody's middle fingertip, ...).
POINT_ALIASES: dict[str, str] = {
    "pelvis": "mid_hip",
    "thorax": "neck",
    "chin": "head_bottom",
    "left_middle_finger_4": "left_hand_tip",
    "right_middle_finger_4": "right_hand_tip",
}

# Lengths, as fractions of stature. The adult defaults follow Winter's anthropometric table (Biomechanics and
# Motor Control of Human Movement, 4th ed., Fig. 4.1: crown to chin 0.130 H, shoulder width 0.259 H, hip width
# 0.191 H, upper arm 0.186 H, forearm 0.146 H, hand 0.108 H, thigh 0.245 H, shank 0.246 H, ankle 0.039 H, foot
# 0.152 H). Forward kinematics rescales the vertical chain so the rest pose is exactly `stature` tall.
LENGTH_KEYS: tuple[str, ...] = (
    "head",  # crown to chin
    "neck",  # neck base (between the shoulders) to the skull base
    "thoracic",  # mid spine to neck base
    "lumbar",  # mid hip to mid spine
    "hip_drop",  # mid hip (pelvis centre) above the hip joints
    "hip_width",  # between the hip joints
    "shoulder_width",  # between the shoulder joints
    "shoulder_drop",  # shoulder joints below the neck base
    "upper_arm",
    "forearm",
    "hand",
    "thigh",
    "shank",
    "ankle_height",  # ankle joint above the sole
    "foot",  # heel to toe tip
)
# Segment radii, as fractions of stature (before the per-person girth factor).
RADIUS_KEYS: tuple[str, ...] = (
    "head",  # half the head breadth
    "neck",
    "chest",  # mid spine -> neck base core
    "waist",  # mid hip -> mid spine core
    "flank",  # hip -> shoulder side columns
    "shoulder_girdle",
    "pelvis",  # hip to hip
    "upper_arm",
    "forearm",
    "hand",
    "thigh",
    "knee",
    "shank",
    "ankle",
    "foot",
)

# Degrees of freedom and their anatomical ranges in degrees (AAOS normal ranges of motion, rounded; the spine
# ranges are the whole thoraco-lumbar spine). Sided DOFs are listed once without the left_/right_ prefix.
JOINT_LIMITS: dict[str, tuple[float, float]] = {
    "spine_flex": (-25.0, 80.0),  # forward bend +
    "spine_lat": (-30.0, 30.0),  # bend to the left +
    "spine_twist": (-40.0, 40.0),  # turn to the left +
    "kyphosis": (0.0, 60.0),  # extra thoracic flexion (older adults)
    "neck_flex": (-60.0, 50.0),
    "neck_lat": (-40.0, 40.0),
    "neck_twist": (-75.0, 75.0),
    "head_flex": (-20.0, 20.0),
    "shoulder_flex": (-50.0, 175.0),  # arm forward +
    "shoulder_abd": (-10.0, 170.0),  # arm out to the side +
    "shoulder_rot": (-70.0, 90.0),  # internal rotation +
    "elbow_flex": (0.0, 145.0),
    "wrist_flex": (-70.0, 80.0),
    "hip_flex": (-20.0, 125.0),  # thigh forward +
    "hip_abd": (-25.0, 45.0),
    "hip_rot": (-40.0, 45.0),
    "knee_flex": (0.0, 145.0),
    "ankle_flex": (-45.0, 25.0),  # dorsiflexion (toes up) +
}
SIDED_DOFS = ("shoulder_flex", "shoulder_abd", "shoulder_rot", "elbow_flex", "wrist_flex")
SIDED_DOFS += ("hip_flex", "hip_abd", "hip_rot", "knee_flex", "ankle_flex")
DOF_NAMES: tuple[str, ...] = tuple(k for k in JOINT_LIMITS if k not in SIDED_DOFS) + tuple(
    f"{side}_{d}" for side in ("left", "right") for d in SIDED_DOFS
)

JointAngles = dict[str, float]


def limit_of(dof: str, limits: Mapping[str, tuple[float, float]] = JOINT_LIMITS) -> tuple[float, float]:
    """The (low, high) range of a DOF name, sided or not."""
    base = dof.removeprefix("left_").removeprefix("right_")
    if dof in limits:
        return limits[dof]
    return limits[base]


def clip_angles(angles: Mapping[str, float], limits: Mapping[str, tuple[float, float]] = JOINT_LIMITS) -> JointAngles:
    """Every DOF present, clipped to its range; missing DOFs are 0 (the anatomical rest pose)."""
    out: JointAngles = {}
    for dof in DOF_NAMES:
        lo, hi = limit_of(dof, limits)
        out[dof] = float(min(max(float(angles.get(dof, 0.0)), lo), hi))
    unknown = set(angles) - set(DOF_NAMES)
    if unknown:
        raise ValueError(f"unknown joint angle(s): {sorted(unknown)}")
    return out


@dataclass(frozen=True)
class BodyShape:
    """One person's dimensions in metres: segment lengths and capsule radii."""

    stature: float
    lengths: Mapping[str, float]
    radii: Mapping[str, float]

    @classmethod
    def from_fractions(
        cls, stature: float, length_fractions: Mapping[str, float], radius_fractions: Mapping[str, float]
    ) -> BodyShape:
        """Scale fractions of stature to metres, adjusting the vertical chain so the rest pose is `stature` tall."""
        lf = dict(length_fractions)
        vertical = ("ankle_height", "shank", "thigh", "hip_drop", "lumbar", "thoracic", "neck")
        above_neck = _HEAD_TOP_ABOVE_SKULL_BASE * lf["head"]
        scale = (1.0 - above_neck) / sum(lf[k] for k in vertical)
        for k in vertical:
            lf[k] *= scale
        return cls(
            stature=stature,
            lengths={k: lf[k] * stature for k in LENGTH_KEYS},
            radii={k: float(radius_fractions[k]) * stature for k in RADIUS_KEYS},
        )

    @property
    def head_radius(self) -> float:
        return min(self.radii["head"], 0.5 * self.lengths["head"])


# The head is a capsule along the head's y axis; its centre sits this far (x head length) above the skull base,
# and the head top is half a head length above the centre.
_HEAD_CENTRE_ABOVE_SKULL_BASE = 0.35
_HEAD_TOP_ABOVE_SKULL_BASE = _HEAD_CENTRE_ABOVE_SKULL_BASE + 0.5


def _rx(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


rot_x, rot_y, rot_z = _rx, _ry, _rz


def cross3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross's generality costs ~20x more for a single pair)."""
    a0, a1, a2 = float(a[0]), float(a[1]), float(a[2])
    b0, b1, b2 = float(b[0]), float(b[1]), float(b[2])
    return np.array([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])


@dataclass(frozen=True)
class Skeleton3D:
    """Forward-kinematics result: every point of `POINT_NAMES` (N x 3, world metres) and the root rotation."""

    points: np.ndarray
    root_rotation: np.ndarray
    shape: BodyShape

    def point(self, name: str) -> np.ndarray:
        return self.points[POINT_INDEX[name]]

    def translated(self, offset: np.ndarray) -> Skeleton3D:
        return Skeleton3D(self.points + np.asarray(offset, dtype=float), self.root_rotation, self.shape)

    def body_frame_points(self) -> np.ndarray:
        """Points in the pelvis frame (x left, y up, z forward), origin at the mid hip."""
        return (self.points - self.point("mid_hip")) @ self.root_rotation


def forward_kinematics(
    shape: BodyShape,
    angles: Mapping[str, float],
    root_rotation: np.ndarray | None = None,
    root_position: np.ndarray | None = None,
) -> Skeleton3D:
    """Place every body point from joint angles (degrees, already within limits) and the pelvis pose."""
    a = angles
    L = shape.lengths
    R0 = np.eye(3) if root_rotation is None else np.asarray(root_rotation, dtype=float)
    p0 = np.zeros(3) if root_position is None else np.asarray(root_position, dtype=float)
    pts = np.zeros((len(POINT_NAMES), 3))

    def put(name: str, value: np.ndarray) -> np.ndarray:
        pts[POINT_INDEX[name]] = value
        return value

    def up(length: float) -> np.ndarray:
        return np.array([0.0, length, 0.0])

    mid_hip = put("mid_hip", p0)
    # spine: 40 % of the flexion in the lumbar segment, 60 % plus any kyphosis in the thoracic one
    tw, lat, flex = a.get("spine_twist", 0.0), a.get("spine_lat", 0.0), a.get("spine_flex", 0.0)
    R_lumbar = R0 @ _ry(0.5 * tw) @ _rz(-0.5 * lat) @ _rx(0.4 * flex)
    mid_spine = put("mid_spine", mid_hip + R_lumbar @ up(L["lumbar"]))
    R_thorax = R_lumbar @ _ry(0.5 * tw) @ _rz(-0.5 * lat) @ _rx(0.6 * flex + a.get("kyphosis", 0.0))
    neck = put("neck", mid_spine + R_thorax @ up(L["thoracic"]))
    put("chest", mid_spine + R_thorax @ up(0.55 * L["thoracic"]))
    R_neck = R_thorax @ _ry(a.get("neck_twist", 0.0)) @ _rz(-a.get("neck_lat", 0.0)) @ _rx(a.get("neck_flex", 0.0))
    upper_neck = put("upper_neck", neck + R_neck @ up(L["neck"]))
    R_head = R_neck @ _rx(a.get("head_flex", 0.0))
    _place_head(put, shape, upper_neck, R_head)

    for side, sx in (("left", 1.0), ("right", -1.0)):
        # arm
        shoulder = put(
            f"{side}_shoulder", neck + R_thorax @ np.array([sx * 0.5 * L["shoulder_width"], -L["shoulder_drop"], 0])
        )
        R_sh = (
            R_thorax
            @ _rz(sx * a.get(f"{side}_shoulder_abd", 0.0))
            @ _rx(-a.get(f"{side}_shoulder_flex", 0.0))
            @ _ry(sx * a.get(f"{side}_shoulder_rot", 0.0))
        )
        elbow = put(f"{side}_elbow", shoulder + R_sh @ up(-L["upper_arm"]))
        R_el = R_sh @ _rx(-a.get(f"{side}_elbow_flex", 0.0))
        wrist = put(f"{side}_wrist", elbow + R_el @ up(-L["forearm"]))
        R_wr = R_el @ _rx(-a.get(f"{side}_wrist_flex", 0.0))
        put(f"{side}_hand_tip", wrist + R_wr @ up(-L["hand"]))
        # leg
        hip = put(f"{side}_hip", mid_hip + R0 @ np.array([sx * 0.5 * L["hip_width"], -L["hip_drop"], 0]))
        R_hip = (
            R0
            @ _rz(sx * a.get(f"{side}_hip_abd", 0.0))
            @ _rx(-a.get(f"{side}_hip_flex", 0.0))
            @ _ry(sx * a.get(f"{side}_hip_rot", 0.0))
        )
        knee = put(f"{side}_knee", hip + R_hip @ up(-L["thigh"]))
        R_knee = R_hip @ _rx(a.get(f"{side}_knee_flex", 0.0))
        ankle = put(f"{side}_ankle", knee + R_knee @ up(-L["shank"]))
        R_ankle = R_knee @ _rx(-a.get(f"{side}_ankle_flex", 0.0))
        foot, ah = L["foot"], L["ankle_height"]
        sole = -ah + shape.radii["foot"]  # heel and toe points lie on the foot capsule's axis
        put(f"{side}_heel", ankle + R_ankle @ np.array([0.0, sole, -0.22 * foot]))
        put(f"{side}_big_toe", ankle + R_ankle @ np.array([-sx * 0.10 * foot, sole, 0.74 * foot]))
        put(f"{side}_small_toe", ankle + R_ankle @ np.array([sx * 0.18 * foot, sole, 0.60 * foot]))
        put(f"{side}_toes", ankle + R_ankle @ np.array([sx * 0.04 * foot, sole, 0.66 * foot]))
    return Skeleton3D(points=pts, root_rotation=R0, shape=shape)


def _place_head(
    put: Callable[[str, np.ndarray], np.ndarray], shape: BodyShape, skull_base: np.ndarray, R_head: np.ndarray
) -> None:
    """Head capsule anchors and the face points on its surface (so the head itself can hide them)."""
    hl = shape.lengths["head"]
    R = shape.head_radius
    half = max(0.5 * hl - R, 0.0)  # half the capsule's straight part: top of the capsule = head top
    x_axis, y_axis, z_axis = R_head[:, 0], R_head[:, 1], R_head[:, 2]
    c = put("head_center", skull_base + _HEAD_CENTRE_ABOVE_SKULL_BASE * hl * y_axis + 0.06 * hl * z_axis)
    put("head_low", c - half * y_axis)
    put("head_high", c + half * y_axis)
    hair_shift = 0.10 * R * y_axis - 0.16 * R * z_axis  # hair sits up and back: it never covers the face
    put("hair_low", c - half * y_axis + hair_shift)
    put("hair_high", c + half * y_axis + hair_shift)
    put("head_top", c + 0.5 * hl * y_axis)
    put("head_bottom", c - (half + 0.8 * R) * y_axis + 0.55 * R * z_axis)  # chin, on the capsule's surface
    put("nose", c - 0.10 * hl * y_axis + 1.04 * R * z_axis)
    put("nose_ball", c - 0.10 * hl * y_axis + 0.92 * R * z_axis)  # a small sphere: the nose shows in profile
    eye_y = min(0.04 * hl, half)
    for side, sx in (("left", 1.0), ("right", -1.0)):
        put(f"{side}_eye", c + eye_y * y_axis + R * (sx * 0.45 * x_axis + 0.893 * z_axis))
        put(f"{side}_ear", c - 0.02 * hl * y_axis + R * (sx * 0.97 * x_axis - 0.12 * z_axis))


def head_to_body_ratio(shape: BodyShape) -> float:
    """Crown-to-chin head length over standing height in the rest pose (adult ~0.13, newborn ~0.25)."""
    sk = forward_kinematics(shape, {})
    top = sk.point("head_top")[1]
    sole = min(sk.point("left_heel")[1], sk.point("left_big_toe")[1]) - shape.radii["foot"]
    return float(shape.lengths["head"] / (top - sole))


def trunk_flexion_deg(skeleton: Skeleton3D) -> float:
    """Forward lean of the mid-hip -> neck line from the pelvis's vertical, in the body frame (degrees)."""
    body = skeleton.body_frame_points()
    v = body[POINT_INDEX["neck"]] - body[POINT_INDEX["mid_hip"]]
    return float(np.degrees(np.arctan2(v[2], v[1])))


def resolve_point_names(names: tuple[str, ...] | list[str], extra: tuple[str, ...] = ()) -> list[str]:
    """Map schema keypoint names to body (or prop) point names, through aliases; unknown names are an error."""
    known = set(POINT_NAMES) - RENDER_ONLY | set(extra)
    out, unknown = [], []
    for n in names:
        m = n if n in known else POINT_ALIASES.get(n, n)
        (out if m in known else unknown).append(m)
    if unknown:
        raise SchemaError(
            f"the synthetic renderer cannot produce keypoint(s) {unknown[:5]}: it knows "
            f"{', '.join(sorted(known))} (and aliases {', '.join(sorted(POINT_ALIASES))})"
        )
    return out
