"""Rehearsal in a training run: the recipe's `finetune.rehearsal` turned into a source dataset, mixing ratios and
a frozen teacher (the pieces themselves live in `poseadapt.adapt.finetune.rehearsal`).

    finetune:
      strategy: full
      rehearsal: {source: {synth: {population: adult}, schema: coco17}, ratio: 0.3}

What `add_rehearsal` does, in order (every check before any training step):

1. The teacher: `source_checkpoint`, or by default `model.checkpoint` as loaded before head surgery (the source
   model). Frozen, eval mode, no grad; not part of the trained model, so not in `last.pt`'s weights: a resumed run
   rebuilds it from the same file and checks its fingerprint (saved with the fine-tuning hook's state).
2. The source data, in its own schema (given, read from the COCO file, or for `synth` the teacher's schema),
   which must share keypoints with the target head; wrapped in `SourceAsTarget` so it trains that head.
3. Mixing: the target set(s) get `1 - ratio` of each epoch and the source `ratio`; the epoch grows to
   `len(target) / (1 - ratio)` so every target sample is still seen once per epoch (`train.samples_per_epoch`,
   unless the recipe sets it, is written into the run's resolved recipe).
4. Pseudo-labels: the teacher fills the target keypoints the source schema lacks (with `fill_unlabelled`, also
   the ones a sample leaves unlabelled), where it predicts them. A teacher that predicts none of those (a coco17
   adult model rehearsing coco17 adults for an infant21 head) is not attached: it would cost a forward pass per
   step and add nothing; the run then rehearses the source labels alone (recorded in the checkpoint provenance).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from poseadapt.errors import DataError, PoseAdaptError, SchemaError
from poseadapt.train.hooks import Hook
from poseadapt.train.sampler import mix_counts

KEY = "finetune.rehearsal"


def finetune_hook(hooks: Sequence[Hook]) -> Any | None:
    """The strategy's `FinetuneHook` (which drives the `Finetuner`), if the recipe has one."""
    from poseadapt.train.strategies import FinetuneHook

    return next((h for h in hooks if isinstance(h, FinetuneHook)), None)


def rehearsal_settings(hooks: Sequence[Hook]) -> Any | None:
    """The validated `finetune.rehearsal` settings (a `RehearsalSettings`), or None when the recipe has none."""
    hook = finetune_hook(hooks)
    return None if hook is None else hook.finetuner.cfg.rehearsal


def check_rehearsal_files(settings: Any) -> None:
    """Every path under `finetune.rehearsal` exists (one line naming the key otherwise)."""
    src = settings.source
    if src.ann is not None and not src.ann.is_file():
        raise DataError(f"recipe key '{KEY}.source.ann': file not found: {src.ann}")
    if src.images is not None and not src.images.is_dir():
        raise DataError(f"recipe key '{KEY}.source.images': folder not found: {src.images}")
    if settings.source_checkpoint is not None and not settings.source_checkpoint.is_file():
        raise PoseAdaptError(f"recipe key '{KEY}.source_checkpoint': file not found: {settings.source_checkpoint}")


def check_shared_keypoints(source_schema: Any, target_schema: Any) -> None:
    """Rehearsal samples carry labels only through keypoints the two schemas share (by name or midpoint rule)."""
    from poseadapt.schemas.mapping import SchemaMap

    mapping = SchemaMap(source_schema, target_schema)
    if not mapping.matched and not mapping.approximate:
        raise SchemaError(
            f"recipe key '{KEY}.source.schema': the source schema '{mapping.src.name}' shares no keypoint with the "
            f"target head's schema '{mapping.dst.name}' (see `poseadapt schemas map {mapping.src.name} "
            f"{mapping.dst.name}`)"
        )


def build_teacher(settings: Any, source_model: Any | None, student: Any) -> Any:
    """The frozen source model (see the module docstring), checked against the student's crop and heatmaps."""
    from poseadapt.adapt.finetune import frozen_teacher

    if settings.source_checkpoint is not None:
        key = f"{KEY}.source_checkpoint"
        teacher = frozen_teacher(settings.source_checkpoint)
    elif source_model is None:
        raise PoseAdaptError(
            f"recipe key '{KEY}.source_checkpoint': pseudo-labels need the source model: set it, or start from "
            f"model.checkpoint (or set {KEY}.pseudo_label: false)"
        )
    else:
        key = "model.checkpoint"
        if source_model is student:  # no head surgery: the student is the source model, copy it before it trains
            teacher = frozen_teacher(student)
        else:  # head surgery built the student as a copy: freeze the loaded model itself
            teacher = source_model.eval()
            for param in teacher.parameters():
                param.requires_grad_(False)
    if teacher.config.codec.get("type") == "SimCC":
        raise PoseAdaptError(f"recipe key '{key}': the rehearsal teacher must be a heatmap model, not SimCC")
    if tuple(teacher.input_size) != tuple(student.input_size) or teacher.heatmap_size != student.heatmap_size:
        (w, h), (sw, sh) = teacher.input_size, student.input_size
        raise PoseAdaptError(
            f"recipe key '{key}': the rehearsal teacher takes {w}x{h} crops with {teacher.heatmap_size} heatmaps, "
            f"the model {sw}x{sh} with {student.heatmap_size}: they must match"
        )
    return teacher


def source_schema_name(settings: Any, teacher: Any | None, source_model: Any | None) -> str | None:
    """The schema of the source labels: given, else the synthetic source's natural one (the source model's)."""
    src = settings.source
    if src.schema_name is not None:
        return src.schema_name
    if src.synth is None:
        return None  # a COCO file names its keypoints: read when loaded
    model = teacher if teacher is not None else source_model
    return model.schemas[0].name if model is not None else "coco17"


def source_dataset_spec(settings: Any, schema: str | None) -> Any:
    """`finetune.rehearsal.source` as a `data.train`-style `DataSource` (so the same loader builds it)."""
    from poseadapt.train.recipe import DataSource, format_validation_error

    src = settings.source
    spec = {"ann": src.ann, "images": src.images, "synth": src.synth, "schema": schema, "augment": src.augment}
    try:
        return DataSource.model_validate(spec)
    except ValidationError as exc:
        key, _, rest = format_validation_error(exc).removeprefix("recipe key '").partition("'")
        where = f"{KEY}.source" if key == "(top level)" else f"{KEY}.source.{key}"
        raise PoseAdaptError(f"recipe key '{where}'{rest}") from None


def mixing(
    settings: Any, target_sizes: Sequence[int], ratios: Sequence[float] | None, samples_per_epoch: int | None
) -> tuple[list[float], int]:
    """Ratios of (target sets..., source) and the epoch length; the source must get at least one sample."""
    weights = [float(w) for w in (ratios if ratios is not None else target_sizes)]
    keep = 1.0 - settings.ratio
    mixed = [keep * w / sum(weights) for w in weights] + [settings.ratio]
    total = samples_per_epoch or settings.samples_per_epoch(sum(target_sizes))
    if mix_counts([*target_sizes, 1], mixed, total)[-1] == 0:
        raise PoseAdaptError(
            f"recipe key '{KEY}.ratio': {settings.ratio} of {total} samples per epoch draws no source sample; "
            "raise the ratio or train.samples_per_epoch"
        )
    return mixed, total


def add_rehearsal(
    recipe: Any,
    hooks: Sequence[Hook],
    model: Any,
    source_model: Any | None,
    datasets: list[Any],
    heads: list[int],
    ratios: Sequence[float] | None,
) -> tuple[Any, list[float]]:
    """Append the source set to `datasets` / `heads` and attach the teacher (see the module docstring).

    Returns the recipe to train with (a copy with `train.samples_per_epoch` resolved) and the mixing ratios.
    """
    from poseadapt.adapt.finetune import SourceAsTarget
    from poseadapt.schemas.mapping import SchemaMap
    from poseadapt.train.build import build_dataset

    hook = finetune_hook(hooks)
    settings = hook.finetuner.cfg.rehearsal
    head = heads[0]  # rehearsal keeps the first (target) dataset's head alive
    head_schema = model.schemas[head]
    teacher = build_teacher(settings, source_model, model) if settings.pseudo_label else None
    taught = SchemaMap(teacher.schemas[0], head_schema) if teacher is not None else None
    if taught is not None and not taught.matched:
        raise PoseAdaptError(
            f"recipe key '{KEY}': the rehearsal teacher ({taught.src.name}) predicts no {head_schema.name} keypoint; "
            f"give another source_checkpoint or set {KEY}.pseudo_label: false"
        )

    schema = source_schema_name(settings, teacher, source_model)
    if schema is not None:  # before rendering or reading the source data
        check_shared_keypoints(schema, head_schema)
    spec = source_dataset_spec(settings, schema)
    seed = recipe.train.seed + len(datasets)
    source = build_dataset(spec, f"{KEY}.source", model, head, recipe.data.padding, True, seed, match_head=False)
    check_shared_keypoints(source.schema, head_schema)
    wrapped = SourceAsTarget(source, head_schema, model.codec, fill_unlabelled=settings.fill_unlabelled)

    mixed, total = mixing(settings, [len(d) for d in datasets], ratios, recipe.train.samples_per_epoch)
    datasets.append(wrapped)
    heads.append(head)
    recipe = recipe.model_copy(deep=True)
    recipe.train.samples_per_epoch = total

    filled: list[str] = []
    if teacher is not None and taught is not None:
        fillable = {d for _, d in taught.matched if settings.fill_unlabelled or wrapped.schema_gaps[d]}
        if fillable:
            hook.finetuner.attach_rehearsal(teacher, head_schema, model.codec)
            filled = [head_schema.keypoints[d] for d in sorted(fillable)]
    model.provenance = {
        **getattr(model, "provenance", {}),
        "rehearsal": {
            "source": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            "source_schema": source.schema.name,
            "ratio": settings.ratio,
            "pseudo_labelled": filled,
        },
    }
    return recipe, mixed
