"""`prior`: keep predicted poses anatomically plausible under a population's pose prior.

Every training step decodes the head's heatmaps differentiably (soft-argmax, `poseadapt.priors.soft_argmax`) and
adds `weight * mean(log1p(relu(energy - reference)))`: the prior's energy (bone-length ratios with a robust loss,
joint-angle limits, a Gaussian-mixture density over Procrustes-normalised poses; see `poseadapt.priors`) above
that of the median training pose. Poses as plausible as the population's typical pose cost nothing, so the prior
only pulls on odd predictions; with few labels it is the anatomy the labels cannot teach. `reference: threshold`
frees every pose up to the prior's 99th percentile (the implausible-pose threshold) instead: only poses the
implausible-pose rate would count pay, and the labelled keypoints are left to the heatmap loss.

The prior comes from `poseadapt prior fit ANN.json --out PRIOR.safetensors` (labelled poses of the target
population); its keypoints are matched to the head's by name (the head may have more).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from poseadapt.adapt.method import AdaptContext, Method, MethodOptions, StepOutputs
from poseadapt.errors import PoseAdaptError


class PriorOptions(MethodOptions):
    prior: Path = Field(description="the pose prior file (poseadapt prior fit ANN.json --out PRIOR.safetensors)")
    weight: float = Field(1e-3, ge=0.0, description="scale of the prior loss against the heatmap MSE")
    beta: float = Field(20.0, gt=0.0, description="soft-argmax sharpness (on each heatmap divided by its maximum)")
    density: float = Field(1.0, ge=0.0, description="weight of the pose-density part of the energy")
    bones: float = Field(1.0, ge=0.0, description="weight of the bone-length-ratio part")
    angles: float = Field(1.0, ge=0.0, description="weight of the joint-angle-limit part")
    head: str | None = Field(None, description="the head whose predictions the prior judges (default: the target's)")
    reference: Literal["median", "threshold"] = Field(
        "median", description="energy that costs nothing: the median training pose's, or the 99th percentile's"
    )
    samples: Literal["all", "unlabelled"] = Field(
        "all", description="which samples: every sample of the head, or only those with no labelled keypoint"
    )


def check_prior_file(path: Path, key: str) -> Any:
    """Load the prior (one line naming the recipe key when it is missing or not a prior)."""
    from poseadapt.priors import PosePrior

    if not Path(path).is_file():
        raise PoseAdaptError(f"recipe key '{key}': pose prior not found: {path}")
    try:
        return PosePrior.load(path)
    except PoseAdaptError as exc:
        raise PoseAdaptError(f"recipe key '{key}': {exc}") from None


class PriorTerm:
    """The differentiable prior energy of a head's predictions (shared by `prior` and `mean_teacher`)."""

    def __init__(
        self,
        prior: Any,
        head_schema: Any,
        key: str,
        beta: float,
        weights: dict[str, float],
        reference: Literal["median", "threshold"] = "median",
    ) -> None:
        try:
            self.columns = torch.as_tensor(prior.columns_for(head_schema.keypoints))
        except PoseAdaptError as exc:
            raise PoseAdaptError(f"recipe key '{key}': head schema '{head_schema.name}': {exc}") from None
        self.prior, self.beta, self.weights = prior, float(beta), dict(weights)
        self.reference = float(prior.threshold if reference == "threshold" else prior.reference)

    def energy(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """(B, K, H, W) heatmaps -> (B,) prior energies of their soft-argmax poses (float32)."""
        from poseadapt.priors import soft_argmax

        points = soft_argmax(heatmaps[:, self.columns.to(heatmaps.device)], self.beta)
        return self.prior.energy(points, self.weights)

    def loss(self, energy: torch.Tensor) -> torch.Tensor:
        """mean(log1p(relu(energy - reference))): 0 for poses as plausible as the reference pose; the log
        keeps a collapsed pose (an untrained head's, energy in the hundreds) from swamping the heatmap loss."""
        return torch.log1p(torch.relu(energy - self.reference)).mean()


class Prior(Method):
    name = "prior"
    kinds: ClassVar[tuple[str, ...]] = ("losses",)
    summary = "soft-argmax poses kept plausible under a learned pose prior (bone ratios, joint limits, density)"
    Options = PriorOptions
    options: Any

    def __init__(self, options: PriorOptions) -> None:
        super().__init__(options)
        self.term: PriorTerm | None = None
        self.head = 0
        self.stats: dict[str, float] = {}

    def check(self, ctx: AdaptContext) -> None:
        check_prior_file(self.options.prior, f"{ctx.key}.prior")

    def prepare(self, model: nn.Module, ctx: AdaptContext) -> nn.Module:
        o = self.options
        if o.head is not None:
            if o.head not in model.head_names:
                raise PoseAdaptError(
                    f"recipe key '{ctx.key}.head': no head '{o.head}' (heads: {', '.join(model.head_names)})"
                )
            self.head = model.head_index(o.head)
        else:
            self.head = ctx.heads[0] if ctx.heads else 0
        prior = check_prior_file(o.prior, f"{ctx.key}.prior")
        weights = {"density": o.density, "bones": o.bones, "angles": o.angles}
        self.term = PriorTerm(prior, model.schemas[self.head], ctx.key, o.beta, weights, o.reference)
        return model

    def losses(self, batch: dict[str, Any], out: StepOutputs, model: nn.Module) -> dict[str, torch.Tensor]:
        assert self.term is not None
        rows = batch["dataset_index"] == self.head
        if self.options.samples == "unlabelled":
            rows &= (batch["target_weight"] <= 0).all(dim=1)
        energy = self.term.energy(out.heatmaps[rows]) if bool(rows.any()) else None
        if energy is None:
            return {"energy": out.heatmaps.sum() * 0.0}
        self.stats = {"energy": float(energy.detach().mean()), "implausible": float(
            (energy.detach() > self.term.prior.threshold).float().mean())}  # fmt: skip
        return {"energy": self.options.weight * self.term.loss(energy)}

    def logs(self) -> dict[str, float]:
        return dict(self.stats)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "prior": str(self.options.prior)}
