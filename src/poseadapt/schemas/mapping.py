"""Match the keypoints of two schemas by name: which source point feeds which destination point.

Head surgery copies head weights along `SchemaMap.matched`, and rehearsal maps labels with `SchemaMap.transfer`,
so a wrong match silently corrupts training. The rules are therefore deliberately plain:

1. **exact**: the two names are the same string.
2. **alias**: the names mean the same point once spelling is normalised (`canonical_keypoint_name`: case,
   separators, camelCase, left/right spellings such as `l_`, `L`, `lshoulder`, `shoulder_left`) and the
   synonyms in `SYNONYMS` / `SIDED_SYNONYMS` are applied (`top_head` = `head_top`, `upper_neck` = `neck`,
   `pelvis` = `mid_hip`, `LBigToe` = `left_big_toe`).
3. **approximate**: a destination point with no name match that is, by convention, the midpoint of two points
   the source has (`APPROXIMATE_RULES`: neck / thorax from the shoulders, pelvis from the hips).
4. everything else is **unmatched**; nothing is guessed.

Each source and each destination point is used by at most one exact/alias match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poseadapt.errors import DataError
from poseadapt.schemas.registry import get_schema
from poseadapt.schemas.schema import KeypointSchema

if TYPE_CHECKING:
    import numpy as np

_SIDES = {"left": "left", "l": "left", "lft": "left", "right": "right", "r": "right", "rt": "right"}

# Body parts that may be glued to a one-letter side ("lshoulder", "rhip"). "ear" is left out on purpose: "rear".
_GLUED_PARTS = frozenset("shoulder elbow wrist hand hip knee ankle foot heel toe bigtoe smalltoe eye thumb".split())

_FINGER_SPELLINGS = {
    "forefinger": ("index", "index_finger", "fore_finger", "first_finger"),
    "middle_finger": ("middle", "middlefinger"),
    "ring_finger": ("ring", "ringfinger"),
    "pinky_finger": ("pinky", "little", "little_finger", "pinkie", "pinkie_finger", "pinkyfinger"),
}

# Canonical name -> other names for the same anatomical point, after spelling normalisation. Keep these tables
# short: every entry is a claim that two datasets annotate the same spot.
# Midline points: the whole name must match (a side-less "hip" is Halpe's mid hip; "left_hip" stays a hip joint).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "head_top": ("top_head", "headtop", "top_of_head"),
    "neck": ("upper_neck",),  # MPII upper_neck = AIC / CrowdPose / Halpe neck (as mmpose's body8 mappings use it)
    "mid_hip": ("pelvis", "root", "hip", "hips", "midhip", "hip_center", "center_hip", "mid_hips"),
    "root_of_tail": ("tail_root", "tail_base", "tailbase", "base_of_tail"),
}
# Paired parts: also match behind a side ("l_bigtoe" = "left_big_toe"; an unsided "index_1" = "forefinger_1").
SIDED_SYNONYMS: dict[str, tuple[str, ...]] = {
    "big_toe": ("bigtoe", "hallux", "first_toe"),
    "small_toe": ("smalltoe", "little_toe", "fifth_toe", "pinky_toe"),
    "front_paw": ("f_paw", "fore_paw", "forepaw"),
    "back_paw": ("b_paw", "hind_paw", "hindpaw"),
    **{
        f"{finger}_{j}": tuple(f"{s}_{j}" for s in spellings)
        for finger, spellings in _FINGER_SPELLINGS.items()
        for j in range(1, 5)
    },
}

_SYNONYM_OF = {alias: canonical for canonical, aliases in SYNONYMS.items() for alias in aliases}
_SIDED_SYNONYM_OF = {alias: canonical for canonical, aliases in SIDED_SYNONYMS.items() for alias in aliases}

# (destination names, source points averaged, why). Destination names are compared after spelling normalisation
# but *before* synonyms, so MPII's upper_neck (a neck length above the shoulders) gets no shoulder midpoint.
APPROXIMATE_RULES: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("neck", "thorax", "neck_base"), ("left_shoulder", "right_shoulder"), "base of the neck = shoulder midpoint"),
    (("mid_hip", "pelvis", "root", "hip", "hips"), ("left_hip", "right_hip"), "pelvis = hip midpoint"),
)

KINDS = ("exact", "alias", "approximate", "unmatched")


def _spelling(name: str) -> str:
    """Normalised spelling: lower snake_case, side first (`LShoulder`, `shoulder left` -> `left_shoulder`)."""
    s = re.sub(r"([A-Z])([A-Z][a-z])", r"\1_\2", name.strip())
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()
    s = re.sub(r"([a-z])([0-9])", r"\1_\2", s)
    s = re.sub(r"([0-9])([a-z])", r"\1_\2", s)
    tokens = [t for t in re.split(r"[^a-z0-9]+", s) if t]
    side, rest = None, []
    for token in tokens:
        if side is None and token in _SIDES:
            side = _SIDES[token]
            continue
        if side is None:
            for prefix in ("left", "right", "l", "r"):
                if token.startswith(prefix) and token[len(prefix) :] in _GLUED_PARTS:
                    side, token = _SIDES[prefix], token[len(prefix) :]
                    break
        rest.append(token)
    part = "_".join(rest)
    if not part:  # a name that is only a side word ("L") names no body part: keep it as it is
        return "_".join(tokens)
    return f"{side}_{part}" if side else part


def spelled_keypoint_name(name: str) -> str:
    """A name's normalised spelling only (case, spaces, hyphens, camelCase, side first), no synonyms applied."""
    return _spelling(name)


def canonical_keypoint_name(name: str) -> str:
    """The anatomical point a name denotes: spelling normalised, then synonyms applied (`l_top_head` -> ...)."""
    spelled = _spelling(name)
    for side in ("left_", "right_"):
        if spelled.startswith(side):
            part = spelled[len(side) :]
            return side + _SIDED_SYNONYM_OF.get(part, part)
    return _SYNONYM_OF.get(spelled) or _SIDED_SYNONYM_OF.get(spelled, spelled)


def keypoint_names_disagree(
    names: Sequence[str], schema: KeypointSchema, keypoints: Sequence[str] | None = None
) -> int | None:
    """Index of the first file keypoint name that is not the schema's point there, or None when all agree.

    A name agrees when it is the same string, the same point once spelling is normalised and synonyms applied
    (`Right Shoulder`, `Right-ankle`, `L_Eye`), or one of the schema's `aliases` for that point (CrowdPose's
    `head` = head_top). Inference and an explicit `--schema` both use this one test, so they cannot disagree.
    `keypoints`: compare with these of the schema's names instead (the body part of a WholeBody schema).
    """
    ours_all = schema.keypoints if keypoints is None else tuple(keypoints)
    if len(names) != len(ours_all):
        return min(len(names), len(ours_all))
    for i, (name, ours) in enumerate(zip(names, ours_all, strict=True)):
        if name == ours:
            continue
        spelled = canonical_keypoint_name(name)
        if spelled == canonical_keypoint_name(ours):
            continue
        if any(spelled == canonical_keypoint_name(a) for a in schema.aliases.get(ours, ())):
            continue
        return i
    return None


class SchemaMap:
    """Keypoint correspondence from schema `src` to schema `dst` (schemas, built-in names or YAML paths).

    Attributes: `matched` [(src index, dst index)] for exact and alias matches; `approximate`
    [(dst index, (src indices averaged))]; `unmatched_src` / `unmatched_dst` (indices used by nothing);
    `kinds[d]` is one of `KINDS` for every destination point.
    """

    def __init__(self, src: KeypointSchema | str | Path, dst: KeypointSchema | str | Path) -> None:
        self.src = get_schema(src)
        self.dst = get_schema(dst)
        self.kinds: list[str] = ["unmatched"] * len(self.dst)
        self.sources: list[tuple[int, ...]] = [()] * len(self.dst)
        self.rules: dict[int, str] = {}
        self._match()
        self.matched: list[tuple[int, int]] = sorted(
            (
                (s[0], d)
                for d, (k, s) in enumerate(zip(self.kinds, self.sources, strict=True))
                if k in ("exact", "alias")
            ),
            key=lambda p: p[1],
        )
        self.approximate: list[tuple[int, tuple[int, ...]]] = [
            (d, s) for d, (k, s) in enumerate(zip(self.kinds, self.sources, strict=True)) if k == "approximate"
        ]
        self.unmatched_dst: list[int] = [d for d, k in enumerate(self.kinds) if k == "unmatched"]
        used = {s for s, _ in self.matched} | {s for _, srcs in self.approximate for s in srcs}
        self.unmatched_src: list[int] = [s for s in range(len(self.src)) if s not in used]

    # ------------------------------------------------------------------ matching
    def _match(self) -> None:
        src_names, dst_names = self.src.keypoints, self.dst.keypoints
        free_src = set(range(len(src_names)))

        def take(d: int, s: int, kind: str) -> None:
            self.kinds[d], self.sources[d] = kind, (s,)
            free_src.discard(s)

        exact = {n: i for i, n in enumerate(src_names)}
        for d, name in enumerate(dst_names):
            if name in exact:
                take(d, exact[name], "exact")
        # alias: same normalised spelling first, then same anatomical point
        for key in (_spelling, canonical_keypoint_name):
            src_keys = [key(n) for n in src_names]
            for d, name in enumerate(dst_names):
                if self.kinds[d] != "unmatched":
                    continue
                dst_key = key(name)
                s = next((s for s in sorted(free_src) if src_keys[s] == dst_key), None)
                if s is not None:
                    take(d, s, "alias")
        # approximate: conventional midpoints of source points
        src_by_point = {canonical_keypoint_name(n): i for i, n in reversed(list(enumerate(src_names)))}
        for d, name in enumerate(dst_names):
            if self.kinds[d] != "unmatched":
                continue
            spelled = _spelling(name)
            for targets, parts, why in APPROXIMATE_RULES:
                if spelled in targets and all(p in src_by_point for p in parts):
                    self.kinds[d], self.sources[d] = "approximate", tuple(src_by_point[p] for p in parts)
                    self.rules[d] = why
                    break

    # ------------------------------------------------------------------ label transfer
    def transfer(self, keypoints: np.ndarray) -> np.ndarray:
        """Map `(..., K_src, 3)` [x, y, v] keypoints to `(..., K_dst, 3)`.

        Matched points are copied; an approximate point is the mean of its sources when all of them are labelled
        (v > 0), with v = the smallest source v, else zeros; unmatched destination points are zeros (unlabelled).
        """
        import numpy as np

        kp = np.asarray(keypoints)
        if kp.ndim < 2 or kp.shape[-2:] != (len(self.src), 3):
            raise DataError(
                f"keypoints of shape {kp.shape} do not fit schema '{self.src.name}': expected (..., {len(self.src)}, 3)"
            )
        dtype = kp.dtype if np.issubdtype(kp.dtype, np.floating) else np.float64
        out = np.zeros((*kp.shape[:-2], len(self.dst), 3), dtype=dtype)
        if self.matched:
            src_idx, dst_idx = (list(t) for t in zip(*self.matched, strict=True))
            out[..., dst_idx, :] = kp[..., src_idx, :]
        for d, srcs in self.approximate:
            pts = kp[..., list(srcs), :].astype(dtype)
            labelled = np.all(pts[..., 2] > 0, axis=-1)
            out[..., d, :2] = np.where(labelled[..., None], pts[..., :2].mean(axis=-2), 0.0)
            out[..., d, 2] = np.where(labelled, pts[..., 2].min(axis=-1), 0.0)
        return out

    # ------------------------------------------------------------------ reporting
    def counts(self) -> dict[str, int]:
        out = {k: self.kinds.count(k) for k in KINDS}
        out["unused_src"] = len(self.unmatched_src)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: index lists plus one row per destination point."""
        points = []
        for d, (kind, srcs) in enumerate(zip(self.kinds, self.sources, strict=True)):
            row: dict[str, Any] = {
                "dst_index": d,
                "dst": self.dst.keypoints[d],
                "kind": kind,
                "src_index": list(srcs),
                "src": [self.src.keypoints[s] for s in srcs],
            }
            if d in self.rules:
                row["rule"] = self.rules[d]
            points.append(row)
        return {
            "src": self.src.name,
            "dst": self.dst.name,
            "matched": [list(p) for p in self.matched],
            "approximate": [[d, list(s)] for d, s in self.approximate],
            "unmatched_src": list(self.unmatched_src),
            "unmatched_dst": list(self.unmatched_dst),
            "counts": self.counts(),
            "points": points,
        }

    def summary(self) -> str:
        c = self.counts()
        return (
            f"{self.src.name} ({len(self.src)}) -> {self.dst.name} ({len(self.dst)}): {c['exact']} exact, "
            f"{c['alias']} alias, {c['approximate']} approximate, {c['unmatched']} unmatched; "
            f"{c['unused_src']} source points unused"
        )

    def report(self) -> str:
        """Plain-text table of every destination point and where it comes from."""
        width = max(len(n) for n in self.dst.keypoints)
        lines = [self.summary(), f"  {'#':>3}  {'dst keypoint':<{width}}  {'kind':<11}  from src"]
        for d, (kind, srcs) in enumerate(zip(self.kinds, self.sources, strict=True)):
            src = " + ".join(f"{self.src.keypoints[s]} ({s})" for s in srcs) or "-"
            if kind == "approximate":
                src = f"mean of {src}"
            lines.append(f"  {d:>3}  {self.dst.keypoints[d]:<{width}}  {kind:<11}  {src}")
        if self.unmatched_src:
            lines.append("unused src: " + ", ".join(self.src.keypoints[s] for s in self.unmatched_src))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SchemaMap({self.summary()})"
