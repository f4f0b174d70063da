"""Built-in schemas (YAML files in `builtin/`, each citing its source) and name-or-file lookup."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from poseadapt.errors import SchemaError
from poseadapt.schemas.schema import KeypointSchema

BUILTIN_DIR = Path(__file__).with_name("builtin")


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


@cache
def _load_builtin(name: str) -> KeypointSchema:
    return KeypointSchema.from_yaml(BUILTIN_DIR / f"{name}.yaml")


def list_schemas() -> list[KeypointSchema]:
    return [_load_builtin(n) for n in builtin_names()]


def get_schema(name_or_path: str | Path | KeypointSchema) -> KeypointSchema:
    """A built-in by name (case-insensitive), or a schema YAML file by path."""
    if isinstance(name_or_path, KeypointSchema):
        return name_or_path
    text = str(name_or_path)
    key = text.lower()
    if key in builtin_names():
        return _load_builtin(key)
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        return KeypointSchema.from_yaml(path)
    raise SchemaError(f"unknown schema '{text}': not a built-in ({', '.join(builtin_names())}) nor a YAML file")


def find_builtin_by_keypoints(keypoint_names: list[str]) -> KeypointSchema | None:
    """The built-in whose keypoints are these, in order (to infer a schema from COCO categories).

    Exact names first; then the same points under another spelling (`L_Eye` = `left_eye`), since real datasets'
    category names are rarely our snake_case ones, and a schema's `aliases` (CrowdPose's `head`). Order must agree:
    a reordered set is a different schema. `--schema NAME` is checked with the same rule.
    """
    from poseadapt.schemas.mapping import keypoint_names_disagree

    names = tuple(keypoint_names)
    schemas = list_schemas()
    for schema in schemas:
        if schema.keypoints == names:
            return schema
    for schema in schemas:
        if len(schema.keypoints) == len(names) and keypoint_names_disagree(names, schema) is None:
            return schema
    return None
