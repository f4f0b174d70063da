"""Depth-correct rasterisation of capsules and flat panels into colour, depth and primitive-id buffers.

Speed comes from never touching a pixel outside a primitive's bounding rectangle and doing everything inside it
with whole-array numpy: per pixel, the closest point on the projected axis gives the capsule's inside test, an
approximate surface depth (axis depth minus the radius times the bulge) and a normal for Lambert shading. Panels
(seats, wheels, blankets) are planar polygons: cv2 fills their footprint and the plane equation gives the exact
depth. The id buffer then answers every later question (visibility, silhouettes) without re-rendering.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from poseadapt.synth.body import cross3
from poseadapt.synth.camera import Camera

NEAR = 0.05  # metres: primitives closer to the camera than this are dropped
PROP_HEAT = 0.12  # furniture and aids: a little above the room (0) in the thermal look


@dataclass
class PrimitiveList:
    """Capsules and panels in world coordinates, each with a BGR colour, a stripe frequency, an owner tag and a
    heat (0 room temperature .. 1 bare skin) for the thermal look."""

    cap_a: list[np.ndarray] = field(default_factory=list)
    cap_b: list[np.ndarray] = field(default_factory=list)
    cap_ra: list[float] = field(default_factory=list)
    cap_rb: list[float] = field(default_factory=list)
    cap_color: list[np.ndarray] = field(default_factory=list)
    cap_pattern: list[float] = field(default_factory=list)
    cap_owner: list[int] = field(default_factory=list)
    cap_heat: list[float] = field(default_factory=list)
    panel_loops: list[list[np.ndarray]] = field(default_factory=list)
    panel_color: list[np.ndarray] = field(default_factory=list)
    panel_pattern: list[float] = field(default_factory=list)
    panel_owner: list[int] = field(default_factory=list)
    panel_heat: list[float] = field(default_factory=list)

    def capsule(
        self,
        a: np.ndarray,
        b: np.ndarray,
        ra: float,
        rb: float,
        color: np.ndarray,
        owner: int,
        pattern: float = 0.0,
        heat: float = PROP_HEAT,
    ) -> None:
        self.cap_a.append(a)
        self.cap_b.append(b)
        self.cap_ra.append(float(ra))
        self.cap_rb.append(float(rb))
        self.cap_color.append(color)
        self.cap_pattern.append(float(pattern))
        self.cap_owner.append(owner)
        self.cap_heat.append(float(heat))

    def panel(
        self, loops: list[np.ndarray], color: np.ndarray, owner: int, pattern: float = 0.0, heat: float = PROP_HEAT
    ) -> None:
        """A planar polygon (first loop) with optional holes (further loops), vertices (M, 3) in world metres."""
        self.panel_loops.append([np.asarray(p, dtype=float) for p in loops])
        self.panel_color.append(color)
        self.panel_pattern.append(float(pattern))
        self.panel_owner.append(owner)
        self.panel_heat.append(float(heat))

    def owners(self) -> np.ndarray:
        """Owner tag of every primitive id (capsules first, then panels)."""
        return np.array(self.cap_owner + self.panel_owner, dtype=np.int32)


@dataclass
class Buffers:
    shade: np.ndarray  # H x W float32: Lambert shading x pattern of the front-most primitive
    depth: np.ndarray  # H x W float32, camera z (inf where nothing was drawn)
    ids: np.ndarray  # H x W int32, primitive id (-1 = background)


@dataclass(frozen=True)
class Light:
    direction: tuple[float, float, float]  # camera frame, from the surface towards the light (unit)
    ambient: float
    tint: tuple[float, float, float]  # BGR multiplier


class Workspace:
    """Image-sized scratch buffers, reused from one sample to the next in a thread.

    Fresh megabyte-sized arrays per image cost more than the drawing itself (the allocator hands back new pages
    that fault on first touch), so every full-image buffer lives here. Anything returned to a caller is a copy.
    """

    def __init__(self, height: int, width: int) -> None:
        self.shape = (height, width)
        self.depth = np.empty(self.shape, np.float32)
        self.ids = np.empty(self.shape, np.int32)
        self.shade = np.empty(self.shape, np.float32)
        self.owner = np.empty(self.shape, np.int32)
        self.plane = np.empty(self.shape, np.float32)
        self.color = np.empty((*self.shape, 3), np.float32)
        self.color2 = np.empty((*self.shape, 3), np.float32)
        self.color3 = np.empty((*self.shape, 3), np.float32)
        self.mask = np.empty(self.shape, np.uint8)


_local = threading.local()


def workspace(height: int, width: int) -> Workspace:
    ws = getattr(_local, "workspace", None)
    if ws is None or ws.shape != (height, width):
        ws = _local.workspace = Workspace(height, width)
    return ws


def rasterize(camera: Camera, prims: PrimitiveList, light: Light, ws: Workspace) -> Buffers:
    """Draw every primitive with a z-test into the workspace's depth / id / shade buffers (colour comes later)."""
    h, w = ws.shape
    ws.shade.fill(0.0)
    ws.depth.fill(np.inf)
    ws.ids.fill(-1)
    buf = Buffers(shade=ws.shade, depth=ws.depth, ids=ws.ids)
    xs = np.arange(w, dtype=np.float32) + 0.5
    ys = np.arange(h, dtype=np.float32) + 0.5
    if prims.cap_a:
        _draw_capsules(camera, buf, prims, light, xs, ys)
    for k in range(len(prims.panel_loops)):
        _draw_panel(camera, buf, prims, k, len(prims.cap_a) + k, light, xs, ys)
    return buf


def compose_color(buf: Buffers, prims: PrimitiveList, light: Light, ws: Workspace) -> np.ndarray:
    """Colour = primitive colour x tint x shade where something was drawn; `ws.color` (the background) elsewhere.
    Returns `ws.color`, composited in place."""
    palette = np.asarray(prims.cap_color + prims.panel_color + [np.zeros(3)], dtype=np.float32)
    palette *= np.asarray(light.tint, dtype=np.float32)
    # gather whole 12-byte BGR records (faster than numpy's axis-0 take); id -1 takes the last row
    rgb = np.dtype((np.void, 12))
    np.take(palette.view(rgb).reshape(-1), buf.ids, out=ws.color2.view(rgb).reshape(ws.shape))
    cv2.merge([buf.shade, buf.shade, buf.shade], dst=ws.color3)
    cv2.multiply(ws.color2, ws.color3, dst=ws.color2)
    np.greater_equal(buf.ids, 0, out=ws.mask, casting="unsafe")
    cv2.copyTo(ws.color2, ws.mask, ws.color)
    return ws.color


def compose_thermal(buf: Buffers, prims: PrimitiveList, ws: Workspace, rng: np.random.Generator) -> np.ndarray:
    """A long-wave infrared (white-hot) frame in `ws.color`: grey levels follow each surface's heat, not its
    colour, so clothing patterns and lighting vanish, skin glows and the room stays dark.

    The visible background drawn in `ws.color` survives only as a faint, blurred temperature variation (floors
    and walls are not uniform); body surfaces dim slightly where they turn from the camera. The grey levels then
    pass through a random automatic-gain window, as a thermal camera's AGC maps its scene range to 8 bits.
    """
    h, w = ws.shape
    gray = cv2.cvtColor(ws.color, cv2.COLOR_BGR2GRAY) * np.float32(1.0 / 255.0)
    room = cv2.GaussianBlur(gray, (0, 0), max(h, w) / 40.0)
    room -= np.float32(room.mean())
    room *= np.float32(rng.uniform(0.05, 0.15))
    heats = np.asarray(prims.cap_heat + prims.panel_heat + [0.0], dtype=np.float32)
    heat = np.take(heats, buf.ids)
    heat *= np.float32(0.88) + np.float32(0.12) * np.clip(buf.shade, 0.0, 1.0)
    drawn = buf.ids >= 0
    temperature = np.where(drawn, heat, room)
    low, high = rng.uniform(0.05, 0.25), rng.uniform(0.78, 0.97)
    level = (np.float32(low) + np.float32(high - low) * temperature) * np.float32(255.0)
    cv2.merge([level, level, level], dst=ws.color)
    return ws.color


def finish_thermal(ws: Workspace, rng: np.random.Generator, noise_max: float) -> np.ndarray:
    """A thermal sensor's low resolution (the frame resampled down 2-4x and back up) and its noise, then 8-bit."""
    h, w = ws.shape
    factor = rng.uniform(2.0, 4.0)
    small = cv2.resize(ws.color, (max(4, round(w / factor)), max(4, round(h / factor))), interpolation=cv2.INTER_AREA)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    noise = rng.uniform(0.0, noise_max)
    if noise > 0.5:
        unit = _unit_noise(rng, h, w)
        cv2.merge([unit, unit, unit], dst=ws.color3)
        cv2.scaleAdd(ws.color3, float(noise), img, dst=img)
    np.maximum(img, 0.0, out=img)
    return cv2.convertScaleAbs(img)


def _draw_capsules(
    camera: Camera, buf: Buffers, prims: PrimitiveList, light: Light, xs: np.ndarray, ys: np.ndarray
) -> None:
    h, w = buf.depth.shape
    ca = camera.to_camera(np.asarray(prims.cap_a))
    cb = camera.to_camera(np.asarray(prims.cap_b))
    pa, pb = camera.project_camera(ca), camera.project_camera(cb)
    ra, rb = np.asarray(prims.cap_ra), np.asarray(prims.cap_rb)
    f = camera.focal
    za, zb = ca[:, 2], cb[:, 2]
    pra = f * ra / np.maximum(za, NEAR)
    prb = f * rb / np.maximum(zb, NEAR)
    x0s = np.floor(np.minimum(pa[:, 0] - pra, pb[:, 0] - prb)).astype(int)
    x1s = np.ceil(np.maximum(pa[:, 0] + pra, pb[:, 0] + prb)).astype(int) + 1
    y0s = np.floor(np.minimum(pa[:, 1] - pra, pb[:, 1] - prb)).astype(int)
    y1s = np.ceil(np.maximum(pa[:, 1] + pra, pb[:, 1] + prb)).astype(int) + 1
    keep = (np.minimum(za, zb) > NEAR) & (x1s > 0) & (y1s > 0) & (x0s < w) & (y0s < h)
    lx, ly, lz = light.direction
    amb = light.ambient
    for i in np.flatnonzero(keep).tolist():
        x0, x1 = max(int(x0s[i]), 0), min(int(x1s[i]), w)
        y0, y1 = max(int(y0s[i]), 0), min(int(y1s[i]), h)
        ax, ay = float(pa[i, 0]), float(pa[i, 1])
        dx, dy = float(pb[i, 0]) - ax, float(pb[i, 1]) - ay
        px = xs[x0:x1][None, :] - np.float32(ax)
        py = ys[y0:y1][:, None] - np.float32(ay)
        len2 = dx * dx + dy * dy
        if len2 > 1e-9:
            t = (px * np.float32(dx / len2) + py * np.float32(dy / len2)).clip(0.0, 1.0)
            ex = px - t * np.float32(dx)
            ey = py - t * np.float32(dy)
        else:
            t = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
            ex, ey = px + t, py + t
        r0, r1 = float(pra[i]), float(prb[i])
        pr = np.float32(r0) + t * np.float32(r1 - r0)
        d2 = (ex * ex + ey * ey) / (pr * pr + np.float32(1e-6))
        inside = d2 < 1.0
        if not inside.any():
            continue
        q = np.sqrt(np.maximum(np.float32(1.0) - d2, np.float32(0.0)))
        wr = np.float32(ra[i]) + t * np.float32(rb[i] - ra[i])
        depth = np.float32(za[i]) + t * np.float32(zb[i] - za[i]) - wr * q
        zrect = buf.depth[y0:y1, x0:x1]
        m = inside & (depth < zrect)
        if not m.any():
            continue
        inv = np.float32(1.0) / (pr + np.float32(1e-6))
        shade = (np.float32(lx) * ex + np.float32(ly) * ey) * inv - np.float32(lz) * q
        shade = np.float32(amb) + np.float32(1.0 - amb) * np.maximum(shade, np.float32(0.0))
        stripes = prims.cap_pattern[i]
        if stripes:
            shade = shade * (np.float32(0.8) + np.float32(0.2) * (np.sin(t * np.float32(stripes)) > 0))
        zrect[m] = depth[m]
        buf.ids[y0:y1, x0:x1][m] = i
        buf.shade[y0:y1, x0:x1][m] = shade[m]


def _draw_panel(
    camera: Camera, buf: Buffers, prims: PrimitiveList, k: int, pid: int, light: Light, xs: np.ndarray, ys: np.ndarray
) -> None:
    h, w = buf.depth.shape
    loops_cam = [camera.to_camera(loop) for loop in prims.panel_loops[k]]
    if min(float(lc[:, 2].min()) for lc in loops_cam) <= NEAR:
        return
    outer = loops_cam[0]
    normal = cross3(outer[1] - outer[0], outer[2] - outer[0])
    norm = np.linalg.norm(normal)
    if norm < 1e-12:
        return
    normal /= norm
    loops_px = [camera.project_camera(lc) for lc in loops_cam]
    allpx = np.concatenate(loops_px)
    x0, y0 = max(int(np.floor(allpx[:, 0].min())), 0), max(int(np.floor(allpx[:, 1].min())), 0)
    x1, y1 = min(int(np.ceil(allpx[:, 0].max())) + 1, w), min(int(np.ceil(allpx[:, 1].max())) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    shift = 4  # sub-pixel vertices; cv2 puts integer coordinates at pixel centres, hence the -0.5
    pts = [np.round((lp - [x0 + 0.5, y0 + 0.5]) * (1 << shift)).astype(np.int32) for lp in loops_px]
    cv2.fillPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=shift)
    inside = mask.astype(bool)
    if not inside.any():
        return
    f = camera.focal
    rx = (xs[x0:x1][None, :] - np.float32(camera.cx)) / np.float32(f)
    ry = (ys[y0:y1][:, None] - np.float32(camera.cy)) / np.float32(f)
    c = float(normal @ outer[0])
    denom = np.float32(normal[0]) * rx + np.float32(normal[1]) * ry + np.float32(normal[2])
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.float32(c) / denom
    zrect = buf.depth[y0:y1, x0:x1]
    m = inside & (depth < zrect) & (depth > NEAR)
    if not m.any():
        return
    lit = abs(float(normal @ np.asarray(light.direction)))
    shade = light.ambient + (1.0 - light.ambient) * lit
    zrect[m] = depth[m]
    buf.ids[y0:y1, x0:x1][m] = pid
    stripes = prims.panel_pattern[k]
    if stripes:
        band = (np.sin((xs[x0:x1][None, :] + ys[y0:y1][:, None]) * np.float32(stripes / 40.0)) > 0).astype(np.float32)
        buf.shade[y0:y1, x0:x1][m] = np.float32(shade) * (np.float32(0.82) + np.float32(0.18) * band[m])
    else:
        buf.shade[y0:y1, x0:x1][m] = np.float32(shade)


_NOISE_TILE = 512
_noise_table: np.ndarray | None = None


def _unit_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A window of a fixed standard-normal table at a random offset: per-image noise without drawing 65k normals
    (the table comes from a constant seed, so images stay a function of their own generator)."""
    global _noise_table
    if h > _NOISE_TILE or w > _NOISE_TILE:
        return rng.standard_normal((h, w), dtype=np.float32)
    if _noise_table is None:
        _noise_table = np.random.default_rng(20240611).standard_normal((2 * _NOISE_TILE,) * 2, dtype=np.float32)
    y, x = int(rng.integers(0, _NOISE_TILE)), int(rng.integers(0, _NOISE_TILE))
    return _noise_table[y : y + h, x : x + w]


def finish_image(ws: Workspace, rng: np.random.Generator, blur_max: float, noise_max: float) -> np.ndarray:
    """Optical blur and sensor (luminance) noise on `ws.color`, then a new 8-bit BGR image."""
    img = ws.color
    sigma = rng.uniform(0.0, blur_max)
    if sigma > 0.35:
        img = cv2.GaussianBlur(img, (0, 0), sigma, dst=ws.color2)
    noise = rng.uniform(0.0, noise_max)
    if noise > 0.5:
        unit = _unit_noise(rng, img.shape[0], img.shape[1])
        cv2.merge([unit, unit, unit], dst=ws.color3)
        cv2.scaleAdd(ws.color3, float(noise), img, dst=img)
    np.maximum(img, 0.0, out=img)
    return cv2.convertScaleAbs(img)  # saturates at 255
