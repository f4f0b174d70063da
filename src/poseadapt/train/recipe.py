"""Training recipes: YAML validated by pydantic, with `--set a.b=c` overrides.

Every section forbids unknown keys, so a typo fails at once with the key's full path and, where one is close, the
key that was probably meant:

    error: recipe key 'optim.lrr': unknown key (did you mean 'lr'?)

A recipe argument is a YAML file or the name of a built-in recipe (`src/poseadapt/recipes/*.yaml`, shipped as
package data so `poseadapt train synth-adult-tiny` works from any install). Relative paths written in a recipe
FILE (`data.*.ann`, `data.*.images`, `model.checkpoint`, `out`, and schemas given as `.yaml` files) are relative to
the recipe's folder, so a recipe travels with its data; paths given with `--set` and in built-in recipes are
relative to the working directory. Checks that need files or models (paths exist, the
data's keypoints match the head) run in `poseadapt.train.build`, still before any training step.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from poseadapt.errors import PoseAdaptError

HEAD_KINDS = ("classic", "light", "simple", "sapiens", "simcc")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelSection(Section):
    """Which network: a backbone from the model table (or a checkpoint to start from) and its heads."""

    name: str = "vit_base"
    input_size: tuple[int, int] = Field((192, 256), description="(w, h) of the input crop")
    schemas: list[str] = Field(["coco17"], alias="schema", description="keypoint schema per head")
    head: Literal["classic", "light", "simple", "sapiens", "simcc"] = "classic"
    checkpoint: Path | None = None
    experts: int = Field(
        0, ge=0, description="ViTPose++ task experts in each FFN (0: dense; the expert is chosen by dataset index)"
    )
    drop_path: float | None = Field(None, ge=0.0, lt=1.0)
    grad_checkpointing: bool = False
    input_downsample: int = Field(
        1, ge=1, le=8, description="shrink the crop by this before the backbone, enlarge heatmaps by it after"
    )
    invert_input: bool | None = Field(
        None,
        description="read every pixel inverted (255 - value), e.g. a white-hot thermal camera with colour-trained "
        "weights; the checkpoint records it (null: as the checkpoint does)",
    )

    @field_validator("schemas", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("input_size")
    @classmethod
    def _size(cls, v: tuple[int, int]) -> tuple[int, int]:
        if min(v) < 16:
            raise ValueError(f"must be two integers >= 16 (w, h), got {list(v)}")
        return v


class SynthSource(Section):
    """Synthetic people rendered in memory by `poseadapt.synth` (no files)."""

    population: str = "adult"
    view: str = "random"
    n: int = Field(64, ge=1)
    size: int = Field(256, ge=16)
    seed: int = Field(0, ge=0)
    people: int | tuple[int, int] = Field(1, description="people per image, or a [min, max] range (1..8)")
    look: Literal["visible", "thermal"] = Field(
        "visible", description="the camera: visible (colour) or thermal (long-wave infrared, bodies by their heat)"
    )
    stream: bool = Field(False, description="render every sample afresh as it is drawn (n per epoch, never repeated)")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="population fields to change, e.g. {poses: {lying: 0.3, standing: 0.7}, flexed_lying: 0.5}",
    )

    @model_validator(mode="after")
    def _population_resolves(self) -> SynthSource:
        from poseadapt.errors import PoseAdaptError

        if "name" in self.overrides:
            raise ValueError("overrides cannot rename a population; set 'population' instead")
        try:
            self.resolved_population()
        except PoseAdaptError as exc:
            raise ValueError(str(exc)) from None
        return self

    def resolved_population(self) -> Any:
        """The population this source renders: the preset with `overrides` applied (raises PoseAdaptError)."""
        from poseadapt.synth import get_population

        return get_population(self.population, **self.overrides)

    @field_validator("people")
    @classmethod
    def _people(cls, v: int | tuple[int, int]) -> int | tuple[int, int]:
        lo, hi = (v, v) if isinstance(v, int) else v
        if not 1 <= lo <= hi <= 8:
            raise ValueError(f"must be within 1..8 (a number or [min, max]), got {v}")
        return v


class DataSource(Section):
    """One dataset: a COCO keypoint file (+ image folder) or a `synth` spec."""

    ann: Path | None = None
    images: Path | None = None
    synth: SynthSource | None = None
    schema_name: str | None = Field(None, alias="schema")
    head: str | None = None
    ratio: float | None = Field(None, gt=0.0)
    augment: list[dict[str, Any]] | None = None
    left_right: Literal["as_labelled", "either"] = Field(
        "as_labelled",
        description="either: a person's labels may have left and right swapped as a whole (e.g. pseudo-labels of "
        "people whose facing the teacher may have missed); the loss takes the nearer of the labels and their mirror",
    )
    left_right_anchor: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="with left_right: either, the share of the loss kept on the labels as given, so the population's "
        "left/right convention follows the labels' majority (0: none; a run may then flip it for every person)",
    )

    @field_validator("synth", mode="before")
    @classmethod
    def _synth_shorthand(cls, v: Any) -> Any:
        return {"population": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if (self.ann is None) == (self.synth is None):
            raise ValueError("give exactly one of 'ann' (a COCO keypoint file) or 'synth'")
        if self.images is not None and self.synth is not None:
            raise ValueError("'images' goes with 'ann', not with 'synth'")
        return self


class DataSection(Section):
    train: list[DataSource]
    val: DataSource | list[DataSource] | None = Field(
        None, description="validation set, or a list of them (one per dataset; each scored with its own head)"
    )
    padding: float = Field(1.25, gt=0.0)

    @property
    def val_sources(self) -> list[DataSource]:
        """`val` as a list (empty without one)."""
        return [] if self.val is None else list(self.val) if isinstance(self.val, list) else [self.val]

    @field_validator("train", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _ratios(self) -> DataSection:
        given = [s.ratio is not None for s in self.train]
        if any(given) and not all(given):
            raise ValueError("give a ratio for every train dataset or for none (then they mix by size)")
        if not self.train:
            raise ValueError("at least one train dataset is needed")
        if any(s.left_right != "as_labelled" for s in self.val_sources):
            raise ValueError("'left_right' is for training data: validation scores the labels as they are")
        return self


class OptimSection(Section):
    """AdamW; `layer_decay` < 1 gives early ViT blocks smaller learning rates."""

    lr: float = Field(5e-4, gt=0.0)
    weight_decay: float = Field(0.1, ge=0.0)
    layer_decay: float = Field(1.0, gt=0.0, le=1.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)


class ScheduleSection(Section):
    """Linear warm-up (per iteration) then step decay at milestone epochs, or cosine to `min_lr_ratio`."""

    epochs: int = Field(210, ge=1)
    warmup_iters: int = Field(500, ge=0)
    warmup_ratio: float = Field(1e-3, ge=0.0, le=1.0)
    policy: Literal["step", "cosine", "constant"] = "step"
    milestones: list[int] = [170, 200]
    gamma: float = Field(0.1, gt=0.0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)


class TrainSection(Section):
    batch_size: int = Field(64, ge=1, description="per process")
    workers: int = Field(2, ge=0)
    amp: Literal["auto", True, False] = Field(
        "auto", description="bf16 autocast; auto: on for CUDA with bf16 and CPUs whose bf16 GEMMs time >= 1.2x fp32"
    )
    grad_clip: float | None = Field(1.0, gt=0.0)
    ema: float | None = Field(None, gt=0.0, lt=1.0, description="EMA decay; null: no EMA")
    ema_warmup: int = Field(2000, ge=0)
    seed: int = Field(0, ge=0)
    val_interval: int = Field(1, ge=0, description="epochs between validations; 0: never")
    val_at_start: bool = Field(
        False,
        description="also validate the weights before the first step (iteration 0): the start model's AP, which "
        "best.safetensors then competes with too",
    )
    val_batch_size: int = Field(32, ge=1)
    flip_test: bool = True
    device: str = "auto"
    checkpoint_interval: int = Field(0, ge=0, description="iterations between extra saves; 0: epoch ends only")
    log_interval: int = Field(10, ge=1)
    max_iters: int | None = Field(None, ge=1, description="stop after this many iterations (smoke runs)")
    samples_per_epoch: int | None = Field(None, ge=1, description="default: the sum of the train dataset sizes")
    tensorboard: bool = True
    progress: bool = True
    find_unused_parameters: bool = False

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "cuda", "mps") and not v.startswith("cuda:"):
            raise ValueError(f"must be auto, cpu, cuda, cuda:N or mps, got '{v}'")
        return v


class Recipe(Section):
    model: ModelSection = ModelSection()
    data: DataSection
    optim: OptimSection = OptimSection()
    schedule: ScheduleSection = ScheduleSection()
    train: TrainSection = TrainSection()
    adapt: list[Any] = Field(
        default_factory=list,
        description="adaptation methods, each `{name: {options}}` (see `poseadapt methods`); none: full fine-tuning",
    )
    out: Path | None = None

    @field_validator("adapt", mode="before")
    @classmethod
    def _adapt_list(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, dict | str):
            v = [v]
        if not isinstance(v, list):
            raise ValueError("must be a list of methods, e.g. [{NAME: {OPTION: VALUE}}, ...] (see `poseadapt methods`)")
        from poseadapt.adapt.methods import build_methods

        build_methods(v)  # one line naming the key, before anything is built
        return v

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML keys, JSON types): what `recipe.yaml` in the run folder and checkpoints record."""
        return self.model_dump(mode="json", by_alias=True)


# ---------------------------------------------------------------------------------------------- loading
def builtin_recipes() -> list[str]:
    """Names of the recipes shipped with poseadapt."""
    folder = resources.files("poseadapt") / "recipes"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def recipe_text(name_or_path: str | Path) -> tuple[str, str]:
    """(YAML text, where it came from) for a recipe file or a built-in recipe name."""
    path = Path(name_or_path)
    if path.is_file():
        return path.read_text(), str(path)
    name = str(name_or_path)
    if name in builtin_recipes():
        return (resources.files("poseadapt") / "recipes" / f"{name}.yaml").read_text(), f"built-in recipe '{name}'"
    raise PoseAdaptError(
        f"recipe not found: {name_or_path} (not a file; built-in recipes: {', '.join(builtin_recipes())})"
    )


def parse_override(item: str) -> tuple[list[str], Any]:
    """'a.b=c' -> (['a', 'b'], c), the value read as a YAML scalar (so 1e-3, true, null and [1, 2] work)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise PoseAdaptError(f"--set expects KEY=VALUE (e.g. optim.lr=1e-4), got '{item}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _looks_like_float(value):
        value = float(value)  # YAML 1.1 reads '1e-4' (no dot) as a string
    return key.strip().split("."), value


def _looks_like_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set each `a.b.c=value` in the nested dict (numeric parts index lists); returns the same dict."""
    for item in overrides:
        parts, value = parse_override(item)
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise PoseAdaptError(f"--set {item}: '{where}' is not an index of a list of {len(node)}")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    child = node.get(part)
                    if child is None:
                        child = node[part] = {}
                    elif part in ("train", "val") and isinstance(child, dict) and parts[depth + 1].isdigit():
                        child = node[part] = [child]  # data.train may be written as one mapping
                    node = child
            else:
                raise PoseAdaptError(f"--set {item}: '{'.'.join(parts[:depth])}' is a value, not a section")
    return data


def load_recipe(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read, override and validate a recipe; any problem is one `PoseAdaptError` line naming the key."""
    data, source = recipe_data(name_or_path)
    return recipe_from_dict(apply_overrides(data, overrides), source)


def recipe_data(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    """(plain data, where it came from) of a recipe file or built-in name, its paths read against the file's
    folder; not yet validated (one `PoseAdaptError` line for YAML that is not a mapping)."""
    text, source = recipe_text(name_or_path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PoseAdaptError(f"{source}: invalid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PoseAdaptError(f"{source}: a recipe must be a mapping of sections, got {type(data).__name__}")
    if Path(name_or_path).is_file():
        resolve_recipe_paths(data, Path(name_or_path).parent)
    return data, source


def _against(base: Path, value: Any, *, schema: bool = False) -> Any:
    """`value` read against `base` when it is a relative path (a schema only when it names a .yaml/.yml file)."""
    if not isinstance(value, str | Path) or not str(value).strip():
        return value
    if str(value).startswith("builtin:"):  # a checkpoint shipped in the package, not a file
        return value
    path = Path(value).expanduser()
    if path.is_absolute() or (schema and path.suffix.lower() not in (".yaml", ".yml")):
        return value
    return os.path.normpath(base / path)


def resolve_recipe_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Rewrite the relative paths of a parsed recipe file against `base` (its folder), in place. A recipe in the
    working directory (base '.') keeps its paths as written."""
    if str(base) in ("", "."):
        return data
    model = data.get("model")
    if isinstance(model, dict):
        if "checkpoint" in model:
            model["checkpoint"] = _against(base, model["checkpoint"])
        for key in ("schema", "schemas"):
            if isinstance(model.get(key), list):
                model[key] = [_against(base, v, schema=True) for v in model[key]]
            elif key in model:
                model[key] = _against(base, model[key], schema=True)
    section = data.get("data")
    if isinstance(section, dict):
        for split in ("train", "val"):
            sources = section.get(split)
            for source in sources if isinstance(sources, list) else [sources]:
                if isinstance(source, dict):
                    for key in ("ann", "images"):
                        if key in source:
                            source[key] = _against(base, source[key])
                    if "schema" in source:
                        source["schema"] = _against(base, source["schema"], schema=True)
    if "out" in data:
        data["out"] = _against(base, data["out"])
    return data


def recipe_from_dict(data: dict[str, Any], source: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise PoseAdaptError(format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    """The first problem as `recipe key 'a.b': why`, with a count of the others."""
    errors = exc.errors()
    err = errors[0]
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
        known = _fields_at(Recipe, loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        msg += f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})" if known else ""
    elif err["type"] == "missing":
        msg = "required key is missing"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        msg = msg[:1].lower() + msg[1:]
        if err["type"] != "value_error" and "input" in err and not isinstance(err["input"], dict):
            msg += f" (got {err['input']!r})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"recipe key '{key}': {msg}{more}"


def _fields_at(cls: type[BaseModel], loc: list[str]) -> list[str]:
    """Keys (aliases where set) of the section at `loc`, for did-you-mean hints."""
    current: Any = cls
    for part in loc:
        if part.isdigit():
            continue
        fields = {f.alias or name: f for name, f in current.model_fields.items()}
        if part not in fields:
            return []
        current = _model_in(fields[part].annotation)
        if current is None:
            return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def dump_recipe(recipe: Recipe, *, absolute: bool = False) -> str:
    """The recipe as YAML; `absolute` writes its paths absolute, so the file trains again from any folder (a run's
    `recipe.yaml` lives in the run folder, where paths relative to the user's folder would no longer resolve)."""
    data = recipe.to_dict()
    if absolute:
        resolve_recipe_paths(data, Path.cwd().resolve())
    return yaml.safe_dump(data, sort_keys=False)
