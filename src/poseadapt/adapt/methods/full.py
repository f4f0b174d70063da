"""`full`: every parameter trains (the default when no method chooses parameters)."""

from __future__ import annotations

from typing import ClassVar

from poseadapt.adapt.method import Method


class Full(Method):
    name = "full"
    kinds: ClassVar[tuple[str, ...]] = ("parameters",)
    summary = "train every parameter of backbone and heads (the default)"
    chooses_parameters = True
