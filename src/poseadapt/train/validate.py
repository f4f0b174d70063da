"""Validation during training: top-down predictions on ground-truth boxes, scored as COCO OKS AP.

As ViTPose validates with ground-truth boxes (box score 1). The work is `poseadapt.evaluate.topdown`, the one
inference-and-scoring path that `poseadapt eval`, `predict` and `compare` also use, so a validation AP and an
`eval` AP of the same checkpoint on the same data are the same number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from poseadapt.evaluate.topdown import KEYPOINT_SCORE_THRESHOLD, evaluate_model, gt_people, predict_people
from poseadapt.train.hooks import Hook

if TYPE_CHECKING:
    from poseadapt.data.coco import CocoPredictions
    from poseadapt.data.dataset import TopDownDataset
    from poseadapt.train.engine import Trainer

__all__ = ["KEYPOINT_SCORE_THRESHOLD", "ValidationHook", "evaluate_ap", "instance_score", "predict_topdown"]


def dataset_images(dataset: TopDownDataset) -> Any:
    """image_id -> RGB array from wherever the dataset reads its images (folder, callable or memory)."""

    def read(image_id: int) -> np.ndarray:
        image, is_bgr = dataset.load_image(image_id)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if is_bgr else image

    return read


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
    """Predictions (image coordinates) for every non-crowd person of the dataset's annotations, in file order."""
    del workers  # images are read in the calling process, once per image
    data = dataset.data
    return predict_people(
        model, gt_people(data), dataset_images(dataset), head=head, flip_test=flip_test, batch_size=batch_size,
        device=device, autocast=autocast, category_id=data.category_id,
    )  # fmt: skip


def instance_score(keypoint_scores: np.ndarray, threshold: float = KEYPOINT_SCORE_THRESHOLD) -> float:
    """ViTPose's person score with a GT box: the mean of keypoint scores above the threshold (0 if none)."""
    good = keypoint_scores[keypoint_scores > threshold]
    return float(good.mean()) if good.size else 0.0


def evaluate_ap(model: Any, dataset: TopDownDataset, **kwargs: Any) -> dict[str, float]:
    """COCO OKS AP / AR of `model` on an eval-mode dataset (keys AP, AP50, ..., AR_L)."""
    kwargs.pop("workers", None)
    with torch.no_grad():
        return evaluate_model(model, dataset.data, dataset_images(dataset), **kwargs).stats


class ValidationHook(Hook):
    """Validates every `interval` epochs (rank 0), logs the AP, and saves `best.safetensors` when AP improves.

    `dataset` may be a list of (name, dataset, head) for a multi-dataset model: each set is scored with its own
    head and logged as `val/<name>/AP`, ...; `val/AP` (what `best` follows) is then the mean AP over the sets.
    """

    def __init__(
        self,
        dataset: TopDownDataset | list[tuple[str, TopDownDataset, int]],
        *,
        head: int = 0,
        interval: int = 1,
        batch_size: int = 32,
        flip_test: bool = True,
        at_start: bool = False,
    ) -> None:
        self.sets = list(dataset) if isinstance(dataset, list) else None
        self.at_start = at_start  # also before the first step: the start weights' AP, logged at iteration 0
        self.dataset = self.sets[0][1] if self.sets else dataset
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
        sets = self.sets or [("", self.dataset, self.head)]
        per_set = {
            name: evaluate_ap(
                trainer.eval_model,
                dataset,
                head=head,
                batch_size=self.batch_size,
                device=trainer.device,
                flip_test=self.flip_test,
                autocast=trainer.autocast,
            )
            for name, dataset, head in sets
        }
        if self.sets is None:
            return per_set[""]
        out = {f"{name}/{k}": v for name, stats in per_set.items() for k, v in stats.items()}
        for key in ("AP", "AR"):
            out[key] = float(np.mean([stats[key] for stats in per_set.values()]))
        return out

    def on_train_start(self, trainer: Trainer) -> None:
        if self.at_start and trainer.iteration == 0:  # not again when a run resumes
            self.validate(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.interval <= 0 or trainer.epoch % self.interval and trainer.epoch != trainer.max_epochs:
            return
        self.validate(trainer)

    def validate(self, trainer: Trainer) -> None:
        """Score the current weights (rank 0), log them at the current iteration, keep them if they are the best."""
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
