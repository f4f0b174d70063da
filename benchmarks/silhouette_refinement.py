"""Can a keypoint-to-silhouette net (SHIFT's Kp2Seg idea) trained on labelled adults correct infant pseudo-labels?

    .venv/bin/python benchmarks/silhouette_refinement.py LABELS.json [--steps 1500] [--people 200]
        [--anchors 0.01,0.1] [--warp] [--net PATH]

Zero infant labels: the net learns, from the 1000 labelled adults of benchmarks/self_training_rounds.py (rendered
masks, seed 3000, under bench_out/s14/adults), to draw a person's silhouette (64x48 crop) from Gaussian maps of
its keypoints. It then moves each pseudo-label keypoint (LABELS.json: `poseadapt pseudo-label` output on the
unlabelled top-view infants) to make the drawn silhouette match the infant's rendered mask (binary cross-entropy,
a squared anchor to the pseudo-label). The infants' hidden labels score the keypoints before and after (OKS with
the COCO sigmas, median error / sqrt(box area)). Refining from the hidden labels themselves shows the net's own
pull on a correct pose. A diagnostic, not a method: nothing in poseadapt uses it (docs/ADAPTATION_RESULTS.md,
session 14).
"""

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from poseadapt.adapt.unlabelled import silhouette_mask
from poseadapt.data.proportion import PROPORTIONS, control_points, mls_maps, proportion_targets, warp_image
from poseadapt.data.topdown import box_to_center_scale, udp_warp_matrix, warp_points
from poseadapt.schemas import get_schema

torch.set_num_threads(int(os.environ.get("NT", "2")))


W, H = 48, 64
SIGMA = 1.5
K = 17
SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10
)


def to_infant_proportions(kp: np.ndarray, vis: np.ndarray, mask: np.ndarray, t: float):
    """An adult crop's keypoints and mask warped towards infant proportions (ProportionWarp's geometry, t in [0, 1])."""
    schema = get_schema("coco17")
    ratios = {k: v**t for k, v in PROPORTIONS["infant"].items()}
    if vis.sum() < 2:
        return kp, mask
    new = proportion_targets(kp, vis, schema.keypoints, schema.skeleton, ratios)
    index = {n: i for i, n in enumerate(schema.keypoints)}
    edges = [(index[a], index[b]) for a, b in schema.skeleton]
    src, dst = control_points(kp, new, vis, edges, (W, H))
    warped = warp_image(mask.astype(np.float32), mls_maps(dst, src, (W, H), step=4)) > 0.5
    return np.where(vis[:, None], new, kp), warped.astype(np.uint8)


def crops(anns, rng=None, aug=False, warp=False):
    kps, vis, masks = [], [], []
    for a in anns:
        c, s = box_to_center_scale(a["bbox"], W / H)
        rot = 0.0
        if aug:
            s = s * rng.uniform(0.8, 1.2)
            rot = float(np.clip(rng.normal(0, 40), -80, 80)) if rng.random() < 0.6 else 0.0
            c = c + rng.uniform(-0.1, 0.1, 2) * s
        m = udp_warp_matrix(c, s, rot, (W, H))
        k = np.asarray(a["keypoints"], float).reshape(-1, 3)
        kp, v, mask = warp_points(k[:, :2], m), k[:, 2] > 0, silhouette_mask(a["segmentation"], m, (W, H), None)
        if warp:
            kp, mask = to_infant_proportions(kp, v, mask, rng.uniform(0.5, 1.0))
        kps.append(kp)
        vis.append(v)
        masks.append(mask)
    return (
        torch.tensor(np.array(kps), dtype=torch.float32),
        torch.tensor(np.array(vis)),
        torch.tensor(np.array(masks), dtype=torch.float32),
    )


YY, XX = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")


def gauss(kp, vis):
    d2 = (XX[None, None] - kp[..., 0, None, None]) ** 2 + (YY[None, None] - kp[..., 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * SIGMA**2)) * vis[..., None, None].float()


def block(i, o):
    return nn.Sequential(
        nn.Conv2d(i, o, 3, padding=1),
        nn.BatchNorm2d(o),
        nn.ReLU(),
        nn.Conv2d(o, o, 3, padding=1),
        nn.BatchNorm2d(o),
        nn.ReLU(),
    )


class Kp2Seg(nn.Module):
    def __init__(self):
        super().__init__()
        self.e1, self.e2, self.e3, self.e4 = block(K, 32), block(32, 64), block(64, 96), block(96, 128)
        self.d3, self.d2, self.d1 = block(128 + 96, 96), block(96 + 64, 64), block(64 + 32, 32)
        self.out = nn.Conv2d(32, 1, 1)

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(F.max_pool2d(e1, 2))
        e3 = self.e3(F.max_pool2d(e2, 2))
        e4 = self.e4(F.max_pool2d(e3, 2))
        up = lambda t, r: F.interpolate(t, size=r.shape[-2:], mode="bilinear", align_corners=False)  # noqa: E731
        d3 = self.d3(torch.cat([up(e4, e3), e3], 1))
        d2 = self.d2(torch.cat([up(d3, e2), e2], 1))
        d1 = self.d1(torch.cat([up(d2, e1), e1], 1))
        return self.out(d1)[:, 0]


def iou(logits, mask):
    p = logits > 0
    m = mask > 0.5
    return (p & m).sum((1, 2)).float() / (p | m).sum((1, 2)).clamp_min(1).float()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labels")
    ap.add_argument(
        "--steps", type=int, default=1500, help="training steps of the net (0: load bench_out/s14/kp2seg.pt)"
    )
    ap.add_argument("--people", type=int, default=200)
    ap.add_argument("--warp", action="store_true", help="train on adults warped towards infant proportions")
    ap.add_argument("--net", default="bench_out/s14/kp2seg.pt", help="where the net is saved (loaded with --steps 0)")
    ap.add_argument("--anchors", default="0.01,0.1")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    adults = json.load(open("bench_out/s14/adults/annotations/adult_coco17.json"))["annotations"]
    gt_inf = json.load(open("bench_out/selftrain/unlabelled/annotations/infant_coco17.json"))
    pseudo = json.load(open(args.labels))
    net = Kp2Seg()
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    train, held = adults[:900], adults[900:]
    t0 = time.time()
    steps = args.steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=max(steps, 1))
    if steps == 0:
        net.load_state_dict(torch.load(args.net, weights_only=True))
    for step in range(steps):
        batch = [train[i] for i in rng.integers(0, len(train), 32)]
        kp, vis, mask = crops(batch, rng, aug=True, warp=args.warp)
        drop = torch.rand(vis.shape) < 0.1  # robustness to missing keypoints
        loss = F.binary_cross_entropy_with_logits(net(gauss(kp, vis & ~drop)), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0:
            print(step, f"{loss.item():.3f}", f"{time.time() - t0:.0f}s", flush=True)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    if steps:
        torch.save(net.state_dict(), args.net)
    with torch.no_grad():
        kp, vis, mask = crops(held)
        print("adult held-out IoU", iou(net(gauss(kp, vis)), mask).mean().item())
    anns_gt = {a["id"]: a for a in gt_inf["annotations"]}
    ps = [a for a in pseudo["annotations"] if a["id"] in anns_gt][: args.people]
    gt_list = [anns_gt[a["id"]] for a in ps]
    kp_gt, vis_gt, mask = crops(gt_list)
    kp_ps, vis_ps, _ = crops(ps)
    with torch.no_grad():
        print("infant IoU from GT kps", iou(net(gauss(kp_gt, vis_gt)), mask).mean().item())
        print("infant IoU from pseudo kps", iou(net(gauss(kp_ps, vis_ps)), mask).mean().item())
    # crop pixel -> image scale factor for OKS: box scale / W
    area = torch.tensor([a["area"] for a in gt_list], dtype=torch.float32)
    scale = torch.tensor([box_to_center_scale(a["bbox"], W / H)[1][0] / (W - 1) for a in gt_list], dtype=torch.float32)
    var = torch.tensor((2 * SIGMAS) ** 2, dtype=torch.float32)

    def oks(kp):
        d2 = ((kp - kp_gt) ** 2).sum(-1) * scale[:, None] ** 2
        e = torch.exp(-d2 / (2 * var * area[:, None] + 1e-9))
        both = vis_gt & vis_ps
        return (e * both).sum(1) / both.sum(1).clamp_min(1)

    def pck(kp):
        d = ((kp - kp_gt) ** 2).sum(-1).sqrt() * scale[:, None] / area.sqrt()[:, None]
        both = vis_gt & vis_ps
        return d[both].median().item()

    print("pseudo OKS", oks(kp_ps).mean().item(), "median err/sqrt(area)", pck(kp_ps))
    for start_name, start in (("pseudo", kp_ps), ("gt", kp_gt)):
        for w_anchor in [float(v) for v in args.anchors.split(",")]:
            delta = torch.zeros_like(start, requires_grad=True)
            o = torch.optim.Adam([delta], 0.05)
            for _ in range(150):
                x = start + delta
                seg = net(gauss(x, vis_ps))
                l_seg = F.binary_cross_entropy_with_logits(seg, mask, reduction="none").mean((1, 2)).sum()
                l_anc = w_anchor * (delta**2).sum(-1)[vis_ps].sum()
                o.zero_grad()
                (l_seg + l_anc).backward()
                o.step()
            x = (start + delta).detach()
            with torch.no_grad():
                i = iou(net(gauss(x, vis_ps)), mask).mean().item()
            print(
                f"refine from {start_name} anchor {w_anchor}: OKS {oks(x).mean().item():.4f} "
                f"err {pck(x):.4f} IoU {i:.3f} mean move px {delta.detach().norm(dim=-1)[vis_ps].mean():.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
