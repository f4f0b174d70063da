"""Heatmap and SimCC codecs: encode against a straightforward reference, decode (argmax, DARK, DARK-UDP) against
slow per-keypoint references, round trips, weights and crop geometry."""

import cv2
import numpy as np
import pytest

from poseadapt.codecs import MSRAHeatmap, SimCC, UDPHeatmap, image_to_input
from poseadapt.codecs.refine import blur_heatmaps, heatmap_argmax, refine_dark, refine_dark_udp
from poseadapt.errors import PoseAdaptError

# ---------------------------------------------------------------- independent slow references (per keypoint)


def reference_udp_encode(keypoints, visible, input_size, heatmap_size, sigma):
    """Full-map Gaussian per keypoint, cut to the (6 sigma + 1)^2 window around round(mu), in float64."""
    width, height = heatmap_size
    radius = int(np.ceil(3 * sigma))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    heatmaps = np.zeros((len(keypoints), height, width))
    weights = np.zeros(len(keypoints))
    for k, (u, v) in enumerate(keypoints):
        mx = u * (width - 1) / (input_size[0] - 1)
        my = v * (height - 1) / (input_size[1] - 1)
        cx, cy = np.floor(mx + 0.5), np.floor(my + 0.5)
        in_window = (np.abs(xs - cx) <= radius) & (np.abs(ys - cy) <= radius)
        if visible[k] <= 0 or not in_window.any():
            continue
        weights[k] = 1.0
        heatmaps[k] = np.where(in_window, np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / (2 * sigma**2)), 0.0)
    return heatmaps, weights


def reference_blur(heatmap, kernel_size):
    """mmpose's modulation: zero-pad by the kernel radius, OpenCV blur, crop, restore the maximum."""
    border = kernel_size // 2
    height, width = heatmap.shape
    padded = np.zeros((height + 2 * border, width + 2 * border), dtype=np.float32)
    padded[border : border + height, border : border + width] = heatmap
    blurred = cv2.GaussianBlur(padded, (kernel_size, kernel_size), 0)[border : border + height, border : border + width]
    return blurred * (heatmap.max() / blurred.max())


def reference_dark_udp(heatmaps, kernel_size):
    """DARK-UDP written out one keypoint at a time with an explicit 2x2 inverse."""
    out = []
    for heatmap in heatmaps:
        y, x = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        logmap = np.log(np.clip(reference_blur(heatmap, kernel_size), 1e-3, 50).astype(np.float64))
        p = np.pad(logmap, 1, mode="edge")
        i, j = y + 1, x + 1
        dx = 0.5 * (p[i, j + 1] - p[i, j - 1])
        dy = 0.5 * (p[i + 1, j] - p[i - 1, j])
        dxx = p[i, j + 1] - 2 * p[i, j] + p[i, j - 1]
        dyy = p[i + 1, j] - 2 * p[i, j] + p[i - 1, j]
        dxy = 0.5 * (
            p[i + 1, j + 1] - p[i, j + 1] - p[i + 1, j] + 2 * p[i, j] - p[i, j - 1] - p[i - 1, j] + p[i - 1, j - 1]
        )
        hessian = np.array([[dxx, dxy], [dxy, dyy]]) + np.finfo(np.float32).eps * np.eye(2)
        out.append(np.array([x, y]) - np.linalg.inv(hessian) @ np.array([dx, dy]))
    return np.array(out)


def reference_dark(heatmaps, kernel_size):
    """Classic DARK (step-2 Hessian, interior maxima only) one keypoint at a time."""
    out = []
    for heatmap in heatmaps:
        height, width = heatmap.shape
        y, x = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        f = np.log(np.maximum(reference_blur(heatmap, kernel_size), 1e-10).astype(np.float64))
        point = np.array([x, y], dtype=np.float64)
        if 1 < x < width - 2 and 1 < y < height - 2:
            grad = np.array([0.5 * (f[y, x + 1] - f[y, x - 1]), 0.5 * (f[y + 1, x] - f[y - 1, x])])
            dxx = 0.25 * (f[y, x + 2] - 2 * f[y, x] + f[y, x - 2])
            dyy = 0.25 * (f[y + 2, x] - 2 * f[y, x] + f[y - 2, x])
            dxy = 0.25 * (f[y + 1, x + 1] - f[y - 1, x + 1] - f[y + 1, x - 1] + f[y - 1, x - 1])
            point -= np.linalg.inv(np.array([[dxx, dxy], [dxy, dyy]])) @ grad
        out.append(point)
    return np.array(out)


def noisy_heatmaps(rng, count=60, size=(48, 64), sigma=2.0):
    """Blobs of varied height and width at random places (borders included), plus noise."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    centres = rng.uniform(-0.5, [width - 0.5, height - 0.5], size=(count, 2))
    amplitude = rng.uniform(0.05, 1.0, size=count)
    widths = sigma * rng.uniform(0.8, 1.5, size=count)
    maps = amplitude[:, None, None] * np.exp(
        -((xs - centres[:, 0, None, None]) ** 2 + (ys - centres[:, 1, None, None]) ** 2)
        / (2 * widths[:, None, None] ** 2)
    )
    maps += rng.uniform(0, 0.02, size=maps.shape)
    return maps.astype(np.float32)


def random_points(rng, codec, count, margin):
    """Random sub-pixel heatmap positions at least `margin` heatmap px from every border, as input pixels."""
    high = np.array(codec.heatmap_size) - 1 - margin
    mu = rng.uniform(margin, high, size=(count, 17, 2))
    return mu, mu * codec.stride


# ---------------------------------------------------------------- encoding


def test_udp_encode_matches_reference_formula():
    rng = np.random.default_rng(0)
    codec = UDPHeatmap()
    keypoints = rng.uniform(-40, [230, 300], size=(17, 2))  # some beyond the crop
    keypoints[:3] = [[0, 0], [191, 255], [-20, 100]]  # corners, and a point whose window still overlaps
    visible = rng.integers(0, 3, size=17)
    heatmaps, weights = codec.encode(keypoints, visible)
    expected, expected_weights = reference_udp_encode(keypoints, visible, (192, 256), (48, 64), 2.0)
    assert heatmaps.dtype == np.float32 and heatmaps.shape == (17, 64, 48)
    assert weights.dtype == np.float32 and weights.shape == (17,)
    np.testing.assert_allclose(heatmaps, expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(weights, expected_weights)
    assert 0 < weights.sum() < 17


def test_udp_encode_sapiens_size_matches_reference():
    rng = np.random.default_rng(1)
    codec = UDPHeatmap(input_size=(768, 1024), heatmap_size=(192, 256), sigma=6.0)
    keypoints = rng.uniform(-50, [800, 1050], size=(8, 2))
    heatmaps, weights = codec.encode(keypoints, np.ones(8))
    expected, expected_weights = reference_udp_encode(keypoints, np.ones(8), (768, 1024), (192, 256), 6.0)
    np.testing.assert_allclose(heatmaps, expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(weights, expected_weights)


def test_weights_zero_for_unlabelled_and_far_out_points():
    codec = UDPHeatmap()
    stride = codec.stride[0]
    # heatmap x: inside, unlabelled, far out, window touching column 0 (centre -6), window just missing (centre -7)
    xs_hm = np.array([20.0, 20.0, -100.0, -6.0, -7.0, 53.0, 54.0])
    keypoints = np.stack([xs_hm * stride, np.full(7, 100.0)], axis=1)
    visible = np.array([2, 0, 1, 1, 1, 1, 1])
    heatmaps, weights = codec.encode(keypoints, visible)
    np.testing.assert_array_equal(weights, [1, 0, 0, 1, 0, 1, 0])
    assert heatmaps[weights == 0].max() == 0
    assert heatmaps[3, :, 0].max() > 0 and heatmaps[3, :, 1:].max() == 0  # only the window's last column is inside
    nan_heatmaps, nan_weights = codec.encode(np.array([[np.nan, 3.0]]), np.array([1]))
    assert nan_weights[0] == 0 and nan_heatmaps.max() == 0


def test_encode_several_instances_equals_one_at_a_time():
    rng = np.random.default_rng(2)
    keypoints = rng.uniform(0, [191, 255], size=(3, 17, 2))
    visible = rng.integers(0, 2, size=(3, 17))
    for codec in (UDPHeatmap(), MSRAHeatmap()):
        heatmaps, weights = codec.encode(keypoints, visible)
        assert heatmaps.shape == (3, 17, 64, 48) and weights.shape == (3, 17)
        for n in range(3):
            single, single_weights = codec.encode(keypoints[n], visible[n])
            np.testing.assert_array_equal(heatmaps[n], single)
            np.testing.assert_array_equal(weights[n], single_weights)


def test_msra_encode_centres_on_rounded_position():
    codec = MSRAHeatmap()  # stride 4
    keypoints = np.array([[10.3 * 4, 20.6 * 4]])
    heatmaps, _ = codec.encode(keypoints, np.ones(1))
    assert heatmaps[0, 21, 10] == 1.0  # peak exactly at round(mu) = (10, 21)
    np.testing.assert_allclose(heatmaps[0, 21, 11], np.exp(-1 / 8), rtol=1e-6)
    unbiased, _ = MSRAHeatmap(unbiased=True).encode(keypoints, np.ones(1))
    assert unbiased[0].max() < 1.0
    np.testing.assert_allclose(unbiased[0, 21, 10], np.exp(-(0.3**2 + 0.4**2) / 8), rtol=1e-5)


# ---------------------------------------------------------------- decoding against references


def test_blur_equals_per_map_zero_padded_opencv_blur():
    rng = np.random.default_rng(3)
    maps = noisy_heatmaps(rng, count=20)
    for kernel in (11, 7, 1):
        ours = blur_heatmaps(maps, kernel)
        for m in range(len(maps)):
            np.testing.assert_allclose(ours[m], reference_blur(maps[m], kernel), atol=1e-6, rtol=1e-5)


def test_dark_udp_matches_slow_reference_on_noisy_maps():
    rng = np.random.default_rng(4)
    maps = noisy_heatmaps(rng)
    locs, _ = heatmap_argmax(maps)
    expected = reference_dark_udp(maps, 11)
    assert np.abs(expected - locs).max() < 3.0  # inside the step clip, so the comparison is exact
    np.testing.assert_allclose(refine_dark_udp(locs, maps, 11), expected, atol=1e-4)


def test_dark_matches_slow_reference_on_noisy_maps():
    rng = np.random.default_rng(5)
    maps = noisy_heatmaps(rng)
    locs, _ = heatmap_argmax(maps)
    expected = reference_dark(maps, 11)
    assert np.abs(expected - locs).max() < 3.0
    refined = refine_dark(locs, maps, 11)
    np.testing.assert_allclose(refined, expected, atol=1e-4)
    assert (refined != locs).any(axis=1).sum() > len(maps) // 2  # most maxima are interior and do move


def test_refinement_step_is_bounded_on_pathological_maps():
    maps = np.zeros((3, 64, 48), dtype=np.float32)
    maps[0, 30, 20] = 1.0  # a single spike
    maps[1, 30, 20:23] = 1.0  # a flat ridge
    maps[2] = 1e-5  # flat and below the clip
    locs, _ = heatmap_argmax(maps)
    for refine in (refine_dark_udp, refine_dark):
        out = refine(locs, maps, 11)
        assert np.isfinite(out).all() and np.abs(out - locs).max() <= 3.0
    np.testing.assert_array_equal(refine_dark_udp(locs[2:], maps[2:], 11), locs[2:])


# ---------------------------------------------------------------- round trips


def test_dark_udp_round_trip_within_002_heatmap_px():
    rng = np.random.default_rng(6)
    codec = UDPHeatmap()
    mu, keypoints = random_points(rng, codec, count=120, margin=4.0)  # 2040 points
    keypoints_out, scores = codec.decode(codec.encode(keypoints, np.ones(mu.shape[:2]))[0])
    assert keypoints_out.shape == (120, 17, 2) and scores.shape == (120, 17)
    assert np.abs(keypoints_out / codec.stride - mu).max() < 0.02
    assert scores.min() > 0.85  # the maximum of a clean target is near 1


def test_dark_udp_near_borders_is_bounded_and_improves_inwards():
    """The decode blur is zero outside the map (as mmpose), which pulls maxima near a border inwards."""
    rng = np.random.default_rng(7)
    codec = UDPHeatmap()
    previous = np.inf
    for low, high, bound in [(1.0, 2.0, 0.6), (2.0, 3.0, 0.25), (3.0, 4.0, 0.06)]:
        distance = rng.uniform(low, high, size=(40, 17))
        along = rng.uniform(4, 43, size=(40, 17))
        mu = np.stack([distance, along], axis=-1)  # near the left border
        mu[::2] = np.stack([along[::2], 63 - distance[::2]], axis=-1)  # near the bottom border
        keypoints_out, _ = codec.decode(codec.encode(mu * codec.stride, np.ones((40, 17)))[0])
        error = np.abs(keypoints_out / codec.stride - mu).max()
        assert error < bound and error < previous
        previous = error


def test_dark_udp_without_blur_is_exact_up_to_half_a_pixel_from_the_border():
    """The log of a clean Gaussian is quadratic, so the Newton step alone is exact wherever the 3x3 is inside."""
    rng = np.random.default_rng(8)
    codec = UDPHeatmap(blur_kernel_size=1)
    mu, keypoints = random_points(rng, codec, count=40, margin=0.5)
    keypoints_out, _ = codec.decode(codec.encode(keypoints, np.ones(mu.shape[:2]))[0])
    assert np.abs(keypoints_out / codec.stride - mu).max() < 1e-4


@pytest.mark.parametrize(
    ("settings", "margin"),
    [(dict(blur_kernel_size=7, blur_sigma=0.8), 3.0), (dict(sigma=3.0, blur_kernel_size=17), 7.0)],
)
def test_dark_udp_round_trip_other_blurs(settings, margin):
    """HF's sigma-0.8 blur, and sigma 3 with kernel 17: the border margin grows with the blur radius."""
    rng = np.random.default_rng(9)
    codec = UDPHeatmap(**settings)
    mu, keypoints = random_points(rng, codec, count=20, margin=margin)
    keypoints_out, _ = codec.decode(codec.encode(keypoints, np.ones(mu.shape[:2]))[0])
    assert np.abs(keypoints_out / codec.stride - mu).max() < 0.02


def test_msra_round_trips():
    rng = np.random.default_rng(10)
    mu, keypoints = random_points(rng, MSRAHeatmap(), count=40, margin=4.0)
    visible = np.ones(mu.shape[:2])
    # unbiased (DARK) encoding + DARK decoding recovers the sub-pixel position
    codec = MSRAHeatmap(unbiased=True)
    keypoints_out, _ = codec.decode(codec.encode(keypoints, visible)[0])
    assert np.abs(keypoints_out / codec.stride - mu).max() < 0.02
    # classic encoding is centred on round(mu): DARK recovers that centre, the quarter step stays within 0.25 of it
    rounded = np.floor(mu + 0.5)
    keypoints_out, _ = MSRAHeatmap(refine="dark").decode(MSRAHeatmap().encode(keypoints, visible)[0])
    assert np.abs(keypoints_out / 4.0 - rounded).max() < 0.02
    keypoints_out, _ = MSRAHeatmap(refine="quarter").decode(MSRAHeatmap().encode(keypoints, visible)[0])
    assert np.abs(keypoints_out / 4.0 - rounded).max() <= 0.25
    assert np.abs(keypoints_out / 4.0 - mu).max() <= 0.75


def test_quarter_step_moves_towards_the_larger_neighbour():
    maps = np.zeros((2, 64, 48), dtype=np.float32)
    maps[0, 10, 10], maps[0, 10, 11], maps[0, 9, 10] = 1.0, 0.5, 0.2
    maps[1, 0, 0], maps[1, 0, 1] = 1.0, 0.5  # on the border: no y neighbour above, no x neighbour left
    keypoints, _ = MSRAHeatmap(refine="quarter").decode(maps)
    np.testing.assert_allclose(keypoints[0] / 4.0, [[10.25, 9.75], [0.0, 0.0]])


@pytest.mark.parametrize("codec", [UDPHeatmap(refine="none"), MSRAHeatmap(refine="none"), UDPHeatmap()])
def test_integer_positions_decode_exactly(codec):
    rng = np.random.default_rng(11)
    mu = rng.integers(0, [48, 64], size=(5, 17, 2)).astype(np.float64)
    keypoints_out, scores = codec.decode(codec.encode(mu * codec.stride, np.ones((5, 17)))[0])
    tolerance = 0.0 if codec.refine == "none" else 0.02 * codec.stride[0]
    interior = ((mu >= 4) & (mu <= np.array([43, 59]))).all(axis=-1) if codec.refine != "none" else slice(None)
    np.testing.assert_allclose(keypoints_out[interior], (mu * codec.stride)[interior], atol=tolerance, rtol=0)
    np.testing.assert_allclose(scores, 1.0)


def test_decode_single_map_stack_and_scores():
    codec = UDPHeatmap()
    heatmaps, _ = codec.encode(np.array([[100.0, 50.0], [30.0, 200.0]]), np.ones(2))
    heatmaps[1] *= 0.3
    keypoints_out, scores = codec.decode(heatmaps)
    assert keypoints_out.shape == (1, 2, 2) and scores.shape == (1, 2)
    np.testing.assert_allclose(scores[0], [heatmaps[0].max(), heatmaps[1].max()])
    np.testing.assert_allclose(keypoints_out[0], [[100.0, 50.0], [30.0, 200.0]], atol=0.02 * 4)
    empty_keypoints, empty_scores = codec.decode(np.zeros((0, 17, 64, 48), dtype=np.float32))
    assert empty_keypoints.shape == (0, 17, 2) and empty_scores.shape == (0, 17)
    with pytest.raises(ValueError, match="24x32 .* expects 48x64"):
        codec.decode(np.zeros((2, 32, 24), dtype=np.float32))


# ---------------------------------------------------------------- SimCC


def test_simcc_round_trip_within_one_bin():
    rng = np.random.default_rng(12)
    codec = SimCC()
    keypoints = rng.uniform(0, [191, 255], size=(30, 17, 2))
    x_labels, y_labels, weights = codec.encode(keypoints, np.ones((30, 17)))
    assert x_labels.shape == (30, 17, 384) and y_labels.shape == (30, 17, 512) and weights.min() == 1
    keypoints_out, scores = codec.decode(x_labels, y_labels)
    assert np.abs(keypoints_out - keypoints).max() <= 0.5 / codec.split_ratio + 1e-9
    np.testing.assert_allclose(scores, 1.0)


def test_simcc_labels_match_formula_and_weights():
    codec = SimCC(sigma=(4.9, 5.66))
    keypoints = np.array([[10.2, 20.8], [50.0, 60.0], [-30.0, 10.0], [-3.0, 10.0], [190.0, 300.0]])
    visible = np.array([1, 0, 1, 1, 1])
    x_labels, y_labels, weights = codec.encode(keypoints, visible)
    np.testing.assert_array_equal(weights, [1, 0, 0, 1, 0])
    bins_x, bins_y = np.arange(384), np.arange(512)
    np.testing.assert_allclose(x_labels[0], np.exp(-((bins_x - 20) ** 2) / (2 * 4.9**2)), atol=1e-7)
    np.testing.assert_allclose(y_labels[0], np.exp(-((bins_y - 42) ** 2) / (2 * 5.66**2)), atol=1e-7)
    assert x_labels[[1, 2, 4]].max() == 0 and y_labels[[1, 2, 4]].max() == 0
    normalised, _, _ = SimCC(normalize=True).encode(keypoints[:1], visible[:1])
    np.testing.assert_allclose(normalised[0].sum(), 1.0, rtol=1e-3)


def test_simcc_score_is_min_of_axis_maxima():
    codec = SimCC()
    x_logits = np.full((2, 3, 384), -5.0, dtype=np.float32)
    y_logits = np.full((2, 3, 512), -5.0, dtype=np.float32)
    x_logits[..., 101] = [[0.9, 0.2, 3.0], [1.0, 1.0, 1.0]]
    y_logits[..., 7] = [[0.4, 0.8, -1.0], [2.0, 2.0, 2.0]]
    keypoints_out, scores = codec.decode(x_logits, y_logits)
    np.testing.assert_allclose(scores, [[0.4, 0.2, -1.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(keypoints_out, np.broadcast_to([50.5, 3.5], (2, 3, 2)))


# ---------------------------------------------------------------- geometry and validation


def test_to_image_maps_back_through_the_udp_crop_for_every_codec():
    """Crops are always cut with UDP geometry, so every codec maps input pixels back with u * s / (in - 1)."""
    rng = np.random.default_rng(13)
    center = rng.uniform(100, 500, size=(4, 2))
    scale = rng.uniform(50, 300, size=(4, 2))
    keypoints = rng.uniform(0, [191, 255], size=(4, 17, 2))
    size = np.array([192.0, 256.0])
    udp = UDPHeatmap().to_image(keypoints, center, scale)
    np.testing.assert_allclose(udp, keypoints * scale[:, None] / (size - 1) + center[:, None] - scale[:, None] / 2)
    for codec in (MSRAHeatmap(), SimCC(), SimCC(udp=True)):
        np.testing.assert_allclose(codec.to_image(keypoints, center, scale), udp)
    # the box corners land on the input's first and last pixel centre
    corners = np.array([[[0.0, 0.0], [191.0, 255.0]]])
    for codec in (UDPHeatmap(), MSRAHeatmap(), SimCC()):
        np.testing.assert_allclose(codec.to_image(corners, [[50, 60]], [[100, 120]])[0], [[0, 0], [100, 120]])
    np.testing.assert_allclose(image_to_input(udp, center, scale, (192, 256), udp=True), keypoints)
    assert UDPHeatmap().udp and not MSRAHeatmap().udp and not SimCC().udp
    single = UDPHeatmap().to_image(keypoints[0], center[0], scale[0])
    np.testing.assert_allclose(single, udp[0])


def test_flip_offsets_follow_each_geometry():
    assert UDPHeatmap().flip_offset == 0.0 and MSRAHeatmap().flip_offset == 0.5
    assert SimCC(split_ratio=2.0).flip_offset == 0.0
    assert SimCC(split_ratio=2.5).flip_offset == pytest.approx((2.5 - 1 - 2) / 5.0)


def test_simcc_gaussian_refine_recovers_sub_bin_positions():
    codec = SimCC((192, 256), split_ratio=2.0, sigma=(4.9, 5.66), refine="gaussian")
    truth = np.array([[[10.3, 20.7], [100.45, 3.2]]])
    labels = [np.exp(-0.5 * (np.arange(n) - truth[..., a, None] * 2.0) ** 2 / codec.sigma[a] ** 2) for a, n in
              enumerate(codec.num_bins)]  # fmt: skip
    decoded, scores = codec.decode(*labels)
    np.testing.assert_allclose(decoded, truth, atol=1e-6)
    plain, _ = SimCC((192, 256), refine="none").decode(*labels)
    assert np.abs(plain - truth).max() == pytest.approx(0.2)  # argmax: 20.7 px is bin 41 = 20.5 px
    with pytest.raises(PoseAdaptError, match="refine"):
        SimCC(refine="dark")


def test_bad_codec_arguments_are_user_errors():
    with pytest.raises(PoseAdaptError, match="refine"):
        UDPHeatmap(refine="darkudp")
    with pytest.raises(PoseAdaptError, match="heatmap_size"):
        UDPHeatmap(heatmap_size=(48,))
    with pytest.raises(PoseAdaptError, match="blur_kernel_size"):
        MSRAHeatmap(blur_kernel_size=10)
    with pytest.raises(PoseAdaptError, match="sigma"):
        SimCC(sigma=(4.9, 0.0))
    with pytest.raises(ValueError, match="visible"):
        UDPHeatmap().encode(np.zeros((17, 2)), np.ones(16))
