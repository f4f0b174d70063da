"""Body-proportion warps: change limb lengths and head size in image space, keypoints moved with the pixels.

Used by the `ProportionWarp` augmentation (`poseadapt.data.augment`). Two steps:

1. `proportion_targets`: where each labelled keypoint should go. The torso (shoulders, hips, neck, pelvis: any
   keypoint that is not head, arm, hand, leg or foot) stays put; walking the schema's skeleton outwards from it,
   each segment's vector is scaled by its part's ratio (`upper_arm` for shoulder -> elbow, `forearm` for elbow ->
   wrist, `hand`, `thigh`, `shin`, `foot`), so a shortened thigh carries the knee, shin and foot with it. Head
   keypoints (nose, eyes, ears, head top, face) scale by `head` about the neck (the `neck` keypoint, else the
   shoulder midpoint). Parts are found from keypoint names, so any schema with a skeleton works.
2. `mls_maps`: a moving-least-squares similarity deformation (Schaefer, McPhail & Warren 2006) from the
   control points (labelled keypoints, a small ring around each that moves with it, points along each labelled
   bone, and the crop's border, pinned) to their targets, evaluated backwards for every output pixel (dst -> src,
   for `cv2.remap`). At a control point the deformation is exact, so a labelled keypoint's pixels land on its new
   coordinates (a dot painted there is found within 1 px: tests/test_augment_proportion.py).

`PROPORTIONS["infant"]` takes adult proportions to infant ones (relative to torso length), from the same tables
the synthetic renderer uses (`poseadapt.synth.populations`): head (crown to neck) x1.6, upper arm and forearm x0.8,
hand x0.7, thigh x0.75, shin x0.65. `PROPORTIONS["adult"]` is the inverse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

PARTS = ("head", "upper_arm", "forearm", "hand", "thigh", "shin", "foot")
PROPORTIONS: dict[str, dict[str, float]] = {
    "infant": {"head": 1.6, "upper_arm": 0.8, "forearm": 0.8, "hand": 0.7, "thigh": 0.75, "shin": 0.65, "foot": 1.0},
}
PROPORTIONS["adult"] = {k: 1.0 / v for k, v in PROPORTIONS["infant"].items()}

_PART_WORDS = {
    "head": {"nose", "eye", "eyes", "ear", "ears", "head", "mouth", "chin", "face", "forehead", "lip", "jaw", "brow"},
    "upper_arm": {"elbow", "elbows"},
    "forearm": {"wrist", "wrists"},
    "hand": {"hand", "finger", "thumb", "index", "middle", "ring", "pinky", "little", "palm", "knuckle"},
    "thigh": {"knee", "knees"},
    "shin": {"ankle", "ankles"},
    "foot": {"toe", "toes", "heel", "heels", "foot", "feet"},
}


def keypoint_part(name: str) -> str:
    """The body part a keypoint name belongs to (`torso` when no part word matches)."""
    from poseadapt.schemas.mapping import canonical_keypoint_name

    tokens = set(canonical_keypoint_name(name).split("_"))
    for part in ("head", "hand", "foot", "forearm", "upper_arm", "shin", "thigh"):  # most specific first
        if tokens & _PART_WORDS[part]:
            return part
    return "torso"


def proportion_targets(
    keypoints: np.ndarray,
    labelled: np.ndarray,
    names: Sequence[str],
    skeleton: Sequence[tuple[str, str]],
    ratios: Mapping[str, float],
) -> np.ndarray:
    """New (x, y) of every keypoint (unlabelled ones unchanged); see the module docstring."""
    pts = np.asarray(keypoints, np.float64)[:, :2]
    new = pts.copy()
    parts = [keypoint_part(n) for n in names]
    index = {n: i for i, n in enumerate(names)}
    edges = [(index[a], index[b]) for a, b in skeleton if a in index and b in index]
    edges = [(a, b) for a, b in edges if labelled[a] and labelled[b]]
    placed = np.array([labelled[i] and parts[i] == "torso" for i in range(len(names))])
    changed = True
    while changed:  # walk outwards from the torso; every non-head segment scaled by its distal part's ratio
        changed = False
        for a, b in edges:
            for p, c in ((a, b), (b, a)):
                if placed[p] and not placed[c] and parts[c] not in ("torso", "head"):
                    new[c] = new[p] + float(ratios.get(parts[c], 1.0)) * (pts[c] - pts[p])
                    placed[c] = changed = True
    head = [i for i in range(len(names)) if labelled[i] and parts[i] == "head"]
    if head:
        anchor_old = anchor_new = None
        if "neck" in index and labelled[index["neck"]]:
            anchor_old, anchor_new = pts[index["neck"]], new[index["neck"]]
        else:
            shoulders = [i for i, n in enumerate(names) if labelled[i] and "shoulder" in n and parts[i] == "torso"]
            if len(shoulders) >= 2:
                anchor_old, anchor_new = pts[shoulders].mean(0), new[shoulders].mean(0)
        if anchor_old is None:
            anchor_old = anchor_new = pts[head].mean(0)
        scale = float(ratios.get("head", 1.0))
        new[head] = anchor_new + scale * (pts[head] - anchor_old)
    return new


def control_points(
    old: np.ndarray,
    new: np.ndarray,
    labelled: np.ndarray,
    edges: Sequence[tuple[int, int]],
    size: tuple[int, int],
    per_bone: int = 3,
    border: int = 4,
    ring: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) control points: labelled keypoints; a ring of 4 points around each (radius `ring` px, at most 0.4x
    the distance to the nearest other keypoint) that moves with it, so the joint's own pixels translate rather than
    stretch; `per_bone` points inside each labelled bone (limbs stay straight); and `border` points per side of
    the (w, h) crop, pinned in place."""
    src, dst = [old[labelled]], [new[labelled]]
    pts = old[labelled]
    if ring > 0 and len(pts) > 1:
        gaps = np.hypot(*(pts[:, None] - pts[None]).transpose(2, 0, 1))
        np.fill_diagonal(gaps, np.inf)
        radius = np.minimum(ring, 0.4 * gaps.min(1))[:, None, None]
        offsets = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])[None] * radius  # (L, 4, 2)
        src.append((pts[:, None] + offsets).reshape(-1, 2))
        dst.append((new[labelled][:, None] + offsets).reshape(-1, 2))
    ts = np.arange(1, per_bone + 1) / (per_bone + 1)
    for a, b in edges:
        if labelled[a] and labelled[b]:
            src.append(old[a] + ts[:, None] * (old[b] - old[a]))
            dst.append(new[a] + ts[:, None] * (new[b] - new[a]))
    w, h = size
    s = np.linspace(0.0, 1.0, border + 1)[:-1]
    frame = np.concatenate(
        [
            np.stack([s * (w - 1), np.zeros_like(s)], 1),
            np.stack([np.full_like(s, w - 1), s * (h - 1)], 1),
            np.stack([(1 - s) * (w - 1), np.full_like(s, h - 1)], 1),
            np.stack([np.zeros_like(s), (1 - s) * (h - 1)], 1),
        ]
    )
    src.append(frame)
    dst.append(frame)
    return np.concatenate(src), np.concatenate(dst)


def mls_maps(
    dst_ctrl: np.ndarray, src_ctrl: np.ndarray, size: tuple[int, int], alpha: float = 1.0, step: int = 1
) -> np.ndarray:
    """For every output pixel (w, h), its source location under the MLS similarity deformation that takes
    `dst_ctrl` to `src_ctrl` (backward mapping); (h, w, 2) float32 for `cv2.remap`.

    With `step` > 1 (dividing w and h) the deformation is evaluated on every step-th pixel centre and
    interpolated bilinearly (cv2.resize's pixel-centre convention), `step`^2 times less work.
    """
    w, h = size
    if step > 1 and (w % step or h % step):
        step = 1
    ys, xs = np.mgrid[0 : h // step, 0 : w // step].astype(np.float64)
    xs, ys = (xs + 0.5) * step - 0.5, (ys + 0.5) * step - 0.5
    v = (xs + 1j * ys).reshape(-1, 1)  # (N, 1) complex pixel positions
    p = (dst_ctrl[:, 0] + 1j * dst_ctrl[:, 1])[None]  # (1, M)
    q = (src_ctrl[:, 0] + 1j * src_ctrl[:, 1])[None]
    wgt = 1.0 / (np.abs(p - v) ** (2 * alpha) + 1e-8)  # (N, M)
    wsum = wgt.sum(1, keepdims=True)
    p_star = (wgt * p).sum(1, keepdims=True) / wsum
    q_star = (wgt * q).sum(1, keepdims=True) / wsum
    ph, qh = p - p_star, q - q_star
    # the least-squares similarity (a complex factor) from p-hat to q-hat, weighted
    a = (wgt * np.conj(ph) * qh).sum(1, keepdims=True) / np.maximum(
        (wgt * np.abs(ph) ** 2).sum(1, keepdims=True), 1e-12
    )
    f = (v - p_star) * a + q_star
    maps = np.stack([f.real, f.imag], -1).reshape(h // step, w // step, 2).astype(np.float32)
    return maps if step == 1 else cv2.resize(maps, (w, h), interpolation=cv2.INTER_LINEAR)


def warp_image(image: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Resample `image` at the backward `maps` (bilinear, edges replicated)."""
    return cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
