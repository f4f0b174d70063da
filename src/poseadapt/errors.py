"""User-facing errors.

A `PoseAdaptError` is a problem with the user's input (file, schema, recipe). The CLI prints its message as one
line on stderr and exits non-zero, without a traceback. Anything else is a bug and keeps its traceback.
"""


class PoseAdaptError(Exception):
    """Bad user input: printed as one clear line by the CLI."""


class SchemaError(PoseAdaptError):
    """A keypoint schema is malformed, unknown, or contradicts the data."""


class DataError(PoseAdaptError):
    """An annotation / prediction file or image is missing or invalid."""
