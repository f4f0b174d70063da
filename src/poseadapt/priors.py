"""Anatomical pose priors of a population: how plausible a 2-D pose is, differentiably, learned from labelled poses.

A `PosePrior` scores a pose (K, 2), in any frame (image pixels, crop pixels, heatmap cells), by an *energy*: 0 is
the median training pose, higher is less plausible. Three parts, each in units of the training spread:

1. **Bone-length ratios** (robust): the log length of every skeleton edge relative to the pose's geometric-mean
   bone length, against its training median and spread; a Huber loss on the part beyond `bone_tolerance` spreads,
   summed over the edges (a foreshortened limb costs nothing; an arm twice the trunk does, linearly, so one wild
   keypoint cannot swamp the gradient).
2. **Joint-angle limits**: the interior angle at every joint two skeleton edges share, against the training
   0.5 / 99.5 percentiles (2-D projections can bend far, so the limits are what the population showed), summed.
3. **A learned density** over normalised poses: each pose is centred, scaled to unit RMS radius and rotated onto
   the mean shape (2-D Procrustes, closed form), projected by PCA onto `dims` components, and scored by a
   Gaussian mixture there plus an isotropic Gaussian on the residual (a mixture of probabilistic PCAs in spirit).

Why a Gaussian mixture and not a normalising flow or a VAE: with a few hundred to a few thousand labelled poses of
a population, a GMM on Procrustes-normalised poses is fitted exactly (EM, seconds, no tuning, no training
instability), its log-density is exact (a VAE gives only a bound) and a closed-form, differentiable torch
expression (a flow would need its own training loop and many more samples), and its multi-modality covers the
distinct pose families a population has (supine / side-lying infants, standing / seated adults).

The density part is standardised by its training median and MAD; the total energy's training median is the
`reference` (the training loss is `log1p(relu(energy - reference))`: poses as plausible as the typical training
pose cost nothing) and its 99th percentile the `threshold` of the **implausible-pose rate**
(`poseadapt.evaluate.plausibility`). Every array op is written once for numpy (evaluation; no torch import) and
torch (training; differentiable): `_xp` picks the namespace from the input.

Files: safetensors tensors plus the JSON metadata (schema, options, thresholds) in its header; never pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from poseadapt.errors import DataError, PoseAdaptError

FORMAT = "poseadapt-pose-prior/1"
EPS = 1e-6
TENSOR_NAMES = (
    "template", "mean", "components", "weights", "means", "prec_chol", "log_det",
    "bone_mu", "bone_sd", "angle_lo", "angle_hi", "angle_sd",
)  # fmt: skip


def _xp(a: Any) -> Any:
    if type(a).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _huber(x: Any, xp: Any) -> Any:
    return xp.where(x < 1.0, 0.5 * x * x, x - 0.5)


def _relu(x: Any, xp: Any) -> Any:
    return xp.clip(x, 0.0, None)


def joint_triplets(skeleton: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(a, b, c): every pair of skeleton edges that meet at joint b (the angle a-b-c)."""
    neighbours: dict[int, list[int]] = {}
    for i, j in skeleton:
        neighbours.setdefault(i, []).append(j)
        neighbours.setdefault(j, []).append(i)
    out = []
    for b in sorted(neighbours):
        ns = sorted(set(neighbours[b]))
        out += [(ns[x], b, ns[y]) for x in range(len(ns)) for y in range(x + 1, len(ns))]
    return out


def normalise(poses: Any, template: Any | None = None) -> Any:
    """(..., K, 2) -> centred, unit RMS radius, rotated onto `template` (closed-form 2-D Procrustes) if given."""
    xp = _xp(poses)
    c = poses - xp.mean(poses, axis=-2, keepdims=True)
    s = xp.sqrt(xp.mean(xp.sum(c * c, axis=-1), axis=-1) + EPS)
    c = c / s[..., None, None]
    if template is None:
        return c
    a = xp.sum(c[..., 0] * template[:, 0] + c[..., 1] * template[:, 1], axis=-1)
    b = xp.sum(c[..., 0] * template[:, 1] - c[..., 1] * template[:, 0], axis=-1)
    r = xp.sqrt(a * a + b * b + EPS)
    cos, sin = (a / r)[..., None], (b / r)[..., None]
    x, y = c[..., 0], c[..., 1]
    return xp.stack([cos * x - sin * y, sin * x + cos * y], axis=-1)


def bone_log_ratios(c: Any, edges: np.ndarray) -> Any:
    """Log length of every edge relative to the pose's geometric-mean bone length (one wild bone moves the
    others' ratios by 1/E of its own deviation only)."""
    xp = _xp(c)
    d = c[..., edges[:, 0], :] - c[..., edges[:, 1], :]
    logs = 0.5 * xp.log(xp.sum(d * d, axis=-1) + EPS)
    return logs - xp.mean(logs, axis=-1, keepdims=True)


def joint_angles(c: Any, triplets: np.ndarray) -> Any:
    xp = _xp(c)
    u = c[..., triplets[:, 0], :] - c[..., triplets[:, 1], :]
    v = c[..., triplets[:, 2], :] - c[..., triplets[:, 1], :]
    nu = xp.sqrt(xp.sum(u * u, axis=-1) + EPS)
    nv = xp.sqrt(xp.sum(v * v, axis=-1) + EPS)
    cos = xp.clip(xp.sum(u * v, axis=-1) / (nu * nv), -1.0 + 1e-6, 1.0 - 1e-6)
    return xp.arccos(cos)


@dataclass
class PosePrior:
    """A fitted prior (see the module docstring); `energy(poses)` works on numpy arrays and torch tensors."""

    schema_name: str
    keypoints: tuple[str, ...]
    edges: np.ndarray  # (E, 2) int
    triplets: np.ndarray  # (J, 3) int
    tensors: dict[str, np.ndarray]
    residual_var: float
    density_median: float
    density_scale: float
    reference: float  # median training energy
    threshold: float  # 99th percentile of training energies
    bone_tolerance: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)
    _cache: dict[Any, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.keypoints)

    # ------------------------------------------------------------------------------------------------ scoring
    def _params(self, like: Any) -> dict[str, Any]:
        if _xp(like) is np:
            return self.tensors
        key = (like.device, like.dtype)
        if key not in self._cache:
            import torch

            self._cache[key] = {
                k: torch.as_tensor(v, dtype=like.dtype, device=like.device) for k, v in self.tensors.items()
            }
        return self._cache[key]

    def parts(self, poses: Any) -> dict[str, Any]:
        """Energy parts of poses (..., K, 2): `density`, `bones`, `angles` (each (...,), 0 = typical)."""
        xp = _xp(poses)
        if poses.shape[-2:] != (len(self), 2):
            raise PoseAdaptError(f"the pose prior takes ({len(self)}, 2) poses, got {tuple(poses.shape)}")
        p = self._params(poses)
        c = normalise(poses, p["template"])
        out: dict[str, Any] = {}
        # bones: robust deviation of log lengths beyond the tolerance
        z = xp.abs(bone_log_ratios(c, self.edges) - p["bone_mu"]) / p["bone_sd"]
        out["bones"] = xp.sum(_huber(_relu(z - self.bone_tolerance, xp), xp), axis=-1)
        # angles: beyond the training limits, in training spreads
        if len(self.triplets):
            t = joint_angles(c, self.triplets)
            excess = (_relu(p["angle_lo"] - t, xp) + _relu(t - p["angle_hi"], xp)) / p["angle_sd"]
            out["angles"] = xp.sum(_huber(excess, xp), axis=-1)
        else:
            out["angles"] = out["bones"] * 0.0
        # density: GMM in the PCA subspace + isotropic residual
        flat = c.reshape(*c.shape[:-2], -1) - p["mean"]
        sub = flat @ p["components"]
        resid = _relu(xp.sum(flat * flat, axis=-1) - xp.sum(sub * sub, axis=-1), xp)
        diff = sub[..., None, :] - p["means"]  # (..., M, d)
        y = xp.einsum("...md,mde->...me", diff, p["prec_chol"])
        d = sub.shape[-1]
        log_comp = xp.log(p["weights"]) + p["log_det"] - 0.5 * xp.sum(y * y, axis=-1) - 0.5 * d * np.log(2 * np.pi)
        top = xp.amax(log_comp, axis=-1, keepdims=True)
        ll = top[..., 0] + xp.log(xp.sum(xp.exp(log_comp - top), axis=-1))
        nll = -ll + 0.5 * resid / self.residual_var
        out["density"] = (nll - self.density_median) / self.density_scale
        return out

    def energy(self, poses: Any, weights: dict[str, float] | None = None) -> Any:
        """Total energy of poses (..., K, 2): density + bones + angles (optionally weighted)."""
        w = {"density": 1.0, "bones": 1.0, "angles": 1.0, **(weights or {})}
        parts = self.parts(poses)
        return sum(w[k] * v for k, v in parts.items())

    def implausible(self, poses: Any) -> Any:
        """Whether each pose lies beyond the 99th percentile of the training poses' energies."""
        return self.energy(poses) > self.threshold

    def columns_for(self, names: Sequence[str]) -> np.ndarray:
        """Index of each prior keypoint among `names` (a schema's keypoints); one line if some are missing."""
        from poseadapt.schemas.mapping import canonical_keypoint_name

        canon = {canonical_keypoint_name(n): i for i, n in enumerate(names)}
        missing = [k for k in self.keypoints if canonical_keypoint_name(k) not in canon]
        if missing:
            raise PoseAdaptError(
                f"the pose prior ({self.schema_name}) needs keypoints the poses lack: {', '.join(missing[:5])}"
                + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
            )
        return np.array([canon[canonical_keypoint_name(k)] for k in self.keypoints], dtype=int)

    # ------------------------------------------------------------------------------------------------ files
    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema": self.schema_name,
            "keypoints": list(self.keypoints),
            "edges": self.edges.tolist(),
            "triplets": self.triplets.tolist(),
            "residual_var": self.residual_var,
            "density_median": self.density_median,
            "density_scale": self.density_scale,
            "reference": self.reference,
            "threshold": self.threshold,
            "bone_tolerance": self.bone_tolerance,
            "info": self.info,
        }

    def save(self, path: str | Path) -> Path:
        """safetensors tensors + JSON metadata in the header (written atomically)."""
        import os
        import tempfile

        from safetensors.numpy import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            tensors = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in self.tensors.items()}
            save_file(tensors, tmp, metadata={"poseadapt_prior": json.dumps(self.metadata())})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> PosePrior:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise DataError(f"pose prior not found: {path}")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta_text = (f.metadata() or {}).get("poseadapt_prior")
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        except Exception as exc:  # noqa: BLE001 - any decoding failure is the user's file
            raise DataError(f"{path}: not a safetensors pose prior ({str(exc).splitlines()[0]})") from None
        if meta_text is None:
            raise DataError(f"{path}: a safetensors file but not a pose prior (no 'poseadapt_prior' metadata)")
        meta = json.loads(meta_text)
        if meta.get("format") != FORMAT:
            raise DataError(f"{path}: pose prior format {meta.get('format')!r}, this poseadapt reads {FORMAT!r}")
        missing = sorted(set(TENSOR_NAMES) - set(tensors))
        if missing:
            raise DataError(f"{path}: pose prior lacks tensors {missing}")
        return cls(
            schema_name=meta["schema"],
            keypoints=tuple(meta["keypoints"]),
            edges=np.asarray(meta["edges"], dtype=int).reshape(-1, 2),
            triplets=np.asarray(meta["triplets"], dtype=int).reshape(-1, 3),
            tensors=tensors,
            residual_var=float(meta["residual_var"]),
            density_median=float(meta["density_median"]),
            density_scale=float(meta["density_scale"]),
            reference=float(meta["reference"]),
            threshold=float(meta["threshold"]),
            bone_tolerance=float(meta.get("bone_tolerance", 1.0)),
            info=dict(meta.get("info", {})),
        )


# ---------------------------------------------------------------------------------------------------- fitting
def generalised_procrustes(poses: np.ndarray, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(aligned poses, template): every pose rotated onto the evolving mean shape (unit RMS, centred)."""
    c = normalise(poses)
    template = c[0]
    for _ in range(iterations):
        aligned = normalise(c, template)
        new = normalise(aligned.mean(axis=0))
        if np.abs(new - template).max() < 1e-9:
            break
        template = new
    return normalise(c, template), template


def fit_gmm(
    x: np.ndarray, components: int, rng: np.random.Generator, iterations: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EM for a full-covariance Gaussian mixture: (weights (M,), means (M, d), covariances (M, d, d))."""
    n, d = x.shape
    reg = 1e-6 + 1e-3 * float(x.var(axis=0).mean())
    # k-means++ seeding
    means = [x[rng.integers(n)]]
    for _ in range(1, components):
        d2 = np.min([((x - m) ** 2).sum(1) for m in means], axis=0)
        means.append(x[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(n)])
    mu = np.array(means)
    cov = np.repeat((np.cov(x.T) + reg * np.eye(d))[None], components, axis=0)
    w = np.full(components, 1.0 / components)
    previous = -np.inf
    for _ in range(iterations):
        chol = np.linalg.cholesky(cov)
        log_p = np.empty((n, components))
        for k in range(components):
            y = np.linalg.solve(chol[k], (x - mu[k]).T)
            log_p[:, k] = np.log(w[k]) - np.log(np.diag(chol[k])).sum() - 0.5 * (y * y).sum(0)
        top = log_p.max(1, keepdims=True)
        ll = top[:, 0] + np.log(np.exp(log_p - top).sum(1))
        resp = np.exp(log_p - ll[:, None])
        nk = resp.sum(0) + 1e-10
        w = nk / n
        mu = (resp.T @ x) / nk[:, None]
        for k in range(components):
            dx = x - mu[k]
            cov[k] = (resp[:, k, None] * dx).T @ dx / nk[k] + reg * np.eye(d)
        if ll.mean() - previous < 1e-7:
            break
        previous = ll.mean()
    return w, mu, cov


def fit_prior(
    poses: np.ndarray,
    schema: Any,
    *,
    components: int = 8,
    dims: int = 12,
    flip: bool = True,
    seed: int = 0,
    bone_tolerance: float = 2.0,
    info: dict[str, Any] | None = None,
) -> PosePrior:
    """Fit a `PosePrior` to complete poses (N, K, 2) of one schema (see the module docstring).

    `flip` adds each pose mirrored with its left / right labels swapped (training flips crops the same way).
    """
    poses = np.asarray(poses, dtype=np.float64)
    k = len(schema.keypoints)
    if poses.ndim != 3 or poses.shape[1:] != (k, 2):
        raise PoseAdaptError(f"fit_prior: poses must be (N, {k}, 2) for schema {schema.name}, got {poses.shape}")
    if k < 4:
        raise PoseAdaptError(f"a pose prior needs at least 4 keypoints, schema {schema.name} has {k}")
    if flip:
        mirrored = poses[:, list(schema.flip_index)].copy()
        mirrored[..., 0] *= -1.0
        poses = np.concatenate([poses, mirrored])
    edges = np.asarray(schema.skeleton_index, dtype=int).reshape(-1, 2)
    if len(edges) == 0:
        raise PoseAdaptError(f"schema {schema.name} has no skeleton edges: a pose prior needs its bones")
    triplets = np.asarray(joint_triplets([tuple(e) for e in edges.tolist()]), dtype=int).reshape(-1, 3)
    rng = np.random.default_rng(seed)

    aligned, template = generalised_procrustes(poses)
    n = len(aligned)
    flat = aligned.reshape(n, -1)
    mean = flat.mean(0)
    centred = flat - mean
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    d = int(max(1, min(dims, 2 * k - 4, n - 1)))
    comps = vt[:d].T  # (2K, d), orthonormal columns
    sub = centred @ comps
    dof = max(1, 2 * k - 4 - d)
    residual_var = float(max((sv[d:] ** 2).sum() / (n * dof), 1e-8))
    m = int(max(1, min(components, n // max(2 * d, 10))))
    w, mu, cov = fit_gmm(sub, m, rng)
    chol = np.linalg.cholesky(cov)
    prec_chol = np.linalg.inv(chol).transpose(0, 2, 1)  # y = (z - mu) @ prec_chol: whitened
    log_det = -np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)

    logs = bone_log_ratios(aligned, edges)
    bone_mu = np.median(logs, axis=0)
    bone_sd = np.maximum(logs.std(axis=0), 0.02)  # foreshortening makes the tails heavy: the MAD would be too tight
    if len(triplets):
        ang = joint_angles(aligned, triplets)
        angle_lo, angle_hi = np.percentile(ang, 0.5, axis=0), np.percentile(ang, 99.5, axis=0)
        angle_sd = np.maximum(ang.std(0), 0.05)
    else:
        angle_lo = angle_hi = angle_sd = np.zeros(0)
    tensors = {
        "template": template, "mean": mean, "components": comps, "weights": w, "means": mu,
        "prec_chol": prec_chol, "log_det": log_det, "bone_mu": bone_mu, "bone_sd": bone_sd,
        "angle_lo": angle_lo, "angle_hi": angle_hi, "angle_sd": angle_sd,
    }  # fmt: skip
    prior = PosePrior(
        schema_name=schema.name,
        keypoints=tuple(schema.keypoints),
        edges=edges,
        triplets=triplets,
        tensors=tensors,
        residual_var=residual_var,
        density_median=0.0,
        density_scale=1.0,
        reference=0.0,
        threshold=0.0,
        bone_tolerance=float(bone_tolerance),
        info={"poses": int(len(poses) // (2 if flip else 1)), "flip": flip, "components": m, "dims": d,
              **(info or {})},
    )  # fmt: skip
    raw = prior.parts(poses)["density"]
    prior.density_median = float(np.median(raw))
    prior.density_scale = float(max(1.4826 * np.median(np.abs(raw - prior.density_median)), 1e-3))
    total = prior.energy(poses)
    prior.reference = float(np.median(total))
    prior.threshold = float(np.percentile(total, 99.0))
    return prior


def complete_poses(keypoints: np.ndarray, iscrowd: np.ndarray | None = None) -> np.ndarray:
    """(N, K, 3) COCO keypoints -> (M, K, 2): the non-crowd poses with every keypoint labelled."""
    kp = np.asarray(keypoints, dtype=np.float64)
    keep = (kp[..., 2] > 0).all(axis=1)
    if iscrowd is not None:
        keep &= ~np.asarray(iscrowd, dtype=bool)
    return kp[keep, :, :2]


def fit_prior_from_coco(
    ann: str | Path,
    schema: str | None = None,
    *,
    components: int = 8,
    dims: int = 12,
    flip: bool = True,
    seed: int = 0,
    min_poses: int = 30,
) -> PosePrior:
    """Fit a prior to the fully labelled poses of a COCO keypoint file (one line if there are too few)."""
    from poseadapt.data.coco import load_coco_keypoints

    data = load_coco_keypoints(ann, schema)
    poses = complete_poses(data.keypoints, data.iscrowd)
    if len(poses) < min_poses:
        raise DataError(
            f"{ann}: {len(poses)} poses with every keypoint labelled; a pose prior needs at least {min_poses}"
        )
    return fit_prior(
        poses, data.schema, components=components, dims=dims, flip=flip, seed=seed,
        info={"source": str(ann), "annotations": len(data)},
    )  # fmt: skip


def soft_argmax(heatmaps: Any, beta: float = 20.0) -> Any:
    """Differentiable keypoint locations (B, K, 2) (x, y in heatmap cells) of heatmaps (B, K, H, W).

    Each map is divided by its own (detached) maximum, so beta sets the sharpness whatever the heatmap's scale.
    """
    import torch

    b, k, h, w = heatmaps.shape
    hm = heatmaps.float()
    peak = hm.detach().flatten(2).amax(-1).clamp_min(1e-6)[..., None, None]
    prob = torch.softmax((beta * hm / peak).flatten(2), dim=-1).view(b, k, h, w)
    xs = torch.arange(w, device=hm.device, dtype=hm.dtype)
    ys = torch.arange(h, device=hm.device, dtype=hm.dtype)
    return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], dim=-1)
