"""The `compare` report: summary.json rendered as report.md and report.html (one self-contained file, plots
embedded as base64 PNG, no script, no external resource) plus the plots as PNG files.

Every number in the HTML tables is a cell carrying `data-model`, `data-test` and `data-field`, so a test (or a
script) can check the report against summary.json without parsing prose.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

DIGITS = 3


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value) or value == -1.0)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{DIGITS}f}"
    return str(value)


# ---------------------------------------------------------------------------------------------- plots
def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=100)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def plot_ap(summary: dict[str, Any]) -> bytes:
    """AP of every model on every test set, with its 95% bootstrap interval."""
    models = [m["name"] for m in summary["models"]]
    tests = [t["name"] for t in summary["tests"]]
    rows = {(r["model"], r["test"]): r for r in summary["results"]}
    fig, ax = _figure(max(5.0, 1.2 * len(tests) * max(1, len(models)) * 0.6 + 2), 3.6)
    width = 0.8 / max(1, len(models))
    for i, m in enumerate(models):
        x = np.arange(len(tests)) + (i - (len(models) - 1) / 2) * width
        ap = np.array([rows[(m, t)]["AP"] for t in tests])
        lo = np.array([rows[(m, t)]["AP_ci"][0] for t in tests])
        hi = np.array([rows[(m, t)]["AP_ci"][1] for t in tests])
        ax.bar(x, ap, width, label=m, yerr=[np.maximum(ap - lo, 0), np.maximum(hi - ap, 0)], capsize=3)
    ax.set_xticks(np.arange(len(tests)), tests)
    ax.set_ylabel("OKS AP (95% CI)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return _png(fig)


def plot_per_keypoint(summary: dict[str, Any], test: str) -> bytes:
    """Per-keypoint AP of every model on one test set."""
    rows = [r for r in summary["results"] if r["test"] == test]
    names = list(dict.fromkeys(n for r in rows for n in r["per_keypoint"]))
    fig, ax = _figure(max(6.0, 0.35 * len(names) + 2), 3.6)
    for r in rows:
        ax.plot(range(len(names)), [max(r["per_keypoint"].get(n, -1), 0.0) for n in names], "o-", label=r["model"])
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("AP of the keypoint alone")
    ax.set_ylim(0, 1)
    ax.set_title(test)
    ax.legend(fontsize=8)
    return _png(fig)


def plot_subgroups(summary: dict[str, Any], test: str) -> bytes | None:
    rows = [r for r in summary["results"] if r["test"] == test and r["subgroups"]]
    if not rows:
        return None
    labels = [f"{g['key']}={g['value']}" for g in rows[0]["subgroups"]]
    fig, ax = _figure(max(5.0, 0.6 * len(labels) * len(rows) + 2), 3.6)
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        x = np.arange(len(labels)) + (i - (len(rows) - 1) / 2) * width
        ax.bar(x, [max(g["AP"], 0.0) for g in r["subgroups"]], width, label=r["model"])
    ax.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("OKS AP")
    ax.set_ylim(0, 1)
    ax.set_title(f"{test}: subgroups")
    ax.legend(fontsize=8)
    return _png(fig)


def overlay_grid(images: list[np.ndarray], rows: Mapping[str, list[np.ndarray]], schema: Any, tile: int = 192) -> bytes:
    """The same test images (columns) under each model (rows), keypoints and skeleton drawn, model names left."""
    import cv2

    from poseadapt.models.inference import draw_pose

    label_w = 120
    sheet = np.full((tile * len(rows), label_w + tile * len(images), 3), 255, np.uint8)
    for r, (name, per_image) in enumerate(rows.items()):
        cv2.putText(sheet, name[:14], (4, r * tile + tile // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        for c, (image, kp) in enumerate(zip(images, per_image, strict=True)):
            drawn = draw_pose(image, kp, schema)
            h, w = drawn.shape[:2]
            k = tile / max(h, w)
            small = cv2.resize(drawn, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
            y0, x0 = r * tile, label_w + c * tile
            sheet[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("cannot encode the overlay grid")
    return png.tobytes()


# ---------------------------------------------------------------------------------------------- tables
def _main_columns() -> list[tuple[str, str]]:
    return [("AP", "AP"), ("AP_ci_low", "AP 2.5%"), ("AP_ci_high", "AP 97.5%"), ("AR", "AR"),
            ("AR_ci_low", "AR 2.5%"), ("AR_ci_high", "AR 97.5%"), ("PCK", "PCK@0.05"), ("AP50", "AP50"),
            ("AP75", "AP75"), ("instances", "people"), ("scored_keypoints", "keypoints")]  # fmt: skip


def _field(row: dict[str, Any], key: str) -> Any:
    if key.endswith(("_ci_low", "_ci_high")):
        base, _, end = key.rpartition("_ci_")
        return row[f"{base}_ci"][0 if end == "low" else 1]
    return row[key]


def tables(summary: dict[str, Any]) -> list[tuple[str, list[str], list[list[tuple[str, Any, dict[str, str]]]]]]:
    """[(title, headers, rows of (text, value, data attributes))]: the one source of the md and html tables."""
    out = []
    cols = _main_columns()
    if summary.get("prior"):
        cols += [("implausible_rate", "implausible"), ("implausible_ci_low", "impl. 2.5%"),
                 ("implausible_ci_high", "impl. 97.5%")]  # fmt: skip
    rows = []
    for r in summary["results"]:
        ident = {"model": r["model"], "test": r["test"]}
        rows.append([(r["model"], None, {}), (r["test"], None, {})]
                    + [(fmt(_field(r, k)), _field(r, k), {**ident, "field": k}) for k, _ in cols])  # fmt: skip
    out.append(("Scores (95% bootstrap intervals over images)", ["model", "test"] + [h for _, h in cols], rows))
    costs = [m for m in summary.get("models", []) if m.get("gflops") is not None]
    if costs:
        rows = [[(m["name"] + (" (reads images inverted)" if m.get("reads_inverted") else ""), None, {}),
                 (fmt(m["gflops"]), m["gflops"], {"model": m["name"], "field": "gflops"}),
                 (fmt(m["params_m"]), m["params_m"], {"model": m["name"], "field": "params_m"})]
                for m in costs]  # fmt: skip
        out.append(("Cost per crop (forward FLOPs, attention included)", ["model", "GFLOPs", "params (M)"], rows))
    if summary.get("baseline"):
        rows = []
        for r in summary["results"]:
            f = r["forgetting"]
            if f is None:
                continue
            ident = {"model": r["model"], "test": r["test"]}
            rows.append([
                (r["model"], None, {}), (r["test"], None, {}),
                (fmt(f["delta_AP"]), f["delta_AP"], {**ident, "field": "delta_AP"}),
                (fmt(f["ci"][0]), f["ci"][0], {**ident, "field": "delta_AP_ci_low"}),
                (fmt(f["ci"][1]), f["ci"][1], {**ident, "field": "delta_AP_ci_high"}),
                ("yes" if f["excludes_zero"] else "no", None, {}),
            ])  # fmt: skip
        title = f"Change in AP against the baseline '{summary['baseline']}'"
        if rows:
            out.append((title, ["model", "test", "ΔAP", "2.5%", "97.5%", "interval excludes 0"], rows))
    if summary.get("seed_groups"):
        out.append(_seed_group_table(summary))
    for t in summary["tests"]:
        res = [r for r in summary["results"] if r["test"] == t["name"]]
        # a model scores only the keypoints it shares with the test set: the union, "-" where a model has none
        names = list(dict.fromkeys(n for r in res for n in r["per_keypoint"]))
        rows = [[(n, None, {})] + [(fmt(r["per_keypoint"][n]), r["per_keypoint"][n],
                                    {"model": r["model"], "test": r["test"], "field": f"kp:{n}"})
                                   if n in r["per_keypoint"] else ("-", None, {}) for r in res]
                for n in names]  # fmt: skip
        out.append((f"Per-keypoint AP on {t['name']}", ["keypoint"] + [r["model"] for r in res], rows))
        groups = [(r, g) for r in res for g in r["subgroups"]]
        if groups:
            rows = [[(r["model"], None, {}), (g["key"], None, {}), (g["value"], None, {}), (str(g["images"]), None, {}),
                     (fmt(g["AP"]), g["AP"], {"model": r["model"], "test": r["test"],
                                               "field": f"group:{g['key']}={g['value']}"})]
                    for r, g in groups]  # fmt: skip
            out.append((f"Subgroups of {t['name']}", ["model", "key", "value", "images", "AP"], rows))
    return out


def _seed_group_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[tuple[str, Any, dict[str, str]]]]]:
    rows = []
    for g in summary["seed_groups"]:
        ident = {"group": g["group"], "test": g["test"]}
        d = g["vs_baseline"] or {}
        low, high = d.get("ci") or (None, None)
        delta = [
            (fmt(v), v, {**ident, "field": k})
            for k, v in (("delta_AP", d.get("delta_AP")), ("delta_AP_ci_low", low), ("delta_AP_ci_high", high))
        ]
        rows.append([(g["group"], None, {}), (g["test"], None, {}), (str(len(g["AP_runs"])), None, {}),
                     (fmt(g["AP"]), g["AP"], {**ident, "field": "AP"}),
                     (fmt(g["AP_ci"][0]), g["AP_ci"][0], {**ident, "field": "AP_ci_low"}),
                     (fmt(g["AP_ci"][1]), g["AP_ci"][1], {**ident, "field": "AP_ci_high"}),
                     (fmt(g["AP_sd"]), g["AP_sd"], {**ident, "field": "AP_sd"}),
                     (", ".join(fmt(v) for v in g["AP_runs"]), None, {}), *delta,
                     (("yes" if d["excludes_zero"] else "no") if d else "-", None, {})])  # fmt: skip
    base = summary.get("baseline")
    title = "Seed groups: mean AP of the runs, 95% intervals over images and runs" + (
        f", change against '{base}'" if base else ""
    )
    headers = ["group", "test", "runs", "AP", "2.5%", "97.5%", "SD over runs", "each run", "ΔAP", "2.5%", "97.5%",
               "interval excludes 0"]  # fmt: skip
    return title, headers, rows


def worst_lines(summary: dict[str, Any]) -> list[str]:
    return [
        f"{r['model']} on {r['test']}: worst-served subgroup {w['key']}={w['value']} (AP {fmt(w['AP'])})"
        for r in summary["results"]
        if (w := r["worst_subgroup"]) is not None
    ]


def render_markdown(summary: dict[str, Any], plots: Mapping[str, bytes]) -> str:
    b = summary["bootstrap"]
    lines = ["# poseadapt compare", "",
             f"{len(summary['models'])} model(s) x {len(summary['tests'])} test set(s); intervals: "
             f"{b['samples']} bootstrap resamples of the images, seed {b['seed']}.", ""]  # fmt: skip
    for title, headers, rows in tables(summary):
        lines += [f"## {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(c[0] for c in row) + " |" for row in rows]
        lines.append("")
    worst = worst_lines(summary)
    if worst:
        lines += ["## Worst-served subgroups", ""] + [f"- {w}" for w in worst] + [""]
    lines += ["## Plots", ""] + [f"![{name}]({name})" for name in plots] + [""]
    return "\n".join(lines)


def render_html(summary: dict[str, Any], plots: Mapping[str, bytes]) -> str:
    e = html.escape
    b = summary["bootstrap"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>poseadapt compare</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%;border:1px solid #eee;margin:.5em 0}</style></head><body>",
        "<h1>poseadapt compare</h1>",
        f"<p>{len(summary['models'])} model(s) &times; {len(summary['tests'])} test set(s). Intervals: "
        f"{b['samples']} bootstrap resamples of the images (seed {b['seed']}), 95%.</p>",
    ]
    for title, headers, rows in tables(summary):
        parts.append(f"<h2>{e(title)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>")
        for row in rows:
            cells = []
            for text, _, attrs in row:
                data = "".join(f" data-{k}='{e(str(v), quote=True)}'" for k, v in attrs.items())
                cells.append(f"<td{data}>{e(text)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
    worst = worst_lines(summary)
    if worst:
        parts.append("<h2>Worst-served subgroups</h2><ul>" + "".join(f"<li>{e(w)}</li>" for w in worst) + "</ul>")
    parts.append("<h2>Plots</h2>")
    for name, png in plots.items():
        data = base64.b64encode(png).decode()
        parts.append(f"<figure><img alt='{e(name)}' src='data:image/png;base64,{data}'><figcaption>{e(name)}"
                     "</figcaption></figure>")  # fmt: skip
    parts.append("</body></html>\n")
    return "\n".join(parts)
