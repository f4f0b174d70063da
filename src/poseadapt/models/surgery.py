"""Model surgery: collapse ViTPose++ experts to one dataset's dense model, keep one head of a multi-head model, and
give a model a head for a new schema.

Both are exact where exactness is possible:
- `merge_experts`: the dense fc2 of dataset i is cat([fc2, experts[i]]) along the output rows, which is what the
  expert MLP computes for a sample routed to i; the heatmaps are the same up to float rounding.
- `keep_head`: one head of a multi-head model on its backbone (experts merged when there are any): that head's
  outputs are unchanged.
- `swap_head`: the new head copies every layer of the old one except the final layer, whose rows are copied for the
  keypoints the two schemas share (`SchemaMap.matched`: same name or alias) and initialised fresh for the rest.
  Shared keypoints of a heatmap head therefore predict exactly what they did before (a SimCC head's GAU mixes
  keypoint tokens, so there the carried rows are an initialisation, not an identity). Approximate matches (a neck
  taken as the shoulder midpoint) are left fresh: a midpoint's heatmap is not a mix of its sources' heatmaps.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from poseadapt.errors import PoseAdaptError
from poseadapt.models.factory import with_codec
from poseadapt.models.heads import build_head
from poseadapt.models.pose_model import HeadSpec, PoseModel
from poseadapt.schemas import KeypointSchema, get_schema


def merge_experts(model: PoseModel, dataset: int | str = 0) -> PoseModel:
    """The dense model of one dataset (index or head name) of a ViTPose++ model: no experts, that dataset's head."""
    cfg = model.config
    experts = cfg.backbone.num_experts
    if not experts:
        raise PoseAdaptError("the model has no task experts to merge")
    index = model.head_index(dataset) if isinstance(dataset, str) else int(dataset)
    if not 0 <= index < experts:
        raise PoseAdaptError(f"dataset index {index} out of range: the model has {experts} experts")
    head_pos = index if len(cfg.heads) > 1 else 0
    spec = cfg.heads[head_pos]
    dense_cfg = replace(
        cfg,
        backbone=replace(cfg.backbone, num_experts=0, part_features=0),
        heads=(spec,),
        codec={},
    )
    dense = PoseModel(dense_cfg, [model.schemas[head_pos]])
    state: dict[str, torch.Tensor] = {}
    for key, value in model.backbone.state_dict().items():
        if ".mlp.experts." in key:
            continue
        if ".mlp.fc2." in key:
            expert_key = key.replace(".mlp.fc2.", f".mlp.experts.{index}.")
            value = torch.cat([value, model.backbone.state_dict()[expert_key]], dim=0)
        state[f"backbone.{key}"] = value
    for key, value in model.heads[spec.name].state_dict().items():
        state[f"heads.{spec.name}.{key}"] = value
    dense.load_state_dict(state, strict=True)
    dense.config = replace(dense.config, codec=dict(cfg.codec))
    dense.provenance = {**model.provenance, "merged_experts": {"dataset_index": index, "head": spec.name}}
    return with_codec(dense).train(model.training)


def keep_head(model: PoseModel, head: int | str = 0) -> PoseModel:
    """A plain single-head model: one head (name or dataset index) of a multi-head model with the shared backbone.

    A ViTPose++ model's experts are merged for that head's dataset (`merge_experts`); a dense multi-head model (one
    head per dataset on one backbone, e.g. a multi-dataset run from a dense checkpoint) has nothing to merge, and
    the result is its backbone with that head alone. Either way that head's outputs are unchanged.
    """
    cfg = model.config
    index = model.head_index(head) if isinstance(head, str) else int(head)
    if not 0 <= index < len(cfg.heads):
        raise PoseAdaptError(f"head index {index} out of range: the model has {len(cfg.heads)} heads")
    if cfg.backbone.num_experts:
        return merge_experts(model, index)
    spec = cfg.heads[index]
    one = PoseModel(replace(cfg, heads=(spec,), codec={}), [model.schemas[index]])
    state = {f"backbone.{k}": v for k, v in model.backbone.state_dict().items()}
    state.update({f"heads.{spec.name}.{k}": v for k, v in model.heads[spec.name].state_dict().items()})
    one.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True)
    one.config = replace(one.config, codec=dict(cfg.codec))
    one.provenance = {**model.provenance, "kept_head": {"dataset_index": index, "head": spec.name}}
    return with_codec(one).train(model.training)


@dataclass
class SurgeryReport:
    """Which keypoints of the new head were carried over from the old one, and which start fresh."""

    source_head: str
    new_head: str
    carried: list[tuple[str, str]] = field(default_factory=list)  # (old name, new name)
    approximate: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_head": self.source_head,
            "new_head": self.new_head,
            "carried": [list(p) for p in self.carried],
            "approximate_fresh": self.approximate,
            "fresh": self.fresh,
        }


def swap_head(
    model: PoseModel,
    schema: str | KeypointSchema,
    *,
    source_head: str | None = None,
    keep_old: bool = False,
    name: str | None = None,
    seed: int | None = 0,
) -> tuple[PoseModel, SurgeryReport]:
    """A copy of `model` with a head for `schema`, built from `source_head` (default: the first).

    keep_old=False replaces that head; keep_old=True appends the new head (multi-dataset training keeps both).
    """
    from poseadapt.schemas.mapping import SchemaMap

    new_schema = get_schema(schema)
    src_name = source_head or model.head_names[0]
    src_pos = model.head_index(src_name)
    src_schema = model.schemas[src_pos]
    old_head = model.heads[src_name]
    spec = model.config.heads[src_pos]
    new_name = name or (new_schema.name if keep_old or new_schema.name not in model.head_names else src_name)
    if keep_old and new_name in model.head_names:
        raise PoseAdaptError(f"the model already has a head named '{new_name}': pass another name")
    new_spec = HeadSpec(new_name, new_schema.name, spec.config)

    if seed is not None:
        torch.manual_seed(seed)
    bb = model.config.backbone
    new_head = build_head(spec.config, bb.embed_dim, len(new_schema), bb.grid_size)
    mapping = SchemaMap(src_schema, new_schema)
    _carry_head(old_head, new_head, mapping.matched)

    heads = list(model.config.heads)
    schemas = list(model.schemas)
    modules = dict(model.heads.items())
    if keep_old:
        heads.append(new_spec)
        schemas.append(new_schema)
        modules[new_name] = new_head
    else:
        heads[src_pos] = new_spec
        schemas[src_pos] = new_schema
        modules = {(new_name if k == src_name else k): (new_head if k == src_name else m) for k, m in modules.items()}
    new_cfg = replace(model.config, heads=tuple(heads))
    out = PoseModel(new_cfg, schemas)
    out.backbone.load_state_dict(model.backbone.state_dict())
    for key, module in modules.items():
        out.heads[key].load_state_dict(copy.deepcopy(module.state_dict()))
    report = SurgeryReport(
        source_head=src_name,
        new_head=new_name,
        carried=[(src_schema.keypoints[s], new_schema.keypoints[d]) for s, d in mapping.matched],
        approximate=[new_schema.keypoints[d] for d, _ in mapping.approximate],
        fresh=[new_schema.keypoints[d] for d in range(len(new_schema)) if d not in {d for _, d in mapping.matched}],
    )
    out.provenance = {**model.provenance, "head_surgery": report.to_dict()}
    return out.train(model.training), report


@torch.no_grad()
def _carry_head(old: torch.nn.Module, new: torch.nn.Module, matched: list[tuple[int, int]]) -> None:
    """Copy all schema-independent layers, then the final layer's rows of matched keypoints."""
    if type(old) is not type(new):
        raise PoseAdaptError("head surgery needs the same head type")
    old_state = old.state_dict()
    new_state = new.state_dict()
    per_keypoint = ("final_layer.",)
    for key, value in old_state.items():
        if not key.startswith(per_keypoint) and new_state[key].shape == value.shape:
            new_state[key] = value.clone()
    for key in ("final_layer.weight", "final_layer.bias"):
        if key in old_state:
            for s, d in matched:
                new_state[key][d] = old_state[key][s]
    new.load_state_dict(new_state)


def closest_head(model: PoseModel, schema: str | KeypointSchema) -> str:
    """The head whose schema shares the most keypoints with `schema` by name or alias (the first on a tie)."""
    from poseadapt.schemas.mapping import SchemaMap

    new_schema = get_schema(schema)
    shared = [len(SchemaMap(s, new_schema).matched) for s in model.schemas]
    return model.head_names[max(range(len(shared)), key=lambda i: (shared[i], -i))]


def add_dataset(
    model: PoseModel,
    schema: str | KeypointSchema,
    *,
    name: str | None = None,
    source_head: str | None = None,
    seed: int | None = 0,
) -> tuple[PoseModel, SurgeryReport]:
    """A copy of `model` with one more dataset: a new head (its dataset index is the next one) and, for a ViTPose++
    model, that index's FFN expert, both initialised from `source_head` (default: `closest_head`).

    Every existing head, expert and shared weight is copied unchanged, so the other datasets' outputs are the
    same; the new expert is a copy of the source dataset's expert (an expert slot that exists already, unused by
    any head, is overwritten with that copy).
    """
    src = source_head or closest_head(model, schema)
    bb = model.config.backbone
    index = len(model.head_names)  # the new dataset's index
    base = model
    if bb.num_experts:
        src_index = model.head_index(src)
        cfg = replace(model.config, backbone=replace(bb, num_experts=max(bb.num_experts, index + 1)))
        base = PoseModel(cfg, list(model.schemas))
        state = model.state_dict()
        with torch.no_grad():
            for key in list(state):
                if f".mlp.experts.{src_index}." in key:
                    new_key = key.replace(f".mlp.experts.{src_index}.", f".mlp.experts.{index}.")
                    state[new_key] = state[key].clone()
        base.load_state_dict(state, strict=True)
        base.provenance = dict(model.provenance)
    out, report = swap_head(base, schema, source_head=src, keep_old=True, name=name, seed=seed)
    out.provenance = {**out.provenance, "added_dataset": {"head": report.new_head, "from": src, "index": index}}
    return out.train(model.training), report


def resize_input(model: PoseModel, input_size: tuple[int, int]) -> PoseModel:
    """The model for crops of `input_size` (w, h): position embedding resized bicubically (as ViTPose fine-tunes an
    MAE backbone pre-trained at 224x224 on 256x192 crops), heatmaps and codec scaled with the input. Convolutions
    and heatmap heads are resolution-free, so every other weight is carried unchanged. SimCC heads are tied to
    their input size and are refused."""
    from poseadapt.models.heads import SimCCHeadConfig
    from poseadapt.models.vit import resize_pos_embed

    w, h = (int(v) for v in input_size)
    if (w, h) == tuple(model.input_size):
        return model
    if any(isinstance(spec.config, SimCCHeadConfig) for spec in model.config.heads):
        raise PoseAdaptError("cannot change the input size of a SimCC model (its bins are tied to the input size)")
    patch, d = model.config.backbone.patch_size, int(model.config.input_downsample)  # the backbone sees crops / d
    if w % (patch * d) or h % (patch * d):
        raise PoseAdaptError(f"input size {w}x{h} must be a multiple of the patch size {patch} x input_downsample {d}")
    backbone = replace(model.config.backbone, img_size=(h // d, w // d))
    codec = _scaled_codec(model.config.codec, model.input_size, (w, h))
    new = PoseModel(replace(model.config, backbone=backbone, codec=codec), model.schemas)
    state = model.state_dict()
    state["backbone.pos_embed"] = resize_pos_embed(
        state["backbone.pos_embed"], model.config.backbone.grid_size, backbone.grid_size
    )
    new.load_state_dict(state)
    new.provenance = dict(getattr(model, "provenance", {}))
    return new


def with_input_downsample(model: PoseModel, factor: int) -> PoseModel:
    """The same weights fed crops `factor` x the backbone's size (shrunk before it, heatmaps enlarged after it): a
    model whose codec and crops are those of a `factor` x larger model, at its own cost."""
    from poseadapt.models.factory import default_codec

    factor = int(factor)
    config = model.config
    w0, h0 = model.input_size  # current crop size
    w, h = w0 * factor // config.input_downsample, h0 * factor // config.input_downsample
    new = PoseModel(replace(config, input_downsample=factor, codec={}), model.schemas)
    new.load_state_dict(model.state_dict())
    codec = _scaled_codec(config.codec, (w0, h0), (w, h))
    if not codec:
        codec = default_codec(config.heads[0].config, (w, h), new.heatmap_size)
    new.config = replace(new.config, codec=codec)
    new.provenance = dict(getattr(model, "provenance", {}))
    return new


def with_input_inverted(model: PoseModel, inverted: bool = True) -> PoseModel:
    """The same weights reading every pixel inverted (255 - value) when `inverted`, or as given when not.

    For cameras whose palette is the negative of what the weights learned from, e.g. a white-hot thermal camera
    read by a colour-trained model. The inversion lives in the input normalisation: (255 - x - mean) / std equals
    (x - (255 - mean)) / -std, so the checkpoint, `predict`, `eval` and an ONNX export's mean / std carry it with
    no extra step. A negative std marks an inverting model; asking for what the model already does changes nothing.
    """
    if model.config.input_inverted == inverted:
        return model
    config = model.config
    new = PoseModel(
        replace(config, mean=tuple(255.0 - v for v in config.mean), std=tuple(-v for v in config.std)), model.schemas
    )
    new.load_state_dict(model.state_dict())
    new.provenance = dict(getattr(model, "provenance", {}))
    return new


def _scaled_codec(codec: dict[str, Any], old_size: tuple[int, int], size: tuple[int, int]) -> dict[str, Any]:
    """A heatmap codec config for crops of `size` instead of `old_size` (w, h): heatmaps and sigma scale alike."""
    codec = dict(codec)
    if not codec or "heatmap_size" not in codec:
        return codec
    (old_w, old_h), (w, h) = old_size, size
    old_hw, old_hh = codec["heatmap_size"]
    hw, hh = old_hw * w // old_w, old_hh * h // old_h
    codec.update(input_size=[w, h], heatmap_size=[hw, hh])
    if "sigma" in codec:
        codec["sigma"] = float(codec["sigma"]) * hh / old_hh
    return codec
