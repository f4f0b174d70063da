"""The one top-down evaluation path: a codec oracle through it, OKS-NMS, schema maps, and one AP for every caller.

The oracle: each image is a coordinate ramp (R = x + 1000, G = y + 1000), so a fake "ideal model" reads from its
crop exactly which image points it sees, maps the ground truth into the crop, and outputs the ideal target there
(on a mirrored crop: the mirrored person, left and right swapped, as a perfect model would). Everything else
(crop, flip test, decode, back to the image, scoring) is the code `poseadapt eval` runs.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from poseadapt.codecs import MSRAHeatmap, SimCC, UDPHeatmap
from poseadapt.codecs.gaussian import render_gaussian_heatmaps
from poseadapt.data.coco import coco_keypoints_from_dict
from poseadapt.errors import PoseAdaptError
from poseadapt.evaluate.topdown import (
    People,
    coco_results,
    evaluate_model,
    oks_nms,
    predict_people,
    scoring_view,
)
from poseadapt.schemas import get_schema

SCHEMA = get_schema("coco17")
W, H = 800, 600


def ramp_image(image_id: int) -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    return np.stack([xs + 1000.0, ys + 1000.0, np.zeros_like(xs)], axis=-1)


def ground_truth(n_images: int = 3, persons: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": W, "height": H})
        for p in range(persons):
            cx, cy = 180 + 220 * p + rng.uniform(-20, 20), rng.uniform(250, 350)
            bw, bh = rng.uniform(60, 120), rng.uniform(100, 170)
            xy = np.stack([rng.uniform(cx - bw / 2, cx + bw / 2, 17), rng.uniform(cy - bh / 2, cy + bh / 2, 17)], -1)
            kp = np.concatenate([xy, np.full((17, 1), 2.0)], -1)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": kp.reshape(-1).tolist(),
                    "num_keypoints": 17,
                    "bbox": [cx - bw / 2, cy - bh / 2, bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
    cats = [{"id": 1, "name": "person", "keypoints": list(SCHEMA.keypoints), "skeleton": []}]
    return {"images": images, "annotations": anns, "categories": cats}


class IdealModel(torch.nn.Module):
    """Reads the image coordinates of its crop from the ramp and outputs the ideal target of the nearest person."""

    def __init__(self, codec, gt, schema=SCHEMA):
        super().__init__()
        self.codec = codec
        self.schemas = (schema,)
        self.input_size = codec.input_size
        self.heads = {"only": None}
        self.config = SimpleNamespace(backbone=SimpleNamespace(num_experts=0))
        self.gt = gt
        self.calls = 0
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def normalize(self, x):
        return x.float()

    def forward(self, x, index=None):
        self.calls += 1
        outs = [self.ideal(crop.permute(1, 2, 0).double().numpy()) for crop in x]
        if isinstance(self.codec, SimCC):
            return torch.from_numpy(np.stack([o[0] for o in outs])), torch.from_numpy(np.stack([o[1] for o in outs]))
        return torch.from_numpy(np.stack(outs))

    def ideal(self, crop: np.ndarray):
        h, w = crop.shape[:2]
        v, u = np.mgrid[0:h, 0:w]
        inside = (crop[..., 0] > 1000.5) & (crop[..., 1] > 1000.5)
        a = np.stack([u[inside], v[inside], np.ones(inside.sum())], -1)
        coef, *_ = np.linalg.lstsq(a, crop[inside][:, :2] - 1000.0, rcond=None)  # input (u, v, 1) -> image (x, y)
        to_image = coef.T  # 2x3
        centre = to_image @ [(w - 1) / 2, (h - 1) / 2, 1]
        person = self.gt[np.argmin(np.linalg.norm(self.gt_centres() - centre, axis=1))]
        inv = np.linalg.inv(to_image[:, :2])
        uv = (person[:, :2] - to_image[:, 2]) @ inv.T
        if np.linalg.det(to_image[:, :2]) < 0:  # a mirrored crop: a perfect model sees left as right
            uv = uv[list(SCHEMA.flip_index)]
        return self.target(uv)

    def gt_centres(self):
        return np.stack([(p[:, :2].min(0) + p[:, :2].max(0)) / 2 for p in self.gt_boxes_people()])

    def gt_boxes_people(self):
        return self.gt

    def target(self, uv: np.ndarray):
        codec = self.codec
        if isinstance(codec, SimCC):
            out = []
            for axis in range(2):
                grid = np.arange(codec.num_bins[axis])[None, :]
                d = grid - uv[:, axis, None] * codec.split_ratio
                out.append(np.exp(-0.5 * d * d / codec.sigma[axis] ** 2).astype(np.float32))
            return tuple(out)
        maps, _ = render_gaussian_heatmaps(
            uv / codec.stride, np.ones(len(uv), bool), codec.heatmap_size, codec.sigma, False
        )
        return maps


CODECS = {
    "udp": lambda: UDPHeatmap((192, 256), (48, 64), sigma=2.0),
    "msra": lambda: MSRAHeatmap((192, 256), (48, 64), sigma=2.0, refine="dark"),
    "simcc": lambda: SimCC((192, 256), split_ratio=2.0, sigma=(4.9, 5.66), refine="gaussian"),
}


class CentredGT(IdealModel):
    """Person lookup by box centre (the crop centre is the box centre)."""

    def __init__(self, codec, coco):
        kp = np.array([a["keypoints"] for a in coco["annotations"]]).reshape(-1, 17, 3)
        super().__init__(codec, kp)
        self.centres = np.array([[b[0] + b[2] / 2, b[1] + b[3] / 2] for b in (a["bbox"] for a in coco["annotations"])])

    def gt_centres(self):
        return self.centres


@pytest.mark.parametrize("flip", [False, True], ids=["noflip", "flip"])
@pytest.mark.parametrize("name", list(CODECS))
def test_codec_oracle_gives_the_ground_truth_back(name, flip):
    coco = ground_truth()
    gt = coco_keypoints_from_dict(coco, "coco17")
    model = CentredGT(CODECS[name](), coco)
    result = evaluate_model(model, gt, ramp_image, flip_test=flip, batch_size=4)
    err = np.linalg.norm(result.predictions.keypoints[..., :2] - gt.keypoints[..., :2], axis=-1)
    assert err.max() < 0.05, (name, flip, err.max())
    assert result.stats["AP"] == pytest.approx(1.0)
    assert model.calls == (2 if flip else 1) * 3  # 9 people in batches of 4 (crops of several images share one)


def test_the_old_geometry_was_off():
    """What the oracle guards against: the MSRA formula u * s / in on a UDP crop, measured on a 394x525 box."""
    codec = MSRAHeatmap()
    center, scale = np.array([300.0, 400.0]), np.array([394.0, 525.0])
    u = np.array([[191.0, 255.0]])
    new = codec.to_image(u, center, scale)
    old = u * scale / np.array([192.0, 256.0]) + center - scale / 2
    assert np.abs(new - old).max() == pytest.approx(2.05, abs=0.01)


def test_oks_nms_drops_duplicates_of_a_person_and_keeps_neighbours():
    coco = ground_truth(n_images=1, persons=3)
    gt = coco_keypoints_from_dict(coco, "coco17")
    boxes = np.concatenate([gt.boxes, gt.boxes[:2] + [2.0, -1.0, 0.0, 0.0]])
    people = People(np.ones(5, np.int64), boxes, np.array([0.9, 0.8, 0.7, 0.6, 0.95]), detected=True)
    model = CentredGT(CODECS["udp"](), coco)
    kept = predict_people(model, people, ramp_image, flip_test=False)
    assert len(kept) == 3  # the two shifted duplicates removed
    # rescored: box score x mean keypoint score (an off-grid Gaussian peak samples to 0.97..1)
    ratio = np.sort(kept.scores) / [0.7, 0.9, 0.95]
    assert ((ratio > 0.95) & (ratio <= 1.0)).all(), ratio
    everything = predict_people(model, people, ramp_image, flip_test=False, nms_threshold=None)
    assert len(everything) == 5
    keep = oks_nms(everything, boxes[:, 2] * boxes[:, 3], SCHEMA.sigmas, 0.9)
    assert keep.tolist() == [0, 2, 4]
    assert oks_nms(everything, boxes[:, 2] * boxes[:, 3], SCHEMA.sigmas, 1.0).tolist() == [0, 1, 2, 3, 4]


def test_schema_map_scores_shared_keypoints_and_refuses_disjoint_ones():
    coco = ground_truth(n_images=1, persons=2)
    gt = coco_keypoints_from_dict(coco, "coco17")
    view = scoring_view(gt, "mpii16")
    names = set(get_schema("mpii16").keypoints) & set(SCHEMA.keypoints)
    assert set(view.shared_names) == names and len(view.shared) == 12  # shoulders..ankles: 12 points by name
    assert (view.gt.keypoints[:, [0, 1, 2, 3, 4], 2] == 0).all()  # the face is not scored
    assert scoring_view(gt, "coco17").mapping is None
    bad = get_schema("coco17").from_dict(
        {"name": "dots", "keypoints": ["dot_a", "dot_b"], "sigmas": [0.05, 0.05]}, source="test"
    )
    with pytest.raises(PoseAdaptError, match="share no keypoint"):
        scoring_view(gt, bad)


def test_results_are_plain_coco():
    coco = ground_truth(n_images=1, persons=1)
    gt = coco_keypoints_from_dict(coco, "coco17")
    result = evaluate_model(CentredGT(CODECS["udp"](), coco), gt, ramp_image, flip_test=False)
    rows = coco_results(result.predictions, {1: "1.png"})
    assert json.loads(json.dumps(rows))[0]["file_name"] == "1.png" and len(rows[0]["keypoints"]) == 51
