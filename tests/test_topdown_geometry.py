"""Top-down geometry and augmentation: the crop puts every pixel exactly where the UDP affine says.

Image-side checks use float32 images (with uint8 pixels the 8-bit values, not the geometry, limit positions to
~3e-3 px): the crop is compared pixel for pixel with bilinear interpolation at exactly matrix^-1(output pixel), and
the centroid of a Gaussian blob drawn at a sub-pixel position must land on the matrix's image of that position.
"""

import math

import cv2
import numpy as np
import pytest

from poseadapt.codecs import UDPHeatmap
from poseadapt.data.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CoarseOcclusion,
    PhotometricDistortion,
    RandomBBoxTransform,
    RandomBlur,
    RandomFlip,
    RandomGrayscale,
    RandomHalfBody,
    TopDownAffine,
    TopDownSample,
    ToTensor,
    body_halves,
    build_transforms,
    flip_sample,
    run_transforms,
    split_stages,
)
from poseadapt.data.topdown import (
    box_to_center_scale,
    compose_affine,
    crop,
    flip_matrix,
    input_to_image,
    invert_affine,
    udp_warp_matrix,
    warp_points,
)
from poseadapt.errors import PoseAdaptError
from poseadapt.schemas import get_schema

COCO = get_schema("coco17")
INPUT = (192, 256)
IMAGE_W, IMAGE_H = 640, 480

# A person facing the camera: their left side is on the image's right (larger x).
FRONTAL_POSE = np.array(
    [
        [320, 100],  # nose
        [330, 90],
        [310, 90],  # eyes (left, right)
        [342, 95],
        [298, 95],  # ears
        [360, 150],
        [280, 150],  # shoulders
        [375, 210],
        [265, 210],  # elbows
        [380, 265],
        [260, 265],  # wrists
        [345, 280],
        [295, 280],  # hips
        [350, 360],
        [290, 360],  # knees
        [352, 430],
        [288, 430],  # ankles
    ],
    dtype=np.float64,
)


def make_sample(image=None, visible=None, rotation=0.0):
    image = np.zeros((IMAGE_H, IMAGE_W, 3), np.uint8) if image is None else image
    v = np.full(17, 2.0) if visible is None else np.asarray(visible, dtype=np.float64)
    kpts = np.concatenate([FRONTAL_POSE, v[:, None]], axis=1)
    center, scale = box_to_center_scale([250, 80, 140, 360], INPUT[0] / INPUT[1])
    return TopDownSample(image=image, keypoints=kpts, center=center, scale=scale, schema=COCO, rotation=rotation)


def blob_image(point, sigma, shape=(IMAGE_H, IMAGE_W)):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.exp(-((xx - point[0]) ** 2 + (yy - point[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


def centroid(image):
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    mass = image.sum(dtype=np.float64)
    return np.array([(image * xx).sum(dtype=np.float64), (image * yy).sum(dtype=np.float64)]) / mass


# ------------------------------------------------------------------------------------------ box and matrix
def test_box_to_center_scale_pads_and_fixes_aspect():
    center, scale = box_to_center_scale(np.array([[10, 20, 100, 200], [0, 0, 300, 100]]), 0.75, padding=1.25)
    np.testing.assert_allclose(center, [[60, 120], [150, 50]])
    # tall box: width grows to 0.75 * 200; wide box: height grows to 300 / 0.75; both then x 1.25
    np.testing.assert_allclose(scale, [[187.5, 250.0], [375.0, 500.0]])
    c1, s1 = box_to_center_scale([10, 20, 100, 200], 0.75)
    assert c1.shape == (2,) and s1.shape == (2,)


def test_udp_matrix_maps_box_edges_to_first_and_last_pixel_centres():
    center, scale = np.array([300.3, 211.9]), np.array([123.4, 164.5])
    m = udp_warp_matrix(center, scale, 0.0, INPUT)
    corners = np.array([center - scale / 2, center + scale / 2, center])
    np.testing.assert_allclose(warp_points(corners, m), [[0, 0], [191, 255], [95.5, 127.5]], atol=1e-12)


def test_rotation_turns_about_the_box_centre_in_the_documented_direction():
    center, scale = np.array([320.0, 240.0]), np.array([150.0, 200.0])
    m0 = udp_warp_matrix(center, scale, 0.0, INPUT)
    for angle in (-80.0, -33.3, 17.0, 90.0):
        m = udp_warp_matrix(center, scale, angle, INPUT)
        np.testing.assert_allclose(warp_points(center, m), [95.5, 127.5], atol=1e-12)
        # undo the per-axis scaling: what remains is a rotation by +angle (image y down) of (p - c)
        k = np.array([191 / 150.0, 255 / 200.0])
        offsets = np.array([[0.0, -50.0], [40.0, 0.0], [13.0, 27.0]])
        got = (warp_points(center + offsets, m) - [95.5, 127.5]) / k
        rad = math.radians(angle)
        rot = np.array([[math.cos(rad), -math.sin(rad)], [math.sin(rad), math.cos(rad)]])
        np.testing.assert_allclose(got, offsets @ rot.T, atol=1e-9)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(offsets, axis=1), atol=1e-9)
    # 90 degrees: a point above the centre goes to the right of the crop centre
    up = warp_points(center + [0, -50], udp_warp_matrix(center, scale, 90.0, INPUT)) - warp_points(center, m0)
    assert up[0] > 60 and abs(up[1]) < 1e-9


def test_invert_compose_and_map_back():
    m = udp_warp_matrix([311.0, 207.0], [180.0, 240.0], 23.0, INPUT)
    pts = np.random.default_rng(0).uniform(0, 400, size=(50, 2))
    np.testing.assert_allclose(warp_points(warp_points(pts, m), invert_affine(m)), pts, atol=1e-9)
    np.testing.assert_allclose(
        input_to_image(warp_points(pts, m), [311.0, 207.0], [180.0, 240.0], 23.0, INPUT), pts, atol=1e-9
    )
    f = flip_matrix(IMAGE_W)
    np.testing.assert_allclose(compose_affine(f, f), [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(warp_points(pts, compose_affine(m, f)), warp_points(warp_points(pts, f), m), atol=1e-9)


def test_map_back_agrees_with_the_codec_for_unrotated_boxes():
    codec = UDPHeatmap(input_size=INPUT, heatmap_size=(48, 64))
    rng = np.random.default_rng(1)
    for _ in range(5):
        center, scale = rng.uniform(100, 400, 2), rng.uniform(50, 300, 2)
        pts = rng.uniform(-10, 260, size=(17, 2))
        ours = input_to_image(pts, center, scale, 0.0, INPUT)
        np.testing.assert_allclose(ours, codec.to_image(pts, center, scale), atol=1e-9)


# ------------------------------------------------------------------------------------------ pixels land exactly
def bilinear_reference(image, matrix, size):
    """Independent bilinear resampling of a single-channel image at exactly matrix^-1 (output pixel), zero outside."""
    w, h = size
    inv = invert_affine(matrix)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    sx, sy = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2], inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = sx - x0, sy - y0
    rows, cols = image.shape

    def at(y, x):
        inside = (x >= 0) & (x < cols) & (y >= 0) & (y < rows)
        return np.where(inside, image[np.clip(y, 0, rows - 1), np.clip(x, 0, cols - 1)], 0.0)

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


@pytest.mark.parametrize("rotation", [0.0, 31.7, -64.2])
@pytest.mark.parametrize("flipped", [False, True])
@pytest.mark.parametrize("magnification", [0.6, 1.02, 1.7])
def test_crop_samples_the_image_exactly_where_the_affine_says(rotation, flipped, magnification):
    # Pixel for pixel, the crop must equal bilinear interpolation at exactly matrix^-1(output pixel). A sub-pixel
    # misplacement d would leave a residual ~ grad . d, so the least-squares d is the crop's position error.
    point = np.array([321.37, 236.81])
    image = blob_image(point, sigma=8.0)
    scale = np.array([191.0, 255.0]) / magnification
    sample = TopDownSample(
        image=image, keypoints=np.array([[*point, 2.0]]), center=point + 4.2, scale=scale, schema=COCO
    )
    sample.rotation = rotation
    if flipped:
        sample = flip_sample(sample, np.array([0]))
    sample = TopDownAffine(INPUT)(sample)
    reference = bilinear_reference(image.astype(np.float64), sample.matrix, INPUT)
    residual = sample.image.astype(np.float64) - reference
    gy, gx = np.gradient(reference)
    shift = np.linalg.lstsq(np.stack([gx.ravel(), gy.ravel()], 1), residual.ravel(), rcond=None)[0]
    assert np.abs(residual).max() < 1e-4
    assert np.abs(shift).max() < 1e-3
    # the keypoint went through the same map as the pixels
    np.testing.assert_allclose(sample.keypoints[0, :2], warp_points(point, sample.matrix), atol=1e-9)


@pytest.mark.parametrize("rotation", [0.0, 31.7, -64.2])
@pytest.mark.parametrize("flipped", [False, True])
def test_subpixel_blob_lands_where_the_affine_says(rotation, flipped):
    # Centroid check for the usual case, a person larger than the input (the crop shrinks the image by 0.55-0.85).
    # At magnifications near 1, 1/2, 2/3 the discrete centroid of *any* bilinearly resampled blob is biased by up to
    # ~0.03 / sigma px (the interpolant's kinks alias onto the output grid), which is why the exact-position check
    # above compares pixels instead. A scan of 124 crops in this range put the worst centroid error at 6e-4 px.
    rng = np.random.default_rng(int(abs(rotation) * 10) + flipped)
    for _ in range(3):
        point = rng.uniform([280, 200], [360, 280])
        center = point + rng.uniform(-10, 10, 2)
        scale = np.array([191.0, 255.0]) / rng.uniform(0.55, 0.85)
        image = blob_image(point, sigma=12.0)
        sample = TopDownSample(
            image=image, keypoints=np.array([[*point, 2.0]]), center=center, scale=scale, schema=COCO
        )
        sample.rotation = rotation
        if flipped:
            sample = flip_sample(sample, np.array([0]))
        sample = TopDownAffine(INPUT)(sample)
        expected = warp_points(point, sample.matrix)
        assert np.abs(centroid(sample.image) - expected).max() < 1e-3
        np.testing.assert_allclose(sample.keypoints[0, :2], expected, atol=1e-9)


def test_crop_function_matches_the_matrix_on_a_blob():
    point, center, scale = np.array([301.37, 222.81]), np.array([310.0, 230.0]), np.array([180.0, 240.0])
    out = crop(blob_image(point, 5.0), center, scale, 12.5, INPUT)
    assert out.shape == (256, 192)
    expected = warp_points(point, udp_warp_matrix(center, scale, 12.5, INPUT))
    assert np.abs(centroid(out) - expected).max() < 1e-3


# ------------------------------------------------------------------------------------------ flip
def test_flip_twice_is_identity():
    sample = make_sample(rotation=21.0)
    before = (sample.keypoints.copy(), sample.center.copy(), sample.rotation)
    flip_index = np.asarray(COCO.flip_index)
    sample = flip_sample(flip_sample(sample, flip_index), flip_index)
    assert not sample.flipped
    np.testing.assert_array_equal(sample.keypoints, before[0])
    np.testing.assert_array_equal(sample.center, before[1])
    assert sample.rotation == before[2]


def test_flip_swaps_labels_and_keeps_a_valid_pose():
    flipped = flip_sample(make_sample(), np.asarray(COCO.flip_index))
    for left, right in COCO.flip_pairs:
        li, ri = COCO.index(left), COCO.index(right)
        # the point now called "left" is the mirror of the old "right" ...
        np.testing.assert_allclose(flipped.keypoints[li, :2], [IMAGE_W - 1 - FRONTAL_POSE[ri, 0], FRONTAL_POSE[ri, 1]])
        # ... so a frontal person still has their left side on the image's right
        assert flipped.keypoints[li, 0] > flipped.keypoints[ri, 0]
    nose = COCO.index("nose")
    assert flipped.keypoints[nose, 0] == IMAGE_W - 1 - FRONTAL_POSE[nose, 0]


def test_flipped_crop_is_the_exact_mirror_of_the_unflipped_crop():
    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.random((IMAGE_H, IMAGE_W, 3)).astype(np.float32), (0, 0), 3)
    for rotation in (0.0, 27.0):
        plain = TopDownAffine(INPUT)(make_sample(texture.copy(), rotation=rotation))
        mirrored = TopDownAffine(INPUT)(
            flip_sample(make_sample(texture.copy(), rotation=rotation), np.asarray(COCO.flip_index))
        )
        # bilinear weights are quantised to 1/32 px, so mirrored pixels agree to a small fraction of the range
        assert np.abs(mirrored.image - plain.image[:, ::-1]).max() < 5e-3
        expected = plain.keypoints[list(COCO.flip_index)]
        expected[:, 0] = INPUT[0] - 1 - expected[:, 0]
        np.testing.assert_allclose(mirrored.keypoints, expected, atol=1e-9)


# ------------------------------------------------------------------------------------------ codec round trip
def test_crop_encode_decode_to_image_returns_image_coordinates():
    # no decode blur: DARK's Newton step is then exact on a Gaussian, so what remains is the geometry
    codec = UDPHeatmap(input_size=INPUT, heatmap_size=(48, 64), blur_kernel_size=1)
    rng = np.random.default_rng(5)
    for _ in range(4):
        sample = make_sample()
        sample.scale = sample.scale * rng.uniform(1.0, 1.3)
        sample.center = sample.center + rng.uniform(-10, 10, 2)
        sample = TopDownAffine(INPUT)(sample)
        heatmaps, weights = codec.encode(sample.keypoints[:, :2], sample.keypoints[:, 2])
        assert weights.all()
        decoded, _ = codec.decode(heatmaps)
        back = codec.to_image(decoded[0], sample.center, sample.scale)
        assert np.abs(back - FRONTAL_POSE).max() < 1e-3
    # with the default DARK-UDP blur the decode itself costs ~3e-3 input px
    default = UDPHeatmap(input_size=INPUT, heatmap_size=(48, 64))
    decoded, _ = default.decode(default.encode(sample.keypoints[:, :2], sample.keypoints[:, 2])[0])
    assert np.abs(default.to_image(decoded[0], sample.center, sample.scale) - FRONTAL_POSE).max() < 0.02


# ------------------------------------------------------------------------------------------ augmentation
def full_pipeline():
    return build_transforms(
        [
            {"type": "RandomFlip", "prob": 0.5},
            {"type": "RandomHalfBody", "prob": 0.5},
            {"type": "RandomBBoxTransform"},
            {"type": "PhotometricDistortion"},
            {"type": "RandomBlur", "prob": 0.5},
            {"type": "CoarseOcclusion"},
            {"type": "ToTensor"},
        ]
    )


def textured_image(seed=0):
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (IMAGE_W, IMAGE_H))


def test_augmentation_is_deterministic_for_a_seed():
    image = textured_image()
    outs = []
    for seed in (7, 7, 8):
        s = run_transforms(make_sample(image), full_pipeline(), np.random.default_rng(seed), INPUT)
        outs.append(s)
    assert outs[0].image.dtype == np.float32 and outs[0].image.shape == (3, 256, 192)
    np.testing.assert_array_equal(outs[0].image, outs[1].image)
    np.testing.assert_array_equal(outs[0].keypoints, outs[1].keypoints)
    assert (outs[0].rotation, outs[0].flipped) == (outs[1].rotation, outs[1].flipped)
    assert not np.array_equal(outs[0].image, outs[2].image)


def test_keypoints_follow_the_image_through_random_geometry():
    # blobs drawn at two keypoints must sit under the transformed keypoints after random flip / shift / scale / rotate
    yy, xx = np.mgrid[0:IMAGE_H, 0:IMAGE_W]
    left_hip, right_hip = COCO.index("left_hip"), COCO.index("right_hip")
    image = np.zeros((IMAGE_H, IMAGE_W, 2), np.float32)
    for channel, k in enumerate((left_hip, right_hip)):
        p = FRONTAL_POSE[k]
        image[..., channel] = np.exp(-((xx - p[0]) ** 2 + (yy - p[1]) ** 2) / (2 * 12.0**2))
    # the crop shrinks by 0.57-0.81 here, away from the resampling resonances (see the centroid test above)
    bbox = RandomBBoxTransform(shift_factor=0.05, shift_prob=1.0, rotate_prob=1.0, scale_range=(0.7, 1.0))
    seen_flip = set()
    for seed in range(8):
        s = run_transforms(make_sample(image.copy()), [RandomFlip(prob=0.5), bbox], np.random.default_rng(seed), INPUT)
        seen_flip.add(s.flipped)
        for channel, k in enumerate((left_hip, right_hip)):
            # after a flip the blob of the original left hip is labelled right hip
            label = COCO.flip_index[k] if s.flipped else k
            assert np.abs(centroid(s.image[..., channel]) - s.keypoints[label, :2]).max() < 1e-3
    assert seen_flip == {False, True}


def test_half_body_picks_a_valid_subset():
    upper, lower = body_halves(COCO)
    assert list(upper) == list(range(11)) and list(lower) == list(range(11, 17))
    half = RandomHalfBody(prob=1.0)
    rng = np.random.default_rng(0)
    picked = {"upper": 0, "lower": 0}
    for _ in range(200):
        visible = (rng.random(17) < 0.8).astype(float) * 2
        sample = make_sample(visible=visible)
        chosen = half.select(sample, rng)
        if visible.sum() / 2 < 9:  # mmpose 1.x min_total_keypoints
            assert chosen is None
            continue
        if chosen is None:  # both halves too sparse
            assert (visible[upper] > 0).sum() < 2 and (visible[lower] > 0).sum() < 3
            continue
        assert (visible[chosen] > 0).all()
        assert set(chosen) <= set(upper) or set(chosen) <= set(lower)
        name = "upper" if set(chosen) <= set(upper) else "lower"
        picked[name] += 1
        assert len(chosen) >= (2 if name == "upper" else 3)
    assert picked["upper"] > picked["lower"] > 10  # upper preferred with p 0.7

    sample = half(make_sample(), np.random.default_rng(1))
    kept = FRONTAL_POSE[upper] if sample.center[1] < 200 else FRONTAL_POSE[lower]
    np.testing.assert_allclose(sample.center, kept.mean(axis=0))
    np.testing.assert_allclose(sample.scale, (kept.max(axis=0) - kept.min(axis=0)) * 1.5)


def test_half_body_needs_enough_labelled_points():
    visible = np.zeros(17)
    visible[:7] = 2
    before = make_sample(visible=visible)
    after = RandomHalfBody(prob=1.0)(make_sample(visible=visible), np.random.default_rng(0))
    np.testing.assert_array_equal(after.center, before.center)
    np.testing.assert_array_equal(after.scale, before.scale)


def test_bbox_transform_follows_the_vitpose_distribution():
    t = RandomBBoxTransform()
    rng = np.random.default_rng(0)
    factors, angles, shifts = [], [], []
    for _ in range(2000):
        s = t(make_sample(), rng)
        base = make_sample()
        factors.append(s.scale[0] / base.scale[0])
        angles.append(s.rotation)
        shifts.append(np.abs(s.center - base.center).max() > 0)
    factors, angles = np.array(factors), np.array(angles)
    assert factors.min() >= 0.5 and factors.max() <= 1.5 and abs(np.median(factors) - 1.0) < 0.05
    assert np.abs(angles).max() <= 80.0
    assert abs((angles != 0).mean() - 0.6) < 0.05
    assert abs(np.mean(shifts) - 0.3) < 0.05


def test_photometric_lut_matches_the_formula_and_keeps_keypoints():
    sample = TopDownAffine(INPUT)(make_sample(textured_image()))
    original, kpts = sample.image.copy(), sample.keypoints.copy()
    out = PhotometricDistortion.apply(original, 17.3, 1.2, 1.0, 0.0)
    expected = np.clip(np.rint((original.astype(np.float64) + 17.3) * 1.2), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    t = PhotometricDistortion(prob=1.0)
    for seed in range(20):
        brightness, contrast, saturation, hue = t.draw(np.random.default_rng(seed))
        assert abs(brightness) <= 32 and 0.5 <= contrast <= 1.5 and 0.5 <= saturation <= 1.5 and abs(hue) <= 18
    jittered = t(sample, np.random.default_rng(0))
    assert jittered.image.dtype == np.uint8 and not np.array_equal(jittered.image, original)
    np.testing.assert_array_equal(jittered.keypoints, kpts)
    assert PhotometricDistortion(prob=0.0).draw(np.random.default_rng(0)) == (0.0, 1.0, 1.0, 0.0)


def test_hue_and_saturation_act_in_hsv():
    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0] = 200  # pure red: hue 0, saturation 255
    green = PhotometricDistortion.apply(image, 0.0, 1.0, 1.0, 60.0)  # OpenCV hue units: 60 = 120 degrees
    np.testing.assert_array_equal(green[0, 0], [0, 200, 0])
    grey = PhotometricDistortion.apply(image, 0.0, 1.0, 0.0, 0.0)
    np.testing.assert_array_equal(grey[0, 0], [200, 200, 200])


def test_grayscale_is_luma_in_every_channel_inverted_on_request_and_keeps_labels():
    sample = TopDownAffine(INPUT)(make_sample(textured_image()))
    original, kpts = sample.image.copy(), sample.keypoints.copy()
    luma = np.rint(original.astype(np.float64) @ [0.299, 0.587, 0.114])
    for invert, expected in ((0.0, luma), (1.0, 255 - luma)):
        s = TopDownAffine(INPUT)(make_sample(textured_image()))
        out = RandomGrayscale(prob=1.0, invert_prob=invert)(s, np.random.default_rng(0))
        assert np.abs(out.image[..., 0].astype(np.float64) - expected).max() <= 1
        assert (out.image == out.image[..., :1]).all()
        np.testing.assert_array_equal(out.keypoints, kpts)
    applied = [
        not np.array_equal(
            RandomGrayscale(prob=0.3)(TopDownAffine(INPUT)(make_sample(textured_image())), rng).image, original
        )
        for rng in (np.random.default_rng(i) for i in range(200))
    ]
    assert abs(np.mean(applied) - 0.3) < 0.08
    with pytest.raises(PoseAdaptError, match="invert_prob must be in"):
        build_transforms([{"type": "RandomGrayscale", "invert_prob": 1.5}])


def test_occlusion_paints_a_rectangle_and_keeps_labels():
    sample = TopDownAffine(INPUT)(make_sample(textured_image()))
    kpts, before = sample.keypoints.copy(), sample.image.copy()
    out = CoarseOcclusion(prob=1.0, noise_prob=0.0)(sample, np.random.default_rng(2))
    changed = np.any(out.image != before, axis=2)
    ys, xs = np.nonzero(changed)
    area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    assert 0.04 * 256 * 192 * 0.5 < area < 0.16 * 256 * 192 * 1.1
    assert np.all(out.image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] == out.image[ys.min(), xs.min()])
    np.testing.assert_array_equal(out.keypoints, kpts)


def test_blur_does_not_move_a_blob():
    image = (blob_image([95.3, 127.6], 4.0, shape=(256, 192)) * 255).astype(np.uint8)[..., None].repeat(3, axis=2)
    for motion_prob in (0.0, 1.0):
        sample = TopDownSample(image=image, keypoints=np.zeros((17, 3)), center=[0, 0], scale=[1, 1], schema=COCO)
        sample.cropped = True
        out = RandomBlur(prob=1.0, motion_prob=motion_prob)(sample, np.random.default_rng(4)).image
        assert not np.array_equal(out, image)
        shift = centroid(out[..., 0].astype(np.float64)) - centroid(image[..., 0].astype(np.float64))
        assert np.abs(shift).max() < 0.05


def test_to_tensor_normalises_with_imagenet_statistics():
    image = np.random.default_rng(0).integers(0, 256, (256, 192, 3), dtype=np.uint8)
    sample = TopDownSample(image=image, keypoints=np.zeros((17, 3)), center=[0, 0], scale=[1, 1], schema=COCO)
    sample.cropped = True
    out = ToTensor()(sample).image
    expected = (image.astype(np.float64) - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(out, expected.transpose(2, 0, 1), atol=1e-5)


def test_transform_lists_are_validated():
    with pytest.raises(PoseAdaptError, match="must come before"):
        split_stages([PhotometricDistortion(), RandomFlip()])
    with pytest.raises(PoseAdaptError, match="unknown transform"):
        build_transforms([{"type": "RandomFlop"}])
    with pytest.raises(PoseAdaptError, match="RandomFlip"):
        build_transforms([{"type": "RandomFlip", "prob": 2.0}])
    box, pixel = split_stages(full_pipeline())
    assert [type(t).__name__ for t in box] == ["RandomFlip", "RandomHalfBody", "RandomBBoxTransform"]
    assert type(pixel[-1]) is ToTensor
