"""`mean_teacher`: adapt to unlabelled target images with an EMA teacher, a pose prior and silhouettes (SHIFT).

Unlabelled target crops (a COCO file whose keypoints are ignored, or a synthetic population) join each epoch at
`ratio`, each as two views of one crop (`poseadapt.adapt.unlabelled.TwoViewDataset`): the student sees the
strongly augmented view, the teacher the weakly augmented one. Their supervised targets weigh zero; instead:

- **consistency**: the teacher (an exponential moving average of the student, updated before every step with
  momentum `min(momentum, (1 + n) / (10 + n))` after n updates) decodes its heatmaps; each keypoint it is sure of
  (confidence >= `score_threshold`, peak inside the crop) becomes a Gaussian pseudo-heatmap for the student,
  weighted by that confidence (the MSE of the supervised loss, normalised over the whole batch). With
  `teacher_views` the teacher also sees the weak view mirrored, turned 180 degrees and/or flipped upside down,
  and its heatmaps, mapped back (left/right swapped for mirrors), are averaged before decoding: keypoints the
  views agree on keep their confidence, guesses that move with the view lose it (test-time augmentation of the
  pseudo-labels; exact on UDP heatmaps, whose pixel grid reverses onto itself). With `student_rotate` /
  `student_scale` the student's view is also turned and scaled relative to the teacher's and the teacher's
  keypoints are carried into it before they become Gaussians (easy-hard pairs against collapse, Xie et al. 2021);
- **filters** on the pseudo-labels themselves: `prior_filter` drops every keypoint of a teacher pose the prior calls
  implausible (energy above its 99th percentile; a wrong pose is often confident, and its keypoints would teach
  the student a wrong body), `silhouette_filter` drops a keypoint the teacher puts farther than that many heatmap
  cells outside the person's mask;
- **prior** (with `prior:`): the student's soft-argmax poses are kept plausible under the population's pose prior
  (`poseadapt.priors`; loss `log1p(relu(energy - reference))`);
- **silhouette**: each soft-argmax keypoint of the student is pulled into the person's mask: the loss is the mean
  distance (in heatmap cells, beyond `silhouette_margin`) from the keypoint to the mask, 0 inside.

The losses ramp up linearly over `rampup_iters` steps (a young teacher is a poor one). The teacher is never
trained by gradient, sits outside the optimizer and DDP, and is saved for exact resume; `export: teacher` writes
the teacher's weights instead of the student's.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from poseadapt.adapt.method import AdaptContext, DataStream, Method, MethodOptions, StepOutputs
from poseadapt.adapt.methods.prior import PriorTerm, check_prior_file
from poseadapt.codecs import flip_heatmaps_back
from poseadapt.errors import DataError, PoseAdaptError

DEFAULT_GEOMETRY: list[dict[str, Any]] = [{"type": "RandomFlip", "prob": 0.5}, {"type": "RandomBBoxTransform"}]
DEFAULT_STRONG: list[dict[str, Any]] = [
    {"type": "PhotometricDistortion", "prob": 0.8},
    {"type": "RandomBlur", "prob": 0.3},
    {"type": "CoarseOcclusion", "prob": 0.5},
]


class UnlabelledSource(MethodOptions):
    """Unlabelled target images: a COCO file (boxes used, keypoints ignored) or a synthetic population spec."""

    ann: Path | None = Field(None, description="COCO file with person boxes; its keypoints are ignored")
    images: Path | None = Field(None, description="image folder (default: next to the file)")
    synth: dict[str, Any] | None = Field(None, description="a data.train synth spec (its labels are ignored)")
    schema_name: str | None = Field(None, alias="schema", description="schema of the file's categories, if any")

    @model_validator(mode="after")
    def _one_source(self) -> UnlabelledSource:
        if (self.ann is None) == (self.synth is None):
            raise ValueError("give exactly one of 'ann' (a COCO file with person boxes) or 'synth'")
        if self.synth is not None and self.synth.get("stream"):
            raise ValueError("synth 'stream: true' is not supported for the unlabelled set (give n images)")
        return self


class MeanTeacherOptions(MethodOptions):
    unlabelled: UnlabelledSource
    ratio: float = Field(0.5, gt=0.0, lt=1.0, description="fraction of each epoch drawn from the unlabelled set")
    momentum: float = Field(0.999, ge=0.0, lt=1.0, description="EMA momentum of the teacher")
    score_threshold: float = Field(0.5, ge=0.0, le=1.0, description="teacher confidence below which nothing is taught")
    consistency: float = Field(1.0, ge=0.0, description="weight of the pseudo-heatmap loss")
    prior: Path | None = Field(None, description="pose prior file of the target population (poseadapt prior fit)")
    prior_weight: float = Field(1e-3, ge=0.0, description="weight of the prior loss on the student's predictions")
    silhouette: float = Field(1e-2, ge=0.0, description="weight of the silhouette loss (0: off)")
    prior_filter: bool = Field(False, description="drop the pseudo-labels of teacher poses the prior calls implausible")
    silhouette_filter: float | None = Field(
        None, ge=0.0, description="drop pseudo-labels farther than this (heatmap cells) outside the person's mask"
    )
    silhouette_margin: float = Field(0.5, ge=0.0, description="distance to the mask (heatmap cells) that is free")
    beta: float = Field(20.0, gt=0.0, description="soft-argmax sharpness for the prior and silhouette losses")
    rampup_iters: int = Field(0, ge=0, description="steps over which the unlabelled losses ramp up linearly")
    augment: list[dict[str, Any]] | None = Field(
        None, description="box transforms drawing the shared crop (default: flip, scale and rotation)"
    )
    weak: list[dict[str, Any]] = Field(default_factory=list, description="pixel transforms of the teacher's view")
    strong: list[dict[str, Any]] | None = Field(
        None, description="pixel transforms of the student's view (default: photometric, blur, occlusion)"
    )
    student_rotate: float = Field(
        0.0, ge=0.0, le=180.0, description="the student's view turned by up to this many degrees from the teacher's"
    )
    student_scale: float = Field(
        0.0, ge=0.0, lt=1.0, description="the student's view scaled by 1 +- this from the teacher's"
    )
    teacher_views: list[Literal["flip", "rot180", "vflip"]] = Field(
        default_factory=list, description="extra views the teacher averages over: mirrored, turned 180, upside down"
    )
    export: Literal["student", "teacher"] = Field("student", description="which weights the checkpoint keeps")


def _transforms(specs: list[dict[str, Any]], key: str, stage: str) -> list[Any]:
    from poseadapt.data.augment import build_transforms

    try:
        out = build_transforms(specs)
    except (PoseAdaptError, ValueError, TypeError) as exc:
        raise PoseAdaptError(f"recipe key '{key}': {exc}") from None
    wrong = [type(t).__name__ for t in out if t.stage != stage]
    if wrong:
        raise PoseAdaptError(f"recipe key '{key}': only {stage} transforms belong here, not {', '.join(wrong)}")
    return out


class MeanTeacher(Method):
    name = "mean_teacher"
    kinds: ClassVar[tuple[str, ...]] = ("data", "losses", "modules")
    summary = "EMA teacher on unlabelled target images: pseudo-heatmaps, pose prior, silhouette consistency (SHIFT)"
    Options = MeanTeacherOptions
    options: Any

    def __init__(self, options: MeanTeacherOptions) -> None:
        super().__init__(options)
        self.teacher: nn.Module | None = None
        self.updates = 0
        self.steps = 0
        self.head = 0
        self.num_keypoints = 0
        self.codec: Any = None
        self.prior: PriorTerm | None = None
        self.flip_index: list[int] = []
        self.pseudo: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.pending: dict[str, Any] | None = None
        self.stats: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------------ set-up
    def check(self, ctx: AdaptContext) -> None:
        o, key = self.options, ctx.key
        src = o.unlabelled
        if src.ann is not None and not src.ann.is_file():
            raise DataError(f"recipe key '{key}.unlabelled.ann': file not found: {src.ann}")
        if src.images is not None and not src.images.is_dir():
            raise DataError(f"recipe key '{key}.unlabelled.images': folder not found: {src.images}")
        if o.prior is not None:
            check_prior_file(o.prior, f"{key}.prior")
        elif o.prior_filter:
            raise PoseAdaptError(f"recipe key '{key}.prior_filter': needs 'prior' (a pose prior file)")
        _transforms(o.augment if o.augment is not None else DEFAULT_GEOMETRY, f"{key}.augment", "box")
        _transforms(o.weak, f"{key}.weak", "pixel")
        _transforms(o.strong if o.strong is not None else DEFAULT_STRONG, f"{key}.strong", "pixel")

    def prepare(self, model: nn.Module, ctx: AdaptContext) -> nn.Module:
        if model.config.codec.get("type") == "SimCC":
            raise PoseAdaptError(f"recipe key '{ctx.key}': mean teacher needs a heatmap model, not SimCC")
        self.head = ctx.heads[0] if ctx.heads else 0
        schema = model.schemas[self.head]
        self.num_keypoints = len(schema)
        self.codec = model.codec
        self.flip_index = list(schema.flip_index)
        if self.options.teacher_views and not getattr(self.codec, "udp", False):
            raise PoseAdaptError(
                f"recipe key '{ctx.key}.teacher_views': needs UDP heatmaps (their grid mirrors exactly), "
                f"not {type(self.codec).__name__}"
            )
        if self.options.prior is not None:
            prior = check_prior_file(self.options.prior, f"{ctx.key}.prior")
            self.prior = PriorTerm(prior, schema, ctx.key, self.options.beta, {})
        return model

    def data(self, model: nn.Module, ctx: AdaptContext) -> list[DataStream]:
        from poseadapt.adapt.unlabelled import TwoViewDataset

        o, key = self.options, ctx.key
        geometry = _transforms(o.augment if o.augment is not None else DEFAULT_GEOMETRY, f"{key}.augment", "box")
        base = self._base_dataset(model, ctx, geometry)
        dataset = TwoViewDataset(
            base, self.num_keypoints, model.codec.heatmap_size,
            weak=_transforms(o.weak, f"{key}.weak", "pixel"),
            strong=_transforms(o.strong if o.strong is not None else DEFAULT_STRONG, f"{key}.strong", "pixel"),
            silhouettes=o.silhouette > 0 or o.silhouette_filter is not None,
            student_rotate=o.student_rotate, student_scale=o.student_scale,
        )  # fmt: skip
        # the teacher starts as the student: the final structure, after every method's prepare (LoRA included)
        self.teacher = copy.deepcopy(model)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.eval()
        if self.pending is not None:
            self.load_state_dict(self.pending)
        return [DataStream(dataset, o.ratio, self.head, name="unlabelled")]

    def _base_dataset(self, model: nn.Module, ctx: AdaptContext, geometry: list[Any]) -> Any:
        src, key = self.options.unlabelled, f"{ctx.key}.unlabelled"
        if src.synth is not None:
            spec = {"synth": src.synth, "schema": src.schema_name}
            base = ctx.build_dataset(spec, key, model, self.head, match_head=False)
            base.transforms = geometry
            return base
        from poseadapt.data.coco import load_coco_keypoints
        from poseadapt.data.dataset import TopDownDataset

        assert src.ann is not None
        data = load_coco_keypoints(src.ann, src.schema_name or model.schemas[self.head])
        root = src.images if src.images is not None else src.ann.parent
        recipe = ctx.recipe
        base = TopDownDataset(
            data, root, model.codec, model.input_size, geometry, train=False,
            padding=recipe.data.padding, seed=ctx.seed + ctx.mix_offset,
        )  # fmt: skip
        if len(base) == 0:
            raise DataError(f"recipe key '{key}.ann': no person boxes (every annotation is a crowd)")
        return base

    # ------------------------------------------------------------------------------------------------ teacher
    @torch.no_grad()
    def update_teacher(self, student: nn.Module) -> float:
        """teacher <- m * teacher + (1 - m) * student, m = min(momentum, (1 + n) / (10 + n)); buffers copied."""
        assert self.teacher is not None
        m = min(self.options.momentum, (1.0 + self.updates) / (10.0 + self.updates))
        t_params = dict(self.teacher.named_parameters())
        s_params = dict(student.named_parameters())
        if t_params.keys() != s_params.keys():
            raise PoseAdaptError("mean teacher: the student's parameters changed after the teacher was made")
        device = next(iter(s_params.values())).device
        if next(iter(t_params.values())).device != device:
            self.teacher.to(device)
        t_list = [t_params[n] for n in s_params]
        s_list = [s_params[n].detach().to(t_params[n].dtype) for n in s_params]
        torch._foreach_mul_(t_list, m)
        torch._foreach_add_(t_list, s_list, alpha=1.0 - m)
        t_buffers = dict(self.teacher.named_buffers())
        for name, buf in student.named_buffers():
            if name in t_buffers:
                t_buffers[name].copy_(buf)
        self.updates += 1
        return m

    @torch.no_grad()
    def pseudo_labels(self, batch: dict[str, Any]) -> dict[str, float]:
        """The teacher's confident peaks on the weak views of the unlabelled rows -> (rows, heatmaps, weights)."""
        assert self.teacher is not None
        self.pseudo = None
        flag = batch.get("unlabelled")
        if flag is None or not bool((flag > 0).any()):
            return {}
        rows = torch.nonzero(flag > 0).flatten()
        from poseadapt.adapt.replay import crops_to_pixels

        self.teacher.eval()
        x = crops_to_pixels(batch["weak_image"][rows], self.teacher)
        heatmaps = self.teacher_heatmaps(x, batch["dataset_index"][rows])
        points, scores = self.codec.decode(heatmaps.cpu().numpy())
        if self.options.student_rotate or self.options.student_scale:  # carried into the student's turned view
            m = batch["student_matrix"][rows].cpu().numpy().astype(np.float64)
            points = np.einsum("rij,rkj->rki", m[:, :, :2], points[..., :2]) + m[:, None, :, 2]
        target, _ = self.codec.encode(points, np.ones(scores.shape, np.float32))
        iw, ih = self.codec.input_size
        inside = (points[..., 0] >= 0) & (points[..., 0] <= iw - 1) & (points[..., 1] >= 0) & (points[..., 1] <= ih - 1)
        sure = (scores >= max(self.options.score_threshold, 1e-12)) & inside
        stats: dict[str, float] = {}
        if self.options.prior_filter and self.prior is not None:
            columns = self.prior.columns.numpy()
            implausible = np.asarray(self.prior.prior.implausible(points[:, columns, :2].astype(np.float64)))
            sure &= ~implausible[:, None]
            stats["implausible_teacher"] = float(implausible.mean())
        if self.options.silhouette_filter is not None and "silhouette_distance" in batch:
            field = batch["silhouette_distance"][rows].cpu().numpy()
            has = batch["has_silhouette"][rows].cpu().numpy() > 0
            xs = np.clip(np.round(points[..., 0]).astype(int), 0, iw - 1)
            ys = np.clip(np.round(points[..., 1]).astype(int), 0, ih - 1)
            outside = field[np.arange(len(rows))[:, None], ys, xs] > self.options.silhouette_filter
            sure &= ~(outside & has[:, None])
        weight = np.where(sure, np.clip(scores, 0.0, 1.0), 0.0).astype(np.float32)
        device = batch["target"].device
        self.pseudo = (
            rows,
            torch.from_numpy(np.asarray(target, np.float32)).to(device),
            torch.from_numpy(weight).to(device),
        )
        return {"pseudo_labels": float(sure.mean()), "teacher_confidence": float(np.clip(scores, 0, 1).mean()), **stats}

    def teacher_heatmaps(self, x: torch.Tensor, dataset_index: torch.Tensor) -> torch.Tensor:
        """The teacher's heatmaps of pixels `x`, averaged over the identity and `teacher_views` (mapped back)."""
        assert self.teacher is not None
        k = self.num_keypoints

        def run(pixels: torch.Tensor) -> torch.Tensor:
            return self.teacher(pixels, dataset_index).float()[:, :k]  # type: ignore[misc]

        total = run(x)
        for view in self.options.teacher_views:
            if view == "flip":
                total += flip_heatmaps_back(run(x.flip(-1)), self.flip_index)
            elif view == "vflip":  # upside down = mirrored, then turned 180
                total += flip_heatmaps_back(run(x.flip(-2)).flip(-1, -2), self.flip_index)
            else:  # rot180: a rotation keeps left and right
                total += run(x.flip(-1, -2)).flip(-1, -2)
        return total / (1 + len(self.options.teacher_views))

    # ------------------------------------------------------------------------------------------------ the loop
    def before_step(self, batch: dict[str, Any], model: nn.Module) -> None:
        momentum = self.update_teacher(model)
        self.stats = {"momentum": momentum, **self.pseudo_labels(batch)}
        self.steps += 1

    def ramp(self) -> float:
        r = self.options.rampup_iters
        return 1.0 if r == 0 else min(1.0, self.steps / r)

    def losses(self, batch: dict[str, Any], out: StepOutputs, model: nn.Module) -> dict[str, torch.Tensor]:
        from poseadapt.train.losses import keypoint_mse

        zero = out.heatmaps.sum() * 0.0
        if self.pseudo is None:
            return {"consistency": zero}
        o, ramp = self.options, self.ramp()
        rows, target, weight = self.pseudo
        student = out.heatmaps[rows][:, : self.num_keypoints]
        share = rows.numel() / out.heatmaps.shape[0]  # normalised over the whole batch, like the supervised MSE
        losses = {"consistency": ramp * o.consistency * share * keypoint_mse(student, target, weight)}
        if self.prior is not None and o.prior_weight > 0:
            energy = self.prior.energy(student)
            losses["prior"] = ramp * o.prior_weight * self.prior.loss(energy)
            self.stats["prior_energy"] = float(energy.detach().mean())
        if o.silhouette > 0 and "silhouette_distance" in batch:
            dist = silhouette_distance(student, batch["silhouette_distance"][rows], o.beta, self.codec)
            has = batch["has_silhouette"][rows].float()[:, None]
            cost = torch.relu(dist - o.silhouette_margin) * has
            losses["silhouette"] = ramp * o.silhouette * cost.sum() / (has.sum() * dist.shape[1]).clamp_min(1.0)
            self.stats["outside_silhouette"] = float(((dist.detach() > o.silhouette_margin).float() * has).mean())
        return losses

    def logs(self) -> dict[str, float]:
        return dict(self.stats)

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        if self.teacher is None:
            return {}
        teacher = {k: v.detach().cpu().clone() for k, v in self.teacher.state_dict().items()}
        return {"teacher": teacher, "updates": self.updates, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if self.teacher is None:  # before data(): applied once the teacher exists
            self.pending = state
            return
        try:
            self.teacher.load_state_dict(state["teacher"])
        except (RuntimeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise PoseAdaptError(f"cannot resume: the saved mean teacher does not match this model ({first})") from None
        self.updates, self.steps = int(state["updates"]), int(state["steps"])
        self.pending = None

    def export(self, model: nn.Module) -> nn.Module:
        if self.options.export == "teacher" and self.teacher is not None:
            return copy.deepcopy(self.teacher).cpu()
        return model


def silhouette_distance(heatmaps: torch.Tensor, distance: torch.Tensor, beta: float, codec: Any) -> torch.Tensor:
    """(R, K) distance, in heatmap cells, of each soft-argmax keypoint of `heatmaps` to the mask whose distance
    field (R, H_in, W_in) is given (bilinear in the field, so differentiable; 0 inside the mask)."""
    from poseadapt.priors import soft_argmax

    points = soft_argmax(heatmaps, beta) * torch.as_tensor(codec.stride, dtype=torch.float32, device=heatmaps.device)
    h_in, w_in = distance.shape[-2:]
    grid = torch.stack([points[..., 0] / (w_in - 1) * 2 - 1, points[..., 1] / (h_in - 1) * 2 - 1], dim=-1)
    sampled = torch.nn.functional.grid_sample(
        distance[:, None].float(), grid[:, :, None, :], mode="bilinear", padding_mode="border", align_corners=True
    )
    return sampled[:, 0, :, 0]
