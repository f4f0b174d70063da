"""Built-in schemas (YAML files in `builtin/`, each citing its source) and name-or-file lookup."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from poseadapt.errors import SchemaError
from poseadapt.schemas.schema import KeypointSchema

BUILTIN_DIR = Path(__file__).with_name("builtin")

# Other names for a built-in: mmpose's dataset names (`configs/_base_/datasets/<name>.py`) whose keypoints, flip
# pairs and sigmas are exactly a built-in's. Checked in tests/test_schemas_builtin.py against the mmpose facts.
SCHEMA_ALIASES: dict[str, str] = {
    "coco": "coco17",
    "coco_wholebody": "coco_wholebody133",
    "ubody2d": "coco_wholebody133",  # UBody (Lin et al., CVPR 2023): COCO-WholeBody's 133 points and sigmas
    "crowdpose": "crowdpose14",
    "exlpose": "crowdpose14",  # ExLPose (Lee et al., CVPR 2023): CrowdPose's 14 points, `head`, sigmas
    "aic": "aic14",
    "mpii": "mpii16",
    "mhp": "mpii16",  # MHP v2 files: MPII's 16 joints (`Right-ankle`, `Upper-neck`)
    "halpe": "halpe136",
    "humanart": "coco17",  # Human-Art's `keypoints` field holds COCO's 17; humanart21 reads `keypoints_21`
    "coco_aic": "coco_aic19",
    "humanart_aic": "coco_aic19",
    "jhmdb": "jhmdb15",
    "h36m": "h36m17",
    "mpii_trb": "mpii_trb40",
    "posetrack18": "posetrack17",
    "ochuman": "coco17",
    "ap10k": "ap10k17",
}


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


@cache
def _load_builtin(name: str) -> KeypointSchema:
    return KeypointSchema.from_yaml(BUILTIN_DIR / f"{name}.yaml")


def list_schemas() -> list[KeypointSchema]:
    return [_load_builtin(n) for n in builtin_names()]


def get_schema(name_or_path: str | Path | KeypointSchema) -> KeypointSchema:
    """A built-in by name or by one of its `SCHEMA_ALIASES` (case-insensitive), or a schema YAML file by path."""
    if isinstance(name_or_path, KeypointSchema):
        return name_or_path
    text = str(name_or_path)
    key = text.lower()
    key = SCHEMA_ALIASES.get(key, key)
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
