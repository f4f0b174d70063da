"""`poseadapt import` and `poseadapt export onnx`: bring foreign checkpoints in, send ours out.

(`predict` and `eval` live in `cli/inference_cmd.py`.)

torch is imported inside the functions, so loading this module (and `poseadapt --help`) stays light.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from poseadapt.errors import PoseAdaptError


def _print_json(obj: object) -> None:
    from poseadapt.cli.io import print_json

    print_json(obj)


def parse_img_size(text: str | None) -> tuple[int, int] | None:
    """'192x256' (WIDTHxHEIGHT, the recipes' [w, h] order) -> (h, w) = (256, 192), the backbone's order.

    A crop wider than high is unusual for pose (it is what the old HEIGHTxWIDTH spelling of a portrait crop
    reads as), so it gets a one-line note on stderr."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not match:
        raise PoseAdaptError(
            f"--img-size must look like WIDTHxHEIGHT (e.g. 192x256, like a recipe's [w, h]), got '{text}'"
        )
    w, h = int(match.group(1)), int(match.group(2))
    if w > h:
        sys.stderr.write(
            f"note: --img-size is WIDTHxHEIGHT: {w}x{h} is a landscape crop {w} wide and {h} high; "
            f"a portrait pose crop is {h}x{w}\n"
        )
    return h, w


def import_cmd(
    fmt: str,
    src: str,
    out: Path,
    schema: str | None,
    num_heads: int | None,
    img_size: str | None,
    head: str,
    json_out: bool,
) -> None:
    from poseadapt.cli.io import check_output
    from poseadapt.interop.checkpoint import save_checkpoint
    from poseadapt.interop.importers import FORMATS, import_checkpoint

    if fmt not in FORMATS:
        raise PoseAdaptError(f"unknown import format '{fmt}' (known: {', '.join(FORMATS)})")
    if out.suffix != ".safetensors":
        raise PoseAdaptError(f"--out must end in .safetensors, got '{out}'")
    check_output(out, "--out")
    model, report = import_checkpoint(fmt, src, schema, num_heads, parse_img_size(img_size), head)
    provenance = {**model.provenance, "import_report": report.to_dict()}
    provenance.pop("hf_config", None)
    save_checkpoint(model, out, provenance)
    summary: dict[str, Any] = {
        "out": str(out),
        "arch": model.config.arch,
        "backbone": {
            k: v
            for k, v in model.config.backbone.to_dict().items()
            if k in ("embed_dim", "depth", "num_heads", "img_size", "num_experts")
        },
        "heads": [
            {"name": h.name, "schema": h.schema, "keypoints": len(s)}
            for h, s in zip(model.config.heads, model.schemas, strict=True)
        ],
        **report.to_dict(),
    }
    if json_out:
        _print_json(summary)
        return
    lines = [
        f"imported {fmt} checkpoint {src} -> {out}",
        f"  backbone: {summary['backbone']}",
        "  heads: " + ", ".join(f"{h['name']} ({h['schema']}, {h['keypoints']} kp)" for h in summary["heads"]),
        f"  loaded {report.loaded} tensors; unused: {len(report.unused)}; initialised fresh: {len(report.missing)}",
    ]
    lines += [f"    unused: {k}" for k in report.unused[:20]]
    if len(report.unused) > 20:
        lines.append(f"    ... and {len(report.unused) - 20} more unused (use --json for all)")
    lines += [f"  note: {n}" for n in report.notes]
    sys.stdout.write("\n".join(lines) + "\n")


def export_onnx_cmd(checkpoint: Path, out: Path, head: str | None, check: bool, json_out: bool) -> None:
    from poseadapt.cli.io import check_output
    from poseadapt.interop.checkpoint import load_model
    from poseadapt.interop.onnx_export import export_onnx

    check_output(out, "--out")
    model = load_model(checkpoint)
    result = export_onnx(model, out, head=head, check=check)
    if json_out:
        _print_json(result)
        return
    msg = f"exported {checkpoint} (head {result['head']}) -> {out}"
    if "max_rel_error" in result:
        msg += f"; onnxruntime vs torch max relative error {result['max_rel_error']:.2e}"
    sys.stdout.write(msg + "\n")
