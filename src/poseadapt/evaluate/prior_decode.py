"""Prior-guided decoding: when a pose's arg-max keypoints are implausible under a pose prior, try other peaks.

Why: a top-down model's heatmaps often hold the right answer as a weaker peak (the other wrist, a knee hidden by
the other leg, the side a left/right mix-up put on the wrong channel), and decoding each keypoint by its own
arg-max never looks at the rest of the pose. Pictorial-structure decoders fix this with pairwise terms; here the
population's pose prior (`poseadapt.priors`, bone ratios + joint limits + density) plays that part, with no
training and on any heatmap model. Poses the prior already accepts are left exactly as the codec decodes them.

For a pose whose energy is above `act_above` (default the prior's own 99th-percentile threshold) a greedy search
moves one keypoint at a time to one of its strongest local maxima, or exchanges a left/right pair, choosing the
move that lowers `energy + alpha * sum(log(max / value))` (the confidence given up, in nats) most, until no move
lowers it (at most `max_moves`): a MAP pose under prior and heatmaps, for the poses the prior flagged. When no
combination of peaks is plausible the arg-max pose stays: the person may be in a pose the prior never saw. The
chosen peak is then decoded by the codec itself (the map is clipped to a window around it), so sub-pixel
refinement and keypoint scores work as for any other keypoint.

The implausible-pose rate measured with the SAME prior is partly circular; measure it with a prior fitted on
other poses and watch AP, which this cannot game (docs/ADAPTATION_RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from poseadapt.codecs.refine import heatmap_argmax
from poseadapt.errors import PoseAdaptError
from poseadapt.priors import PosePrior

EPS = 1e-4


def local_maxima(heatmaps: np.ndarray, count: int, min_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """The `count` strongest 8-neighbour local maxima of each map (M, H, W): cells (M, count, 2) as (x, y) and
    values (M, count); missing peaks (fewer maxima, or below `min_ratio` x the map's maximum) have value -inf.
    Peak 0 is the map's arg-max."""
    m, h, w = heatmaps.shape
    padded = np.pad(heatmaps, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    is_max = np.ones(heatmaps.shape, dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy == 1 and dx == 1:
                continue
            is_max &= heatmaps >= padded[:, dy : dy + h, dx : dx + w]
    flat = heatmaps.reshape(m, -1)
    top = flat.max(axis=1, keepdims=True)
    score = np.where(is_max.reshape(m, -1) & (flat >= min_ratio * top), flat, -np.inf)
    argmax = flat.argmax(axis=1)
    score[np.arange(m), argmax] = np.inf  # the arg-max first, even on a plateau
    order = np.argsort(-score, axis=1, kind="stable")[:, :count]
    values = np.take_along_axis(score, order, axis=1)
    values[:, 0] = flat[np.arange(m), argmax]
    cells = np.stack([order % w, order // w], axis=-1).astype(np.float64)
    return cells, values


def codec_refiner(codec: Any) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """(cells (M, 2), maps (M, H, W)) -> the codec's sub-pixel locations of those peaks; None for non-heatmap codecs."""
    from poseadapt.codecs.refine import refine_keypoints

    method = getattr(codec, "refine", None)
    if not isinstance(method, str):
        return None
    kernel, sigma = codec.blur_kernel_size, codec.blur_sigma
    return lambda cells, maps: refine_keypoints(cells, maps, method, kernel, sigma)


@dataclass
class PriorDecoder:
    """Re-pick implausible poses' peaks in heatmaps (N, K, H, W) of a schema's keypoints `names`.

    `refine` gives each candidate peak the sub-pixel location the codec would decode (`codec_refiner`); the
    energy is judged there, since whole heatmap cells distort the short bones of the face."""

    prior: PosePrior
    names: Sequence[str]
    flip_index: Sequence[int]
    refine: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    peaks: int = 4
    alpha: float = 1.0
    act_above: float | None = None
    min_ratio: float = 0.05
    max_moves: int = 6
    window: int = 7
    counts: dict[str, int] = field(default_factory=lambda: {"poses": 0, "implausible": 0, "changed": 0})

    def __post_init__(self) -> None:
        if self.peaks < 2 or self.alpha < 0 or self.max_moves < 1 or self.window < 1:
            raise PoseAdaptError("prior decoding: peaks >= 2, alpha >= 0, max_moves >= 1 and window >= 1")
        self.cols = self.prior.columns_for(list(self.names))
        where = {int(c): i for i, c in enumerate(self.cols)}
        pairs = {tuple(sorted((int(a), int(b)))) for a, b in enumerate(self.flip_index) if a != int(b)}
        self.pairs = [(where[a], where[b]) for a, b in sorted(pairs) if a in where and b in where]
        self.limit = float(self.prior.threshold if self.act_above is None else self.act_above)

    def __call__(self, heatmaps: np.ndarray) -> np.ndarray:
        """The heatmaps with each re-picked keypoint's map clipped around its new peak (a copy if any changed)."""
        hm = np.asarray(heatmaps)
        if hm.ndim != 4 or hm.shape[1] != len(self.names):
            raise PoseAdaptError(f"prior decoding takes (N, {len(self.names)}, H, W) heatmaps, got {hm.shape}")
        n, p, q = len(hm), len(self.cols), self.peaks
        sub = hm[:, self.cols]  # (N, P, H, W): the prior's keypoints
        maps = sub.reshape(-1, *sub.shape[2:])
        first, _ = heatmap_argmax(maps)
        # the arg-max pose of every person first (as the codec decodes it): most stop at the energy check
        locs0 = self.refine(first, maps) if self.refine is not None else first
        energy = self.prior.energy(locs0.reshape(n, p, 2))
        todo = np.flatnonzero(np.isfinite(energy) & (energy > self.limit))
        self.counts["poses"] += n
        self.counts["implausible"] += len(todo)
        if not len(todo):
            return hm
        # the other peaks only of the flagged poses
        flagged = sub[todo].astype(np.float64)
        cells, values = local_maxima(flagged.reshape(-1, *sub.shape[2:]), q, self.min_ratio)
        locs = cells.copy()
        locs[:, 0] = locs0.reshape(n, p, 2)[todo].reshape(-1, 2)
        if self.refine is not None:
            rest = self.refine(cells[:, 1:].reshape(-1, 2), np.repeat(flagged.reshape(-1, *sub.shape[2:]), q - 1, 0))
            locs[:, 1:] = rest.reshape(len(cells), q - 1, 2)
        cells, values = cells.reshape(len(todo), p, q, 2), values.reshape(len(todo), p, q)
        locs = locs.reshape(len(todo), p, q, 2)
        out = hm
        for r, i in enumerate(todo):
            chosen = self._search(flagged[r], cells[r], locs[r], values[r], float(energy[i]))
            moved = np.flatnonzero(np.any(chosen != cells[r, :, 0], axis=-1))
            if not len(moved):
                continue
            if out is hm:
                out = hm.copy()
            self.counts["changed"] += 1
            for j in moved:
                rivals = cells[r, j][np.isfinite(values[r, j]) & np.any(cells[r, j] != chosen[j], axis=-1)]
                out[i, self.cols[j]] = self._clip_around(hm[i, self.cols[j]], chosen[j], rivals)
        return out

    def _search(
        self, maps: np.ndarray, cells: np.ndarray, locs: np.ndarray, values: np.ndarray, energy: float
    ) -> np.ndarray:
        """Greedy moves from the arg-max pose; returns the chosen cell of every prior keypoint (P, 2)."""
        top = np.maximum(values[:, 0], EPS)

        def cost(k: int, cell: np.ndarray) -> float:
            v = maps[k, int(cell[1]), int(cell[0])]
            return float(np.log(top[k] / max(float(v), EPS * top[k])))

        pose, where = locs[:, 0].copy(), cells[:, 0].copy()  # sub-pixel locations (judged), cells (chosen)
        spent = np.zeros(len(pose))
        best = energy
        for _ in range(self.max_moves):
            trials: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
            for k in range(len(pose)):
                for j in range(1, self.peaks):
                    if np.isfinite(values[k, j]) and np.any(cells[k, j] != where[k]):
                        t_pose, t_where, t_spent = pose.copy(), where.copy(), spent.copy()
                        t_pose[k], t_where[k], t_spent[k] = locs[k, j], cells[k, j], cost(k, cells[k, j])
                        trials.append((t_pose, t_where, t_spent))
            for a, b in self.pairs:
                t_pose, t_where, t_spent = pose.copy(), where.copy(), spent.copy()
                t_pose[[a, b]], t_where[[a, b]] = pose[[b, a]], where[[b, a]]
                t_spent[a], t_spent[b] = cost(a, where[b]), cost(b, where[a])
                trials.append((t_pose, t_where, t_spent))
            if not trials:
                break
            energies = self.prior.energy(np.stack([t[0] for t in trials]))
            objective = energies + self.alpha * np.stack([t[2] for t in trials]).sum(axis=1)
            j = int(np.nanargmin(objective))
            if not objective[j] < best + self.alpha * spent.sum() - 1e-9:
                break
            (pose, where, spent), best = trials[j], float(energies[j])
        # no plausible pose among the peaks: the pose may be one the prior never saw, so trust the heatmaps
        return where if best <= self.limit else cells[:, 0].copy()

    def _clip_around(self, heatmap: np.ndarray, cell: np.ndarray, rivals: np.ndarray) -> np.ndarray:
        """The map kept within a window around `cell` (at most `window` cells, less than half the way to any rival
        peak), capped just below its value there, the floor elsewhere: the codec's arg-max lands on `cell` and
        its refinement sees that peak's own neighbourhood."""
        x, y = int(cell[0]), int(cell[1])
        r = self.window
        if len(rivals):
            r = max(1, min(r, int(np.ceil(np.linalg.norm(rivals - cell, axis=-1).min() / 2)) - 1))
        peak = float(heatmap[y, x])
        floor = min(float(heatmap.min()), 0.0)
        out = np.full_like(heatmap, floor)
        y0, y1, x0, x1 = max(0, y - r), y + r + 1, max(0, x - r), x + r + 1
        ys, xs = np.mgrid[y0 : min(y1, heatmap.shape[0]), x0 : min(x1, heatmap.shape[1])]
        cap = peak - 1e-6 * abs(peak) * np.hypot(xs - x, ys - y)  # the chosen cell is the strict maximum
        out[y0:y1, x0:x1] = np.minimum(heatmap[y0:y1, x0:x1], cap)
        return out

    def summary(self) -> dict[str, Any]:
        return {"decode_prior_" + k: v for k, v in self.counts.items()}
