"""`poseadapt schemas list | show NAME | map SRC DST`: look at keypoint schemas and how two of them correspond.

Rich is imported inside each command and torch never is: these commands must answer instantly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from poseadapt.schemas import KeypointSchema, SchemaMap, get_schema, list_schemas

if TYPE_CHECKING:
    from rich.console import Console

_KIND_STYLE = {"exact": "green", "alias": "cyan", "approximate": "yellow", "unmatched": "red"}


def _console() -> Console:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped: wide enough that names are never folded
        console = Console(width=160, no_color=True)
    return console


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def source_note(schema: KeypointSchema) -> str:
    """Where a schema comes from: the first clause of the `# Source:` comment of its YAML, else its file path."""
    path = Path(schema.source) if schema.source else None
    if path is None or not path.is_file():
        return schema.source
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.lower().startswith("source:"):
            return text[len("source:") :].split(";")[0].strip()
    return str(path) if path.parent.name != "builtin" else ""


def list_cmd(json_out: bool) -> None:
    """Table of the built-in schemas: name, keypoint count, flip pairs, groups, source."""
    rows = [
        {
            "name": s.name,
            "keypoints": len(s),
            "flip_pairs": len(s.flip_pairs),
            "groups": list(s.groups),
            "source": source_note(s),
        }
        for s in list_schemas()
    ]
    if json_out:
        _print_json({"schemas": rows})
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} built-in keypoint schemas")
    for col, justify in (("name", "left"), ("#kpts", "right"), ("#flip", "right"), ("groups", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    table.add_column("source", overflow="fold")
    for r in rows:
        table.add_row(r["name"], str(r["keypoints"]), str(r["flip_pairs"]), ", ".join(r["groups"]), r["source"])
    _console().print(table)


def show_cmd(name: str, json_out: bool) -> None:
    """Every keypoint with its sigma and flip partner, then skeleton and groups."""
    schema = get_schema(name)
    partner = schema.flip_index
    if json_out:
        _print_json({**schema.to_dict(), "source": source_note(schema), "flip_index": list(partner)})
        return
    from rich.table import Table

    console = _console()
    table = Table(title=f"{schema.name}: {len(schema)} keypoints, {len(schema.flip_pairs)} flip pairs")
    table.add_column("#", justify="right")
    table.add_column("keypoint", no_wrap=True)
    table.add_column("sigma", justify="right")
    table.add_column("flip partner", no_wrap=True)
    for i, (kp, sigma) in enumerate(zip(schema.keypoints, schema.sigmas, strict=True)):
        flip = "-" if partner[i] == i else f"{schema.keypoints[partner[i]]} ({partner[i]})"
        table.add_row(str(i), kp, f"{sigma:g}", flip)
    console.print(table)
    note = source_note(schema)
    if note:
        console.print(f"source: {note}", highlight=False)
    edges = ", ".join(f"{a}-{b}" for a, b in schema.skeleton) or "(none)"
    console.print(f"skeleton ({len(schema.skeleton)} edges): {edges}", highlight=False)
    if schema.groups:
        console.print("groups:", highlight=False)
        for group, members in schema.groups.items():
            console.print(f"  {group} ({len(members)}): {', '.join(members)}", highlight=False)


def map_cmd(src: str, dst: str, json_out: bool) -> None:
    """Where every destination keypoint comes from in the source schema, and what is left over."""
    mapping = SchemaMap(src, dst)
    if json_out:
        _print_json(mapping.to_dict())
        return
    from rich.table import Table

    console = _console()
    table = Table(title=f"{mapping.src.name} -> {mapping.dst.name}")
    table.add_column("#", justify="right")
    table.add_column(f"{mapping.dst.name} keypoint", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column(f"from {mapping.src.name}", overflow="fold")
    for row in mapping.to_dict()["points"]:
        srcs = " + ".join(f"{n} ({i})" for n, i in zip(row["src"], row["src_index"], strict=True)) or "-"
        if row["kind"] == "approximate":
            srcs = f"mean of {srcs}"
        kind = row["kind"]
        table.add_row(str(row["dst_index"]), row["dst"], f"[{_KIND_STYLE[kind]}]{kind}[/]", srcs)
    console.print(table)
    console.print(mapping.summary(), highlight=False)
    if mapping.unmatched_src:
        unused = ", ".join(mapping.src.keypoints[i] for i in mapping.unmatched_src)
        console.print(f"unused {mapping.src.name} keypoints: {unused}", highlight=False)
