"""Top-down inference: image + person boxes -> keypoints in image pixels, with the training geometry.

box -> (centre, scale) with the input's aspect ratio and 1.25 padding -> UDP crop (`poseadapt.data.topdown`) ->
model (+ flip test: the mirrored crop's output is flipped back with the schema's flip_index; no shift, UDP) ->
codec decode (DARK-UDP for heatmaps) -> codec.to_image. The stages are separate methods so a test can feed the
decoder with encoded ground truth and check the whole path lands keypoints where training put them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from poseadapt.codecs import flip_heatmaps_back, flip_simcc_back
from poseadapt.data.topdown import DEFAULT_PADDING, box_to_center_scale, crop
from poseadapt.errors import DataError
from poseadapt.models.pose_model import PoseModel
from poseadapt.schemas import KeypointSchema

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class Crops:
    pixels: np.ndarray  # (N, h, w, 3) float32 RGB 0..255
    centers: np.ndarray  # (N, 2)
    scales: np.ndarray  # (N, 2)


class TopDownPredictor:
    """Run one head of a PoseModel on person boxes; `head` is a head name (default: the first head)."""

    def __init__(
        self,
        model: PoseModel,
        head: str | None = None,
        flip_test: bool = True,
        batch_size: int = 32,
        padding: float = DEFAULT_PADDING,
    ) -> None:
        self.model = model.eval()
        self.head_index = model.head_index(head) if head else 0
        self.schema: KeypointSchema = model.schemas[self.head_index]
        self.flip_test = flip_test
        self.batch_size = batch_size
        self.padding = padding
        self.codec = model.codec
        self.simcc = type(self.codec).__name__ == "SimCC"

    # ------------------------------------------------------------------ stages
    def make_crops(self, image: np.ndarray, boxes_xywh: np.ndarray) -> Crops:
        """Cut each box out of an RGB image with UDP geometry at the model's input size."""
        w_in, h_in = self.model.input_size
        boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
        centers, scales = box_to_center_scale(boxes, w_in / h_in, self.padding)
        image = image.astype(np.float32, copy=False)
        pixels = np.stack([crop(image, c, s, 0.0, (w_in, h_in)) for c, s in zip(centers, scales, strict=True)])
        return Crops(pixels.reshape(len(boxes), h_in, w_in, 3), centers.reshape(-1, 2), scales.reshape(-1, 2))

    @torch.inference_mode()
    def run_model(self, pixels: np.ndarray) -> Any:
        """Crops (N, h, w, 3) -> heatmaps (N, K, H, W), or (x, y) SimCC logits; flip test merged in."""
        outs = [self._forward(pixels[i : i + self.batch_size]) for i in range(0, len(pixels), self.batch_size)]
        if self.simcc:
            return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])
        return np.concatenate(outs)

    def _forward(self, pixels: np.ndarray) -> Any:
        device = next(self.model.parameters()).device
        x = torch.from_numpy(np.ascontiguousarray(pixels)).to(device).permute(0, 3, 1, 2)
        x = self.model.normalize(x)
        index = self.head_index if (len(self.model.heads) > 1 or self.model.config.backbone.num_experts) else None
        out = self.model(x, index)
        if self.flip_test:
            flipped = self.model(x.flip(-1), index)
            out = self.merge_flip(out, flipped)
        if self.simcc:
            return out[0].float().cpu().numpy(), out[1].float().cpu().numpy()
        return out.float().cpu().numpy()

    def merge_flip(self, out: Any, flipped: Any) -> Any:
        """Average the output with the flipped-back output of the mirrored crop (UDP: no shift)."""
        flip_index = self.schema.flip_index
        if self.simcc:
            fx, fy = flip_simcc_back(flipped[0], flipped[1], flip_index)
            return (out[0] + fx) * 0.5, (out[1] + fy) * 0.5
        return (out + flip_heatmaps_back(flipped, flip_index)) * 0.5

    def decode(self, outputs: Any, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Model outputs -> (N, K, 3) keypoints (x, y, score) in image pixels."""
        keypoints, scores = self.codec.decode(*outputs) if self.simcc else self.codec.decode(outputs)
        image_xy = self.codec.to_image(keypoints, centers, scales)
        return np.concatenate([image_xy[..., :2], scores[..., None]], axis=-1)

    # ------------------------------------------------------------------ all together
    def predict(self, image: np.ndarray, boxes_xywh: np.ndarray) -> np.ndarray:
        """RGB image (H, W, 3) and boxes (N, 4) -> keypoints (N, K, 3) (x, y, score) in image pixels."""
        if len(boxes_xywh) == 0:
            return np.zeros((0, len(self.schema), 3))
        crops = self.make_crops(image, boxes_xywh)
        return self.decode(self.run_model(crops.pixels), crops.centers, crops.scales)


def instance_score(keypoint_scores: np.ndarray, box_score: float = 1.0, threshold: float = 0.2) -> float:
    """mmpose's top-down instance score: box score x mean of the keypoint scores above `threshold`."""
    kept = keypoint_scores[keypoint_scores > threshold]
    return float(box_score * (kept.mean() if kept.size else 0.0))


def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3); DataError if it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def draw_pose(image: np.ndarray, keypoints: np.ndarray, schema: KeypointSchema, threshold: float = 0.3) -> np.ndarray:
    """Overlay keypoints (N, K, 3) and the schema's skeleton on an RGB image (returns a new image)."""
    canvas = image.copy()
    radius = max(2, round(max(image.shape[:2]) / 200))
    for person in keypoints:
        for a, b in schema.skeleton_index:
            if person[a, 2] > threshold and person[b, 2] > threshold:
                p, q = (tuple(int(round(v)) for v in person[i, :2]) for i in (a, b))
                cv2.line(canvas, p, q, (255, 128, 0), max(1, radius // 2), cv2.LINE_AA)
        for x, y, s in person:
            if s > threshold:
                cv2.circle(canvas, (int(round(x)), int(round(y))), radius, (0, 255, 0), -1, cv2.LINE_AA)
    return canvas
