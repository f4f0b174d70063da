"""TopDownDataset on a tiny COCO file with real JPEGs, read through the real loader."""

import json

import cv2
import numpy as np
import pytest

from poseadapt.codecs import UDPHeatmap
from poseadapt.data.augment import RandomFlip, ToTensor, vitpose_train_transforms
from poseadapt.data.coco import load_coco_keypoints
from poseadapt.data.dataset import TopDownDataset
from poseadapt.errors import DataError, PoseAdaptError
from poseadapt.schemas import get_schema

COCO = get_schema("coco17")
W, H = 320, 240

POSE = np.array(
    [
        [160, 50],
        [166, 44],
        [154, 44],
        [172, 47],
        [148, 47],
        [182, 75],
        [138, 75],
        [190, 105],
        [131, 105],
        [193, 131],
        [128, 131],
        [174, 140],
        [147, 140],
        [176, 180],
        [144, 180],
        [177, 214],
        [142, 214],
    ],
    dtype=np.float64,
)


def write_dataset(tmp_path, corrupt=False):
    """Two images; image 1 holds a labelled person, a crowd region and an unlabelled person; image 2 one person."""
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        # textured, with a colour gradient so the channel order is checkable: red grows to the right, blue down
        image_rgb = cv2.resize(rng.integers(0, 60, (24, 32, 3), dtype=np.uint8), (W, H))
        image_rgb[..., 0] += np.linspace(0, 190, W, dtype=np.uint8)[None, :]
        image_rgb[..., 2] += np.linspace(0, 190, H, dtype=np.uint8)[:, None]
        cv2.imwrite(str(tmp_path / name), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if corrupt:
        (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    kp = np.concatenate([POSE, np.full((17, 1), 2.0)], axis=1)
    kp[3, 2] = 0  # left ear unlabelled
    kp[3, :2] = 0
    kp[9, 2] = 1  # left wrist occluded but labelled
    second = kp.copy()
    second[:, 0] += 20
    annotations = [
        _ann(1, 1, kp, [125, 38, 75, 185]),
        _ann(2, 1, np.zeros((17, 3)), [10, 10, 50, 50], iscrowd=1),
        _ann(3, 1, np.zeros((17, 3)), [230, 100, 40, 90]),
        _ann(4, 2, second, [145, 38, 75, 185]),
    ]
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": W, "height": H},
            {"id": 2, "file_name": "b.jpg", "width": W, "height": H},
        ],
        "annotations": annotations,
        "categories": [
            {"id": 1, "name": "person", "keypoints": list(COCO.keypoints), "skeleton": [[16, 14], [14, 12]]}
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return load_coco_keypoints(path, "coco17")


def _ann(ann_id, image_id, keypoints, bbox, iscrowd=0):
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": [float(v) for v in np.asarray(keypoints).ravel()],
        "num_keypoints": int((np.asarray(keypoints)[:, 2] > 0).sum()),
        "bbox": bbox,
        "area": bbox[2] * bbox[3],
        "iscrowd": iscrowd,
    }


@pytest.fixture
def data(tmp_path):
    return write_dataset(tmp_path)


def codec():
    return UDPHeatmap(input_size=(192, 256), heatmap_size=(48, 64), sigma=2.0)


def test_train_and_eval_keep_the_right_annotations(data, tmp_path):
    train = TopDownDataset(data, tmp_path, codec(), train=True)
    evaluation = TopDownDataset(data, tmp_path, codec(), train=False)
    assert [int(data.ann_ids[i]) for i in train.indices] == [1, 4]  # no crowd, no unlabelled person
    assert [int(data.ann_ids[i]) for i in evaluation.indices] == [1, 3, 4]  # every non-crowd person
    assert len(evaluation.transforms) == 0 and len(train.transforms) == 3


def test_samples_have_the_right_shapes_and_weights(data, tmp_path):
    ds = TopDownDataset(data, tmp_path, codec(), transforms=vitpose_train_transforms(), train=True)
    item = ds[0]
    assert item["image"].dtype == np.uint8 and item["image"].shape == (256, 192, 3)
    assert item["target"].dtype == np.float32 and item["target"].shape == (17, 64, 48)
    assert item["target_weight"].shape == (17,) and item["keypoints"].shape == (17, 3)
    meta = item["meta"]
    assert meta["ann_id"] == 1 and meta["image_id"] == 1 and meta["matrix"].shape == (2, 3)
    label_order = list(COCO.flip_index) if meta["flip"] else list(range(17))
    where = {old: new for new, old in enumerate(label_order)}  # original index -> index in the sample
    assert item["target_weight"][where[3]] == 0  # unlabelled left ear: no target
    assert item["keypoints"][where[9], 2] == 1  # occluded-but-labelled keeps its flag ...
    # ... and the keypoints are the image keypoints moved by the sample's matrix (flip folded in)
    moved = POSE[label_order] @ meta["matrix"][:, :2].T + meta["matrix"][:, 2]
    labelled = data.keypoints[0, label_order, 2] > 0
    np.testing.assert_allclose(item["keypoints"][labelled, :2], moved[labelled], atol=1e-3)
    flips = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        item = ds[0]
        flips.add(item["meta"]["flip"])
        order = list(COCO.flip_index) if item["meta"]["flip"] else list(range(17))
        # the unlabelled ear never gets a target; the labelled one may leave the crop (half-body, zoom)
        assert item["target_weight"][order.index(3)] == 0 and item["keypoints"][order.index(4), 2] == 2
    assert flips == {False, True}
    tensor = TopDownDataset(data, tmp_path, codec(), transforms=[ToTensor()], train=True)[1]["image"]
    assert tensor.dtype == np.float32 and tensor.shape == (3, 256, 192)


def test_eval_crop_is_rgb_and_centred_on_the_box(data, tmp_path):
    item = TopDownDataset(data, tmp_path, codec(), train=False)[0]
    image = item["image"].astype(int)
    # red grows to the right and blue downwards in the source, so also in an unrotated crop
    assert image[128, 150:190, 0].mean() > image[128, 5:45, 0].mean() + 10
    assert image[220:250, 96, 2].mean() > image[5:35, 96, 2].mean() + 10
    np.testing.assert_allclose(item["meta"]["center"], [125 + 37.5, 38 + 92.5])
    assert item["meta"]["rotation"] == 0 and not item["meta"]["flip"]


def test_flip_produces_mirrored_images_and_targets(data, tmp_path):
    plain = TopDownDataset(data, tmp_path, codec(), transforms=[], train=True)[0]
    flipped = TopDownDataset(data, tmp_path, codec(), transforms=[RandomFlip(prob=1.0)], train=True)[0]
    assert flipped["meta"]["flip"] and not plain["meta"]["flip"]
    perm = list(COCO.flip_index)
    # UDP: mirroring the crop mirrors the heatmaps exactly, no one-pixel shift
    np.testing.assert_allclose(flipped["target"], plain["target"][perm][:, :, ::-1], atol=1e-6)
    np.testing.assert_array_equal(flipped["target_weight"], plain["target_weight"][perm])
    expected = plain["keypoints"][perm]
    expected[:, 0] = 191 - expected[:, 0]
    np.testing.assert_allclose(flipped["keypoints"], expected, atol=1e-4)
    diff = np.abs(flipped["image"].astype(int) - plain["image"][:, ::-1].astype(int))
    assert diff.max() <= 1  # bilinear rounding only


def test_in_memory_and_callable_sources_match_files(data, tmp_path):
    decoded = {
        i: cv2.cvtColor(cv2.imread(str(tmp_path / name)), cv2.COLOR_BGR2RGB) for i, name in ((1, "a.jpg"), (2, "b.jpg"))
    }
    transforms = vitpose_train_transforms()
    from_files = TopDownDataset(data, tmp_path, codec(), transforms=transforms)
    in_memory = TopDownDataset(data, None, codec(), transforms=transforms, images_in_memory=decoded)
    from_callable = TopDownDataset(data, decoded.__getitem__, codec(), transforms=transforms)
    for index in range(len(from_files)):
        reference = from_files[index]
        for other in (in_memory[index], from_callable[index]):
            # converting BGR->RGB after the crop is pixel-identical to converting the whole image first
            np.testing.assert_array_equal(other["image"], reference["image"])
            np.testing.assert_array_equal(other["target"], reference["target"])


def test_augmentation_is_reproducible_per_item_and_epoch(data, tmp_path):
    ds = TopDownDataset(data, tmp_path, codec(), seed=3)
    first = [ds[i] for i in range(len(ds))]
    again = [ds[i] for i in reversed(range(len(ds)))][::-1]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["keypoints"], b["keypoints"])
    draws = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        meta = ds[0]["meta"]
        draws.add((round(meta["rotation"], 6), tuple(np.round(meta["scale"], 6)), meta["flip"]))
    assert len(draws) > 3


def test_corrupt_image_is_a_data_error_naming_the_file(tmp_path):
    data = write_dataset(tmp_path, corrupt=True)
    ds = TopDownDataset(data, tmp_path, codec(), train=True)
    ds[0]  # a.jpg is fine
    with pytest.raises(DataError, match=r"b\.jpg"):
        ds[1]
    (tmp_path / "b.jpg").unlink()
    with pytest.raises(DataError, match=r"not found.*b\.jpg"):
        ds[1]


def test_bad_in_memory_images_are_data_errors(data, tmp_path):
    grey = {1: np.zeros((H, W), np.uint8)}
    with pytest.raises(DataError, match="image 1 .*RGB uint8"):
        TopDownDataset(data, None, codec(), images_in_memory=grey)[0]
    wrong_size = {1: np.zeros((H + 1, W, 3), np.uint8)}
    with pytest.raises(DataError, match="320x241 but the annotations say 320x240"):
        TopDownDataset(data, None, codec(), images_in_memory=wrong_size)[0]
    with pytest.raises(DataError, match="image_root"):
        TopDownDataset(data, None, codec())
    with pytest.raises(PoseAdaptError, match="must come before"):
        TopDownDataset(data, tmp_path, codec(), transforms=[ToTensor(), RandomFlip()])
