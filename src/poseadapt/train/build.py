"""From a validated recipe to a ready `Trainer`: model, datasets, adaptation methods, hooks; every check runs
before training.

Order matters for the user: the cheap checks (method options, files exist, run folder state) come first, so a
typo in a path fails in a fraction of a second rather than after a model was built or a dataset rendered. Then
the model, then the target data, whose keypoints must be exactly the keypoints of the head that trains on them;
then each method of the recipe's `adapt:` list prepares the model (in list order) and adds its data streams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from poseadapt.adapt.method import AdaptContext, DataStream, Method
from poseadapt.errors import DataError, PoseAdaptError, SchemaError
from poseadapt.train.engine import STATE_FILE, Trainer, TrainResult
from poseadapt.train.hooks import Hook
from poseadapt.train.logging import LogHook, ProgressHook
from poseadapt.train.losses import supervised_loss
from poseadapt.train.recipe import DataSource, Recipe, dump_recipe, format_validation_error
from poseadapt.train.sampler import MixedDataset, mix_counts


def check_files(recipe: Recipe) -> None:
    """Every path the recipe names exists (one line naming the recipe key otherwise)."""
    from poseadapt.interop.checkpoint import is_builtin, resolve_checkpoint

    ckpt = recipe.model.checkpoint
    if ckpt is not None and is_builtin(ckpt):
        try:
            resolve_checkpoint(ckpt)
        except PoseAdaptError as exc:
            raise PoseAdaptError(f"recipe key 'model.checkpoint': {exc}") from None
    elif ckpt is not None and not ckpt.is_file():
        raise PoseAdaptError(f"recipe key 'model.checkpoint': file not found: {recipe.model.checkpoint}")
    sources = [(f"data.train.{i}", s) for i, s in enumerate(recipe.data.train)]
    sources += [(_val_key(recipe, i), s) for i, s in enumerate(recipe.data.val_sources)]
    for key, src in sources:
        if src.ann is not None and not src.ann.is_file():
            raise DataError(f"recipe key '{key}.ann': file not found: {src.ann}")
        if src.images is not None and not src.images.is_dir():
            raise DataError(f"recipe key '{key}.images': folder not found: {src.images}")


def _val_key(recipe: Recipe, i: int) -> str:
    return f"data.val.{i}" if isinstance(recipe.data.val, list) else "data.val"


def check_run_folder(out_dir: Path, resume: bool) -> None:
    state = out_dir / STATE_FILE
    if resume and not state.is_file():
        raise PoseAdaptError(f"nothing to resume in {out_dir}: no {STATE_FILE} (drop --resume to start a new run)")
    if not resume and state.is_file():
        raise PoseAdaptError(f"{out_dir} already holds a training run: pass --resume to continue it, or another --out")


def build_model(recipe: Recipe) -> Any:
    """A fresh model from the table, or the recipe's checkpoint (its head swapped when the schema differs)."""
    return build_model_and_source(recipe)[0]


def build_model_and_source(recipe: Recipe) -> tuple[Any, Any | None]:
    """(model to train, the checkpoint's model as loaded before head surgery, or None without a checkpoint).

    The second is the source model methods may take as a frozen reference; it is the first itself when no head
    was swapped (copy it before training changes it).
    """
    from poseadapt.models import create_model
    from poseadapt.models.surgery import add_dataset, swap_head, with_input_downsample

    m = recipe.model
    w, h = m.input_size
    torch.manual_seed(recipe.train.seed)  # identical initial weights on every rank and every run
    source = None
    if m.checkpoint is not None:
        from poseadapt.interop.checkpoint import load_checkpoint

        model = source = load_checkpoint(m.checkpoint)
        check_model_settings(recipe, model)
        if model.config.input_downsample != m.input_downsample:  # the same weights, fed shrunk crops
            model = source = with_input_downsample(model, m.input_downsample)
        if model.input_size != (w, h):  # fine-tune at another resolution: position embedding resized
            from poseadapt.models.surgery import resize_input

            try:
                model = source = resize_input(model, (w, h))
            except PoseAdaptError as exc:
                raise PoseAdaptError(f"recipe key 'model.input_size': {w}x{h} from {m.checkpoint}: {exc}") from None
        have = [s.name for s in model.schemas]
        if len(m.schemas) == 1 and model.schemas[0].name != m.schemas[0] and len(model.schemas) == 1:
            model, report = swap_head(model, m.schemas[0], seed=recipe.train.seed)
            model.surgery_report = report  # the start-of-training summary prints it
        elif len(m.schemas) > len(have) and list(m.schemas[: len(have)]) == have:
            # new datasets after the checkpoint's: a head (and a ViTPose++ expert) each, from the closest head
            for schema in m.schemas[len(have) :]:
                model, _ = add_dataset(model, schema, seed=recipe.train.seed)
        elif have != list(m.schemas):
            raise PoseAdaptError(
                f"recipe key 'model.schema': {m.schemas} but the checkpoint's heads predict "
                f"{[s.name for s in model.schemas]}"
            )
    else:
        overrides = {} if m.drop_path is None else {"drop_path_rate": m.drop_path}
        d = m.input_downsample
        if w % d or h % d:
            raise PoseAdaptError(f"recipe key 'model.input_size': {w}x{h} is not divisible by input_downsample {d}")
        model = create_model(
            m.name, schema=list(m.schemas), head=m.head, img_size=(h // d, w // d), num_experts=m.experts, **overrides
        )
        if d > 1:
            model = with_input_downsample(model, d)
    if m.invert_input is not None:
        from poseadapt.models.surgery import with_input_inverted

        model = with_input_inverted(model, m.invert_input)  # the source model keeps reading as it did
    if m.grad_checkpointing:
        model.backbone.set_grad_checkpointing(True)
    return model.train(), source


def checkpoint_head_kind(model: Any) -> str | None:
    """The recipe's `model.head` kind (classic, light, ...) the checkpoint's first head was built as, if any."""
    from poseadapt.models.factory import HEAD_KINDS, head_config

    config = model.config.heads[0].config
    for kind in HEAD_KINDS:
        try:
            if head_config(kind, tuple(model.input_size)) == config:
                return kind
        except Exception:  # noqa: BLE001 - a kind that cannot be built for this input simply does not match
            continue
    return None


def check_model_settings(recipe: Recipe, model: Any) -> list[str]:
    """Warnings for `model.name` / `model.head` a recipe sets explicitly that the checkpoint contradicts.

    The checkpoint decides the architecture (its weights are the point of starting from it); `recipe.yaml` of
    the run records the checkpoint's values (see `record_checkpoint_truth`), never the ignored ones.
    """
    m = recipe.model
    given = m.model_fields_set
    notes = []
    arch = model.config.arch
    if "name" in given and arch != "custom" and m.name != arch:
        notes.append(
            f"recipe key 'model.name': '{m.name}' is ignored: the checkpoint {m.checkpoint} is a '{arch}' "
            f"(the run's recipe.yaml records '{arch}'; drop model.checkpoint to train '{m.name}' from scratch)"
        )
    kind = checkpoint_head_kind(model)
    if "head" in given and kind is not None and m.head != kind:
        notes.append(
            f"recipe key 'model.head': '{m.head}' is ignored: the checkpoint {m.checkpoint} has a '{kind}' head "
            f"(the run's recipe.yaml records '{kind}')"
        )
    if "experts" in given and m.experts and not model.config.backbone.num_experts:
        notes.append(
            f"recipe key 'model.experts': {m.experts} is ignored: the checkpoint {m.checkpoint} is dense (no task "
            "experts); every dataset gets its own head on the shared backbone (set model.experts: 0)"
        )
    for note in notes:
        warn(note)
    return notes


def record_checkpoint_truth(recipe: Recipe, model: Any) -> Recipe:
    """A copy of the recipe whose `model.name` / `model.head` are what the checkpoint really is."""
    if recipe.model.checkpoint is None:
        return recipe
    recipe = recipe.model_copy(deep=True)
    if model.config.arch != "custom":
        recipe.model.name = model.config.arch
    kind = checkpoint_head_kind(model)
    if kind is not None:
        recipe.model.head = kind  # type: ignore[assignment]
    return recipe


def warn(message: str) -> None:
    """One `warning:` line on stderr (rank 0 only under torchrun)."""
    import sys

    from poseadapt.train.distributed import env_info

    if env_info().is_main:
        sys.stderr.write(f"warning: {message}\n")
        sys.stderr.flush()


def head_for(src: DataSource, key: str, model: Any) -> int:
    """Which head trains on a source: `head` by name, else the head with the source's schema, else the first."""
    if src.head is not None:
        if src.head not in model.head_names:
            raise PoseAdaptError(
                f"recipe key '{key}.head': no head '{src.head}' (heads: {', '.join(model.head_names)})"
            )
        return model.head_index(src.head)
    if src.schema_name is not None:
        for i, s in enumerate(model.schemas):
            if s.name == src.schema_name:
                return i
    return 0


def build_dataset(
    src: DataSource,
    key: str,
    model: Any,
    head: int,
    padding: float,
    train: bool,
    seed: int,
    *,
    match_head: bool = True,
) -> Any:
    """A TopDownDataset for one source, checked against its head's keypoints (unless `match_head` is False:
    a method's source data stays in its own schema and the method carries it to the head's)."""
    from poseadapt.data.augment import build_transforms
    from poseadapt.data.coco import coco_keypoints_from_dict, load_coco_keypoints
    from poseadapt.data.dataset import TopDownDataset

    head_schema = model.schemas[head]
    images: dict[int, Any] | None = None
    if src.synth is not None and src.synth.stream and train:
        if src.left_right == "either":
            raise PoseAdaptError(f"recipe key '{key}.left_right': 'either' needs a fixed set, not a synth stream")
        return _synth_stream(src, key, model, head_schema, padding)
    if src.synth is not None:
        import cv2

        from poseadapt.synth import render_dataset

        s = src.synth
        schema = src.schema_name or head_schema
        bgr, coco = render_dataset(
            s.resolved_population(),
            view=s.view,
            n=s.n,
            size=s.size,
            seed=s.seed,
            schema=schema,
            people=s.people,
            look=s.look,
        )
        data = coco_keypoints_from_dict(coco, schema, source=f"synth:{s.population}")
        images = {
            int(info["id"]): cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for info, im in zip(coco["images"], bgr, strict=True)
        }
        root = None
    else:
        assert src.ann is not None
        data = load_coco_keypoints(src.ann, src.schema_name)
        root = src.images if src.images is not None else src.ann.parent
    if match_head and list(data.schema.keypoints) != list(head_schema.keypoints):
        raise SchemaError(
            f"recipe key '{key}': the data's schema '{data.schema.name}' ({len(data.schema)} keypoints) does not match "
            f"head '{model.head_names[head]}' (schema '{head_schema.name}', {len(head_schema)} keypoints); "
            f"set model.schema to '{_schema_ref(data.schema, src)}' or pick the head with '{key}.head'"
        )
    if root is not None:
        check_image_folder(data, root, key)
    if train:
        check_flip_pairs(data.schema, src.augment, key)
        if src.left_right == "either" and not data.schema.flip_pairs:
            raise SchemaError(
                f"recipe key '{key}.left_right': 'either' needs left/right pairs, and schema '{data.schema.name}' "
                "has no flip_pairs"
            )
    try:
        transforms = build_transforms(src.augment) if src.augment is not None else None
    except PoseAdaptError as exc:
        raise PoseAdaptError(f"recipe key '{key}.augment': {exc}") from None
    if not train:
        transforms = []
    dataset = TopDownDataset(
        data,
        root,
        model.codec,
        model.input_size,
        transforms,
        train,
        images_in_memory=images,
        padding=padding,
        seed=seed,
        left_right_either=1.0 - src.left_right_anchor if train and src.left_right == "either" else 0.0,
    )
    if len(dataset) == 0:
        raise DataError(f"recipe key '{key}': no usable person annotations (none with labelled keypoints)")
    return dataset


def _schema_ref(schema: Any, src: DataSource) -> str:
    """How a recipe names this schema: a built-in's name, else the YAML file it came from."""
    from poseadapt.schemas.registry import builtin_names

    if schema.name in builtin_names():
        return schema.name
    if src.schema_name is not None:
        return str(src.schema_name)
    return schema.source or schema.name


def check_image_folder(data: Any, root: Path, key: str) -> None:
    """Every image the annotations list is a file under `root`: one line with the count otherwise, before any
    DataLoader worker could fail on it."""
    images = list(data.images.values())
    missing = [im for im in images if not (Path(root) / im.file_name).is_file()]
    if not missing:
        return
    where = f"{key}.images" if key else "images"
    raise DataError(
        f"recipe key '{where}': {len(images) - len(missing)} of {len(images)} images found in {root} "
        f"(first missing: {missing[0].file_name}); the annotations' file_names are relative to this folder"
    )


def check_flip_pairs(schema: Any, augment: list[dict[str, Any]] | None, key: str) -> None:
    """Refuse random flip (on by default, or a RandomFlip with prob > 0 in `augment`) when the schema has
    left/right-looking keypoints outside its flip pairs: the flip would mirror the image without swapping the
    sides' labels, so training would learn swapped sides. Without random flip the same schema only warns."""
    from poseadapt.schemas.schema import unpaired_side_names

    unpaired = unpaired_side_names(schema)
    if not unpaired:
        return
    flips = augment is None or any(
        isinstance(t, dict) and t.get("type") == "RandomFlip" and float(t.get("prob", 0.5)) > 0 for t in augment
    )
    names = f"{', '.join(unpaired[:4])}{', ...' if len(unpaired) > 4 else ''}"
    if flips:
        raise SchemaError(
            f"recipe key '{key}.augment': random flip{' (on by default)' if augment is None else ''} needs flip "
            f"pairs, but schema '{schema.name}' has left/right-looking keypoints in none ({names}): flipped samples "
            f"would swap sides; add 'flip_pairs' to the schema, or give '{key}.augment' without RandomFlip"
        )
    warn(
        f"recipe key '{key}': schema '{schema.name}' has left/right-looking keypoints without flip pairs ({names}); "
        "random flip is off, but a flip test would not swap them either; add 'flip_pairs' to the schema"
    )


def _synth_stream(src: DataSource, key: str, model: Any, head_schema: Any, padding: float) -> Any:
    from poseadapt.data.augment import build_transforms
    from poseadapt.data.synth_stream import SynthStreamDataset
    from poseadapt.schemas import get_schema

    s = src.synth
    assert s is not None
    schema = get_schema(src.schema_name) if src.schema_name else head_schema
    if list(schema.keypoints) != list(head_schema.keypoints):
        raise SchemaError(f"recipe key '{key}.schema': '{schema.name}' does not match the head's '{head_schema.name}'")
    check_flip_pairs(schema, src.augment, key)
    try:
        transforms = build_transforms(src.augment) if src.augment is not None else None
    except PoseAdaptError as exc:
        raise PoseAdaptError(f"recipe key '{key}.augment': {exc}") from None
    people = s.people if isinstance(s.people, int) else tuple(s.people)
    return SynthStreamDataset(
        s.resolved_population(),
        schema,
        model.codec,
        model.input_size,
        n=s.n,
        view=s.view,
        size=s.size,
        seed=s.seed,
        people=people,
        look=s.look,
        transforms=transforms,
        padding=padding,
    )


def source_spec(spec: dict[str, Any] | DataSource, key: str) -> DataSource:
    """A method's data spec (a `data.train`-style mapping) validated as a `DataSource`, errors naming `key`."""
    if isinstance(spec, DataSource):
        return spec
    try:
        return DataSource.model_validate(spec)
    except ValidationError as exc:
        sub, _, rest = format_validation_error(exc).removeprefix("recipe key '").partition("'")
        where = key if sub == "(top level)" else f"{key}.{sub}"
        raise PoseAdaptError(f"recipe key '{where}'{rest}") from None


def mix_streams(
    recipe: Recipe, target_sizes: list[int], streams: list[DataStream]
) -> tuple[list[float] | None, int | None]:
    """Ratios of (target sets..., streams...) and the epoch length: the targets share what the streams leave, and
    the epoch grows so every target sample is still drawn once per epoch (unless train.samples_per_epoch is set)."""
    given = [s.ratio for s in recipe.data.train] if recipe.data.train[0].ratio is not None else None
    if not streams:
        return given, recipe.train.samples_per_epoch
    taken = sum(s.ratio for s in streams)
    if taken >= 1.0:
        raise PoseAdaptError(
            f"recipe key 'adapt': the methods' data ratios add up to {taken:g}; they must stay below 1"
        )
    weights = [float(w) for w in (given if given is not None else target_sizes)]
    mixed = [(1.0 - taken) * w / sum(weights) for w in weights] + [s.ratio for s in streams]
    total = recipe.train.samples_per_epoch or max(1, round(sum(target_sizes) / (1.0 - taken)))
    counts = mix_counts([*target_sizes, *(len(s.dataset) for s in streams)], mixed, total)
    for stream, n in zip(streams, counts[len(target_sizes) :], strict=True):
        if n == 0:
            raise PoseAdaptError(
                f"recipe key 'adapt': the {stream.name or 'extra'} stream's ratio {stream.ratio:g} of {total} samples "
                "per epoch draws nothing; raise the ratio or train.samples_per_epoch"
            )
    return mixed, total


def build_trainer(
    recipe: Recipe, out_dir: str | Path | None = None, *, resume: bool = False, hooks: tuple[Hook, ...] = ()
) -> Trainer:
    """Check everything, build model / data / methods / hooks and return the Trainer (call `.fit(resume)`)."""
    from poseadapt.adapt.methods import build_methods
    from poseadapt.train.ema import EMAHook
    from poseadapt.train.validate import ValidationHook

    out = Path(out_dir) if out_dir is not None else recipe.out
    if out is None:
        raise PoseAdaptError("no output folder: set 'out' in the recipe or pass --out")
    methods: list[Method] = build_methods(recipe.adapt)
    check_files(recipe)
    seed = recipe.train.seed
    ctx = AdaptContext(recipe=recipe, key="adapt", seed=seed)
    for method in methods:
        ctx.key = method.key
        method.check(ctx)
    check_run_folder(out, resume)

    model, source_model = build_model_and_source(recipe)
    recipe = record_checkpoint_truth(recipe, model)
    datasets, heads = [], []
    for i, src in enumerate(recipe.data.train):
        key = f"data.train.{i}"
        head = head_for(src, key, model)
        datasets.append(build_dataset(src, key, model, head, recipe.data.padding, True, seed + i))
        heads.append(head)

    streams: list[DataStream] = []

    def method_dataset(spec: Any, key: str, model: Any, head: int, *, match_head: bool = True) -> Any:
        n = len(datasets) + len(streams)
        return build_dataset(
            source_spec(spec, key), key, model, head, recipe.data.padding, True, seed + n, match_head=match_head
        )

    ctx = AdaptContext(recipe, "adapt", source_model, datasets, heads, method_dataset, seed)
    # every method shapes the model before any builds data on it (a union head, a domain classifier); the method
    # choosing the parameters goes last, so it freezes or wraps (adapters) the final structure
    for method in sorted(methods, key=lambda m: m.chooses_parameters):
        ctx.key = method.key
        model = method.prepare(model, ctx)
    for method in methods:
        ctx.key = method.key
        ctx.mix_offset = len(datasets) + len(streams)
        streams.extend(method.data(model, ctx))
    ratios, total = mix_streams(recipe, [len(d) for d in datasets], streams)
    if total != recipe.train.samples_per_epoch:
        recipe = recipe.model_copy(deep=True)
        recipe.train.samples_per_epoch = total
    del source_model, ctx  # a model a method needs, it holds itself

    all_hooks: list[Hook] = []
    if recipe.train.ema:
        all_hooks.append(EMAHook(recipe.train.ema, recipe.train.ema_warmup))
    sets: list[tuple[str, Any, int]] = []
    if recipe.data.val_sources and (recipe.train.val_interval or recipe.train.val_at_start):
        for i, src in enumerate(recipe.data.val_sources):
            key = _val_key(recipe, i)
            head = head_for(src, key, model)
            val = build_dataset(src, key, model, head, recipe.data.padding, False, seed, match_head=False)
            name = model.head_names[head]
            sets.append((f"{name}-{i}" if any(n == name for n, _, _ in sets) else name, val, head))
        t = recipe.train
        all_hooks.append(
            ValidationHook(
                sets[0][1] if len(sets) == 1 else sets,  # one set: logged as before (val/AP); several: per head
                head=sets[0][2],
                interval=t.val_interval,
                batch_size=t.val_batch_size,
                flip_test=t.flip_test,
                at_start=t.val_at_start,
            )
        )
    log = LogHook(recipe.train.log_interval)
    all_hooks.append(log)
    if recipe.train.progress:
        all_hooks.append(ProgressHook(log))
    all_hooks.extend(hooks)

    out.mkdir(parents=True, exist_ok=True)
    data = MixedDataset([*datasets, *(s.dataset for s in streams)], [*heads, *(s.head for s in streams)])
    loss = supervised_loss(model.config.codec.get("type"))  # MSE on heatmaps, RTMPose's KL on SimCC labels
    trainer = Trainer(recipe, model, data, out, ratios=ratios, loss_terms=[loss], hooks=all_hooks, methods=methods)
    if trainer.dist.is_main:
        _write_text(out / "recipe.yaml", dump_recipe(recipe, absolute=True))
        check_schedule(recipe, trainer.iters_per_epoch, trainer.max_epochs * trainer.iters_per_epoch)
        if not resume and recipe.train.progress:
            names = [*(f"data.train.{i}" for i in range(len(datasets))), *(s.name or "extra" for s in streams)]
            sizes = [len(d) for d in data.datasets] if hasattr(data, "datasets") else []
            val_sizes = {name: len(ds) for name, ds, _ in sets} if recipe.data.val_sources and sets else {}
            print_start_summary(trainer, list(zip(names, sizes, strict=False)), val_sizes)
    return trainer


def check_schedule(recipe: Recipe, iters_per_epoch: int, total_iters: int) -> list[str]:
    """Warnings when the schedule does not fit the run's length (COCO defaults on a small dataset)."""
    s = recipe.schedule
    notes = []
    if s.warmup_iters > 0 and s.warmup_iters >= total_iters:
        notes.append(
            f"schedule.warmup_iters {s.warmup_iters} >= the run's {total_iters} iterations "
            f"({s.epochs} epochs x {iters_per_epoch}): the learning rate never reaches optim.lr; "
            f"set schedule.warmup_iters to about {max(1, total_iters // 10)}"
        )
    elif s.warmup_iters > total_iters // 2 and total_iters > 1:
        notes.append(
            f"schedule.warmup_iters {s.warmup_iters} is more than half of the run's {total_iters} iterations: "
            f"most of the run trains below optim.lr (about {max(1, total_iters // 10)} would fit)"
        )
    if s.policy == "step":
        late = [m for m in s.milestones if m >= s.epochs]
        if late:
            notes.append(
                f"schedule.milestones {late} are at or past the run's {s.epochs} epochs: the learning rate "
                f"never decays there (e.g. milestones [{round(s.epochs * 0.8)}, {round(s.epochs * 0.95)}])"
            )
    for note in notes:
        warn(note)
    return notes


def print_start_summary(trainer: Trainer, train_sizes: list[tuple[str, int]], val_sizes: dict[str, int]) -> None:
    """What the run is about to do, before the first step (stdout, rank 0)."""
    from poseadapt.train.logging import start_summary

    sys_out = start_summary(trainer, train_sizes, val_sizes)
    import sys

    sys.stdout.write(sys_out)
    sys.stdout.flush()


def run_recipe(
    recipe: Recipe, out_dir: str | Path | None = None, *, resume: bool = False, hooks: tuple[Hook, ...] = ()
) -> TrainResult:
    """Build and train; under torchrun every rank calls this."""
    from poseadapt.train import distributed

    try:
        return build_trainer(recipe, out_dir, resume=resume, hooks=hooks).fit(resume=resume)
    finally:
        distributed.teardown()


def _write_text(path: Path, text: str) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
