"""Validation during training: top-down predictions on ground-truth boxes, scored as COCO OKS AP.

As ViTPose validates with ground-truth boxes (box score 1): each person is cropped, predicted (optionally with
the flip test: the mirrored crop's heatmaps mapped back and averaged), decoded by the model's codec (DARK-UDP by
default), mapped back to the image through the inverse of the crop's affine, and given the instance score
mean(keypoint scores above 0.2). AP comes from `poseadapt.evaluate` with the schema's sigmas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from poseadapt.codecs import flip_heatmaps_back
from poseadapt.data.coco import CocoPredictions
from poseadapt.data.topdown import invert_affine, warp_points
from poseadapt.evaluate.oks import coco_keypoint_stats
from poseadapt.evaluate.score import coco_dicts
from poseadapt.train.batch import collate_eval, model_input
from poseadapt.train.hooks import Hook

if TYPE_CHECKING:
    from poseadapt.data.dataset import TopDownDataset
    from poseadapt.train.engine import Trainer

KEYPOINT_SCORE_THRESHOLD = 0.2


@torch.no_grad()
def predict_topdown(
    model: Any,
    dataset: TopDownDataset,
    *,
    head: int = 0,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    flip_test: bool = True,
    autocast: bool = False,
    workers: int = 0,
) -> CocoPredictions:
    """Predictions (image coordinates) for every person of an eval-mode `dataset`, in dataset order."""
    was_training = model.training
    model.eval()
    device = torch.device(device)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_eval
    )
    codec = model.codec
    flip_index = list(model.schemas[head].flip_index)
    keypoints, scores, image_ids = [], [], []
    for batch in loader:
        x = model_input(batch["image"].to(device), model)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            heatmaps = model(x, head).float()
            if flip_test:
                flipped = model(x.flip(-1), head).float()
                heatmaps = 0.5 * (heatmaps + flip_heatmaps_back(flipped, flip_index, shift=not codec.udp))
        kp, kp_scores = codec.decode(heatmaps.cpu().numpy())
        for j, meta in enumerate(batch["meta"]):
            kp_img = warp_points(kp[j], invert_affine(meta["matrix"]))
            keypoints.append(np.concatenate([kp_img, kp_scores[j][:, None]], axis=1))
            scores.append(instance_score(kp_scores[j]))
            image_ids.append(meta["image_id"])
    model.train(was_training)
    data = dataset.data
    n = len(image_ids)
    return CocoPredictions(
        image_ids=np.asarray(image_ids, dtype=np.int64),
        category_ids=np.full(n, data.category_id, dtype=np.int64),
        keypoints=np.asarray(keypoints, dtype=np.float64).reshape(n, len(dataset.schema), 3),
        scores=np.asarray(scores, dtype=np.float64),
    )


def instance_score(keypoint_scores: np.ndarray, threshold: float = KEYPOINT_SCORE_THRESHOLD) -> float:
    """ViTPose's person score with a GT box: the mean of keypoint scores above the threshold (0 if none)."""
    good = keypoint_scores[keypoint_scores > threshold]
    return float(good.mean()) if good.size else 0.0


def evaluate_ap(model: Any, dataset: TopDownDataset, **kwargs: Any) -> dict[str, float]:
    """COCO OKS AP / AR of `model` on an eval-mode dataset (keys AP, AP50, ..., AR_L)."""
    preds = predict_topdown(model, dataset, **kwargs)
    gt, results = coco_dicts(dataset.data, preds)
    return coco_keypoint_stats(gt, results, dataset.schema.sigmas, cat_ids=dataset.data.keypoint_category_ids)


class ValidationHook(Hook):
    """Validates every `interval` epochs (rank 0), logs the AP, and saves `best.safetensors` when AP improves."""

    def __init__(
        self, dataset: TopDownDataset, *, head: int = 0, interval: int = 1, batch_size: int = 32, flip_test: bool = True
    ) -> None:
        self.dataset = dataset
        self.head = head
        self.interval = int(interval)
        self.batch_size = batch_size
        self.flip_test = flip_test
        self.best_ap = -1.0
        self.best_epoch = -1
        self.history: list[tuple[int, float]] = []

    @property
    def name(self) -> str:
        return "validation"

    def evaluate(self, trainer: Trainer) -> dict[str, float]:
        return evaluate_ap(
            trainer.eval_model,
            self.dataset,
            head=self.head,
            batch_size=self.batch_size,
            device=trainer.device,
            flip_test=self.flip_test,
            autocast=trainer.autocast,
        )

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.interval <= 0 or trainer.epoch % self.interval and trainer.epoch != trainer.max_epochs:
            return
        if trainer.dist.is_main:
            metrics = self.evaluate(trainer)
            self.history.append((trainer.epoch, metrics["AP"]))
            trainer.log_metrics({f"val/{k}": v for k, v in metrics.items()}, kind="val")
            if metrics["AP"] > self.best_ap:
                self.best_ap, self.best_epoch = metrics["AP"], trainer.epoch
                trainer.save_model("best.safetensors", {"val": metrics, "epoch": trainer.epoch})
        trainer.barrier()

    def state_dict(self) -> dict[str, Any]:
        return {"best_ap": self.best_ap, "best_epoch": self.best_epoch, "history": [list(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_ap = float(state["best_ap"])
        self.best_epoch = int(state["best_epoch"])
        self.history = [(int(e), float(a)) for e, a in state.get("history", [])]
