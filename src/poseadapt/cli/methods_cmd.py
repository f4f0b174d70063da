"""`poseadapt methods [--json]`: every adaptation method, what it changes, and its options with defaults."""

from __future__ import annotations

import json
import sys


def run(json_out: bool) -> None:
    from poseadapt.adapt.methods import describe_methods

    methods = describe_methods()
    if json_out:
        sys.stdout.write(json.dumps(methods, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="adaptation methods (recipe key `adapt:`, e.g. `- lora: {r: 8}`)", show_lines=True)
    for col in ("method", "changes", "what it does", "options (default)"):
        table.add_column(col, overflow="fold")
    for m in methods:
        opts = "\n".join(
            f"{o['name']}: {'required' if o['required'] else json.dumps(o['default'])}" for o in m["options"]
        )
        table.add_row(m["name"], m["kind"].replace("+", ", "), m["summary"], opts or "-")
    Console().print(table)
    print("At most one method choosing parameters per recipe (full when none); any number adding losses or data.")
