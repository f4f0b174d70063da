"""Keypoint schemas: the `KeypointSchema` type, built-ins, and name-based mapping between schemas."""

from poseadapt.schemas.mapping import SchemaMap, canonical_keypoint_name
from poseadapt.schemas.registry import builtin_names, find_builtin_by_keypoints, get_schema, list_schemas
from poseadapt.schemas.schema import KeypointSchema, derive_flip_pairs

__all__ = [
    "KeypointSchema",
    "SchemaMap",
    "builtin_names",
    "canonical_keypoint_name",
    "derive_flip_pairs",
    "find_builtin_by_keypoints",
    "get_schema",
    "list_schemas",
]
