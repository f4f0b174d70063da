"""Flip-test helpers: mirroring keypoints, and mapping predictions on a mirrored crop back onto the original."""

import numpy as np
import pytest

from poseadapt.codecs import MSRAHeatmap, SimCC, UDPHeatmap, flip_heatmaps_back, flip_keypoints, flip_simcc_back
from poseadapt.schemas import get_schema

FLIP_INDEX = get_schema("coco17").flip_index
NAMES = get_schema("coco17").keypoints


def mirrored_pose(rng, count, low=0.0, high=(191.0, 255.0)):
    """Random poses (count, 17, 3) with a visibility column, and the same poses mirrored in a 192-wide crop."""
    keypoints = rng.uniform(low, high, size=(count, 17, 2))
    visible = rng.integers(0, 2, size=(count, 17, 1)).astype(np.float64)
    pose = np.concatenate([keypoints, visible], axis=-1)
    return pose, flip_keypoints(pose, FLIP_INDEX, 192)


def test_flip_keypoints_mirrors_and_swaps_sides():
    rng = np.random.default_rng(0)
    pose, mirrored = mirrored_pose(rng, 2)
    for k in range(17):
        source = FLIP_INDEX[k]
        np.testing.assert_array_equal(mirrored[:, k, 0], 191 - pose[:, source, 0])
        np.testing.assert_array_equal(mirrored[:, k, 1:], pose[:, source, 1:])
    left_knee, right_knee = NAMES.index("left_knee"), NAMES.index("right_knee")
    np.testing.assert_array_equal(mirrored[:, left_knee, 0], 191 - pose[:, right_knee, 0])
    np.testing.assert_allclose(flip_keypoints(mirrored, FLIP_INDEX, 192), pose)  # an involution
    with pytest.raises(ValueError, match="permutation"):
        flip_keypoints(pose, [0] * 17, 192)


def test_udp_flip_round_trip_reproduces_the_heatmaps():
    """Encode a pose, encode its mirror, flip the mirror's maps back (no shift): the same targets."""
    rng = np.random.default_rng(1)
    codec = UDPHeatmap()
    pose, mirrored = mirrored_pose(rng, 6, low=-10.0, high=(201.0, 265.0))
    heatmaps, weights = codec.encode(pose[..., :2], pose[..., 2])
    mirrored_heatmaps, mirrored_weights = codec.encode(mirrored[..., :2], mirrored[..., 2])
    back = flip_heatmaps_back(mirrored_heatmaps, FLIP_INDEX, shift=False)
    np.testing.assert_allclose(back, heatmaps, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(mirrored_weights[:, list(FLIP_INDEX)], weights)
    assert np.abs(flip_heatmaps_back(mirrored_heatmaps, FLIP_INDEX, shift=True) - heatmaps).max() > 0.1
    # a flip test that averages both predictions decodes to the original keypoints
    inside = (pose[..., 2] > 0) & ((pose[..., :2] >= 20) & (pose[..., :2] <= [171, 235])).all(axis=-1)
    decoded, _ = codec.decode((heatmaps + back) / 2)
    assert np.abs(decoded - pose[..., :2])[inside].max() < 0.02 * codec.stride[0]


def test_msra_flip_with_shift():
    rng = np.random.default_rng(2)
    codec = MSRAHeatmap(refine="none")
    # on positions that are whole heatmap pixels the shifted flip reproduces every column but the first
    whole = rng.integers(8, [40, 56], size=(4, 17, 2)) * 4.0
    pose = np.concatenate([whole, np.ones((4, 17, 1))], axis=-1)
    mirrored = flip_keypoints(pose, FLIP_INDEX, 192)
    heatmaps, _ = codec.encode(pose[..., :2], pose[..., 2])
    back = flip_heatmaps_back(codec.encode(mirrored[..., :2], mirrored[..., 2])[0], FLIP_INDEX, shift=True)
    np.testing.assert_allclose(back[..., 1:], heatmaps[..., 1:], atol=1e-6, rtol=0)
    # at random positions the shift leaves the known +1/stride heatmap-px bias; without it, -(stride - 1)/stride
    pose, mirrored = mirrored_pose(rng, 50, low=40.0, high=(150.0, 215.0))
    original, _ = codec.decode(codec.encode(pose[..., :2], np.ones((50, 17)))[0])
    mirrored_heatmaps, _ = codec.encode(mirrored[..., :2], np.ones((50, 17)))
    for shift, bias in [(True, 0.25), (False, -0.75)]:
        decoded, _ = codec.decode(flip_heatmaps_back(mirrored_heatmaps, FLIP_INDEX, shift=shift))
        error = (decoded - original)[..., 0] / 4.0
        assert abs(error.mean() - bias) < 0.06 and np.abs(error).max() <= 1.0
        np.testing.assert_array_equal(decoded[..., 1], original[..., 1])


def test_flip_heatmaps_back_permutes_channels_by_flip_index():
    rng = np.random.default_rng(3)
    heatmaps = rng.random((2, 17, 8, 6)).astype(np.float32)
    back = flip_heatmaps_back(heatmaps, FLIP_INDEX, shift=False)
    for k in range(17):
        np.testing.assert_array_equal(back[:, k], heatmaps[:, FLIP_INDEX[k], :, ::-1])
    left_eye, right_eye = NAMES.index("left_eye"), NAMES.index("right_eye")
    np.testing.assert_array_equal(back[:, left_eye], heatmaps[:, right_eye, :, ::-1])
    shifted = flip_heatmaps_back(heatmaps, FLIP_INDEX, shift=True)
    np.testing.assert_array_equal(shifted[..., 1:], back[..., :-1])
    np.testing.assert_array_equal(shifted[..., 0], back[..., 0])
    np.testing.assert_array_equal(flip_heatmaps_back(heatmaps[0], FLIP_INDEX), back[0])  # (K, H, W) works too
    np.testing.assert_array_equal(flip_heatmaps_back(back, FLIP_INDEX), heatmaps)
    with pytest.raises(ValueError, match="permutation"):
        flip_heatmaps_back(heatmaps, FLIP_INDEX[:-1])


def test_simcc_flip_back():
    rng = np.random.default_rng(4)
    codec = SimCC()
    pose, mirrored = mirrored_pose(rng, 10)
    x_labels, y_labels, _ = codec.encode(pose[..., :2], np.ones((10, 17)))
    mirrored_x, mirrored_y, _ = codec.encode(mirrored[..., :2], np.ones((10, 17)))
    # with the split ratio the reversed x bins are moved back: exact except the last bin
    back_x, back_y = flip_simcc_back(mirrored_x, mirrored_y, FLIP_INDEX, split_ratio=2.0)
    np.testing.assert_allclose(back_x[..., :-1], x_labels[..., :-1], atol=1e-6)
    np.testing.assert_array_equal(back_y, y_labels)
    # mmpose's plain reversal lands (r - 1) bins = 0.5 px to the right
    plain_x, plain_y = flip_simcc_back(mirrored_x, mirrored_y, FLIP_INDEX)
    decoded, _ = codec.decode(plain_x, plain_y)
    original, _ = codec.decode(x_labels, y_labels)
    np.testing.assert_allclose(decoded[..., 0] - original[..., 0], 0.5)
    np.testing.assert_array_equal(decoded[..., 1], original[..., 1])


def test_flip_helpers_accept_torch_tensors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    heatmaps = rng.random((2, 17, 8, 6)).astype(np.float32)
    for shift in (False, True):
        out = flip_heatmaps_back(torch.from_numpy(heatmaps), FLIP_INDEX, shift=shift)
        assert isinstance(out, torch.Tensor)
        np.testing.assert_array_equal(out.numpy(), flip_heatmaps_back(heatmaps, FLIP_INDEX, shift=shift))
    pose = rng.random((2, 17, 3))
    np.testing.assert_array_equal(
        flip_keypoints(torch.from_numpy(pose), FLIP_INDEX, 192).numpy(), flip_keypoints(pose, FLIP_INDEX, 192)
    )
    x, y = rng.random((2, 17, 384)), rng.random((2, 17, 512))
    tx, ty = flip_simcc_back(torch.from_numpy(x), torch.from_numpy(y), FLIP_INDEX, split_ratio=2.0)
    nx, ny = flip_simcc_back(x, y, FLIP_INDEX, split_ratio=2.0)
    np.testing.assert_array_equal(tx.numpy(), nx)
    np.testing.assert_array_equal(ty.numpy(), ny)
