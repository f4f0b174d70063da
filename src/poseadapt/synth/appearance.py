"""What a body is made of for the renderer: its capsule segments, and each person's colours and clothing.

Colours are BGR floats in 0..255 (OpenCV order, as the images are written).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (segment, point a, point b, radius key at a, radius key at b, material)
BODY_SEGMENTS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("head", "head_low", "head_high", "head", "head", "skin"),
    ("hair", "hair_low", "hair_high", "hair", "hair", "hair"),
    ("nose", "nose_ball", "nose_ball", "nose", "nose", "skin"),
    ("neck", "neck", "upper_neck", "neck", "neck", "skin"),
    ("waist", "mid_hip", "mid_spine", "waist", "waist", "top"),
    ("chest", "mid_spine", "chest", "chest", "chest", "top"),
    ("left_flank", "left_hip", "left_shoulder", "flank", "flank", "top"),
    ("right_flank", "right_hip", "right_shoulder", "flank", "flank", "top"),
    ("shoulder_girdle", "left_shoulder", "right_shoulder", "shoulder_girdle", "shoulder_girdle", "top"),
    ("pelvis", "left_hip", "right_hip", "pelvis", "pelvis", "bottom"),
    ("left_upper_arm", "left_shoulder", "left_elbow", "upper_arm", "forearm", "sleeve"),
    ("right_upper_arm", "right_shoulder", "right_elbow", "upper_arm", "forearm", "sleeve"),
    ("left_forearm", "left_elbow", "left_wrist", "forearm", "hand", "cuff"),
    ("right_forearm", "right_elbow", "right_wrist", "forearm", "hand", "cuff"),
    ("left_hand", "left_wrist", "left_hand_tip", "hand", "hand", "skin"),
    ("right_hand", "right_wrist", "right_hand_tip", "hand", "hand", "skin"),
    ("left_thigh", "left_hip", "left_knee", "thigh", "knee", "bottom"),
    ("right_thigh", "right_hip", "right_knee", "thigh", "knee", "bottom"),
    ("left_shank", "left_knee", "left_ankle", "shank", "ankle", "leg"),
    ("right_shank", "right_knee", "right_ankle", "shank", "ankle", "leg"),
    ("left_foot", "left_heel", "left_toes", "foot", "foot", "shoes"),
    ("right_foot", "right_heel", "right_toes", "foot", "foot", "shoes"),
)

# Radius keys whose capsules meet at each keypoint: a keypoint is visible when the surface in front of it, at its
# pixel, belongs to the same person and lies no further in front than the body's thickness there.
KEYPOINT_RADIUS_KEYS: dict[str, tuple[str, ...]] = {
    "neck": ("neck", "chest", "shoulder_girdle"),
    "upper_neck": ("neck",),
    "mid_hip": ("waist", "pelvis"),
    "mid_spine": ("waist", "chest"),
}
for _side in ("left", "right"):
    KEYPOINT_RADIUS_KEYS.update(
        {
            f"{_side}_shoulder": ("flank", "shoulder_girdle", "upper_arm"),
            f"{_side}_elbow": ("upper_arm", "forearm"),
            f"{_side}_wrist": ("forearm", "hand"),
            f"{_side}_hand_tip": ("hand",),
            f"{_side}_hip": ("flank", "pelvis", "thigh"),
            f"{_side}_knee": ("thigh", "knee", "shank"),
            f"{_side}_ankle": ("shank", "ankle", "foot"),
            f"{_side}_big_toe": ("foot",),
            f"{_side}_small_toe": ("foot",),
            f"{_side}_heel": ("foot",),
        }
    )

# Skin tones spanning the Fitzpatrick range (RGB, light to dark), jittered per person.
_SKIN_RGB = np.array(
    [
        (255, 224, 196),
        (241, 194, 167),
        (224, 172, 138),
        (198, 134, 103),
        (161, 102, 74),
        (120, 75, 52),
        (87, 56, 40),
        (62, 42, 32),
    ],
    dtype=np.float32,
)
_HAIR_RGB = np.array([(25, 20, 18), (60, 40, 28), (105, 70, 40), (200, 165, 105), (140, 60, 30)], dtype=np.float32)
_GRAY_HAIR_RGB = np.array([(170, 170, 165), (215, 212, 205), (120, 118, 115)], dtype=np.float32)
_PASTEL_RGB = np.array(
    [(250, 250, 245), (255, 214, 224), (200, 225, 255), (255, 245, 200), (210, 245, 215), (235, 220, 250)],
    dtype=np.float32,
)


CLOTH_HEAT = 0.72  # thin clothing over warm skin
MATERIAL_HEAT = {"hair": 0.5, "shoes": 0.35}


@dataclass(frozen=True)
class Outfit:
    """One person's material colours (BGR) and stripe patterns (0 = plain, else stripes per segment)."""

    colors: dict[str, np.ndarray]
    patterns: dict[str, float]
    bald: bool

    def heat(self, material: str) -> float:
        """How warm the material looks to a thermal camera (0 the room .. 1 bare skin): bare parts (a material
        that shares the skin's colour) glow, thin clothing a little less, hair and shoes least."""
        if self.colors[material] is self.colors["skin"]:
            return 1.0
        return MATERIAL_HEAT.get(material, CLOTH_HEAT)


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float32)[::-1].copy()


def _random_cloth(rng: np.random.Generator) -> np.ndarray:
    hue = rng.uniform(0, 180)
    sat, val = rng.uniform(40, 230), rng.uniform(45, 240)
    hsv = np.array([[[hue, sat, val]]], dtype=np.float32)
    import cv2

    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def sample_outfit(
    rng: np.random.Generator,
    style: str,
    gray_hair_probability: float,
    hair_probability: float,
    one_piece: float = 0.0,
    swimwear: float = 0.0,
) -> Outfit:
    """Skin, hair and clothing for one person; `style` is 'adult' (clothes, shoes) or 'infant' (onesie / diaper).

    Adults wear separates unless drawn (with probabilities `one_piece` and `swimwear`) in one-piece sleepwear or
    a jumpsuit (one colour, maybe striped, neck to ankles) or in swimwear (bare torso, arms and legs)."""
    skin = _bgr(_SKIN_RGB[rng.integers(len(_SKIN_RGB))] + rng.normal(0, 6, 3)).clip(0, 255)
    if rng.random() < gray_hair_probability:
        hair = _bgr(_GRAY_HAIR_RGB[rng.integers(len(_GRAY_HAIR_RGB))])
    else:
        hair = _bgr(_HAIR_RGB[rng.integers(len(_HAIR_RGB))])
    patterns: dict[str, float] = {}
    if style == "infant":
        onesie = rng.random() < 0.6
        cloth = _bgr(_PASTEL_RGB[rng.integers(len(_PASTEL_RGB))] + rng.normal(0, 8, 3)).clip(0, 255)
        top = cloth if onesie else skin
        bottom = cloth if onesie else _bgr(_PASTEL_RGB[0])  # a diaper
        colors = {
            "skin": skin,
            "hair": hair,
            "top": top,
            "bottom": bottom,
            "sleeve": cloth if onesie and rng.random() < 0.7 else skin,
            "cuff": cloth if onesie and rng.random() < 0.4 else skin,
            "leg": cloth if onesie and rng.random() < 0.5 else skin,
            "shoes": cloth if onesie and rng.random() < 0.3 else skin,
        }
        if onesie and rng.random() < 0.4:
            patterns["top"] = patterns["bottom"] = rng.uniform(10.0, 22.0)
    elif (one_piece > 0 or swimwear > 0) and (u := rng.random()) < one_piece + swimwear:
        # draw only when asked, so populations without these outfits render exactly as before
        if u < one_piece:
            cloth = _random_cloth(rng) if rng.random() < 0.5 else _bgr(_PASTEL_RGB[rng.integers(len(_PASTEL_RGB))])
            barefoot = rng.random() < 0.5
            colors = {"skin": skin, "hair": hair, "top": cloth, "bottom": cloth, "sleeve": cloth, "cuff": cloth}
            colors |= {"leg": cloth, "shoes": skin if barefoot else _random_cloth(rng) * 0.5}
            if rng.random() < 0.4:
                patterns["top"] = patterns["bottom"] = rng.uniform(8.0, 20.0)
        else:
            top = _random_cloth(rng) if rng.random() < 0.4 else skin
            colors = {"skin": skin, "hair": hair, "top": top, "bottom": _random_cloth(rng), "sleeve": skin}
            colors |= {"cuff": skin, "leg": skin, "shoes": skin}
    else:
        top, bottom = _random_cloth(rng), _random_cloth(rng)
        long_sleeves, long_legs = rng.random() < 0.5, rng.random() < 0.75
        colors = {
            "skin": skin,
            "hair": hair,
            "top": top,
            "bottom": bottom,
            "sleeve": top if rng.random() < 0.85 else skin,
            "cuff": top if long_sleeves else skin,
            "leg": bottom if long_legs else skin,
            "shoes": _random_cloth(rng) * 0.5,
        }
        if rng.random() < 0.3:
            patterns["top"] = rng.uniform(8.0, 20.0)
        if rng.random() < 0.15:
            patterns["bottom"] = rng.uniform(8.0, 20.0)
    for cuff_part, parent in (("sleeve", "top"), ("cuff", "top"), ("leg", "bottom")):
        if parent in patterns and colors[cuff_part] is colors[parent]:
            patterns[cuff_part] = patterns[parent]
    return Outfit(colors=colors, patterns=patterns, bald=rng.random() > hair_probability)
