"""`prototypes`: PoseBH (CVPR 2025) keypoint prototypes with cross-type self-supervision, and new-skeleton transfer.

A keypoint embedding module turns the backbone's feature map into L2-normalised pixel embeddings; every keypoint
of every dataset owns M prototypes in that space. On each step, for each dataset in the batch:

- the GT heatmaps pick foreground pixels (label = the argmax keypoint, confidence = its GT value);
- Sinkhorn-Knopp balances the pixels of each keypoint over its M prototypes (`assign`);
- PPC (cross-entropy over the dataset's K*M |cos| logits) and PPD ((1 - |cos| of the target)^2) train the
  embedding; the prototype heatmaps (max over M of |cos|) regress the GT heatmaps (phm);
- in stage 1, prototypes move by momentum towards the confidence-weighted mean of their assigned pixels.

From stage 2 on, cross-dataset negatives (soft K-means clusters over all prototypes, built once at the start of
stage 2) add PPC / PPD over cluster logits and a cluster-heatmap loss, and cross-type self-supervision (CSS) lets
each head learn from the other datasets' samples where it agrees with its own prototype heatmap.

Stages (epoch boundaries `stages: [s1, s2]`): [0, s1) only the embedding (and the prototypes, by momentum) learn;
[s1, s2) heads + embedding; [s2, end) everything but the prototypes. The stage, the clusters, the prototypes and
the embedding are saved in the method state, so a run resumed inside stage 2 continues exactly.

`transfer: runs/posebh/last.pt` is the new-skeleton transfer: the embedding is loaded from that run and frozen,
fresh prototypes are learnt for the model's heads in stage 1 (backbone frozen, heads train), then backbone and
heads fine-tune. Inference uses the heads only: the embedding and prototypes are not exported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import Field, field_validator
from torch import nn

from poseadapt.adapt import posebh
from poseadapt.adapt.method import AdaptContext, Method, MethodOptions, StepOutputs
from poseadapt.adapt.params import backbone_layer, in_backbone, require_vit
from poseadapt.errors import PoseAdaptError

CSS_PIXEL_THRESHOLD = 0.135  # exp(-2): pixels within 2 sigma of a pseudo keypoint


class PrototypesOptions(MethodOptions):
    stages: list[int] = Field([50, 90], description="epochs where stage 2 (heads + embedding) and 3 (all) start")
    dim: int = Field(64, ge=2, description="embedding dimension D")
    per_keypoint: int = Field(3, ge=1, description="prototypes per keypoint (M)")
    channels: int = Field(256, ge=4, description="deconv channels of the embedding module")
    hidden: int = Field(64, ge=4, description="channels inside the embedding module's residual block")
    momentum: float = Field(0.999, ge=0.0, lt=1.0, description="prototype momentum gamma")
    sinkhorn_eps: float = Field(0.05, gt=0.0)
    sinkhorn_iters: int = Field(3, ge=1)
    foreground: float | None = Field(None, ge=0.0, description="GT value above which a pixel is foreground "
                                     "(default 0.0; 0.2 with transfer)")  # fmt: skip
    max_pixels: int = Field(4096, ge=16, description="foreground pixels sampled per dataset and step")
    proto_weight: float = Field(1.25e-5, ge=0.0, description="scale of ppc_weight * PPC + ppd_weight * PPD")
    ppc_weight: float = Field(0.01, ge=0.0)
    ppd_weight: float = Field(0.001, ge=0.0)
    heatmap_weight: float = Field(3.33e-6, ge=0.0, description="prototype-heatmap MSE (phm)")
    clusters: int = Field(96, ge=0, description="soft K-means clusters for cross-dataset negatives (0: none)")
    cluster_weight: float = Field(0.01, ge=0.0)
    css: bool = Field(True, description="cross-type self-supervision from stage 2 on")
    css_weight: float = Field(1e-3, ge=0.0)
    css_heatmap_weight: float = Field(3.33e-6, ge=0.0, description="CSS MSE of the prototype heatmap")
    css_threshold: float = Field(0.25, ge=0.0, le=1.0)
    css_distance: float = Field(2.1, gt=0.0, description="max peak distance, in pixels of a 48-wide heatmap")
    css_sigma: float = Field(2.0, gt=0.0, description="pseudo-heatmap sigma, in pixels of a 48-wide heatmap")
    layer_decay: float = Field(1.0, gt=0.0, le=1.0, description="layer-wise lr decay of the backbone")
    transfer: Path | None = Field(None, description="a PoseBH run's last.pt: load and freeze its embedding, "
                                  "learn new prototypes (new-skeleton transfer)")  # fmt: skip

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: list[int]) -> list[int]:
        if len(v) != 2 or not 0 <= v[0] <= v[1]:
            raise ValueError(f"must be two epochs [s1, s2] with 0 <= s1 <= s2, got {v}")
        return v


class Prototypes(Method):
    name = "prototypes"
    kinds: ClassVar[tuple[str, ...]] = ("parameters", "losses", "modules")
    summary = "PoseBH: keypoint prototypes in a shared embedding, cross-type self-supervision, 3-stage schedule"
    Options = PrototypesOptions
    chooses_parameters = True
    options: Any

    def __init__(self, options: PrototypesOptions) -> None:
        super().__init__(options)
        self.aux: nn.ModuleDict | None = None
        self.head_names: list[str] = []
        self.stage = 1
        self.clusters: dict[str, torch.Tensor] | None = None
        self.stats: dict[str, float] = {}
        self.moved: torch.Tensor | None = None  # (K_total, M) prototypes ever moved (the indexing check)

    # ------------------------------------------------------------------------------------------------ set-up
    def check(self, ctx: AdaptContext) -> None:
        t = self.options.transfer
        if t is not None and not Path(t).is_file():
            raise PoseAdaptError(f"recipe key '{ctx.key}.transfer': file not found: {t}")

    def prepare(self, model: nn.Module, ctx: AdaptContext) -> nn.Module:
        require_vit(model, self.name)
        if not hasattr(model, "forward_features"):
            raise PoseAdaptError(f"recipe key '{ctx.key}': prototypes need a PoseModel (backbone features)")
        o = self.options
        self.head_names = list(model.head_names)
        counts = [len(s) for s in model.schemas]
        embed = posebh.KeypointEmbedding(model.config.backbone.embed_dim, o.dim, o.channels, o.hidden)
        bank = posebh.PrototypeBank(counts, o.per_keypoint, o.dim)
        self.aux = nn.ModuleDict({"embedding": embed, "bank": bank})
        self.moved = torch.zeros(sum(counts), o.per_keypoint, dtype=torch.bool)
        if o.transfer is not None:
            embed.load_state_dict(_embedding_from_run(o.transfer, ctx.key))
            embed.requires_grad_(False)
            embed.eval()
        return model

    def modules(self) -> nn.Module | None:
        return self.aux

    # ------------------------------------------------------------------------------------------------ stages
    def stage_of(self, epoch: int) -> int:
        s1, s2 = self.options.stages
        return 1 if epoch < s1 else 2 if epoch < s2 else 3

    def trainable(self, name: str, epoch: int, depth: int) -> bool:
        stage = self.stage_of(epoch)
        if self.options.transfer is not None:  # stage 1: heads on the frozen backbone; then everything
            return stage > 1 or not in_backbone(name)
        if stage == 1:
            return False
        return stage == 3 or not in_backbone(name)

    def ever_trains(self, name: str, depth: int) -> bool:
        return True

    def lr_scale(self, name: str, depth: int) -> float:
        return float(self.options.layer_decay ** (depth + 1 - backbone_layer(name, depth)))

    def on_epoch_start(self, model: nn.Module, epoch: int) -> dict[str, float]:
        self.stage = self.stage_of(epoch)
        if self.stage >= 2 and self.clusters is None and self.options.clusters and self.options.transfer is None:
            self.clusters = self._build_clusters()
        return {"stage": float(self.stage)}

    # ------------------------------------------------------------------------------------------------ losses
    def losses(self, batch: dict[str, Any], out: StepOutputs, model: nn.Module) -> dict[str, torch.Tensor]:
        assert self.aux is not None
        o = self.options
        embed, bank = self.aux["embedding"], self.aux["bank"]
        if o.transfer is not None and embed.training:
            embed.eval()
        target, weight, index = batch["target"], batch["target_weight"], batch["dataset_index"]
        size = tuple(target.shape[-2:])
        emb = embed(out.features, size)  # (B, D, H, W)
        d_dim = emb.shape[1]
        flat_emb = emb.permute(0, 2, 3, 1)
        zero = emb.sum() * 0.0
        terms = {"proto": zero, "phm": zero}
        if self.clusters is not None:
            terms["cluster"] = zero
        if self.stage >= 2 and o.css and len(self.head_names) > 1:
            terms["css"] = zero
        update = self.stage == 1 and torch.is_grad_enabled()  # (a frozen model is in eval mode in stage 1)
        present = set(torch.unique(index).tolist())
        threshold = o.foreground if o.foreground is not None else (0.2 if o.transfer is not None else 0.0)
        kept = 0.0
        for d in range(len(self.head_names)):
            if d not in present:
                if update:  # every process joins the all-reduce for every dataset (DDP), with no mass here
                    e = emb.new_zeros(0, d_dim)
                    z = index.new_zeros(0)
                    bank.update(d, e, z, z, emb.new_zeros(0), o.momentum)
                continue
            sel = index == d
            k_d = bank.counts[d]
            protos = bank.of(d).clone()  # the loss graph keeps this copy; the momentum update writes the bank
            t, w = target[sel, :k_d], weight[sel, :k_d]
            phm = posebh.prototype_heatmaps(emb[sel], protos)
            terms["phm"] = terms["phm"] + o.heatmap_weight * posebh.masked_mse(phm, t, w)
            e, labels, conf, assigned, proto_loss = self._pixel_losses(flat_emb[sel], t, w, protos, threshold)
            terms["proto"] = terms["proto"] + proto_loss
            if update:
                moved = bank.update(d, e.detach(), labels, assigned, conf, o.momentum)
                o_d = bank.offsets[d]
                self.moved[o_d : o_d + k_d] |= moved.cpu()
            if self.clusters is not None and len(labels):
                terms["cluster"] = terms["cluster"] + self._cluster_loss(d, e, labels, assigned, emb[sel], t, w)
            if "css" in terms and (~sel).any():
                loss, n = self._css(d, model, out.features[~sel], emb[~sel], protos)
                terms["css"] = terms["css"] + loss
                kept += n
        self.stats = {"stage": float(self.stage), "css_joints": kept}
        if self.moved is not None:
            self.stats["prototypes_moved"] = float(self.moved.float().mean())
        return terms

    def _pixel_losses(
        self, flat_emb: torch.Tensor, t: torch.Tensor, w: torch.Tensor, protos: torch.Tensor, threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Foreground pixels of one dataset's samples -> (embeddings, labels, confidences, assigned, proto loss)."""
        o = self.options
        ids, labels, conf = posebh.foreground_pixels(t, w, threshold)
        if len(ids) > o.max_pixels:
            keep = torch.randperm(len(ids), device=ids.device)[: o.max_pixels]
            ids, labels, conf = ids[keep], labels[keep], conf[keep]
        e = flat_emb.reshape(-1, flat_emb.shape[-1])[ids]
        if not len(ids):
            return e, labels, conf, labels, flat_emb.sum() * 0.0
        logits = posebh.cosine_logits(e, protos)
        assigned = posebh.assign(logits, labels, o.per_keypoint, o.sinkhorn_eps, o.sinkhorn_iters)
        tgt = labels * o.per_keypoint + assigned
        loss = o.ppc_weight * posebh.ppc_loss(logits, tgt) + o.ppd_weight * posebh.ppd_loss(logits, tgt)
        return e, labels, conf, assigned, o.proto_weight * loss

    # ------------------------------------------------------------------------------------------------ clusters
    @torch.no_grad()
    def _build_clusters(self) -> dict[str, torch.Tensor]:
        """Soft K-means over every prototype; each cluster keeps its M nearest prototypes; each keypoint links to
        the cluster holding most of its prototypes."""
        assert self.aux is not None
        bank = self.aux["bank"]
        m = bank.per_keypoint
        points = bank.prototypes.reshape(-1, bank.prototypes.shape[-1]).float()
        c = max(2, min(self.options.clusters, len(points) // 2))
        cent, labels = posebh.soft_kmeans(points.cpu(), c, seed=0)
        members = posebh.cluster_members(points.cpu(), cent, m)
        link = torch.mode(labels.view(-1, m), dim=1).values
        dev = points.device
        return {"labels": labels.to(dev), "members": members.to(dev), "link": link.to(dev)}

    def _cluster_loss(
        self,
        d: int,
        e: torch.Tensor,
        labels: torch.Tensor,
        assigned: torch.Tensor,
        emb: torch.Tensor,
        t: torch.Tensor,
        w: torch.Tensor,
    ) -> torch.Tensor:
        """PPC / PPD over cluster logits (a pixel's target: the cluster of its assigned prototype) and the MSE of
        each keypoint's linked-cluster heatmap, for dataset `d`: negatives from every dataset's prototypes."""
        assert self.aux is not None and self.clusters is not None
        o, bank = self.options, self.aux["bank"]
        m = bank.per_keypoint
        points = bank.prototypes.reshape(-1, bank.prototypes.shape[-1]).clone()
        members = points[self.clusters["members"]]  # (C, M', D)
        logits = (e @ members.reshape(-1, members.shape[-1]).t()).abs().view(len(e), *members.shape[:2]).amax(-1)
        flat = (bank.offsets[d] + labels) * m + assigned
        tgt = self.clusters["labels"][flat]
        pix = o.ppc_weight * posebh.ppc_loss(logits, tgt) + o.ppd_weight * posebh.ppd_loss(logits, tgt)
        linked = members[self.clusters["link"][bank.offsets[d] : bank.offsets[d] + bank.counts[d]]]  # (K_d, M', D)
        hm = posebh.prototype_heatmaps(emb, linked)
        return o.cluster_weight * (o.proto_weight * pix + o.heatmap_weight * posebh.masked_mse(hm, t, w))

    # ------------------------------------------------------------------------------------------------ CSS
    def _css(
        self,
        d: int,
        model: nn.Module,
        features: torch.Tensor,
        emb: torch.Tensor,
        protos: torch.Tensor,
    ) -> tuple[torch.Tensor, float]:
        """Head d on the other datasets' samples, agreed with d's prototype heatmap: pseudo-label loss."""
        o = self.options
        head = model.heads[self.head_names[d]](features)
        if head.shape[-2:] != emb.shape[-2:]:
            return emb.sum() * 0.0, 0.0
        proto_hm = posebh.prototype_heatmaps(emb, protos)
        scale = head.shape[-1] / 48.0
        point, wgt = posebh.css_pseudo_labels(head, proto_hm, o.css_threshold, o.css_distance * scale)
        n = float((wgt > 0).sum())
        if n == 0:
            return head.sum() * 0.0, 0.0
        pseudo = posebh.gaussian_heatmaps(point, tuple(head.shape[-2:]), o.css_sigma * scale)
        loss = posebh.masked_mse(head, pseudo, wgt) + o.css_heatmap_weight * posebh.masked_mse(proto_hm, pseudo, wgt)
        flat = emb.permute(0, 2, 3, 1)
        # prototype losses on pixels of the pseudo heatmaps (within 2 sigma of the fused point)
        pix_target = pseudo * (wgt > 0)[..., None, None]
        _, _, _, _, proto_loss = self._pixel_losses(flat, pix_target, wgt, protos, CSS_PIXEL_THRESHOLD)
        return o.css_weight * (loss + proto_loss), n

    # ------------------------------------------------------------------------------------------------ state
    def logs(self) -> dict[str, float]:
        return dict(self.stats)

    def state_dict(self) -> dict[str, Any]:
        assert self.aux is not None
        return {
            "stage": self.stage,
            "embedding": {k: v.detach().cpu().clone() for k, v in self.aux["embedding"].state_dict().items()},
            "prototypes": self.aux["bank"].prototypes.detach().cpu().clone(),
            "clusters": None if self.clusters is None else {k: v.cpu() for k, v in self.clusters.items()},
            "moved": self.moved.clone() if self.moved is not None else None,
            "heads": list(self.head_names),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        assert self.aux is not None
        if state.get("heads") != self.head_names:
            raise PoseAdaptError(f"cannot resume: prototypes were saved for heads {state.get('heads')}")
        bank = self.aux["bank"]
        self.aux["embedding"].load_state_dict(state["embedding"])
        bank.prototypes.copy_(state["prototypes"].to(bank.prototypes.device))
        self.stage = int(state["stage"])
        dev = bank.prototypes.device
        clusters = state.get("clusters")
        self.clusters = None if clusters is None else {k: v.to(dev) for k, v in clusters.items()}
        if state.get("moved") is not None:
            self.moved = state["moved"].clone()

    def provenance(self) -> dict[str, Any]:
        info = super().provenance()
        info["stage"] = self.stage
        return info


def _embedding_from_run(path: Path, key: str) -> dict[str, torch.Tensor]:
    """The keypoint-embedding weights of a PoseBH run's `last.pt` (read weights-only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PoseAdaptError(f"recipe key '{key}.transfer': cannot read {path} ({type(exc).__name__})") from None
    methods = state.get("methods", {}) if isinstance(state, dict) else {}
    for saved in methods.values():
        if isinstance(saved, dict) and "embedding" in saved and "prototypes" in saved:
            return saved["embedding"]
    raise PoseAdaptError(f"recipe key '{key}.transfer': {path} holds no prototypes method state (a PoseBH run)")
