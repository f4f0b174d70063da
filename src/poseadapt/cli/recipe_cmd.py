"""`poseadapt recipe keys [--json|--markdown]` (every recipe key from the pydantic models) and `poseadapt recipes
[NAME]` (the shipped recipes; one's YAML). docs/RECIPES.md's key table is `recipe keys --markdown`, and a test
keeps the two equal."""

from __future__ import annotations

import sys
import types
import typing
from typing import Annotated, Any

import typer

recipe_app = typer.Typer(help="Recipe reference: every key a recipe accepts.", no_args_is_help=True)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return " | ".join(repr(a) if isinstance(a, str) else str(a).lower() for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin in (list, tuple, dict):
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    if isinstance(annotation, type):
        from pydantic import BaseModel

        if issubclass(annotation, BaseModel):
            return "section"
        return {"Path": "path", "str": "str", "int": "int", "float": "float", "bool": "bool"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation).replace("typing.", "")


def _models_in(annotation: Any) -> list[tuple[type, bool]]:
    """(pydantic model, inside a list) for each model an annotation can hold."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, False)]
    out = []
    origin = typing.get_origin(annotation)
    for arg in typing.get_args(annotation):
        for model, listed in _models_in(arg):
            out.append((model, listed or origin is list))
    return out


def _default(field: Any) -> Any:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if hasattr(value, "model_dump"):
        return "(section)"
    if isinstance(value, tuple):
        value = list(value)
    if hasattr(value, "__fspath__"):
        value = str(value)
    return value


def recipe_keys() -> list[dict[str, Any]]:
    """Every key of `Recipe`, depth first: {key, type, default, description}; `[]` marks an item of a list."""
    from poseadapt.train.recipe import Recipe

    rows: list[dict[str, Any]] = []

    def walk(model: type, prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{field.alias or name}"
            doc = field.description or ""
            nested = _models_in(field.annotation)
            rows.append({"key": key, "type": _type_name(field.annotation), "default": _default(field),
                         "description": doc})  # fmt: skip
            seen = set()
            for sub, listed in nested:
                path = f"{key}[]." if listed else f"{key}."
                if (sub, path) in seen:
                    continue
                seen.add((sub, path))
                walk(sub, path)

    walk(Recipe, "")
    return rows


def keys_markdown() -> str:
    """The key table of docs/RECIPES.md."""
    import json

    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for row in recipe_keys():
        default = row["default"]
        shown = default if isinstance(default, str) and default.startswith("(") else json.dumps(default)
        cells = [f"`{row['key']}`", row["type"].replace("|", "\\|"), f"`{shown}`".replace("|", "\\|"),
                 row["description"].replace("|", "\\|")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@recipe_app.command("keys")
def keys(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print docs/RECIPES.md's table.")] = False,
) -> None:
    """Every key a recipe accepts, with its type, default and description (from the recipe's pydantic models)."""
    from poseadapt.cli.io import print_json

    if json_out:
        print_json(recipe_keys())
        return
    if markdown:
        sys.stdout.write(keys_markdown())
        return
    rows = recipe_keys()
    width = max(len(r["key"]) for r in rows)
    for r in rows:
        extra = f"  # {r['description']}" if r["description"] else ""
        sys.stdout.write(f"{r['key']:<{width}}  {r['type']} = {r['default']!s}{extra}\n")


def recipes(
    name: Annotated[str | None, typer.Argument(help="A shipped recipe to print (its YAML).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the recipes shipped with poseadapt (usable by name in `poseadapt train NAME`), or print one."""
    from poseadapt.cli.io import print_json
    from poseadapt.train.recipe import builtin_recipes, recipe_text

    if name is not None:
        text, _ = recipe_text(name)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    rows = []
    for recipe in builtin_recipes():
        text, _ = recipe_text(recipe)
        first = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), "")
        rows.append({"name": recipe, "about": first})
    if json_out:
        print_json(rows)
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        sys.stdout.write(f"{r['name']:<{width}}  {r['about']}\n")


def write_recipes_doc(path: str = "docs/RECIPES.md") -> None:
    """Replace the key table between the markers of docs/RECIPES.md with `keys_markdown()`."""
    from pathlib import Path

    doc = Path(path)
    text = doc.read_text(encoding="utf-8")
    head, _, rest = text.partition("<!-- keys:start -->\n")
    _, _, tail = rest.partition("<!-- keys:end -->")
    doc.write_text(head + "<!-- keys:start -->\n" + keys_markdown() + "<!-- keys:end -->" + tail, encoding="utf-8")
