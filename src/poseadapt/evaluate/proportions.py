"""Proportion debiasing of pseudo-labels: take out the source population's body proportions a model carries over.

A model trained on adults places an infant's joints where they would sit on an adult's body: on rendered thermal
infants its pseudo-labels put the hips about a fifth of a torso length towards the shoulders, and every
self-training round copies that, because confidence filtering cannot see an error the model makes on every view
of a pose (docs/ADAPTATION_RESULTS.md, sessions 7 and 17). Labelled poses of both populations say where it is.

The check runs on the *axial chain*: the midpoints of the left / right pairs among eyes, ears, shoulders, hips,
knees and ankles that the schema has, head to feet. Midpoints are unchanged by a left / right swap, a frequent
pseudo-label error, which per-side statistics are not. Each middle midpoint's place between its neighbours is a
ratio: the projection of (it - the one above) onto (the one below - the one above), as a fraction of that span.
A segment is corrected only when the labels' median ratio lies between the source population's and the target's,
the signature of source proportions carried over; there its left / right pair moves along the span by (target
median - labels' median) of it, in every label with the three midpoints labelled (one segment at a time, see
`ProportionDebias.apply`). A discrepancy outside that range is an appearance error, not a proportion, and is left
alone: moving it too cost AP where measured (the ears of the thermal infants). The medians, not per-pose
quantiles: where measured, a quantile map per skeleton triple made the labels worse. Nor does a segment move when
the discrepancy is within what the two medians' sampling noise explains (NOISE_Z standard errors of their
difference): with a few dozen labelled people, the labels' median wanders by itself, and moving every label by
that wander would add an error, not remove one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from poseadapt.errors import PoseAdaptError

AXIAL_PARTS = ("eye", "ear", "shoulder", "hip", "knee", "ankle")
MIN_SPAN = 1.0  # pixels: a shorter span between two midpoints gives no ratio
MIN_SHIFT = 0.005  # of the span: a smaller discrepancy between the labels' and the target's medians is left as is
NOISE_Z = 2.0  # a discrepancy under this many standard errors of (target median - labels' median) is left as is


def axial_pairs(names: Sequence[str]) -> list[tuple[str, int, int]]:
    """(part, left index, right index) of each axial part whose left_ and right_ keypoints the schema has, in order."""
    index = {n: i for i, n in enumerate(names)}
    return [(p, index[f"left_{p}"], index[f"right_{p}"]) for p in AXIAL_PARTS
            if f"left_{p}" in index and f"right_{p}" in index]  # fmt: skip


def axial_ratios(keypoints: np.ndarray, pairs: Sequence[tuple[str, int, int]]) -> np.ndarray:
    """(N, len(pairs) - 2) ratios of each middle midpoint along its span; NaN where a side is unlabelled (v <= 0)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    mids = np.stack([(kp[:, li, :2] + kp[:, ri, :2]) / 2 for _, li, ri in pairs], axis=1)
    known = np.stack([(kp[:, li, 2] > 0) & (kp[:, ri, 2] > 0) for _, li, ri in pairs], axis=1)
    out = np.full((len(kp), max(len(pairs) - 2, 0)), np.nan)
    for m in range(1, len(pairs) - 1):
        span = mids[:, m + 1] - mids[:, m - 1]
        length2 = (span * span).sum(axis=1)
        ok = known[:, m - 1] & known[:, m] & known[:, m + 1] & (length2 >= MIN_SPAN**2)
        ratio = ((mids[:, m] - mids[:, m - 1]) * span).sum(axis=1) / np.where(ok, length2, 1.0)
        out[:, m - 1] = np.where(ok, ratio, np.nan)
    return out


def _medians(ratios: np.ndarray) -> np.ndarray:
    counts = np.isfinite(ratios).sum(axis=0)
    return np.array([np.nanmedian(ratios[:, j]) if counts[j] else np.nan for j in range(ratios.shape[1])])


def _median_errors(ratios: np.ndarray) -> np.ndarray:
    """Standard error of each column's median: sqrt(pi / 2) * sigma / sqrt(n), sigma from the median absolute
    deviation (1.4826 * MAD), so a few wild ratios do not inflate it; NaN for a column with under 2 values."""
    out = np.full(ratios.shape[1], np.nan)
    for j in range(ratios.shape[1]):
        r = ratios[np.isfinite(ratios[:, j]), j]
        if len(r) >= 2:
            out[j] = np.sqrt(np.pi / 2) * 1.4826 * np.median(np.abs(r - np.median(r))) / np.sqrt(len(r))
    return out


@dataclass(frozen=True)
class ProportionDebias:
    """The source and target populations' median axial ratios; `apply` corrects a set of pseudo-labels."""

    pairs: tuple[tuple[str, int, int], ...]
    source: np.ndarray  # (S,) median ratio per middle segment
    target: np.ndarray
    target_error: np.ndarray  # (S,) standard error of the target's median

    @classmethod
    def from_poses(cls, names: Sequence[str], source: np.ndarray, target: np.ndarray) -> ProportionDebias:
        """From labelled poses (N, K, 3) of the population the model learned from and of the target population."""
        pairs = axial_pairs(names)
        if len(pairs) < 3:
            have = ", ".join(p for p, _, _ in pairs) or "none"
            raise PoseAdaptError(
                f"proportion debiasing needs 3 or more left/right pairs among {', '.join(AXIAL_PARTS)} "
                f"(left_<part> / right_<part>); this schema has {have}"
            )
        medians, ratios = {}, {}
        for what, poses in (("source", source), ("target", target)):
            ratios[what] = axial_ratios(poses, pairs)
            medians[what] = _medians(ratios[what])
            if not np.isfinite(medians[what]).any():
                raise PoseAdaptError(f"proportion debiasing: no {what} pose labels three consecutive axial pairs")
        return cls(tuple(pairs), medians["source"], medians["target"], _median_errors(ratios["target"]))

    @property
    def segments(self) -> list[str]:
        return [part for part, _, _ in self.pairs[1:-1]]

    def apply(self, keypoints: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """(corrected copy, report per segment: medians before and after); unlabelled keypoints stay as they are.

        Which segments move is decided once, on the labels as given. Moving one pair changes its neighbours'
        ratios (it ends their spans), so they move one at a time, the largest remaining discrepancy first, with the
        ratios read again before each; a segment not chosen never moves, whatever its neighbours' moves do to it.
        """
        kp = np.array(keypoints, dtype=np.float64)
        ratios = axial_ratios(kp, self.pairs)
        first = _medians(ratios)
        noise = NOISE_Z * np.hypot(_median_errors(ratios), self.target_error)  # NaN where either is unknown
        pending = {j for j in range(len(self.segments)) if self._carried(j, first[j], noise[j])}
        moved: set[int] = set()
        while pending:
            ratios = axial_ratios(kp, self.pairs)
            labels = _medians(ratios)
            j = max(pending, key=lambda i: abs(self.target[i] - labels[i]))
            pending.discard(j)
            if not abs(self.target[j] - labels[j]) >= MIN_SHIFT:  # its neighbours' moves already put it there
                continue
            m = j + 1
            below, above = ((kp[:, li, :2] + kp[:, ri, :2]) / 2 for _, li, ri in (self.pairs[m + 1], self.pairs[m - 1]))
            shift = (self.target[j] - labels[j]) * (below - above)
            shift[~np.isfinite(ratios[:, j])] = 0.0
            for idx in self.pairs[m][1:]:
                kp[:, idx, :2] += shift
            moved.add(j)
        final = axial_ratios(kp, self.pairs)
        people, after = np.isfinite(final).sum(axis=0), _medians(final)
        report = {part: {"source": _round(self.source[j]), "target": _round(self.target[j]),
                         "labels": _round(first[j]), "after": _round(after[j]), "people": int(people[j]),
                         "noise": _round(noise[j]), "corrected": j in moved}
                  for j, part in enumerate(self.segments)}  # fmt: skip
        return kp, report

    def _carried(self, j: int, labels: float, noise: float) -> bool:
        """Whether the labels' median ratio lies between the source's and the target's, and off the target's by
        MIN_SHIFT and by more than the medians' noise (a segment whose noise is unknown never moves)."""
        lo, hi = sorted((self.source[j], self.target[j]))
        gap = abs(self.target[j] - labels)
        return bool(np.isfinite([lo, hi, labels, noise]).all() and lo <= labels <= hi and gap >= max(MIN_SHIFT, noise))


def _round(v: float) -> float | None:
    return round(float(v), 4) if np.isfinite(v) else None
