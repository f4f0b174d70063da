"""Where a zero-label model's errors on thermal infants are, against supervised models on the same test renders.

    .venv/bin/python benchmarks/thermal_error_anatomy.py [--out bench_out/thermal]

`benchmarks/thermal_adaptation.py inverted` self-trains `invmodel_round3` without a single thermal infant label
(pseudo-labels from the built-in model reading the frames inverted, then rounds with `model.invert_input`); its
AP on the thermal infant test set stays well short of `sup600_invmodel` and `sup600`, the same recipe WITH the
600 labels. An AP number does not say what to fix, so this script takes the zero-label model's errors apart, with
the supervised models' as the reference:

1. AP of each model (`poseadapt eval`, predictions cached in OUT/anatomy).
2. Chirality: the share of test people predicted whole-body mirrored (left and right swapped: the prediction is
   nearer the swapped ground truth than the ground truth, averaged over labelled keypoints), and per keypoint the
   median error in units of sqrt(box area) with the share of keypoints nearer their mirror partner.
3. Axial bias: each keypoint's median signed error along the ground truth's shoulder-mid -> hip-mid axis, in
   torso lengths (positive: towards the feet), and the median size of the error across it.
4. Oracle chirality: AP after un-mirroring every prediction the ground truth calls mirrored. An upper bound on
   what any left/right fix could give, NOT a method (it reads the test labels).
5. Axial median correction, label-free: along the chain of left/right midpoints (eyes, ears, shoulders, hips,
   knees, ankles), the position of each middle midpoint between its neighbours is a ratio; each pair is moved along
   the chain so that the median ratio over the model's own test predictions matches the infant pose prior's.
6. Pseudo-label quality of `invmodel_round3`'s training labels (OUT/invmodel_round3_labels.json, the labels the
   next round would train on) against their hidden ground truth, raw and after calibrating them towards the prior
   (per skeleton triple a-b-c, the projection of b onto a->c mapped to the prior's distribution by quantiles, or
   shifted to the prior's median; per keypoint the least-squares move that meets all its triples), with the
   per-triple medians: prior, labels, hidden truth.

The report (markdown) is printed and written to OUT/error_anatomy.md; progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from poseadapt.evaluate.proportions import axial_pairs, axial_ratios
from poseadapt.priors import joint_triplets
from poseadapt.schemas import get_schema
from unlabelled_methods_ap import sh

SCHEMA = get_schema("coco17")
K = SCHEMA.num_keypoints
FLIP = list(SCHEMA.flip_index)
NAMES = SCHEMA.keypoints
SIGMAS = np.array(SCHEMA.sigmas)
ZERO, SUPERVISED = "invmodel_round3", ("sup600_invmodel", "sup600")
MODELS = (ZERO, *SUPERVISED)
# the axial chain of left/right midpoints, head to feet (evaluate/proportions.py); its middle pairs are the segments
CHAIN = axial_pairs(NAMES)
SEGMENTS = range(1, len(CHAIN) - 1)
ANN = "annotations/infant_coco17.json"

Poses = np.ndarray  # (N, K, 3): x, y, visibility or score


# ---------------------------------------------------------------- inputs


def inputs(out: Path) -> dict[str, Path]:
    """The files `thermal_adaptation.py inverted` leaves; exits with one line when one is missing."""
    paths = {
        "test_ann": out / "data/infant_thermal_test" / ANN,
        "test_images": out / "data/infant_thermal_test/images",
        "prior": out / "data/infant_prior" / ANN,
        "labels": out / f"{ZERO}_labels.json",
        "labels_gt": out / "data/unlabelled_thermal" / ANN,
        **{name: out / "runs" / name / "final.safetensors" for name in MODELS},
    }
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise SystemExit(f"missing {missing[0]}: run `benchmarks/thermal_adaptation.py inverted` first")
    return paths


def poseadapt(*args: str) -> str:
    """`poseadapt ARGS` through the benchmarks' runner, its timing line on stderr (stdout is the report)."""
    with contextlib.redirect_stdout(sys.stderr):
        return sh(*args)


def predict(name: str, paths: dict[str, Path], folder: Path) -> Path:
    """The model's test predictions (COCO results), cached."""
    pred = folder / f"{name}_pred.json"
    if not pred.is_file():
        poseadapt("eval", "--checkpoint", str(paths[name]), "--ann", str(paths["test_ann"]),
                  "--images", str(paths["test_images"]), "--out", str(pred), "--json")  # fmt: skip
    return pred


def score(gt: Path, pred: Path) -> float:
    """OKS AP in percent (`poseadapt score`, the same numbers as pycocotools)."""
    return 100 * json.loads(poseadapt("score", "--gt", str(gt), "--pred", str(pred), "--json"))["AP"]


def load(path: Path) -> tuple[dict | list, list[dict], Poses]:
    """A COCO file or a results list: the whole document, its annotation list and their keypoints as one array."""
    doc = json.loads(path.read_text())
    anns = doc["annotations"] if isinstance(doc, dict) else doc
    return doc, anns, np.stack([np.asarray(a["keypoints"], float).reshape(K, 3) for a in anns])


def rewrite(source: Path, poses: Poses, dest: Path) -> Path:
    """A copy of `source` with its annotations' keypoints replaced by `poses` (in their order)."""
    doc, anns, _ = load(source)
    for ann, pose in zip(anns, poses, strict=True):
        ann["keypoints"] = pose.ravel().tolist()
    dest.write_text(json.dumps(doc))
    return dest


def truth_for(anns: list[dict], gt: Path) -> tuple[Poses, np.ndarray]:
    """The ground-truth keypoints of each annotation's image (one person an image) and sqrt(box area)."""
    by_image = {a["image_id"]: a for a in json.loads(gt.read_text())["annotations"]}
    matched = [by_image[a["image_id"]] for a in anns]
    poses = np.stack([np.asarray(a["keypoints"], float).reshape(K, 3) for a in matched])
    return poses, np.sqrt([a["area"] for a in matched])


# ---------------------------------------------------------------- 2-4: chirality and axial bias


def chirality(pred: Poses, truth: Poses, scale: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Whole-body mirrored share; per keypoint the median error / sqrt(area) and the share nearer its partner."""
    err = np.linalg.norm(pred[..., :2] - truth[..., :2], axis=2) / scale[:, None]
    err_mirror = np.linalg.norm(pred[..., :2] - truth[:, FLIP, :2], axis=2) / scale[:, None]
    seen = truth[..., 2] > 0
    mirrored = [em[v].mean() < e[v].mean() for e, em, v in zip(err, err_mirror, seen, strict=True)]
    swapped = (err_mirror < err) & (np.asarray(FLIP) != np.arange(K))  # a keypoint without partner never is
    median = np.array([np.median(err[seen[:, j], j]) for j in range(K)])
    return float(np.mean(mirrored)), median, np.array([swapped[seen[:, j], j].mean() for j in range(K)])


def axial_bias(pred: Poses, truth: Poses) -> tuple[np.ndarray, np.ndarray]:
    """Per keypoint the median signed error along the truth's shoulder-mid -> hip-mid axis and the median size of
    the error across it, both in torso lengths (every test person has both shoulders and hips labelled)."""
    (_, ls, rs), (_, lh, rh) = CHAIN[2], CHAIN[3]
    axis = (truth[:, lh, :2] + truth[:, rh, :2] - truth[:, ls, :2] - truth[:, rs, :2]) / 2
    torso = np.linalg.norm(axis, axis=1, keepdims=True)
    along = axis / torso
    across = np.stack([-along[:, 1], along[:, 0]], 1)
    err = pred[..., :2] - truth[..., :2]
    a = np.einsum("nkd,nd->nk", err, along) / torso
    c = np.abs(np.einsum("nkd,nd->nk", err, across)) / torso
    seen = truth[..., 2] > 0
    return (np.array([np.median(a[seen[:, j], j]) for j in range(K)]),
            np.array([np.median(c[seen[:, j], j]) for j in range(K)]))  # fmt: skip


def oracle_unmirror(pred: Poses, truth: Poses) -> tuple[Poses, int]:
    """Every prediction whose left/right swap is nearer the truth (mean over labelled keypoints), swapped."""
    seen = truth[..., 2] > 0
    err = np.linalg.norm(pred[..., :2] - truth[..., :2], axis=2)
    err_swap = np.linalg.norm(pred[:, FLIP, :2] - truth[..., :2], axis=2)
    swap = np.array([es[v].mean() < e[v].mean() for e, es, v in zip(err, err_swap, seen, strict=True)])
    out = pred.copy()
    out[swap] = pred[swap][:, FLIP]
    return out, int(swap.sum())


# ---------------------------------------------------------------- 5: axial median correction


def axial_correction(pred: Poses, prior: Poses, segments: tuple[int, ...], strength: float = 1.0) -> Poses:
    """Move each chosen segment's left/right pair along its span so that the median chain ratio of `pred`
    becomes the prior's (label-free: only the predictions and the prior are read). All segments are measured on
    the uncorrected poses."""
    ratios = axial_ratios(pred, CHAIN)
    gap = np.nanmedian(axial_ratios(prior, CHAIN), 0) - np.nanmedian(ratios, 0)
    mid = np.stack([(pred[:, i, :2] + pred[:, j, :2]) / 2 for _, i, j in CHAIN], 1)
    out = pred.copy()
    for m in segments:
        shift = strength * gap[m - 1] * (mid[:, m + 1] - mid[:, m - 1])
        shift[np.isnan(ratios[:, m - 1])] = 0
        for j in CHAIN[m][1:]:
            out[:, j, :2] += shift
    return out


# ---------------------------------------------------------------- 6: pseudo-label quality and calibration


EDGES = {frozenset(e) for e in SCHEMA.skeleton_index}
# every a-b-c with a and c joined to b in the skeleton but not to each other
TRIPLES = [t for t in joint_triplets(SCHEMA.skeleton_index) if frozenset((t[0], t[2])) not in EDGES]


def triple_ratio(poses: Poses, triple: tuple[int, int, int]) -> np.ndarray:
    """Projection of b - a onto c - a as a fraction of |c - a|^2; NaN where one is missing or |c - a| < 1 px."""
    a, b, c = triple
    span = poses[:, c, :2] - poses[:, a, :2]
    n = (span * span).sum(1)
    t = ((poses[:, b, :2] - poses[:, a, :2]) * span).sum(1) / np.maximum(n, 1e-9)
    return np.where((poses[:, [a, b, c], 2] > 0).all(1) & (n > 1), t, np.nan)


def quantile_map(t: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Map t through src's percentiles onto dst's (NaN ignored in both distributions)."""
    qs = np.linspace(0, 1, 101)
    src_q, dst_q = np.quantile(src[~np.isnan(src)], qs), np.quantile(dst[~np.isnan(dst)], qs)
    return np.interp(np.interp(t, src_q, qs), qs, dst_q)


def calibrate(poses: Poses, prior: Poses, strength: float, mode: str) -> Poses:
    """Move every keypoint b by the least-squares step that brings each of its triples' ratios to its target:
    the prior's quantile at the ratio's own quantile (`quantile`), or the ratio shifted by the gap between the
    medians (`median`); `strength` scales the steps."""
    rows: dict[int, list[tuple[tuple[int, int, int], np.ndarray, np.ndarray]]] = {b: [] for b in range(K)}
    for triple in TRIPLES:
        t, t_prior = triple_ratio(poses, triple), triple_ratio(prior, triple)
        target = quantile_map(t, t, t_prior) if mode == "quantile" else t + np.nanmedian(t_prior) - np.nanmedian(t)
        rows[triple[1]].append((triple, t, target))
    moves = np.zeros((len(poses), K, 2))
    for b, triples in rows.items():
        for i, pose in enumerate(poses):
            dirs, dists = [], []
            for (a, _, c), t, target in triples:
                if np.isnan(t[i]):
                    continue
                span = pose[c, :2] - pose[a, :2]
                length = np.linalg.norm(span)
                dirs.append(span / length)
                dists.append((target[i] - t[i]) * length)
            if dirs:
                moves[i, b] = np.linalg.lstsq(np.array(dirs), np.array(dists), rcond=None)[0]
    out = poses.copy()
    out[..., :2] += strength * moves
    return out


def label_quality(labels: Poses, truth: Poses, scale: np.ndarray) -> dict[str, float]:
    """Kept share (of all keypoint slots), median error / sqrt(area) and the shares with OKS-like similarity
    exp(-d^2 / (2 (2 sigma)^2)) above 0.5 and 0.75, over keypoints both kept and labelled."""
    kept = (labels[..., 2] > 0) & (truth[..., 2] > 0)
    d = np.linalg.norm(labels[..., :2] - truth[..., :2], axis=2) / scale[:, None]
    ks = np.exp(-(d**2) / (2 * (2 * SIGMAS) ** 2))
    return {"kept": kept.mean(), "err": np.median(d[kept]), "ks50": np.mean(ks[kept] > 0.5),
            "ks75": np.mean(ks[kept] > 0.75)}  # fmt: skip


# ---------------------------------------------------------------- report


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table, ending in a blank line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows), ""]


def keypoint_table(cell: dict[str, list[str]]) -> list[str]:
    """One row a keypoint, one column a model: `cell[model][keypoint]`."""
    return table(["keypoint", *cell], [[NAMES[j], *(c[j] for c in cell.values())] for j in range(K)])


def error_sections(pred: dict[str, Poses], ap: dict[str, float], truth: Poses, scale: np.ndarray) -> list[str]:
    """Sections 1-3: AP, mirroring and per-keypoint error, axial bias."""
    chir = {name: chirality(p, truth, scale) for name, p in pred.items()}
    lines = ["## AP and whole-body mirroring", ""]
    lines += table(["model", "AP", "mirrored share"], [[n, f"{ap[n]:.2f}", f"{chir[n][0]:.3f}"] for n in pred])
    lines += [
        "Mirrored: the prediction is nearer the left/right-swapped ground truth than the ground truth "
        "(mean distance over labelled keypoints).",
        "",
        "## Per keypoint: median error / sqrt(area) / share nearer its mirror partner's truth",
        "",
    ]
    lines += keypoint_table({n: [f"{e:.2f} / {m:.2f}" for e, m in zip(*chir[n][1:], strict=True)] for n in pred})
    bias = {name: axial_bias(p, truth) for name, p in pred.items()}
    lines += [
        "## Axial bias: median signed error along the truth's shoulder-mid -> hip-mid axis (+: towards the feet), "
        "median |error| across it; torso lengths",
        "",
    ]
    return lines + keypoint_table({n: [f"{a:+.2f}, {c:.2f}" for a, c in zip(*bias[n], strict=True)] for n in pred})


def oracle_section(pred: Poses, ap: float, truth: Poses, gt: Path, source: Path, folder: Path) -> list[str]:
    """Section 4: AP with the mirrored predictions un-mirrored by the test labels."""
    unmirrored, n_swapped = oracle_unmirror(pred, truth)
    oracle = score(gt, rewrite(source, unmirrored, folder / f"{ZERO}_oracle_chirality.json"))
    return [
        "## Oracle chirality (reads the test labels: an upper bound, not a method)",
        "",
        f"`{ZERO}` with its {n_swapped} mirrored predictions un-mirrored: AP {oracle:.2f} (as predicted {ap:.2f}).",
        "",
    ]


def axial_section(pred: dict[str, Poses], ap: dict[str, float], prior: Poses, gt: Path, files: dict[str, Path],
                  folder: Path) -> list[str]:  # fmt: skip
    """Section 5: AP after the label-free axial median correction of each middle segment alone and all four."""
    parts = [CHAIN[m][0] + "s" for m in SEGMENTS]
    variants = [(f"{m} ({part})", part, (m,)) for m, part in zip(SEGMENTS, parts, strict=True)]
    variants.append(("all four", "all", tuple(SEGMENTS)))
    rows = []
    for name in (ZERO, SUPERVISED[0]):
        ratios = np.nanmedian(axial_ratios(pred[name], CHAIN), 0)
        cells = [name, " ".join(f"{r:.3f}" for r in ratios), f"{ap[name]:.2f}"]
        for _, key, segments in variants:
            fixed = axial_correction(pred[name], prior, segments)
            cells.append(f"{score(gt, rewrite(files[name], fixed, folder / f'{name}_axial_{key}.json')):.2f}")
        rows.append(cells)
    prior_ratios = " ".join(f"{r:.3f}" for r in np.nanmedian(axial_ratios(prior, CHAIN), 0))
    lines = [
        "## Axial median correction (label-free, strength 1)",
        "",
        f"Median chain ratio of each middle segment ({', '.join(parts)}); the infant prior's: {prior_ratios}. "
        "AP as predicted, then after correcting each segment alone, and all four.",
        "",
    ]
    return lines + table(["model", "pred ratios", "AP", *(f"seg {label}" for label, _, _ in variants)], rows)


def label_section(labels_path: Path, labels_gt: Path, prior: Poses) -> list[str]:
    """Section 6: the pseudo-labels' quality, raw and calibrated, and the per-triple medians."""
    _, anns, labels = load(labels_path)
    truth, scale = truth_for(anns, labels_gt)
    rows = []
    for mode, strength in (("raw", 0.0), ("quantile", 0.5), ("quantile", 1.0), ("median", 0.5), ("median", 1.0)):
        fixed = labels if mode == "raw" else calibrate(labels, prior, strength, mode)
        q = label_quality(fixed, truth, scale)
        label = mode if mode == "raw" else f"{mode}, strength {strength:g}"
        rows.append([label, *(f"{q[k]:.3f}" if k == "err" else f"{q[k]:.2f}" for k in ("kept", "err", "ks50", "ks75"))])
    lines = [f"## Pseudo-labels `{labels_path.name}` ({len(anns)} people) against their hidden ground truth", ""]
    lines += table(["labels", "kept", "median error", "ks > 0.5", "ks > 0.75"], rows)
    lines += [
        "Kept: share of all keypoint slots kept and labelled; error / sqrt(area) and ks (OKS-like similarity) over "
        "those. Calibrated towards the infant prior per skeleton triple a-b-c, by quantiles or by the median.",
        "",
        "Per triple a-b-c, the median projection of b - a onto c - a (a fraction of it):",
        "",
    ]
    short = [n.replace("left_", "l_").replace("right_", "r_") for n in NAMES]
    rows = []
    for triple in TRIPLES:
        tp, tl, tg = (np.nanmedian(triple_ratio(p, triple)) for p in (prior, labels, truth))
        rows.append(["-".join(short[i] for i in triple), f"{tp:.3f}", f"{tl:.3f}", f"{tg:.3f}", f"{tp - tl:+.3f}"])
    return lines + table(["a-b-c", "prior", "labels", "hidden truth", "prior - labels"], rows)


def report(out: Path) -> list[str]:
    """The whole report, as markdown lines."""
    paths, folder = inputs(out), out / "anatomy"
    folder.mkdir(exist_ok=True)
    gt = paths["test_ann"]
    files = {name: predict(name, paths, folder) for name in MODELS}
    ap = {name: score(gt, path) for name, path in files.items()}
    anns, pred = {}, {}
    for name, path in files.items():
        _, anns[name], pred[name] = load(path)
    order = [a["image_id"] for a in anns[ZERO]]
    assert all([a["image_id"] for a in anns[n]] == order for n in MODELS), "predictions in different orders"
    truth, scale = truth_for(anns[ZERO], gt)
    prior = load(paths["prior"])[2]
    return [
        f"# Error anatomy: zero-label `{ZERO}` against supervised models on the thermal infant test set",
        "",
        *error_sections(pred, ap, truth, scale),
        *oracle_section(pred[ZERO], ap[ZERO], truth, gt, files[ZERO], folder),
        *axial_section(pred, ap, prior, gt, files, folder),
        *label_section(paths["labels"], paths["labels_gt"], prior),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out/thermal"))
    out = ap.parse_args().out.resolve()
    t0 = time.time()
    text = "\n".join(report(out)).rstrip() + "\n"
    (out / "error_anatomy.md").write_text(text)
    print(text, end="")
    print(f"[{time.time() - t0:6.1f}s] written to {out / 'error_anatomy.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
