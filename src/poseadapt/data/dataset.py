"""`TopDownDataset`: one item per person box, cropped, augmented and encoded into training targets.

Randomness is per item and per epoch: item i of epoch e draws from `numpy.random.default_rng([seed, e, i])`, so a
sample is reproducible whatever the DataLoader worker count or order (call `set_epoch` each epoch).

Images come from disk (`cv2.imread`, decoded BGR and converted to RGB *after* the crop, which is identical pixel
for pixel and cheaper), from `images_in_memory` (image id -> RGB uint8 array), or from a callable
`image_id -> RGB uint8 array` given as `image_root` (the synthetic renderer draws straight to arrays).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from poseadapt.data.augment import TopDownSample, Transform, run_transforms, split_stages, vitpose_train_transforms
from poseadapt.data.topdown import DEFAULT_PADDING, box_to_center_scale
from poseadapt.errors import DataError

if TYPE_CHECKING:
    from poseadapt.data.coco import CocoKeypoints

__all__ = ["ImageSource", "KeypointEncoder", "TopDownDataset"]

ImageSource = str | Path | Callable[[int], np.ndarray]


class KeypointEncoder(Protocol):
    """What the dataset needs from a codec (UDPHeatmap, MSRAHeatmap, SimCC)."""

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[Any, ...]:
        """-> (target, ..., weights): one target array (heatmaps) or several (SimCC's x and y labels)."""


class TopDownDataset:
    """Person instances of a `CocoKeypoints` set as network-ready samples.

    Training mode skips crowd annotations and those with no labelled keypoint (they carry no target); eval mode
    keeps every non-crowd annotation, since each needs a prediction. `transforms` defaults to the ViTPose recipe
    in training and to none in eval. Each item is a dict: `image` (uint8 HWC RGB crop, or float32 CHW when the
    transforms end with ToTensor), `target` (heatmaps, or a tuple of arrays when the codec encodes several: SimCC's x
    and y labels) and `target_weight` (codec weights x labelled), `keypoints` (K, 3:
    x, y in input pixels and the original v) and `meta` (ids, centre, scale, rotation, flip, the 2x3 matrix from
    image to input pixels).
    """

    def __init__(
        self,
        data: CocoKeypoints,
        image_root: ImageSource | None,
        codec: KeypointEncoder,
        input_size: Sequence[int] = (192, 256),
        transforms: Sequence[Transform] | None = None,
        train: bool = True,
        images_in_memory: Mapping[int, np.ndarray] | None = None,
        padding: float = DEFAULT_PADDING,
        seed: int = 0,
        left_right_either: float = 0.0,
    ) -> None:
        w, h = (int(v) for v in input_size)
        self.data = data
        self.schema = data.schema
        # labels whose left/right may be swapped as a whole: each sample carries its mirror map, and this share of
        # its loss takes the nearer of the labels and their mirror (train/losses.py, `nearer_of_mirror`); 0: off
        if not 0.0 <= left_right_either <= 1.0:
            raise ValueError(f"left_right_either must be within [0, 1], got {left_right_either}")
        self.left_right_either = float(left_right_either)
        self.codec = codec
        self.input_size = (w, h)
        self.train = bool(train)
        self.transforms = list(vitpose_train_transforms() if transforms is None and train else transforms or [])
        split_stages(self.transforms)  # reject a mis-ordered list now rather than at the first sample
        self.images_in_memory = images_in_memory
        self.image_root = image_root
        if image_root is None and images_in_memory is None:
            raise DataError("TopDownDataset needs image_root (a folder or a callable) or images_in_memory")
        self.seed = int(seed)
        self.epoch = 0

        keep = ~np.asarray(data.iscrowd, dtype=bool)
        if self.train:
            keep &= (np.asarray(data.keypoints)[:, :, 2] > 0).any(axis=1)
        self.indices = np.flatnonzero(keep)
        boxes = np.asarray(data.boxes, dtype=np.float64)[self.indices]
        # Degenerate boxes (w or h < 1 px) are grown to 1 px so every annotation still gets a valid crop.
        boxes[:, 2:] = np.maximum(boxes[:, 2:], 1.0)
        self.centers, self.scales = box_to_center_scale(boxes.reshape(-1, 4), w / h, padding)

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws for a new epoch (reproducibly)."""
        self.epoch = int(epoch)

    def rng_for(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        return self.get(index, self.rng_for(index))

    def get(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """The sample at `index` with augmentation drawn from `rng`."""
        row = int(self.indices[index])
        image_id = int(self.data.image_ids[row])
        image, is_bgr = self.load_image(image_id)
        sample = TopDownSample(
            image=image,
            keypoints=np.asarray(self.data.keypoints[row], dtype=np.float64),
            center=self.centers[index],
            scale=self.scales[index],
            schema=self.schema,
        )
        box, pixel = split_stages(self.transforms)
        if is_bgr:  # convert the small crop, not the whole image; pixel transforms then see RGB
            pixel = [_BgrToRgb(), *pixel]
        sample = run_transforms(sample, [*box, *pixel], rng, self.input_size)

        visible = (sample.keypoints[:, 2] > 0).astype(np.float32)
        *targets, weights = self.codec.encode(sample.keypoints[:, :2], visible)
        return {
            "image": sample.image,
            "target": targets[0] if len(targets) == 1 else tuple(targets),  # SimCC: (x labels, y labels)
            "target_weight": (np.asarray(weights, dtype=np.float32) * visible).astype(np.float32),
            "keypoints": sample.keypoints.astype(np.float32),
            "meta": {
                "ann_id": int(self.data.ann_ids[row]),
                "image_id": image_id,
                "center": sample.center.astype(np.float64),
                "scale": sample.scale.astype(np.float64),
                "rotation": float(sample.rotation),
                "flip": bool(sample.flipped),
                "matrix": sample.matrix,
            },
            **(self._mirror_extras() if self.left_right_either else {}),
        }

    def _mirror_extras(self) -> dict[str, Any]:
        return {
            "extra": {"mirror_partner": np.asarray(self.schema.flip_index, dtype=np.int64)},
            "sample_extra": {"left_right_either": np.float32(self.left_right_either)},
        }

    # ------------------------------------------------------------------ images
    def load_image(self, image_id: int) -> tuple[np.ndarray, bool]:
        """(pixels, is_bgr): a decoded file stays BGR (converted after the crop); in-memory arrays are RGB."""
        if self.images_in_memory is not None and image_id in self.images_in_memory:
            return self._checked(self.images_in_memory[image_id], image_id, "images_in_memory"), False
        source = self.image_root
        if callable(source):
            return self._checked(source(image_id), image_id, "the image source"), False
        if source is None:
            raise DataError(f"image {image_id} is not in images_in_memory and no image_root was given")
        path = Path(self.data.image_path(image_id, source))
        if not path.is_file():
            raise DataError(f"image file not found: {path} (image id {image_id})")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"cannot decode image {path} (image id {image_id}): corrupt or not an image")
        self._check_size(image, image_id, str(path))
        return image, True

    def _checked(self, image: Any, image_id: int, where: str) -> np.ndarray:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise DataError(f"image {image_id} from {where} must be an RGB uint8 array of shape (H, W, 3), got {got}")
        self._check_size(image, image_id, where)
        return image

    def _check_size(self, image: np.ndarray, image_id: int, where: str) -> None:
        info = self.data.images.get(image_id)
        if info is None or not info.width or not info.height:
            return
        if (image.shape[1], image.shape[0]) != (info.width, info.height):
            raise DataError(
                f"image {image_id} ({where}) is {image.shape[1]}x{image.shape[0]} but the annotations say "
                f"{info.width}x{info.height}: wrong image file or image root?"
            )


class _BgrToRgb(Transform):
    """First pixel step for decoded files: OpenCV decodes BGR; the network and pixel transforms expect RGB."""

    def __call__(self, sample: TopDownSample, rng: np.random.Generator | None = None) -> TopDownSample:
        sample.image = cv2.cvtColor(sample.image, cv2.COLOR_BGR2RGB)
        return sample
