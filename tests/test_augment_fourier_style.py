"""FourierStyle (FDA): a crop takes a target frame's global look and keeps its own edges and labels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from poseadapt.data.augment import FourierStyle, TopDownSample, build_transforms
from poseadapt.data.fourier_style import STYLE_MAX_SIDE, fourier_style, load_style_frames, style_amplitude
from poseadapt.data.topdown import box_to_center_scale
from poseadapt.errors import PoseAdaptError
from poseadapt.schemas import get_schema

W, H = 48, 64


def scene(seed: int, level: float, spread: float) -> np.ndarray:
    """An RGB image around `level`: smooth structure plus pixel texture, of amplitude `spread` (no clipping)."""
    rng = np.random.default_rng(seed)
    small = cv2.resize(rng.uniform(-1, 1, (6, 5, 3)), (W, H), interpolation=cv2.INTER_CUBIC)
    fine = rng.uniform(-0.3, 0.3, (H, W, 3))  # pixel-scale texture: what FDA must leave alone
    return np.clip(level + spread * (small + fine), 0, 255).astype(np.uint8)


def high_pass(image: np.ndarray) -> np.ndarray:
    gray = image.astype(np.float64).mean(-1)
    return gray - cv2.GaussianBlur(gray, (0, 0), 1.5)


@pytest.fixture
def frames(tmp_path):
    """A folder of three dark, flat target frames (a thermal camera's night background), one of them large."""
    folder = tmp_path / "target"
    folder.mkdir()
    for i, size in enumerate([(120, 90), (90, 120), (900, 700)]):
        cv2.imwrite(str(folder / f"frame{i}.png"), np.full((*size[::-1], 3), 30 + 5 * i, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_the_crop_takes_the_frames_brightness_and_keeps_its_own_edges():
    source = scene(0, 190, 40)
    target = np.full((H, W, 3), 80, np.uint8)
    out = fourier_style(source, style_amplitude(target, (W, H)), beta=0.05)
    assert out.dtype == np.uint8 and out.shape == source.shape
    # the mean is the zero-frequency amplitude: it is the target's now, in every channel
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), 80, atol=1.5)
    assert abs(source.mean() - 80) > 100
    # the phase and the high frequencies are the source's: its fine structure is intact
    assert np.corrcoef(high_pass(out).ravel(), high_pass(source).ravel())[0, 1] > 0.95
    # in the spectrum: inside the centred window the amplitude is the target's, outside it the source's
    style = scene(1, 80, 40)
    out = fourier_style(source, style_amplitude(style, (W, H)), beta=0.1)
    spectrum = {k: np.abs(np.fft.fftshift(np.fft.fft2(v.astype(float), axes=(0, 1)), axes=(0, 1)))
                for k, v in (("out", out), ("source", source), ("style", style))}  # fmt: skip
    inside = np.zeros((H, W), bool)
    inside[H // 2 - 4 : H // 2 + 5, W // 2 - 4 : W // 2 + 5] = True  # half-width floor(48 x 0.1) = 4 bins
    for region, reference in ((inside, "style"), (~inside, "source")):
        error = np.abs(spectrum["out"][region] - spectrum[reference][region]).sum()
        assert error < 0.05 * spectrum[reference][region].sum(), (reference, error)


def test_the_transform_keeps_the_labels_applies_at_its_rate_and_loads_frames_small(frames):
    t = FourierStyle(images=str(frames), beta=0.05, prob=0.4)
    assert len(t._frames) == 3 and max(max(f.shape[:2]) for f in t._frames) <= STYLE_MAX_SIDE
    schema = get_schema("coco17")
    keypoints = np.concatenate([np.random.default_rng(0).uniform(5, 40, (17, 2)), np.full((17, 1), 2.0)], 1)
    center, scale = box_to_center_scale([0, 0, W, H], W / H)
    changed = []
    for seed in range(200):
        sample = TopDownSample(image=scene(seed, 170, 40), keypoints=keypoints.copy(), center=center, scale=scale,
                               schema=schema, cropped=True)  # fmt: skip
        before = sample.image.copy()
        out = t(sample, np.random.default_rng(seed))
        np.testing.assert_array_equal(out.keypoints, keypoints)
        changed.append(not np.array_equal(out.image, before))
        if changed[-1]:
            assert out.image.mean() < 60  # the dark frames' look
    assert abs(np.mean(changed) - 0.4) < 0.08
    assert len(load_style_frames(frames, limit=2)) == 2


def test_bad_options_are_one_line(tmp_path, frames):
    def build(**options):
        return build_transforms([{"type": "FourierStyle", **options}])

    with pytest.raises(PoseAdaptError, match="image folder not found"):
        build(images=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PoseAdaptError, match="no images"):
        build(images=str(tmp_path / "empty"))
    with pytest.raises(PoseAdaptError, match="beta must be in"):
        build(images=str(frames), beta=0.0)
    with pytest.raises(PoseAdaptError, match="prob must be in"):
        build(images=str(frames), prob=2.0)
    with pytest.raises(PoseAdaptError, match="FourierStyle"):
        build()  # no images
    (frames / "broken.png").write_bytes(b"not a png")
    with pytest.raises(PoseAdaptError, match="cannot read image"):
        build(images=str(frames))
