"""Plain-text tables for scores: aligned columns, no colour, so they read the same in a terminal, a log or a diff."""

from __future__ import annotations

import math
from collections.abc import Sequence


def format_value(value: object, digits: int = 3) -> str:
    """A score as text: `-` for undefined (pycocotools' -1, NaN, None), fixed decimals otherwise."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value) or value == -1.0:
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 3) -> str:
    """Columns padded to their widest cell; the first column left-aligned, the others right-aligned."""
    cells = [list(headers)] + [[format_value(v, digits) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
