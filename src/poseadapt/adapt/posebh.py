"""PoseBH (Jeong et al., CVPR 2025) building blocks: keypoint embedding, prototypes, their losses and CSS.

Pure tensor functions plus the two modules the `prototypes` method trains; the method
(`poseadapt/adapt/methods/prototypes.py`) wires them into training. Written from the paper and the facts in
`notes/posebh-reference.md`, with the reference code's indexing bugs fixed (see docs/MULTIDATASET.md):

- prototypes are one tensor (K_total, M, D); dataset d owns rows [offset_d, offset_d + K_d); a flat logit index is
  `k * M + m` with k LOCAL to the dataset, mapped to the global row `offset_d + k` in exactly one place
  (`PrototypeBank.update`), so every dataset's prototypes are assigned and updated;
- CSS compares head d's peak with the prototype peak on the same axis (y with y), and fuses the two peak
  COORDINATES weighted by their confidences;
- cluster members are the M prototypes nearest each centroid (prototype indices, not cluster ids).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HEATMAP_CLAMP = (1e-4, 1.0 - 1e-4)


# ---------------------------------------------------------------------------------------------- modules
class KeypointEmbedding(nn.Module):
    """Backbone features (B, C, h, w) -> L2-normalised pixel embeddings (B, D, 4h, 4w).

    Two deconv (k4, s2) + BN + ReLU layers, a SiLU residual block, a 3x3 conv + BN + SiLU and a 1x1 conv to D,
    as the reference (256 deconv channels, 64 inside, D = 64 for ViT-B); `channels` / `hidden` shrink it.
    """

    def __init__(self, in_channels: int, dim: int = 64, channels: int = 256, hidden: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(2):
            layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(True)]
            c = channels
        self.deconv = nn.Sequential(*layers)
        self.res = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.SiLU(True),
            nn.Conv2d(hidden, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
        )
        self.skip = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden))
        self.out = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.SiLU(True),
            nn.Conv2d(hidden, dim, 1),
        )
        for m in self.deconv.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)

    def forward(self, features: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        x = self.deconv(features.float())
        x = F.silu(self.res(x) + self.skip(x))
        x = self.out(x)
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return F.normalize(x, dim=1)


class PrototypeBank(nn.Module):
    """Prototypes (K_total, M, D) of every dataset's keypoints; updated by momentum, never by gradients."""

    def __init__(self, counts: list[int], per_keypoint: int = 3, dim: int = 64) -> None:
        super().__init__()
        self.counts = list(counts)
        self.offsets = [sum(counts[:i]) for i in range(len(counts))]
        self.per_keypoint = per_keypoint
        protos = torch.empty(sum(counts), per_keypoint, dim)
        nn.init.trunc_normal_(protos, std=0.02, a=-0.04, b=0.04)
        self.register_buffer("prototypes", F.normalize(protos, dim=-1))

    def of(self, dataset: int) -> torch.Tensor:
        """Dataset `dataset`'s prototypes (K_d, M, D) (a view)."""
        o = self.offsets[dataset]
        return self.prototypes[o : o + self.counts[dataset]]

    @torch.no_grad()
    def update(
        self,
        dataset: int,
        embeddings: torch.Tensor,
        keypoints: torch.Tensor,
        assigned: torch.Tensor,
        confidence: torch.Tensor,
        gamma: float,
    ) -> torch.Tensor:
        """Momentum update of dataset `dataset`'s prototypes; returns a (K_d, M) bool mask of those that moved.

        embeddings (n, D) normalised; keypoints (n,) LOCAL keypoint ids; assigned (n,) prototype within the
        keypoint; confidence (n,). new = normalise(gamma * old + (1 - gamma) * normalise(sum conf * emb)); only
        prototypes that received mass move. Under DDP the sums are averaged over processes first.
        """
        k_d, m, d = self.counts[dataset], self.per_keypoint, self.prototypes.shape[-1]
        flat = keypoints.long() * m + assigned.long()
        # in fp32 whatever autocast gave the embeddings: the prototypes are fp32 state, updated by small steps
        emb, conf = embeddings.float(), confidence.float()
        sums = emb.new_zeros(k_d * m, d).index_add_(0, flat, emb * conf[:, None])
        mass = emb.new_zeros(k_d * m).index_add_(0, flat, conf)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
            torch.distributed.all_reduce(mass)
        moved = mass > 0
        old = self.of(dataset).reshape(k_d * m, d)
        new = F.normalize(gamma * old + (1.0 - gamma) * F.normalize(sums, dim=-1), dim=-1)
        o = self.offsets[dataset] * m
        flat_all = self.prototypes.view(-1, d)
        flat_all[o : o + k_d * m] = torch.where(moved[:, None], new, old)
        return moved.view(k_d, m)


# ---------------------------------------------------------------------------------------------- functions
@torch.no_grad()
def sinkhorn_knopp(logits: torch.Tensor, eps: float = 0.05, iters: int = 3) -> torch.Tensor:
    """Balanced soft assignment (n, M) of n samples to M prototypes (SwAV / ProtoSeg): rows sum to 1.

    Q = exp(logits / eps)^T, normalised to total mass 1, then `iters` times: each prototype's row to 1/M, each
    sample's column to 1/n; returned transposed and scaled by n.
    """
    q = torch.exp((logits - logits.max()) / eps).t()  # (M, n); the shift cancels in the normalisation
    m, n = q.shape
    q = q / q.sum()
    for _ in range(iters):
        q = q / q.sum(dim=1, keepdim=True) / m
        q = q / q.sum(dim=0, keepdim=True) / n
    return (q * n).t()


def cosine_logits(embeddings: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """|cos| of each embedding (n, D) with each prototype (..., D), flattened: (n, P). Inputs are normalised."""
    return (embeddings @ prototypes.reshape(-1, prototypes.shape[-1]).t()).abs()


def prototype_heatmaps(embedding: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) embeddings x (K, M, D) prototypes -> (B, K, H, W): max over M of |cos|, clamped to (0, 1)."""
    sim = torch.einsum("bdhw,kmd->bkmhw", embedding, prototypes).abs()
    return sim.amax(dim=2).clamp(*HEATMAP_CLAMP)


def foreground_pixels(
    target: torch.Tensor, weight: torch.Tensor, threshold: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Labelled pixels of GT heatmaps (B, K, H, W) with weights (B, K): (flat pixel ids over B*H*W, local
    keypoint label = argmax over K, confidence = that max), for pixels whose max exceeds `threshold`."""
    masked = target * (weight > 0)[:, :, None, None]
    conf, label = masked.max(dim=1)  # (B, H, W)
    keep = (conf > threshold).reshape(-1)
    ids = torch.nonzero(keep).squeeze(1)
    return ids, label.reshape(-1)[ids], conf.reshape(-1)[ids]


def assign(logits: torch.Tensor, labels: torch.Tensor, per_keypoint: int, eps: float, iters: int) -> torch.Tensor:
    """For pixels with local keypoint `labels` and logits (n, K*M): the prototype (0..M-1) within their keypoint,
    by Sinkhorn-Knopp over each keypoint's pixels (argmax of the balanced assignment)."""
    out = torch.zeros_like(labels)
    m = per_keypoint
    for k in torch.unique(labels).tolist():
        sel = labels == k
        q = sinkhorn_knopp(logits[sel, k * m : (k + 1) * m].detach().float(), eps, iters)
        out[sel] = q.argmax(dim=1)
    return out


def ppc_loss(logits: torch.Tensor, target: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Pixel-prototype contrast: cross-entropy of the logits (n, P) / temperature against target ids (n,)."""
    return F.cross_entropy(logits / temperature, target)


def ppd_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-prototype distance: mean (1 - logit of the target prototype)^2."""
    return (1.0 - logits.gather(1, target[:, None]).squeeze(1)).pow(2).mean()


def heatmap_peaks(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, H, W) -> (coordinates (B, K, 2) as (x, y) heatmap pixels, maxima (B, K))."""
    b, k, h, w = heatmaps.shape
    val, idx = heatmaps.reshape(b, k, -1).max(dim=-1)
    xy = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).to(heatmaps.dtype)
    return xy, val


def css_pseudo_labels(
    head: torch.Tensor, proto: torch.Tensor, threshold: float = 0.25, max_distance: float = 2.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-type self-supervision matching and fusion for heatmaps (B, K, H, W) of one skeleton.

    A joint is kept when both maxima exceed `threshold` and the two peaks are within `max_distance` heatmap
    pixels (Euclidean, x with x and y with y). Pseudo point = confidence-weighted mean of the two peak
    coordinates; weight = the smaller confidence (0 for joints not kept). Returns ((B, K, 2) points, (B, K)).
    """
    p_head, c_head = heatmap_peaks(head.detach().float())
    p_proto, c_proto = heatmap_peaks(proto.detach().float())
    dist = torch.linalg.vector_norm(p_head - p_proto, dim=-1)
    keep = (c_head > threshold) & (c_proto > threshold) & (dist <= max_distance)
    total = (c_head + c_proto).clamp(min=1e-12)
    point = (c_head[..., None] * p_head + c_proto[..., None] * p_proto) / total[..., None]
    weight = torch.where(keep, torch.minimum(c_head, c_proto), torch.zeros_like(c_head))
    return point, weight


def gaussian_heatmaps(points: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """Unnormalised Gaussians (peak 1) at (B, K, 2) (x, y) points on an (H, W) grid -> (B, K, H, W)."""
    h, w = size
    ys = torch.arange(h, device=points.device, dtype=points.dtype)
    xs = torch.arange(w, device=points.device, dtype=points.dtype)
    dx = (xs[None, None, None, :] - points[..., 0, None, None]) ** 2
    dy = (ys[None, None, :, None] - points[..., 1, None, None]) ** 2
    return torch.exp(-(dx + dy) / (2 * sigma**2))


@torch.no_grad()
def soft_kmeans(
    points: torch.Tensor, clusters: int, iters: int = 20, temperature: float = 0.05, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft K-means with cosine similarity on normalised points (N, D): (centroids (C, D), hard labels (N,)).

    Centroids start at `clusters` distinct points (a seeded permutation), then alternate softmax(cos / T)
    responsibilities and responsibility-weighted, renormalised means.
    """
    g = torch.Generator().manual_seed(seed)
    start = torch.randperm(len(points), generator=g)[:clusters].to(points.device)
    cent = points[start].clone()
    for _ in range(iters):
        resp = torch.softmax(points @ cent.t() / temperature, dim=1)  # (N, C)
        cent = F.normalize(resp.t() @ points, dim=-1)
    return cent, (points @ cent.t()).argmax(dim=1)


@torch.no_grad()
def cluster_members(points: torch.Tensor, centroids: torch.Tensor, per_cluster: int) -> torch.Tensor:
    """Indices (C, M) of the M points nearest each centroid (by cosine): prototype ids, not cluster ids."""
    return (centroids @ points.t()).topk(min(per_cluster, len(points)), dim=1).indices


def masked_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`mean(w * (p - g)^2)` over batch, keypoints and pixels (the supervised loss's form); weight (B, K)."""
    return torch.mean((pred.float() - target.float()) ** 2 * weight[:, :, None, None].float())
