"""Perspective pinhole camera and the view presets (top, diagonal, side, front, random).

World frame: y up, floor at y = 0. Camera frame: OpenCV (x right, y down, z forward). Pixel (col, row) covers
[col, col+1) x [row, row+1), so its centre is (col + 0.5, row + 0.5) and COCO keypoints use the same continuous
coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poseadapt.errors import PoseAdaptError
from poseadapt.synth.body import cross3

VIEWS = ("top", "diagonal", "side", "front", "random")


@dataclass(frozen=True)
class Camera:
    """World -> camera rotation `rotation` (rows: right, down, forward), camera centre `eye`, intrinsics."""

    rotation: np.ndarray
    eye: np.ndarray
    focal: float
    cx: float
    cy: float
    width: int
    height: int

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> camera coordinates (N, 3); z is depth along the optical axis."""
        return (np.asarray(points, dtype=float) - self.eye) @ self.rotation.T

    def project_camera(self, cam_points: np.ndarray) -> np.ndarray:
        """Camera-frame points (N, 3) -> pixel coordinates (N, 2). Points must be in front of the camera."""
        z = np.maximum(cam_points[:, 2], 1e-6)
        return np.stack([self.focal * cam_points[:, 0] / z + self.cx, self.focal * cam_points[:, 1] / z + self.cy], 1)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points -> (pixels (N, 2), depth (N,))."""
        cam = self.to_camera(points)
        return self.project_camera(cam), cam[:, 2]


def look_at(
    eye: np.ndarray,
    target: np.ndarray,
    *,
    image_up_hint: np.ndarray,
    roll_deg: float,
    fov_deg: float,
    width: int,
    height: int,
) -> Camera:
    """A camera at `eye` looking at `target`; `image_up_hint` is the world direction that should point up in the
    image (world up for most views, the person's heading for a bird's-eye view where world up is the view axis)."""
    eye = np.asarray(eye, dtype=float)
    forward = np.asarray(target, dtype=float) - eye
    forward /= np.linalg.norm(forward)
    hint = np.asarray(image_up_hint, dtype=float)
    up = hint - np.dot(hint, forward) * forward
    if np.linalg.norm(up) < 1e-6:  # hint parallel to the view axis: any perpendicular will do
        up = cross3(forward, np.array([1.0, 0.0, 0.0] if abs(forward[0]) < 0.9 else [0.0, 0.0, 1.0]))
    up /= np.linalg.norm(up)
    down = -up
    right = cross3(down, forward)
    c, s = np.cos(np.radians(roll_deg)), np.sin(np.radians(roll_deg))
    right, down = c * right + s * down, -s * right + c * down
    focal = 0.5 * width / np.tan(np.radians(0.5 * fov_deg))
    return Camera(np.stack([right, down, forward]), eye, float(focal), 0.5 * width, 0.5 * height, width, height)


@dataclass(frozen=True)
class ViewSpec:
    """Jitter ranges for one view preset: elevation above the horizon and azimuth from the subject's heading."""

    elevation: tuple[float, float]
    azimuth: tuple[float, float]
    roll: tuple[float, float]
    fov: tuple[float, float] = (40.0, 65.0)
    fill: tuple[float, float] = (0.62, 0.88)  # the subject's farthest joint from the image centre / half the image


VIEW_SPECS: dict[str, ViewSpec] = {
    # cot-side / ceiling recordings: straight down, the subject's head towards the top of the image
    "top": ViewSpec(elevation=(78.0, 90.0), azimuth=(-180.0, 180.0), roll=(-20.0, 20.0)),
    "diagonal": ViewSpec(elevation=(30.0, 60.0), azimuth=(-180.0, 180.0), roll=(-8.0, 8.0)),
    "side": ViewSpec(elevation=(0.0, 15.0), azimuth=(70.0, 110.0), roll=(-5.0, 5.0)),
    "front": ViewSpec(elevation=(0.0, 20.0), azimuth=(-20.0, 20.0), roll=(-5.0, 5.0)),
    # random also frames loosely and tightly: some people are small, some are cut by the image border
    "random": ViewSpec(elevation=(-5.0, 90.0), azimuth=(-180.0, 180.0), roll=(-15.0, 15.0), fill=(0.45, 1.05)),
}


def check_view(view: str) -> str:
    if view not in VIEW_SPECS:
        raise PoseAdaptError(f"unknown view '{view}': choose one of {', '.join(VIEWS)}")
    return view


def sample_camera(
    rng: np.random.Generator,
    view: str,
    *,
    points: np.ndarray,
    heading: np.ndarray,
    width: int,
    height: int,
) -> Camera:
    """A camera of the given view preset framing the subject's `points` (world, N x 3).

    `heading` is the horizontal direction the subject faces (for a lying subject, the direction of its head); the
    azimuth is measured from it, so "front" looks at the face and "side" at a flank, and the top view keeps the
    head towards the top of the image before the roll jitter. The distance is set so the farthest point lands at
    the drawn `fill` fraction of the half image (one refinement of a bounding-sphere first guess).
    """
    spec = VIEW_SPECS[check_view(view)]
    el = np.radians(rng.uniform(*spec.elevation))
    az = np.radians(rng.uniform(*spec.azimuth) * (rng.choice([-1.0, 1.0]) if view == "side" else 1.0))
    fov = rng.uniform(*spec.fov)
    fill = rng.uniform(*spec.fill)
    roll = rng.uniform(*spec.roll)
    h = np.array([heading[0], 0.0, heading[2]], dtype=float)
    h /= max(np.linalg.norm(h), 1e-9)
    left = cross3(np.array([0.0, 1.0, 0.0]), h)  # the subject's left when `h` is its heading
    direction = np.cos(el) * (np.cos(az) * h + np.sin(az) * left) + np.sin(el) * np.array([0.0, 1.0, 0.0])
    lo, hi = points.min(0), points.max(0)
    radius = 0.5 * float(np.linalg.norm(hi - lo)) + 1e-3
    aim = 0.5 * (lo + hi) + rng.normal(0.0, 0.03 * radius, 3)
    hint = h if np.degrees(el) > 60.0 else np.array([0.0, 1.0, 0.0])
    distance = radius / np.sin(np.radians(0.5 * fov))

    def place(d: float) -> Camera:
        eye = aim + d * direction
        return look_at(eye, aim, image_up_hint=hint, roll_deg=roll, fov_deg=fov, width=width, height=height)

    cam = place(distance)
    cam_pts = cam.to_camera(points)
    if float(cam_pts[:, 2].min()) > 0.05 * distance:
        uv = cam.project_camera(cam_pts)
        extent = float(max(np.abs(uv[:, 0] - cam.cx).max() / cam.cx, np.abs(uv[:, 1] - cam.cy).max() / cam.cy))
        # projected size ~ 1 / depth: scale the distance of the aim point, keeping the near points in front
        scale = extent / fill
        near = float(cam_pts[:, 2].min())
        distance = max(distance * scale, distance - near + 0.3 * radius)
        cam = place(distance)
    return cam
