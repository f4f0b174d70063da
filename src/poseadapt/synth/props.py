"""Props built from capsules and panels: wheelchair, chair, cane, walker and an infant's blanket.

Each builder takes the posed person (world points, after support placement) and returns primitives in world
coordinates; the wheelchair also returns its named keypoints (wheel hubs, wheel and caster ground contacts, push
handles) so the wheelchair schema can label them. Geometry is in metres, in a local frame x = the person's left,
y = up, z = the person's forward direction, origin on the floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from poseadapt.synth.body import Skeleton3D, cross3
from poseadapt.synth.render import PrimitiveList

WHEELCHAIR_POINTS: tuple[str, ...] = (
    "left_wheel_hub",
    "right_wheel_hub",
    "left_wheel_contact",
    "right_wheel_contact",
    "left_caster_contact",
    "right_caster_contact",
    "left_push_handle",
    "right_push_handle",
)
BLANKET_HEAT = 0.45  # warmed by the infant beneath it (thermal look)
PROP_POINT_TOLERANCE = 0.03  # metres: a prop keypoint is visible when nothing lies more than this in front of it


@dataclass
class Frame:
    """A local floor frame: origin, and world directions of its x (left), y (up) and z (forward) axes."""

    origin: np.ndarray
    axes: np.ndarray  # 3 x 3, columns x, y, z

    def __call__(self, x: float, y: float, z: float) -> np.ndarray:
        return self.origin + self.axes @ np.array([x, y, z])


@dataclass
class PropResult:
    keypoints: dict[str, np.ndarray] = field(default_factory=dict)


def person_frame(skeleton: Skeleton3D) -> Frame:
    """The floor frame under the mid hip, oriented by the pelvis heading."""
    R = skeleton.root_rotation
    fwd = np.array([R[0, 2], 0.0, R[2, 2]])
    fwd /= max(np.linalg.norm(fwd), 1e-9)
    up = np.array([0.0, 1.0, 0.0])
    left = cross3(up, fwd)
    origin = skeleton.point("mid_hip") * np.array([1.0, 0.0, 1.0])
    return Frame(origin, np.stack([left, up, fwd], axis=1))


def _local(frame: Frame, p: np.ndarray) -> np.ndarray:
    return frame.axes.T @ (p - frame.origin)


def _disc(frame: Frame, centre: tuple[float, float, float], radius: float, n: int = 16) -> np.ndarray:
    """A polygon in the frame's y-z plane (a wheel seen from the side), (n, 3) world points."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    local = np.stack([np.full(n, centre[0]), centre[1] + radius * np.sin(t), centre[2] + radius * np.cos(t)])
    return (frame.origin[:, None] + frame.axes @ local).T


def _quad(frame: Frame, half_w: float, near: tuple[float, float], far: tuple[float, float]) -> list[np.ndarray]:
    """A rectangle across the frame's x (from -half_w to half_w) between two (y, z) edges: seats, backrests."""
    (y0, z0), (y1, z1) = near, far
    return [np.stack([frame(-half_w, y0, z0), frame(half_w, y0, z0), frame(half_w, y1, z1), frame(-half_w, y1, z1)])]


def _metal(rng: np.random.Generator) -> np.ndarray:
    palette = [(60, 60, 60), (170, 170, 175), (40, 40, 140), (130, 60, 30), (20, 20, 20)]
    return np.array(palette[rng.integers(len(palette))], dtype=np.float32)


def add_wheelchair(
    prims: PrimitiveList, rng: np.random.Generator, sk: Skeleton3D, floor_to_feet: float, owner: int
) -> PropResult:
    """A manual wheelchair under a seated person: seat under the thighs, footplate under the feet."""
    fr = person_frame(sk)
    L = {n: _local(fr, sk.point(n)) for n in ("mid_hip", "left_knee", "right_knee", "left_heel", "left_big_toe")}
    thigh_r = sk.shape.radii["thigh"]
    seat_y = min(L["mid_hip"][1] - sk.shape.radii["pelvis"], L["left_knee"][1] - thigh_r) - 0.005
    half_w = 0.5 * sk.shape.lengths["hip_width"] + thigh_r + 0.05
    z_back = L["mid_hip"][2] - 0.14
    z_front = max(L["left_knee"][2], L["right_knee"][2]) - 0.04
    frame_c, cushion = _metal(rng), np.array([30, 30, 30], np.float32) * rng.uniform(0.6, 2.5)
    tire = np.array([22, 22, 22], np.float32)
    tube = 0.013
    xr = half_w + 0.015
    # seat and backrest
    prims.panel(_quad(fr, half_w, (seat_y, z_back), (seat_y, z_front)), cushion, owner)
    back_top = seat_y + rng.uniform(0.38, 0.48)
    prims.panel(_quad(fr, half_w, (seat_y + 0.04, z_back - 0.02), (back_top, z_back - 0.07)), cushion, owner)
    kp: dict[str, np.ndarray] = {}
    wheel_r = rng.uniform(0.28, 0.31)
    foot_y = min(L["left_heel"][1], L["left_big_toe"][1]) - sk.shape.radii["foot"] - 0.005
    for side, sx in (("left", 1.0), ("right", -1.0)):
        x = sx * xr
        post_top = (x, back_top + 0.05, z_back - 0.09)
        handle = (x, back_top + 0.05, z_back - 0.2)
        prims.capsule(fr(x, seat_y - 0.04, z_back - 0.03), fr(*post_top), tube, tube, frame_c, owner)
        prims.capsule(fr(*post_top), fr(*handle), tube * 1.6, tube * 1.6, tire, owner)
        prims.capsule(fr(x, seat_y - 0.04, z_back - 0.03), fr(x, seat_y - 0.04, z_front), tube, tube, frame_c, owner)
        caster = (x, 0.075, z_front + 0.05)
        prims.capsule(fr(x, seat_y - 0.04, z_front), fr(x, 0.16, z_front + 0.03), tube, tube, frame_c, owner)
        prims.capsule(fr(x, 0.16, z_front + 0.03), fr(*caster), tube * 0.8, tube * 0.8, frame_c, owner)
        prims.panel([_disc(fr, caster, 0.075, 12)], tire, owner)
        # footrest hanger down to a plate under the feet
        plate_x = sx * 0.5 * half_w
        plate_corner = fr(plate_x, foot_y, L["left_big_toe"][2] - 0.05)
        prims.capsule(fr(x, seat_y - 0.04, z_front), plate_corner, tube, tube, frame_c, owner)
        # rear wheel: tyre ring, hub, three spokes
        hub = (sx * (xr + 0.045), wheel_r, z_back + 0.06)
        prims.panel([_disc(fr, hub, wheel_r, 24), _disc(fr, hub, wheel_r - 0.035, 24)], tire, owner)
        prims.panel([_disc(fr, hub, 0.035, 10)], frame_c, owner)
        for ang in (0.0, np.pi / 3, 2 * np.pi / 3):
            dy, dz = (wheel_r - 0.03) * np.sin(ang), (wheel_r - 0.03) * np.cos(ang)
            rim_a, rim_b = fr(hub[0], hub[1] + dy, hub[2] + dz), fr(hub[0], hub[1] - dy, hub[2] - dz)
            prims.capsule(rim_a, rim_b, 0.004, 0.004, frame_c * 1.2, owner)
        kp[f"{side}_wheel_hub"] = fr(*hub)
        # ground contacts sit 1.5 cm up, inside the drawn tyre, so they land on the chair's own pixels
        kp[f"{side}_wheel_contact"] = fr(hub[0], 0.015, hub[2])
        kp[f"{side}_caster_contact"] = fr(caster[0], 0.015, caster[2])
        kp[f"{side}_push_handle"] = fr(*handle)
    plate = _quad(fr, 0.85 * half_w, (foot_y, L["left_heel"][2] - 0.05), (foot_y, L["left_big_toe"][2] + 0.06))
    prims.panel(plate, frame_c, owner)
    return PropResult(kp)


def add_chair(prims: PrimitiveList, rng: np.random.Generator, sk: Skeleton3D, owner: int) -> None:
    """A four-legged chair (or stool) under a seated person."""
    fr = person_frame(sk)
    hip = _local(fr, sk.point("mid_hip"))
    knees = [_local(fr, sk.point(n)) for n in ("left_knee", "right_knee")]
    seat_y = min(hip[1] - sk.shape.radii["pelvis"], min(k[1] for k in knees) - sk.shape.radii["knee"]) - 0.005
    half_w = 0.5 * sk.shape.lengths["hip_width"] + sk.shape.radii["thigh"] + 0.06
    zb, zf = hip[2] - 0.16, max(k[2] for k in knees) - 0.06
    wood = np.array([40, 80, 130], np.float32) * rng.uniform(0.5, 1.6)
    prims.panel(_quad(fr, half_w, (seat_y, zb), (seat_y, zf)), wood, owner)
    for x in (-half_w + 0.02, half_w - 0.02):
        for z in (zb + 0.02, zf - 0.02):
            prims.capsule(fr(x, seat_y, z), fr(x, 0.0, z), 0.018, 0.015, wood * 0.8, owner)
    if rng.random() < 0.75:  # a backrest
        top = seat_y + rng.uniform(0.35, 0.5)
        prims.panel(_quad(fr, half_w, (seat_y + 0.15, zb - 0.02), (top, zb - 0.05)), wood, owner)
        for x in (-half_w + 0.02, half_w - 0.02):
            prims.capsule(fr(x, seat_y, zb + 0.01), fr(x, top, zb - 0.05), 0.015, 0.015, wood * 0.8, owner)


def add_cane(prims: PrimitiveList, rng: np.random.Generator, sk: Skeleton3D, side: str, owner: int) -> None:
    """A walking cane from the hand to the floor a little forward and outward."""
    fr = person_frame(sk)
    grip = 0.5 * (sk.point(f"{side}_wrist") + sk.point(f"{side}_hand_tip"))
    g = _local(fr, grip)
    sx = 1.0 if side == "left" else -1.0
    tip = fr(g[0] + sx * 0.05, 0.0, g[2] + rng.uniform(0.03, 0.12))
    color = np.array([[30, 60, 110], [25, 25, 25], [180, 180, 185]][rng.integers(3)], np.float32)
    prims.capsule(grip, tip, 0.011, 0.011, color, owner)
    prims.capsule(grip, fr(g[0], g[1], g[2] + 0.11), 0.012, 0.012, color, owner)


def add_walker(prims: PrimitiveList, rng: np.random.Generator, sk: Skeleton3D, owner: int) -> None:
    """A four-legged walking frame whose grips sit under both hands."""
    fr = person_frame(sk)
    color = _metal(rng) * 1.1
    grips = [_local(fr, 0.5 * (sk.point(f"{s}_wrist") + sk.point(f"{s}_hand_tip"))) for s in ("left", "right")]
    hy = float(np.mean([g[1] for g in grips]))
    zc = float(np.mean([g[2] for g in grips]))
    fronts = []
    for g in grips:
        x = g[0] + (0.03 if g[0] > 0 else -0.03)
        back, front = (x, hy, zc - 0.12), (x, hy, zc + 0.2)
        prims.capsule(fr(*back), fr(*front), 0.014, 0.014, color, owner)
        prims.capsule(fr(*back), fr(x * 1.08, 0.0, zc - 0.15), 0.012, 0.012, color, owner)
        prims.capsule(fr(*front), fr(x * 1.08, 0.0, zc + 0.25), 0.012, 0.012, color, owner)
        fronts.append((x * 1.04, 0.55 * hy, zc + 0.225))
    prims.capsule(fr(*fronts[0]), fr(*fronts[1]), 0.012, 0.012, color, owner)


def add_blanket(prims: PrimitiveList, rng: np.random.Generator, sk: Skeleton3D, owner: int) -> None:
    """A blanket draped like a low tent over a lying infant's legs (and sometimes the belly)."""
    R = sk.root_rotation
    axis = np.array([R[0, 1], 0.0, R[2, 1]])  # towards the head
    axis /= max(np.linalg.norm(axis), 1e-9)
    up = np.array([0.0, 1.0, 0.0])
    side = cross3(up, axis)
    names = ["left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_toes", "right_toes"]
    pts = np.stack([sk.point(n) for n in names])
    s, lat = pts @ axis, pts @ side
    stature = sk.shape.stature
    top_s = float(sk.point("mid_hip") @ axis + rng.uniform(-0.04, 0.15) * stature)
    end_s = float(s.min() - rng.uniform(0.03, 0.08) * stature)
    mid = float(0.5 * (lat.min() + lat.max()))
    half = float(0.5 * (lat.max() - lat.min()) + rng.uniform(0.08, 0.14) * stature)
    ridge = float(pts[:, 1].max() + sk.shape.radii["thigh"] + 0.01)  # draped over the (kept low) legs

    def p(si: float, li: float, y: float) -> np.ndarray:
        return si * axis + li * side + y * up

    palette = [[235, 230, 225], [210, 190, 245], [240, 215, 190], [200, 235, 205], [215, 220, 250]]
    color = np.array(palette[rng.integers(5)], np.float32) * rng.uniform(0.8, 1.0)
    stripes = rng.uniform(6, 14) if rng.random() < 0.5 else 0.0
    a0, a1 = p(top_s, mid, ridge), p(end_s, mid, ridge)
    for sgn in (-1.0, 1.0):
        edge0, edge1 = p(top_s, mid + sgn * half, 0.005), p(end_s, mid + sgn * half, 0.005)
        prims.panel([np.stack([a0, a1, edge1, edge0])], color, owner, stripes, BLANKET_HEAT)
    for s_end, ridge_pt in ((top_s, a0), (end_s, a1)):
        end_cap = np.stack([ridge_pt, p(s_end, mid + half, 0.005), p(s_end, mid - half, 0.005)])
        prims.panel([end_cap], color * 0.95, owner, stripes, BLANKET_HEAT)
