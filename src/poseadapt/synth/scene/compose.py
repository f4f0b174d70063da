"""One synthetic image: people of a population, their props, a camera of the chosen view, light, and labels.

`render_scene` is the single place where a sample is made: sample bodies and poses, place them on the floor /
chair / wheelchair, add props, frame them with the view preset, rasterise everything once, and read every label
(keypoints, visibility, silhouettes) off the same depth and id buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from poseadapt.synth.appearance import BODY_SEGMENTS, KEYPOINT_RADIUS_KEYS, Outfit, sample_outfit
from poseadapt.synth.body import (
    FACE_POINTS,
    POINT_INDEX,
    POINT_NAMES,
    RENDER_ONLY,
    BodyShape,
    Skeleton3D,
    clip_angles,
    cross3,
    forward_kinematics,
    trunk_flexion_deg,
)
from poseadapt.synth.camera import Camera, sample_camera
from poseadapt.synth.populations import Population
from poseadapt.synth.poses import PoseSample, sample_pose
from poseadapt.synth.props import (
    PROP_POINT_TOLERANCE,
    WHEELCHAIR_POINTS,
    add_blanket,
    add_cane,
    add_chair,
    add_walker,
    add_wheelchair,
)
from poseadapt.synth.render import (
    Light,
    PrimitiveList,
    Workspace,
    compose_color,
    compose_thermal,
    finish_image,
    finish_thermal,
    rasterize,
    workspace,
)
from poseadapt.synth.scene.background import BackgroundSource

BODY_KEYPOINTS: tuple[str, ...] = tuple(n for n in POINT_NAMES if n not in RENDER_ONLY)
KEYPOINT_NAMES: tuple[str, ...] = BODY_KEYPOINTS + WHEELCHAIR_POINTS
KEYPOINT_INDEX = {n: i for i, n in enumerate(KEYPOINT_NAMES)}
_BODY_POINT_IDX = np.array([POINT_INDEX[n] for n in BODY_KEYPOINTS])
_SEG_A = np.array([POINT_INDEX[s[1]] for s in BODY_SEGMENTS])
_SEG_B = np.array([POINT_INDEX[s[2]] for s in BODY_SEGMENTS])
OCCLUDER = -2  # owner tag of props that belong to no instance (chair, cane, walker, blanket)


@dataclass
class RenderOptions:
    """Image-level settings: size, view, people per image, backgrounds, degradations."""

    width: int = 256
    height: int = 256
    view: str = "random"
    people: tuple[int, int] = (1, 1)
    blur_max: float = 1.2
    noise_max: float = 6.0
    look: str = "visible"  # "visible" (a colour camera) or "thermal" (long-wave infrared, white-hot)


@dataclass
class PersonRecord:
    """Labels of one rendered person; keypoint arrays follow `KEYPOINT_NAMES` (body points, then chair points)."""

    pixels: np.ndarray  # (N, 2) continuous pixel coordinates
    depth: np.ndarray  # (N,) camera z in metres
    visibility: np.ndarray  # (N,) 0 outside the image or absent, 1 occluded, 2 visible
    present: np.ndarray  # (N,) False for points the scene does not have (chair points without a wheelchair)
    mask: np.ndarray  # (H, W) bool: the body's visible pixels
    mask_with_device: np.ndarray  # (H, W) bool: body plus its wheelchair (same as mask without one)
    pose: str
    props: list[str]
    skeleton: Skeleton3D
    torso_normal_cam: np.ndarray  # unit anterior normal of the shoulders-hip plane, camera frame

    @property
    def trunk_flexion(self) -> float:
        return trunk_flexion_deg(self.skeleton)


@dataclass
class SynthSample:
    """One rendered image (uint8 BGR, as cv2.imread returns) and its people."""

    image: np.ndarray
    persons: list[PersonRecord]
    camera: Camera
    index: int
    population: str
    view: str
    extra: dict = field(default_factory=dict)


@dataclass
class PlacedPerson:
    """A posed person in world coordinates, dressed, with its wheelchair's keypoints when it sits in one."""

    skeleton: Skeleton3D
    pose: PoseSample
    outfit: Outfit
    chair_points: dict[str, np.ndarray] = field(default_factory=dict)
    props: list[str] = field(default_factory=list)  # 'wheelchair', 'chair', 'cane', 'walker', 'blanket'


def _radius(shape: BodyShape, key: str) -> float:
    if key == "head":
        return shape.head_radius
    if key == "hair":
        return 1.04 * shape.head_radius
    if key == "nose":
        return 0.17 * shape.head_radius
    return shape.radii[key]


def _lowest_surface(sk: Skeleton3D) -> float:
    pts = sk.points
    ra = np.array([_radius(sk.shape, s[3]) for s in BODY_SEGMENTS])
    rb = np.array([_radius(sk.shape, s[4]) for s in BODY_SEGMENTS])
    return float(min((pts[_SEG_A, 1] - ra).min(), (pts[_SEG_B, 1] - rb).min()))


def _feet_bottom(sk: Skeleton3D) -> float:
    names = ("left_heel", "right_heel", "left_toes", "right_toes")
    return min(float(sk.point(n)[1]) for n in names) - sk.shape.radii["foot"]


def _place_person(rng: np.random.Generator, pop: Population) -> tuple[PlacedPerson, PrimitiveList]:
    """Sample, pose and support one person; props are returned in a primitive list owned by 'person 0'."""
    shape = pop.sample_shape(rng)
    pose = sample_pose(rng, pop)
    lying = pose.kind in ("supine", "prone", "side_lying")
    blanket = lying and rng.random() < pop.props.get("blanket", 0.0)
    if blanket:  # a tucked-in blanket keeps the legs low
        for side in ("left", "right"):
            pose.angles[f"{side}_hip_flex"] = min(pose.angles[f"{side}_hip_flex"], rng.uniform(0.0, 35.0))
            pose.angles[f"{side}_knee_flex"] = min(pose.angles[f"{side}_knee_flex"], rng.uniform(10.0, 50.0))
        pose.angles = clip_angles(pose.angles, pop.limits())
    sk = forward_kinematics(shape, pose.angles, pose.root_rotation)
    props = PrimitiveList()
    chair_points: dict[str, np.ndarray] = {}
    names = [pose.support] if pose.support != "floor" else []
    if pose.support == "wheelchair":
        plate = rng.uniform(0.06, 0.12)
        sk = sk.translated(np.array([0.0, plate - _feet_bottom(sk), 0.0]))
        chair_points = add_wheelchair(props, rng, sk, plate, owner=1).keypoints
    elif pose.support == "chair":
        sk = sk.translated(np.array([0.0, -_feet_bottom(sk), 0.0]))
        add_chair(props, rng, sk, owner=OCCLUDER)
    else:
        sk = sk.translated(np.array([0.0, -_lowest_surface(sk), 0.0]))
    for aid in pose.aids:
        if aid == "walker":
            add_walker(props, rng, sk, owner=OCCLUDER)
        elif aid.startswith("cane_"):
            add_cane(props, rng, sk, aid.removeprefix("cane_"), owner=OCCLUDER)
        names.append(aid.split("_")[0])
    if blanket:
        add_blanket(props, rng, sk, owner=OCCLUDER)
        names.append("blanket")
    outfit = sample_outfit(rng, pop.style, pop.gray_hair_probability, pop.hair_probability, pop.one_piece, pop.swimwear)
    return PlacedPerson(sk, pose, outfit, chair_points, names), props


def _heading(sk: Skeleton3D) -> np.ndarray:
    """Facing direction when upright; head direction when lying (what 'front' and 'top' are relative to)."""
    R = sk.root_rotation
    return R[:, 2] if abs(R[1, 1]) > 0.6 else R[:, 1]


def add_body(prims: PrimitiveList, placed: PlacedPerson, owner: int) -> None:
    sk, outfit, shape = placed.skeleton, placed.outfit, placed.skeleton.shape
    pts = sk.points
    for k, (name, _a, _b, ka, kb, material) in enumerate(BODY_SEGMENTS):
        if name == "hair" and outfit.bald:
            continue
        prims.capsule(
            pts[_SEG_A[k]],
            pts[_SEG_B[k]],
            _radius(shape, ka),
            _radius(shape, kb),
            outfit.colors[material],
            owner,
            outfit.patterns.get(material, 0.0),
            outfit.heat(material),
        )


def _merge(into: PrimitiveList, other: PrimitiveList, offset: np.ndarray, person: int) -> None:
    """Append `other` (built for person 0) shifted by `offset`, retagging owners for `person`."""

    def tag(owner: int) -> int:
        return owner if owner < 0 else owner + 2 * person

    for i in range(len(other.cap_a)):
        into.capsule(
            other.cap_a[i] + offset,
            other.cap_b[i] + offset,
            other.cap_ra[i],
            other.cap_rb[i],
            other.cap_color[i],
            tag(other.cap_owner[i]),
            other.cap_pattern[i],
            other.cap_heat[i],
        )
    for i in range(len(other.panel_loops)):
        into.panel(
            [lp + offset for lp in other.panel_loops[i]],
            other.panel_color[i],
            tag(other.panel_owner[i]),
            other.panel_pattern[i],
            other.panel_heat[i],
        )


def _keypoint_tolerances(sk: Skeleton3D) -> np.ndarray:
    shape = sk.shape
    tol = np.full(len(KEYPOINT_NAMES), PROP_POINT_TOLERANCE)
    for i, name in enumerate(BODY_KEYPOINTS):
        if name in FACE_POINTS or name.startswith("head_"):
            tol[i] = 0.5 * shape.head_radius
        else:
            tol[i] = 1.1 * max(_radius(shape, k) for k in KEYPOINT_RADIUS_KEYS[name])
    return tol


def render_scene(
    rng: np.random.Generator,
    population: Population,
    options: RenderOptions,
    backgrounds: BackgroundSource,
    *,
    index: int = 0,
) -> SynthSample:
    """Render one image with its labels. All randomness comes from `rng`, so (seed, index) fixes the sample."""
    n_people = int(rng.integers(options.people[0], options.people[1] + 1))
    placed: list[PlacedPerson] = []
    prims = PrimitiveList()
    centres: list[np.ndarray] = []
    radii: list[float] = []
    for p in range(n_people):
        person, props = _place_person(rng, population)
        pts = person.skeleton.points
        centre = 0.5 * (pts.min(0) + pts.max(0))
        radius = float(np.linalg.norm(pts.max(0) - pts.min(0)) * 0.5)
        offset = np.zeros(3)
        if p > 0:  # beside the people already placed, on the same floor
            ang = rng.uniform(0, 2 * np.pi)
            dist = (radii[0] + radius) * rng.uniform(0.75, 1.3)
            offset = centres[0] * [1, 0, 1] - centre * [1, 0, 1] + dist * np.array([np.cos(ang), 0.0, np.sin(ang)])
        person = PlacedPerson(
            person.skeleton.translated(offset),
            person.pose,
            person.outfit,
            {k: v + offset for k, v in person.chair_points.items()},
            person.props,
        )
        add_body(prims, person, owner=2 * p)
        _merge(prims, props, offset, p)
        placed.append(person)
        centres.append(centre + offset)
        radii.append(radius)

    all_pts = np.concatenate(
        [q.skeleton.points for q in placed]
        + [np.stack(list(q.chair_points.values())) for q in placed if q.chair_points]
    )
    camera = sample_camera(
        rng,
        options.view,
        points=all_pts,
        heading=_heading(placed[0].skeleton),
        width=options.width,
        height=options.height,
    )
    lx, ly = rng.uniform(-0.6, 0.6), rng.uniform(-0.9, 0.1)
    ldir = np.array([lx, ly, -1.0])
    ldir /= np.linalg.norm(ldir)
    light = Light(tuple(ldir), float(rng.uniform(0.3, 0.55)), tuple(rng.uniform(0.9, 1.1, 3)))
    ws = workspace(options.height, options.width)
    backgrounds.draw(rng, ws.color, ws.plane)
    image, persons = render_placed(placed, prims, camera, light, ws, rng, options)
    return SynthSample(image, persons, camera, index, population.name, options.view)


def render_placed(
    placed: list[PlacedPerson],
    prims: PrimitiveList,
    camera: Camera,
    light: Light,
    ws: Workspace,
    rng: np.random.Generator,
    options: RenderOptions,
) -> tuple[np.ndarray, list[PersonRecord]]:
    """Rasterise bodies (already in `prims`, person p owning tag 2p and its wheelchair 2p+1) over the background
    in `ws.color`, and label them."""
    buf = rasterize(camera, prims, light, ws)
    if options.look == "thermal":
        compose_thermal(buf, prims, ws, rng)
        image = finish_thermal(ws, rng, options.noise_max)
    else:
        compose_color(buf, prims, light, ws)
        image = finish_image(ws, rng, options.blur_max, options.noise_max)
    owners = np.append(prims.owners(), np.int32(-1)).astype(np.int32)  # id -1 (background) takes the last
    owner_img = np.take(owners, buf.ids, out=ws.owner)
    persons = [_label_person(p, q, camera, buf.depth, owner_img) for p, q in enumerate(placed)]
    return image, persons


def render_posed(
    people: list[PlacedPerson],
    camera: Camera,
    *,
    light: Light | None = None,
    background: np.ndarray | None = None,
    seed: int = 0,
) -> SynthSample:
    """Render given posed people with a given camera (no props, plain background unless given): the way to
    check one configuration exactly, e.g. that a hip hidden behind the body is labelled occluded."""
    prims = PrimitiveList()
    for p, person in enumerate(people):
        add_body(prims, person, owner=2 * p)
    options = RenderOptions(width=camera.width, height=camera.height, blur_max=0.0, noise_max=0.0)
    ws = workspace(camera.height, camera.width)
    ws.color[...] = 128.0 if background is None else background
    light = light or Light((0.0, -0.5, -0.866), 0.45, (1.0, 1.0, 1.0))
    image, persons = render_placed(people, prims, camera, light, ws, np.random.default_rng(seed), options)
    return SynthSample(image, persons, camera, 0, "custom", "custom")


def _label_person(
    p: int, placed: PlacedPerson, camera: Camera, depth: np.ndarray, owner_img: np.ndarray
) -> PersonRecord:
    """Project the person's keypoints and read visibility and silhouettes off the depth / owner buffers."""
    sk = placed.skeleton
    h, w = depth.shape
    pts = np.zeros((len(KEYPOINT_NAMES), 3))
    present = np.ones(len(KEYPOINT_NAMES), dtype=bool)
    pts[: len(BODY_KEYPOINTS)] = sk.points[_BODY_POINT_IDX]
    for j, name in enumerate(WHEELCHAIR_POINTS):
        k = len(BODY_KEYPOINTS) + j
        if name in placed.chair_points:
            pts[k] = placed.chair_points[name]
        else:
            present[k] = False
    cam = camera.to_camera(pts)
    z = cam[:, 2]
    pix = camera.project_camera(cam)
    col, row = np.floor(pix[:, 0]).astype(int), np.floor(pix[:, 1]).astype(int)
    inside = present & (z > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    vis = np.zeros(len(KEYPOINT_NAMES), dtype=np.int8)
    vis[inside] = 1
    ci, ri = col[inside], row[inside]
    front_owner = owner_img[ri, ci]
    front_depth = depth[ri, ci]
    tol = _keypoint_tolerances(sk)[inside]
    is_chair_point = np.arange(len(KEYPOINT_NAMES))[inside] >= len(BODY_KEYPOINTS)
    instance = (front_owner == 2 * p) | (is_chair_point & (front_owner == 2 * p + 1))
    seen = instance & (front_depth >= z[inside] - tol)
    vis[np.flatnonzero(inside)[seen]] = 2
    body_mask = owner_img == 2 * p
    device_mask = body_mask | (owner_img == 2 * p + 1) if placed.chair_points else body_mask
    ls, rs, mh, nk = (sk.point(n) for n in ("left_shoulder", "right_shoulder", "mid_hip", "neck"))
    normal = cross3(ls - rs, nk - mh)
    normal = camera.rotation @ (normal / max(np.linalg.norm(normal), 1e-9))
    return PersonRecord(pix, z, vis, present, body_mask, device_mask, placed.pose.kind, list(placed.props), sk, normal)
