"""Every adaptation method, one file each, in one explicit table (the whole registry: a dict).

A recipe's `adapt:` list names them; `build_methods` turns that list into method objects, validating each item's
options with the method's pydantic model and refusing contradictions (two methods choosing the parameters) in one
line. A method written outside the package joins with `add_method(MyMethod)` (see docs/METHODS.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from poseadapt.adapt.method import Method
from poseadapt.adapt.methods.adversarial import Adversarial
from poseadapt.adapt.methods.distill import Distill
from poseadapt.adapt.methods.freeze_blocks import FreezeBlocks
from poseadapt.adapt.methods.full import Full
from poseadapt.adapt.methods.head_only import HeadOnly
from poseadapt.adapt.methods.head_then_full import HeadThenFull
from poseadapt.adapt.methods.layer_decay import LayerDecay
from poseadapt.adapt.methods.lora import Lora
from poseadapt.adapt.methods.mean_teacher import MeanTeacher
from poseadapt.adapt.methods.memory_replay import MemoryReplay
from poseadapt.adapt.methods.new_dataset import NewDataset
from poseadapt.adapt.methods.prior import Prior
from poseadapt.adapt.methods.prototypes import Prototypes
from poseadapt.adapt.methods.rehearsal import Rehearsal
from poseadapt.errors import PoseAdaptError

METHODS: dict[str, type[Method]] = {
    "full": Full,
    "head_only": HeadOnly,
    "freeze_blocks": FreezeBlocks,
    "layer_decay": LayerDecay,
    "head_then_full": HeadThenFull,
    "lora": Lora,
    "rehearsal": Rehearsal,
    "memory_replay": MemoryReplay,
    "prior": Prior,
    "mean_teacher": MeanTeacher,
    "new_dataset": NewDataset,
    "prototypes": Prototypes,
    "adversarial": Adversarial,
    "distill": Distill,
}


def add_method(cls: type[Method]) -> type[Method]:
    """Add a method class to the table (usable as a decorator); its `name` is the recipe key."""
    if not cls.name or not cls.name.isidentifier():
        raise PoseAdaptError(f"method class {cls.__name__} needs a `name` that is an identifier")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise PoseAdaptError(f"a method named '{cls.name}' exists already ({METHODS[cls.name].__name__})")
    METHODS[cls.name] = cls
    return cls


def _option_error(exc: ValidationError, key: str) -> str:
    err = exc.errors()[0]
    where = ".".join([key, *(str(p) for p in err["loc"])])
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    else:
        msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"recipe key '{where}': {msg}{more}"


def parse_item(item: Any, index: int) -> tuple[str, dict[str, Any]]:
    """One `adapt:` entry -> (name, options): a one-key mapping `{name: {options}}`, or a bare name."""
    key = f"adapt.{index}"
    if isinstance(item, str):
        return item, {}
    if not isinstance(item, Mapping) or len(item) != 1:
        raise PoseAdaptError(
            f"recipe key '{key}': each item is one method name mapped to its options, e.g. '- lora: {{r: 8}}'"
        )
    ((name, options),) = item.items()
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise PoseAdaptError(f"recipe key '{key}.{name}': options must be a mapping, got {options!r}")
    return str(name), dict(options)


def build_methods(items: Sequence[Any]) -> list[Method]:
    """Method objects for a recipe's `adapt:` list (see the module docstring); each knows its recipe key."""
    import difflib

    methods: list[Method] = []
    chooser: Method | None = None
    for index, item in enumerate(items):
        name, options = parse_item(item, index)
        if name not in METHODS:
            close = difflib.get_close_matches(name, list(METHODS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(METHODS)})"
            raise PoseAdaptError(f"recipe key 'adapt.{index}': unknown method '{name}'{hint}")
        cls = METHODS[name]
        key = f"adapt.{index}.{name}"
        try:
            opts = cls.Options.model_validate(options)
        except ValidationError as exc:
            raise PoseAdaptError(_option_error(exc, key)) from None
        method = cls(opts)
        method.key = key
        if any(m.name == name for m in methods):
            raise PoseAdaptError(f"recipe key '{key}': method '{name}' is listed twice")
        if cls.chooses_parameters:
            if chooser is not None:
                raise PoseAdaptError(
                    f"recipe key '{key}': '{name}' and '{chooser.name}' both choose which parameters train; keep one"
                )
            chooser = method
        methods.append(method)
    return methods


def describe_methods() -> list[dict[str, Any]]:
    """name, kind, summary and options (name, type, default, description) of every method in the table."""
    out = []
    for name, cls in METHODS.items():
        options = []
        for field_name, f in cls.Options.model_fields.items():
            default = None if f.is_required() else f.get_default(call_default_factory=True)
            ann = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
            options.append(
                {
                    "name": f.alias or field_name,
                    "type": ann,
                    "required": f.is_required(),
                    "default": default
                    if isinstance(default, str | int | float | bool | list | type(None))
                    else str(default),
                    "description": f.description or "",
                }
            )
        out.append({"name": name, "kind": "+".join(cls.kinds), "summary": cls.summary, "options": options})
    return out


__all__ = ["METHODS", "Method", "add_method", "build_methods", "describe_methods"]
