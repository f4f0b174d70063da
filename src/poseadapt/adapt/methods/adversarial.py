"""`adversarial`: domain-adversarial feature alignment (DANN, Ganin & Lempitsky 2015), as FiDIP applies it to infants.

A small domain classifier reads the backbone's feature map (global average pool -> MLP) and learns which domain a
crop comes from; between the backbone and the classifier sits a gradient-reversal layer (identity forward,
-lambda x gradient backward), so the same loss that trains the classifier pushes the backbone towards features
the classifier cannot tell apart. The pose head keeps learning from whatever labels there are.

Domains (class indices of the classifier):

- 0, **target**: the recipe's own `data.train` sets (e.g. 50 labelled infants) and the optional
  `target_unlabelled` stream (infant crops whose keypoints are ignored: zero target weights, so the supervised
  loss never sees them; only the domain loss does). A `mean_teacher`'s unlabelled images count as target too.
- 1, **source**: labelled source data (`source`, e.g. adults), carried to the target head's schema by name and
  supervised like rehearsal data (it also guards against forgetting). With `own_data: source` the recipe's own
  `data.train` sets are the source instead: DANN's first setting, labelled source and unlabelled target only
  (zero target labels; `target_unlabelled` is then required).
- 2 (or 1 without a source), **synthetic**: optional synthetic target images as a third domain (`synthetic`:
  labelled by default), FiDIP's real-vs-synthetic split.

The classifier loss is class-balanced (the mean of each present domain's mean cross-entropy), times `weight`.
The reversal strength follows DANN's schedule lambda(p) = max_lambda * (2 / (1 + exp(-gamma p)) - 1), p the
training progress in [0, 1] (epochs and steps within the epoch; the first epoch's length is estimated from the
recipe, later ones are counted), so the backbone is left alone while the classifier is still guessing.

What it is: a generic DANN on any `poseadapt` backbone and any schema. What it is not: FiDIP's code. FiDIP
alternates classifier and pose-network updates with its own optimiser settings on a Pose-ResNet, and pre-trains the
classifier; here both train in one step (the reversal makes that equivalent to the min-max game) with the
recipe's optimiser, and the classifier starts from scratch. Every domain tag travels as the per-keypoint array
`domain` under an item's `extra` (`poseadapt.adapt.streams`); untagged samples (the recipe's own sets) take the
domain `own_data` names. A sample from another method's untagged stream (rehearsal's adults) therefore counts as
that domain too: do not combine `rehearsal` with this method's `source` (it already replays the source).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn

from poseadapt.adapt.method import AdaptContext, DataStream, Method, MethodOptions, StepOutputs
from poseadapt.adapt.streams import DOMAIN_KEY, DomainData, DomainTagged, untagged_domains
from poseadapt.errors import DataError, PoseAdaptError

TARGET, SOURCE = 0, 1


# --------------------------------------------------------------------------------------------- the reversal layer
class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient flowing back is multiplied by -`scale` (Ganin & Lempitsky's GRL)."""
    return _ReverseGradient.apply(x, float(scale))


class GradientReversal(nn.Module):
    """`reverse_gradient` as a module; `scale` is set from outside (the DANN schedule)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reverse_gradient(x, self.scale)


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """DANN's reversal weight 2 / (1 + exp(-gamma p)) - 1: 0 at the start, ~1 from p = 0.5 on."""
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class DomainClassifier(nn.Module):
    """Backbone feature map (B, C, h, w) -> domain logits (B, n): global average pool, then a ReLU MLP."""

    def __init__(self, channels: int, domains: int, hidden: int = 256, layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        parts: list[nn.Module] = []
        width = channels
        for _ in range(layers):
            parts += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            if dropout:
                parts.append(nn.Dropout(dropout))
            width = hidden
        parts.append(nn.Linear(width, domains))
        self.mlp = nn.Sequential(*parts)
        self.reversal = GradientReversal(0.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = features.float().mean(dim=(2, 3)) if features.ndim == 4 else features.float()
        return self.mlp(self.reversal(pooled))


# --------------------------------------------------------------------------------------------- data
def batch_domains(batch: dict[str, Any], size: int, device: torch.device, untagged: int = TARGET) -> torch.Tensor:
    """(B,) domain indices of a device batch; samples no stream tagged (the recipe's own) get `untagged`."""
    tags = batch.get(DOMAIN_KEY)
    if tags is None:
        return torch.full((size,), int(untagged), dtype=torch.long, device=device)
    return untagged_domains(tags[:, 0], untagged)


def balanced_domain_loss(logits: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """Mean over the domains present of each domain's mean cross-entropy (a 90/10 batch counts both halves equal)."""
    per_sample = F.cross_entropy(logits.float(), domains, reduction="none")
    present = torch.unique(domains)
    return torch.stack([per_sample[domains == d].mean() for d in present]).mean()


# --------------------------------------------------------------------------------------------- the method
class AdversarialOptions(MethodOptions):
    source: DomainData | None = Field(None, description="labelled source-domain data (e.g. adults): domain 1")
    target_unlabelled: DomainData | None = Field(
        None, description="target-domain images whose keypoints are ignored (domain 0, as data.train)"
    )
    synthetic: DomainData | None = Field(None, description="synthetic target images: a third domain (labelled)")
    own_data: Literal["target", "source"] = Field(
        "target",
        description="domain of the recipe's own data.train: target (a few labelled target images) or source "
        "(labelled source images, when the target has no labels at all; needs target_unlabelled)",
    )
    weight: float = Field(1.0, gt=0.0, description="weight of the domain-classifier loss")
    max_lambda: float = Field(1.0, ge=0.0, description="peak strength of the gradient reversal")
    schedule: Literal["dann", "constant"] = Field("dann", description="dann: 2/(1+exp(-gamma p))-1; constant: 1")
    gamma: float = Field(10.0, gt=0.0, description="steepness of the dann schedule")
    hidden: int = Field(256, ge=1, description="width of the classifier's hidden layers")
    layers: int = Field(2, ge=0, le=8, description="hidden layers of the classifier")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @field_validator("target_unlabelled")
    @classmethod
    def _unlabelled(cls, v: DomainData | None) -> DomainData | None:
        if v is not None and v.labelled:
            raise ValueError("'labelled: true': these images are unlabelled by definition; drop the key")
        return v

    @model_validator(mode="after")
    def _domains(self) -> AdversarialOptions:
        if self.own_data == "source":
            if self.target_unlabelled is None:
                raise ValueError("own_data: source needs 'target_unlabelled': the target domain's images")
        elif self.source is None and self.synthetic is None:
            raise ValueError(
                "give 'source' or 'synthetic': the domain classifier needs a second domain besides the target"
            )
        total = sum(d.ratio for d in (self.source, self.target_unlabelled, self.synthetic) if d is not None)
        if total >= 1.0:
            raise ValueError(f"the ratios of source, target_unlabelled and synthetic add up to {total:g}; keep < 1")
        return self


class Adversarial(Method):
    name = "adversarial"
    kinds: ClassVar[tuple[str, ...]] = ("data", "losses", "modules")
    summary = "domain classifier on backbone features behind a gradient-reversal layer (DANN, as FiDIP)"
    Options = AdversarialOptions
    options: Any

    def __init__(self, options: AdversarialOptions) -> None:
        super().__init__(options)
        self.classifier: DomainClassifier | None = None
        self.domains: list[str] = ["target"]
        self.epochs = 1
        self.epoch = 0
        self.steps_in_epoch = 0
        self.steps_per_epoch = 1
        self.stats: dict[str, float] = {}

    def roles(self) -> list[tuple[str, DomainData, int, bool]]:
        """(role, data, domain index, labelled) of each extra stream, in mix order."""
        o, out = self.options, []
        index = 1
        if o.source is not None:
            out.append(("source", o.source, index, True if o.source.labelled is None else o.source.labelled))
        if o.source is not None or o.own_data == "source":
            index += 1
        if o.target_unlabelled is not None:
            out.append(("target_unlabelled", o.target_unlabelled, TARGET, False))
        if o.synthetic is not None:
            labelled = True if o.synthetic.labelled is None else o.synthetic.labelled
            out.append(("synthetic", o.synthetic, index, labelled))
        return out

    def check(self, ctx: AdaptContext) -> None:
        for role, d, _, _ in self.roles():
            if d.ann is not None and not d.ann.is_file():
                raise DataError(f"recipe key '{ctx.key}.{role}.ann': file not found: {d.ann}")
            if d.images is not None and not d.images.is_dir():
                raise DataError(f"recipe key '{ctx.key}.{role}.images': folder not found: {d.images}")

    def prepare(self, model: nn.Module, ctx: AdaptContext) -> nn.Module:
        channels = _feature_channels(model, ctx.key)
        self.domains = ["target"] + (["source"] if self.options.own_data == "source" else [])
        self.domains += [role for role, _, d, _ in self.roles() if d != TARGET and role not in self.domains]
        o = self.options
        self.classifier = DomainClassifier(channels, len(self.domains), o.hidden, o.layers, o.dropout)
        self.epochs = int(ctx.recipe.schedule.epochs)
        return model

    def data(self, model: nn.Module, ctx: AdaptContext) -> list[DataStream]:
        head = ctx.heads[0] if ctx.heads else 0
        schema = model.schemas[head]
        streams = []
        for role, d, domain, labelled in self.roles():
            name = d.schema_name or (schema.name if d.synth is not None else None)
            spec = {"ann": d.ann, "images": d.images, "synth": d.synth, "schema": name, "augment": d.augment}
            dataset = ctx.build_dataset(spec, f"{ctx.key}.{role}", model, head, match_head=False)
            tagged = DomainTagged(dataset, schema, model.codec, domain, labelled)
            if labelled and not tagged.dataset.mapping.matched:
                raise PoseAdaptError(
                    f"recipe key '{ctx.key}.{role}.schema': '{dataset.schema.name}' shares no keypoint with the "
                    f"head's '{schema.name}': set labelled: false, or give data in a matching schema"
                )
            streams.append(DataStream(tagged, d.ratio, head, name=f"adversarial {role}"))
        # the first epoch's length, estimated as the builder will set it; later epochs are counted
        taken = sum(d.ratio for _, d, _, _ in self.roles())
        total = ctx.recipe.train.samples_per_epoch or round(sum(len(x) for x in ctx.datasets) / (1.0 - taken))
        self.steps_per_epoch = max(1, total // ctx.recipe.train.batch_size)
        return streams

    def modules(self) -> nn.Module | None:
        return self.classifier

    # ---------------------------------------------------------------------------------------- the loop
    def progress(self) -> float:
        return (self.epoch + min(1.0, self.steps_in_epoch / max(1, self.steps_per_epoch))) / max(1, self.epochs)

    def reversal_scale(self) -> float:
        o = self.options
        return o.max_lambda * (dann_lambda(self.progress(), o.gamma) if o.schedule == "dann" else 1.0)

    def on_epoch_start(self, model: nn.Module, epoch: int) -> dict[str, float]:
        if epoch != self.epoch:  # a new epoch (a mid-epoch resume keeps its step count)
            if self.steps_in_epoch:
                self.steps_per_epoch = self.steps_in_epoch
            self.epoch, self.steps_in_epoch = epoch, 0
        return {"grl_lambda": self.reversal_scale()}

    def losses(self, batch: dict[str, Any], out: StepOutputs, model: nn.Module) -> dict[str, torch.Tensor]:
        assert self.classifier is not None
        if out.features is None:
            raise PoseAdaptError("adversarial: the model exposes no backbone features (needs forward_features)")
        scale = self.reversal_scale()
        self.classifier.reversal.scale = scale
        self.steps_in_epoch += 1
        logits = self.classifier(out.features)
        untagged = SOURCE if self.options.own_data == "source" else TARGET
        domains = batch_domains(batch, logits.shape[0], logits.device, untagged)
        loss = balanced_domain_loss(logits, domains)
        with torch.no_grad():
            acc = (logits.argmax(1) == domains).float().mean()
        self.stats = {"domain_loss": loss.detach(), "domain_acc": acc, "grl_lambda": scale}
        return {"domain": self.options.weight * loss}

    def logs(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.stats.items()}

    def state_dict(self) -> dict[str, Any]:
        assert self.classifier is not None
        weights = {k: v.detach().cpu().clone() for k, v in self.classifier.state_dict().items()}
        return {"epoch": self.epoch, "steps_in_epoch": self.steps_in_epoch, "steps_per_epoch": self.steps_per_epoch,
                "classifier": weights}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.classifier is not None and "classifier" in state:
            self.classifier.load_state_dict(state["classifier"])
        self.epoch = int(state.get("epoch", self.epoch))
        self.steps_in_epoch = int(state.get("steps_in_epoch", 0))
        self.steps_per_epoch = int(state.get("steps_per_epoch", self.steps_per_epoch))

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "domains": self.domains}


def _feature_channels(model: nn.Module, key: str) -> int:
    cfg = getattr(getattr(model, "config", None), "backbone", None)
    channels = getattr(cfg, "embed_dim", None)
    if channels is None or not hasattr(model, "forward_features"):
        raise PoseAdaptError(f"recipe key '{key}': the model exposes no backbone features to align")
    return int(channels)
