"""Keypoint-aware augmentation for top-down samples, driven by an explicit `numpy.random.Generator`.

Two stages, run by `run_transforms` (and so by `TopDownDataset`) in this order:

1. *Box* transforms (`RandomFlip`, `RandomHalfBody`, `RandomBBoxTransform`) only edit the sample's geometry:
   centre, scale, rotation and the flip flag, plus the keypoints in the current (possibly mirrored) image frame.
   Nothing touches pixels yet.
2. `TopDownAffine` composes that geometry into one 2x3 matrix and resamples the image once (exact and fast; see
   `poseadapt.data.topdown`). Keypoints move with the same matrix.
3. *Pixel* transforms (`PhotometricDistortion`, `RandomBlur`, `CoarseOcclusion`, `ToTensor`) work on the small
   crop, which is far cheaper than on the full image.

Defaults follow the ViTPose / mmpose 1.x top-down recipe (flip 0.5, half-body p 0.3, scale clip(N(1, 0.5), 0.5,
1.5), rotation clip(N(0, 40), +-80) with p 0.6). Every class is configured by keyword arguments only, so a recipe
layer can build the list from YAML: `build_transforms([{"type": "RandomFlip", "prob": 0.5}, ...])`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from poseadapt.data.topdown import compose_affine, fix_aspect_ratio, flip_matrix, udp_warp_matrix, warp_image
from poseadapt.errors import PoseAdaptError
from poseadapt.schemas import KeypointSchema

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CoarseOcclusion",
    "FourierStyle",
    "PhotometricDistortion",
    "ProportionWarp",
    "RandomBBoxTransform",
    "RandomBlur",
    "RandomFlip",
    "RandomHalfBody",
    "TopDownAffine",
    "TopDownSample",
    "ToTensor",
    "Transform",
    "body_halves",
    "build_transforms",
    "flip_sample",
    "run_transforms",
    "split_stages",
    "to_tensor",
    "vitpose_train_transforms",
]

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

# Name tokens (after `canonical_keypoint_name`) that put a keypoint in the lower half, and groups that do.
_LOWER_BODY_WORDS = frozenset(
    "hip hips pelvis knee knees ankle ankles heel heels toe toes foot feet leg legs thigh shin calf".split()
)
_LOWER_BODY_GROUPS = ("lower_body", "legs", "back_legs", "hind_legs", "feet", "foot")


@dataclass
class TopDownSample:
    """One person instance on its way through the pipeline.

    Before the crop, `image` is the whole source image and `keypoints` (K, 3: x, y, v) are in the current image
    frame: mirrored when `flipped`, already permuted by the schema's flip pairs. After `TopDownAffine`, `image` is
    the network-input crop, `keypoints` are in input pixels and `matrix` maps *source* image pixels to the input.
    """

    image: np.ndarray
    keypoints: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    schema: KeypointSchema
    rotation: float = 0.0
    flipped: bool = False
    cropped: bool = False
    matrix: np.ndarray | None = None
    image_size: tuple[int, int] = field(default=(0, 0))  # source (w, h)
    view: np.ndarray | None = None  # 2x2 map applied about the crop centre by TopDownAffine (RandomForeshorten)

    def __post_init__(self) -> None:
        if self.image_size == (0, 0):
            self.image_size = (int(self.image.shape[1]), int(self.image.shape[0]))
        self.keypoints = np.array(self.keypoints, dtype=np.float64)
        self.center = np.array(self.center, dtype=np.float64)
        self.scale = np.array(self.scale, dtype=np.float64)

    @property
    def visible(self) -> np.ndarray:
        """Labelled keypoints (COCO v > 0: v = 1 occluded-but-labelled counts, as in mmpose)."""
        return self.keypoints[:, 2] > 0


class Transform:
    """Base class: `stage` is "box" (geometry before the crop) or "pixel" (after it)."""

    stage: ClassVar[str] = "pixel"

    def __call__(self, sample: TopDownSample, rng: np.random.Generator) -> TopDownSample:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _check_prob(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


# --------------------------------------------------------------------------------------------- box stage
class RandomFlip(Transform):
    """Mirror horizontally with probability `prob`, swapping left/right keypoints by the schema's flip pairs.

    The centre moves to W - 1 - x and keypoints to W - 1 - x (pixel-centre mirror), so the flipped crop is the
    exact mirror image of the unflipped one and the flipped pose is a valid pose of the same schema.
    """

    stage = "box"

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = _check_prob("prob", prob)
        self._flip_index: dict[int, tuple[KeypointSchema, np.ndarray]] = {}

    def _index(self, schema: KeypointSchema) -> np.ndarray:
        cached = self._flip_index.get(id(schema))
        if cached is None or cached[0] is not schema:
            cached = (schema, np.asarray(schema.flip_index, dtype=np.intp))
            self._flip_index[id(schema)] = cached
        return cached[1]

    def __call__(self, sample: TopDownSample, rng: np.random.Generator) -> TopDownSample:
        if rng.random() >= self.prob:
            return sample
        return flip_sample(sample, self._index(sample.schema))


def flip_sample(sample: TopDownSample, flip_index: np.ndarray) -> TopDownSample:
    """Mirror a not-yet-cropped sample (centre, keypoints, labels); the image itself is mirrored inside the warp.

    A rotation drawn before the flip is negated: the mirror of a crop rotated by r is the mirrored image's crop
    rotated by -r, so flip and rotation commute whatever order a recipe lists them in.
    """
    if sample.cropped:
        raise ValueError("flip_sample must run before TopDownAffine")
    width = sample.image_size[0]
    kpts = sample.keypoints[flip_index].copy()
    kpts[:, 0] = width - 1 - kpts[:, 0]
    sample.keypoints = kpts
    sample.center = np.array([width - 1 - sample.center[0], sample.center[1]])
    sample.rotation = -sample.rotation
    sample.flipped = not sample.flipped
    return sample


def body_halves(schema: KeypointSchema) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower) keypoint indices for half-body crops, split as mmpose 1.x's `upper_body_ids`/`lower_body_ids`.

    Lower = hips (and a pelvis / mid hip / root), knees, ankles and feet, found by name after spelling
    normalisation, plus the members of any `lower_body`, `legs`, `back_legs`, `hind_legs`, `feet` or `foot`
    group; upper = all the rest (head, trunk, arms, hands, face). A group is added to the name rule, never a
    substitute for it: COCO-WholeBody's `foot` group alone would leave its hips, knees and ankles in the upper half.
    Animals: hind legs and the tail root are lower, front legs (front paws included) upper. mmpose's ap10k.py
    marks R_F_Paw 'lower' but L_F_Paw 'upper' (and humanart21.py the fingers 'lower'); those look like slips and
    are not copied, so a flipped sample keeps every point in the same half.
    """
    from poseadapt.schemas.mapping import canonical_keypoint_name

    grouped = {n for g in _LOWER_BODY_GROUPS if g in schema.groups for n in schema.groups[g]}
    lower = []
    for i, name in enumerate(schema.keypoints):
        canonical = canonical_keypoint_name(name)
        tokens = set(canonical.split("_"))
        if (
            name in grouped
            or tokens & _LOWER_BODY_WORDS
            or canonical.endswith(("back_paw", "root_of_tail"))
            or canonical in ("mid_hip", "pelvis")
        ):
            lower.append(i)
    lower_set = set(lower)
    upper = [i for i in range(len(schema.keypoints)) if i not in lower_set]
    return np.asarray(upper, dtype=np.intp), np.asarray(lower, dtype=np.intp)


class RandomHalfBody(Transform):
    """With probability `prob`, re-centre the box on the upper or the lower body (mmpose 1.x RandomHalfBody).

    Applies only when at least `min_total_keypoints` are labelled (mmpose 1.x: 9; mmpose 0.x / ViTPose: 8). Upper
    is preferred with `upper_prioritized_prob`; a half with too few labelled points (`min_upper_keypoints`,
    `min_lower_keypoints`) gives way to the other. The new box spans the chosen labelled keypoints, centred on
    their mean, times `padding`. It teaches the model truncated people, which top-down crops from a detector often are.
    """

    stage = "box"

    def __init__(
        self,
        prob: float = 0.3,
        min_total_keypoints: int = 9,
        min_upper_keypoints: int = 2,
        min_lower_keypoints: int = 3,
        padding: float = 1.5,
        upper_prioritized_prob: float = 0.7,
    ) -> None:
        self.prob = _check_prob("prob", prob)
        self.min_total_keypoints = int(min_total_keypoints)
        self.min_upper_keypoints = int(min_upper_keypoints)
        self.min_lower_keypoints = int(min_lower_keypoints)
        self.padding = float(padding)
        self.upper_prioritized_prob = _check_prob("upper_prioritized_prob", upper_prioritized_prob)
        self._halves: dict[int, tuple[KeypointSchema, tuple[np.ndarray, np.ndarray]]] = {}

    def _split(self, schema: KeypointSchema) -> tuple[np.ndarray, np.ndarray]:
        cached = self._halves.get(id(schema))
        if cached is None or cached[0] is not schema:
            cached = (schema, body_halves(schema))
            self._halves[id(schema)] = cached
        return cached[1]

    def select(self, sample: TopDownSample, rng: np.random.Generator) -> np.ndarray | None:
        """Indices of the half to crop to, or None (not applied). Always draws the same random numbers."""
        visible = sample.visible
        apply = rng.random() < self.prob
        prefer_upper = rng.random() < self.upper_prioritized_prob
        if visible.sum() < self.min_total_keypoints or not apply:
            return None
        upper, lower = self._split(sample.schema)
        upper, lower = upper[visible[upper]], lower[visible[lower]]
        upper_ok, lower_ok = len(upper) >= self.min_upper_keypoints, len(lower) >= self.min_lower_keypoints
        if upper_ok and (prefer_upper or not lower_ok):
            return upper
        return lower if lower_ok else None

    def __call__(self, sample: TopDownSample, rng: np.random.Generator) -> TopDownSample:
        chosen = self.select(sample, rng)
        if chosen is None:
            return sample
        pts = sample.keypoints[chosen, :2]
        extent = (pts.max(axis=0) - pts.min(axis=0)) * self.padding
        if extent.max() < 1.0:  # coincident points: no box to crop to
            return sample
        sample.center = pts.mean(axis=0)
        sample.scale = extent
        return sample


def _clipped_normal(rng: np.random.Generator, mean: float, sigma: float, low: float, high: float) -> float:
    return float(np.clip(rng.normal(mean, sigma), low, high))


class RandomBBoxTransform(Transform):
    """Random shift, scale and rotation of the box (the geometry is composed, the image is warped once later).

    - scale: multiply by clip(N(1, `scale_sigma`), *`scale_range`) with probability `scale_prob` (ViTPose 0.5, 0.5-1.5).
    - rotation: clip(N(0, `rotate_sigma`), +-`rotate_limit`) degrees with probability `rotate_prob` (40, 80, 0.6).
    - shift: centre += U(-1, 1) * `shift_factor` * scale with probability `shift_prob` (mmpose 1.x: 0.16, 0.3;
      ViTPose 0.x had none: set `shift_prob=0` to reproduce it).
    """

    stage = "box"

    def __init__(
        self,
        shift_factor: float = 0.16,
        shift_prob: float = 0.3,
        scale_sigma: float = 0.5,
        scale_range: Sequence[float] = (0.5, 1.5),
        scale_prob: float = 1.0,
        rotate_sigma: float = 40.0,
        rotate_limit: float = 80.0,
        rotate_prob: float = 0.6,
    ) -> None:
        self.shift_factor = float(shift_factor)
        self.shift_prob = _check_prob("shift_prob", shift_prob)
        self.scale_sigma = float(scale_sigma)
        lo, hi = (float(v) for v in scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        self.scale_range = (lo, hi)
        self.scale_prob = _check_prob("scale_prob", scale_prob)
        self.rotate_sigma = float(rotate_sigma)
        self.rotate_limit = float(rotate_limit)
        self.rotate_prob = _check_prob("rotate_prob", rotate_prob)

    def __call__(self, sample: TopDownSample, rng: np.random.Generator) -> TopDownSample:
        # Draw every number unconditionally so one sample's choices never shift the stream for the others.
        shift = rng.uniform(-1.0, 1.0, size=2) * self.shift_factor
        do_shift, do_scale, do_rotate = rng.random(3) < (self.shift_prob, self.scale_prob, self.rotate_prob)
        factor = _clipped_normal(rng, 1.0, self.scale_sigma, *self.scale_range)
        angle = _clipped_normal(rng, 0.0, self.rotate_sigma, -self.rotate_limit, self.rotate_limit)
        if do_shift:
            sample.center = sample.center + shift * sample.scale
        if do_scale:
            sample.scale = sample.scale * factor
        if do_rotate:
            sample.rotation = sample.rotation + angle
        return sample


class RandomForeshorten(Transform):
    """With probability `prob`, shorten the person along a random direction by a factor drawn from `factor`: the
    2-D effect of tilting the camera away from someone lying in the image plane (a body seen from above, then from
    a camera tilted to elevation e, shortens along the tilt by about sin(e): 0.55-1.0 covers top to diagonal).

    A box-stage transform: it only sets the sample's `view` map, which `TopDownAffine` folds into its single warp,
    so pixels come from the source image (no black border) and keypoints and `matrix` stay exact.
    """

    stage = "box"

    def __init__(self, prob: float = 0.5, factor: Sequence[float] = (0.55, 1.0)) -> None:
        self.prob = _check_prob("prob", prob)
        lo, hi = (float(v) for v in factor)
        if not 0.2 <= lo <= hi <= 1.0:
            raise ValueError(f"factor must satisfy 0.2 <= low <= high <= 1, got {list(factor)}")
        self.factor = (lo, hi)

    def __call__(self, sample: TopDownSample, rng: np.random.Generator) -> TopDownSample:
        apply = rng.random() < self.prob
        angle, f = rng.uniform(0.0, math.pi), rng.uniform(*self.factor)
        if apply:
            c, s = math.cos(angle), math.sin(angle)
            axis = np.array([[c, -s], [s, c]])
            view = axis @ np.diag([1.0, f]) @ axis.T
            sample.view = view if sample.view is None else view @ sample.view
        return sample


class TopDownAffine(Transform):
    """The single warp: fix the box to the input aspect ratio, build the UDP matrix (with the mirror folded in when
    flipped) and resample the source image once with bilinear interpolation. `input_size` is (w, h)."""

    stage = "crop"

    def __init__(self, input_size: Sequence[int] = (192, 256)) -> None:
        w, h = (int(v) for v in input_size)
        if w < 2 or h < 2:
            raise ValueError(f"input_size must be at least 2x2, got {input_size}")
        self.input_size = (w, h)

    def __call__(self, sample: TopDownSample, rng: np.random.Generator | None = None) -> TopDownSample:
        if sample.cropped:
            raise ValueError("sample is already cropped")
        w, h = self.input_size
        sample.scale = fix_aspect_ratio(np.maximum(sample.scale, 1e-6), w / h)
        frame_to_input = udp_warp_matrix(sample.center, sample.scale, sample.rotation, self.input_size)
        if sample.view is not None:
            centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
            about_centre = np.concatenate([sample.view, (centre - sample.view @ centre)[:, None]], axis=1)
            frame_to_input = compose_affine(about_centre, frame_to_input)
        matrix = compose_affine(frame_to_input, flip_matrix(sample.image_size[0])) if sample.flipped else frame_to_input
        sample.image = warp_image(sample.image, matrix, self.input_size)
        kpts = sample.keypoints.copy()
        kpts[:, :2] = kpts[:, :2] @ frame_to_input[:, :2].T + frame_to_input[:, 2]
        sample.keypoints = kpts
        sample.matrix = matrix
        sample.cropped = True
        return sample


# --------------------------------------------------------------------------------------------- pixel stage
def _require_uint8_crop(sample: TopDownSample, who: str) -> np.ndarray:
    image = sample.image
    if not sample.cropped or image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"{who} needs the uint8 HWC crop: list it after the crop and before ToTensor")
    return image


class PhotometricDistortion(Transform):
    """Brightness, contrast, saturation and hue jitter on the uint8 crop via lookup tables (mmdet's recipe).

    Each part applies with probability `prob`: brightness +- `brightness_delta`, contrast x U(`contrast_range`)
    (both folded into one LUT), saturation x U(`saturation_range`) and hue +- `hue_delta` (OpenCV hue units,
    0-180) through one HSV round trip. Keypoints are untouched.
    """

    def __init__(
        self,
        brightness_delta: float = 32.0,
        contrast_range: Sequence[float] = (0.5, 1.5),
        saturation_range: Sequence[float] = (0.5, 1.5),
        hue_delta: float = 18.0,
        prob: float = 0.5,
    ) -> None:
        self.brightness_delta = float(brightness_delta)
        self.contrast_range = (float(contrast_range[0]), float(contrast_range[1]))
        self.saturation_range = (float(saturation_range[0]), float(saturation_range[1]))
        self.hue_delta = float(hue_delta)
        self.prob = _check_prob("prob", prob)

    def draw(self, rng: np.random.Generator) -> tuple[float, float, float, float]:
        """(brightness offset, contrast factor, saturation factor, hue offset); identity values where not applied."""
        applies = rng.random(4) < self.prob
        beta = rng.uniform(-self.brightness_delta, self.brightness_delta)
        alpha = rng.uniform(*self.contrast_range)
        sat = rng.uniform(*self.saturation_range)
        hue = rng.uniform(-self.hue_delta, self.hue_delta)
        return (
            beta if applies[0] else 0.0,
            alpha if applies[1] else 1.0,
            sat if applies[2] else 1.0,
            hue if applies[3] else 0.0,
        )

    @staticmethod
    def apply(image: np.ndarray, brightness: float, contrast: float, saturation: float, hue: float) -> np.ndarray:
        """RGB uint8 -> RGB uint8: clip((x + brightness) * contrast), then S x saturation and H + hue in HSV."""
        levels = np.arange(256, dtype=np.float64)
        if brightness != 0.0 or contrast != 1.0:
            image = cv2.LUT(image, np.clip(np.rint((levels + brightness) * contrast), 0, 255).astype(np.uint8))
        if saturation != 1.0 or hue != 0.0:
            hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
            table = np.stack(
                [np.rint(levels + hue) % 180, np.clip(np.rint(levels * saturation), 0, 255), levels], axis=-1
            ).astype(np.uint8)
            image = cv2.cvtColor(cv2.LUT(hsv, table[None]), cv2.COLOR_HSV2RGB)
        return image

    def __call__(self, sample: TopDownSample, rng: np.random.Generator) -> TopDownSample:
        image = _require_uint8_crop(sample, "PhotometricDistortion")
        sample.image = self.apply(image, *self.draw(rng))
        return sample


class RandomBlur(Transform):
    """With probability `prob`, a Gaussian blur (sigma U(`sigma_range`)) or a motion blur (a line kernel of
    `motion_kernel_range` pixels at a random angle), chosen with `motion_prob`: defocus and camera/limb motion."""

    def __init__(
        self,
        prob: float = 0.1,
        motion_prob: float = 0.5,
        sigma_range: Sequence[float] = (0.5, 2.0),
        motion_kernel_range: Sequence[int] = (3, 9),
    ) -> None:
        self.prob = _check_prob("prob", prob)
        self.motion_prob = _check_prob("motion_prob", motion_prob)
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        self.motion_kernel_range = (int(motion_kernel_range[0]), int(motion_kernel_range[1]))

    def __call__(self, sample: TopDownSample, rng: np.random.Generator) -> TopDownSample:
        image = _require_uint8_crop(sample, "RandomBlur")
        apply, motion = rng.random(2) < (self.prob, self.motion_prob)
        sigma = rng.uniform(*self.sigma_range)
        length = int(rng.integers(self.motion_kernel_range[0], self.motion_kernel_range[1] + 1))
        angle = rng.uniform(0.0, math.pi)
        if not apply:
            return sample
        if motion:
            size = length | 1  # odd, so the kernel has a centre pixel and the image does not shift
            kernel = np.zeros((size, size), np.float32)
            r, c = (size - 1) / 2, (size - 1) / 2
            dx, dy = math.cos(angle) * r, math.sin(angle) * r
            cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
            kernel += kernel[::-1, ::-1].copy()  # point-symmetric, so blurring never shifts the image
            kernel /= kernel.sum()
            sample.image = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
        else:
            sample.image = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
        return sample


class RandomGrayscale(Transform):
    """With probability `prob`, the crop in grey levels (ITU-R 601 luma in all three channels), inverted with
    probability `invert_prob`.

    Colour and its polarity carry no pose: a model that has only seen colour cameras reads an infrared or depth-
    like frame (a thermal camera's white-hot or black-hot body) poorly. Training some crops in grey, some
    inverted, leaves it the body's outline and shading, which every camera shares.
    """

    def __init__(self, prob: float = 0.2, invert_prob: float = 0.0) -> None:
        self.prob = _check_prob("prob", prob)
        self.invert_prob = _check_prob("invert_prob", invert_prob)

    def __call__(self, sample: TopDownSample, rng: np.random.Generator) -> TopDownSample:
        image = _require_uint8_crop(sample, "RandomGrayscale")
        apply, invert = rng.random(2) < (self.prob, self.invert_prob)
        if not apply:
            return sample
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if invert:
            gray = 255 - gray
        sample.image = cv2.merge([gray, gray, gray])
        return sample


class FourierStyle(Transform):
    """With probability `prob`, the crop takes the low-frequency amplitude spectrum of a random unlabelled frame
    from `images` (FDA; `poseadapt.data.fourier_style`): the target camera's global look on a labelled source
    crop, the pose untouched.

    For a camera the model has never seen (thermal, infrared, a dim ward) when only unlabelled frames of it
    exist. `beta` sets how much of the spectrum moves (FDA uses 0.01-0.09; larger gives stronger artefacts);
    `max_images` bounds how many frames are kept in memory (a seeded random choice).
    """

    def __init__(self, images: str, beta: float = 0.05, prob: float = 0.5, max_images: int = 200) -> None:
        from poseadapt.data.fourier_style import load_style_frames

        self.prob = _check_prob("prob", prob)
        if not 0.0 < float(beta) <= 0.5:
            raise ValueError(f"beta must be in (0, 0.5], got {beta}")
        if int(max_images) < 1:
            raise ValueError(f"max_images must be at least 1, got {max_images}")
        self.images, self.beta, self.max_images = str(images), float(beta), int(max_images)
        self._frames = load_style_frames(self.images, self.max_images)
        self._amplitudes: dict[tuple[int, tuple[int, int]], np.ndarray] = {}  # (frame, crop size) -> spectrum

    def __call__(self, sample: TopDownSample, rng: np.random.Generator) -> TopDownSample:
        from poseadapt.data.fourier_style import fourier_style, style_amplitude

        image = _require_uint8_crop(sample, "FourierStyle")
        apply = rng.random() < self.prob
        index = int(rng.integers(len(self._frames)))
        if not apply:
            return sample
        key = (index, (image.shape[1], image.shape[0]))
        if key not in self._amplitudes:
            self._amplitudes[key] = style_amplitude(self._frames[index], key[1])
        sample.image = fourier_style(image, self._amplitudes[key], self.beta)
        return sample


class CoarseOcclusion(Transform):
    """With probability `prob`, paint 1..`max_holes` rectangles (sides U(`size_range`) of the crop) with a random
    colour or noise.

    Keypoints under a rectangle keep their labels and weights on purpose: the network must learn to infer occluded
    joints from the rest of the body (the situation of infants under blankets or people behind wheelchair frames);
    dropping their labels would teach it to give up instead. Same choice as RTMPose's CoarseDropout.
    """

    def __init__(
        self,
        prob: float = 0.5,
        max_holes: int = 1,
        size_range: Sequence[float] = (0.2, 0.4),
        noise_prob: float = 0.5,
    ) -> None:
        self.prob = _check_prob("prob", prob)
        if max_holes < 1:
            raise ValueError(f"max_holes must be >= 1, got {max_holes}")
        self.max_holes = int(max_holes)
        self.size_range = (float(size_range[0]), float(size_range[1]))
        self.noise_prob = _check_prob("noise_prob", noise_prob)

    def holes(self, width: int, height: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
        """The rectangles (x0, y0, x1, y1), end-exclusive, to paint on a `width` x `height` crop."""
        count = int(rng.integers(1, self.max_holes + 1))
        sizes = rng.uniform(*self.size_range, size=(count, 2)) * (width, height)
        corners = rng.random((count, 2)) * ((width, height) - sizes)
        out = []
        for (x0, y0), (w, h) in zip(corners, sizes, strict=True):
            out.append((int(x0), int(y0), int(x0 + max(w, 1.0)), int(y0 + max(h, 1.0))))
        return out

    def __call__(self, sample: TopDownSample, rng: np.random.Generator) -> TopDownSample:
        image = _require_uint8_crop(sample, "CoarseOcclusion")
        if rng.random() >= self.prob:
            return sample
        image = image.copy()
        for x0, y0, x1, y1 in self.holes(image.shape[1], image.shape[0], rng):
            if rng.random() < self.noise_prob:
                image[y0:y1, x0:x1] = rng.integers(0, 256, size=(y1 - y0, x1 - x0, image.shape[2]), dtype=np.uint8)
            else:
                image[y0:y1, x0:x1] = rng.integers(0, 256, size=image.shape[2], dtype=np.uint8)
        sample.image = image
        return sample


class ProportionWarp(Transform):
    """With probability `prob`, warp body proportions in the crop: limbs shortened or lengthened and the head
    grown or shrunk around the skeleton (adult towards infant by default), keypoints moved with the pixels.

    `target` names a preset of part ratios (`infant`, `adult`; see `poseadapt.data.proportion`), `ratios` overrides
    parts (`head`, `upper_arm`, `forearm`, `hand`, `thigh`, `shin`, `foot`; 1 = unchanged). Each sample applies
    `ratio ** t` with t ~ U(`strength`), so the recipe sees a spread between the two populations. The warp is a
    moving-least-squares similarity deformation pinned at the crop's border (exact at the keypoints, smooth
    elsewhere). Needs the schema's skeleton; a sample with fewer than 2 labelled keypoints is left alone. List it
    after the crop and before ToTensor. The sample's `matrix` stays the affine crop (training only).
    """

    def __init__(
        self,
        prob: float = 0.5,
        target: str = "infant",
        ratios: Mapping[str, float] | None = None,
        strength: Sequence[float] = (0.5, 1.0),
        per_bone: int = 3,
        step: int = 2,
    ) -> None:
        from poseadapt.data.proportion import PARTS, PROPORTIONS

        self.prob = _check_prob("prob", prob)
        if target not in PROPORTIONS:
            raise ValueError(f"target must be one of {', '.join(PROPORTIONS)}, got {target!r}")
        unknown = sorted(set(ratios or {}) - set(PARTS))
        if unknown:
            raise ValueError(f"ratios: unknown part(s) {unknown}; parts: {', '.join(PARTS)}")
        merged = {**PROPORTIONS[target], **{k: float(v) for k, v in (ratios or {}).items()}}
        if any(not 0.1 <= v <= 10.0 for v in merged.values()):
            raise ValueError(f"ratios must lie in [0.1, 10], got {merged}")
        self.target = target
        self.ratios = merged
        lo, hi = (float(v) for v in strength)
        if not 0.0 <= lo <= hi <= 2.0:
            raise ValueError(f"strength must satisfy 0 <= low <= high <= 2, got {list(strength)}")
        self.strength = (lo, hi)
        if per_bone < 0 or step < 1:
            raise ValueError(f"per_bone must be >= 0 and step >= 1, got {per_bone} and {step}")
        self.per_bone, self.step = int(per_bone), int(step)

    def warp(self, sample: TopDownSample, t: float) -> TopDownSample:
        """Apply the ratios raised to `t` (deterministic; `__call__` draws t)."""
        from poseadapt.data import proportion as P

        image = _require_uint8_crop(sample, "ProportionWarp")
        schema, labelled = sample.schema, sample.visible
        if labelled.sum() < 2 or not schema.skeleton:
            return sample
        ratios = {k: v**t for k, v in self.ratios.items()}
        old = sample.keypoints[:, :2].copy()
        new = P.proportion_targets(old, labelled, schema.keypoints, schema.skeleton, ratios)
        index = {n: i for i, n in enumerate(schema.keypoints)}
        edges = [(index[a], index[b]) for a, b in schema.skeleton if a in index and b in index]
        size = (image.shape[1], image.shape[0])
        src, dst = P.control_points(old, new, labelled, edges, size, self.per_bone)
        sample.image = P.warp_image(image, P.mls_maps(dst, src, size, step=self.step))
        kpts = sample.keypoints.copy()
        kpts[labelled, :2] = new[labelled]
        sample.keypoints = kpts
        return sample

    def __call__(self, sample: TopDownSample, rng: np.random.Generator) -> TopDownSample:
        apply = rng.random() < self.prob
        t = rng.uniform(*self.strength)
        return self.warp(sample, t) if apply else sample


def to_tensor(
    image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """uint8 HWC RGB -> float32 CHW, (x - mean) / std with 0-255 ImageNet statistics (what ViTPose expects).

    Plane by plane in place: ~10x faster than a transpose-then-astype copy, which walks memory with a stride of 3.
    """
    out = np.empty((image.shape[2], image.shape[0], image.shape[1]), np.float32)
    for channel, plane in enumerate(cv2.split(image)):
        out[channel] = plane
        out[channel] -= np.float32(mean[channel])
        out[channel] *= np.float32(1.0 / std[channel])
    return out


class ToTensor(Transform):
    """Normalise the crop to float32 CHW with ImageNet mean/std; `as_torch=True` returns a torch tensor (torch is
    imported only then; a DataLoader's collate turns numpy arrays into tensors anyway)."""

    def __init__(
        self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, as_torch: bool = False
    ) -> None:
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.as_torch = bool(as_torch)

    def __call__(self, sample: TopDownSample, rng: np.random.Generator | None = None) -> TopDownSample:
        image = _require_uint8_crop(sample, "ToTensor")
        chw = to_tensor(image, self.mean, self.std)
        if self.as_torch:
            import torch

            sample.image = torch.from_numpy(chw)
        else:
            sample.image = chw
        return sample


# --------------------------------------------------------------------------------------------- composition
TRANSFORMS: dict[str, type[Transform]] = {
    cls.__name__: cls
    for cls in (
        RandomFlip,
        RandomHalfBody,
        RandomBBoxTransform,
        RandomForeshorten,
        TopDownAffine,
        PhotometricDistortion,
        RandomBlur,
        RandomGrayscale,
        FourierStyle,
        CoarseOcclusion,
        ProportionWarp,
        ToTensor,
    )
}


def build_transforms(specs: Iterable[Mapping[str, Any] | Transform]) -> list[Transform]:
    """Transforms from recipe entries like {"type": "RandomFlip", "prob": 0.5}; Transform objects pass through."""
    out: list[Transform] = []
    for spec in specs:
        if isinstance(spec, Transform):
            out.append(spec)
            continue
        kwargs = dict(spec)
        name = kwargs.pop("type", None)
        if name not in TRANSFORMS:
            raise PoseAdaptError(f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")
        try:
            out.append(TRANSFORMS[name](**kwargs))
        except (TypeError, ValueError) as exc:
            raise PoseAdaptError(f"transform {name}: {exc}") from None
    return out


def split_stages(transforms: Sequence[Transform]) -> tuple[list[Transform], list[Transform]]:
    """(box, pixel) transforms, keeping order; a box transform listed after a pixel one is a config error, since
    it could not run after the crop. An explicit TopDownAffine in the list is dropped (the pipeline owns the crop)."""
    box: list[Transform] = []
    pixel: list[Transform] = []
    for t in transforms:
        if isinstance(t, TopDownAffine):
            continue
        if t.stage == "box":
            if pixel:
                raise PoseAdaptError(f"{type(t).__name__} edits the box and must come before {type(pixel[0]).__name__}")
            box.append(t)
        else:
            pixel.append(t)
    return box, pixel


def run_transforms(
    sample: TopDownSample,
    transforms: Sequence[Transform],
    rng: np.random.Generator,
    input_size: Sequence[int] = (192, 256),
) -> TopDownSample:
    """Box transforms, then the one warp to `input_size` (w, h), then pixel transforms."""
    box, pixel = split_stages(transforms)
    for t in box:
        sample = t(sample, rng)
    sample = TopDownAffine(input_size)(sample)
    for t in pixel:
        sample = t(sample, rng)
    return sample


def vitpose_train_transforms() -> list[Transform]:
    """The ViTPose top-down training recipe: flip 0.5, half-body p 0.3, scale and rotation (no pixel transforms)."""
    return [RandomFlip(prob=0.5), RandomHalfBody(), RandomBBoxTransform()]
