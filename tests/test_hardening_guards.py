"""Guards on what the code borrows: the private oneDNN linear probe checks values (plain and fused GELU), and image
files are recognised by OpenCV's own readers (`cv2.haveImageReader`), not by a header table of ours, and the ONNX
exporter's and hotcoco's known notices are the only warnings filtered."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from poseadapt.data.validate import check_image_file
from poseadapt.models import vit


def _fake_ops(monkeypatch: pytest.MonkeyPatch, fn) -> None:
    monkeypatch.setattr(vit.torch, "ops", SimpleNamespace(mkldnn=SimpleNamespace(_linear_pointwise=fn)))


def _honest(x, w, b, attr, scalars, algorithm):
    y = F.linear(x, w, b)
    return F.gelu(y) if attr == "gelu" else y


def test_probe_accepts_a_correct_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    if not torch.backends.mkldnn.is_available():
        pytest.skip("no oneDNN in this build")
    _fake_ops(monkeypatch, _honest)
    assert vit._onednn_linear_available() is True


@pytest.mark.parametrize(
    "kernel",
    [
        pytest.param(lambda x, w, b, a, s, al: F.linear(x, w), id="bias dropped"),
        pytest.param(lambda x, w, b, a, s, al: F.linear(x, w, b), id="gelu ignored"),
        pytest.param(
            lambda x, w, b, a, s, al: (
                F.gelu(F.linear(x, w, b), approximate="tanh") if a == "gelu" else F.linear(x, w, b)
            ),
            id="tanh gelu",
        ),
        pytest.param(lambda x, w, b, a, s, al: torch.zeros(x.shape[0], w.shape[0]), id="right shape, wrong values"),
        pytest.param(lambda x, w, b, a, s, al: F.linear(x, w, b).t(), id="transposed"),
        pytest.param(lambda *args: (_ for _ in ()).throw(TypeError("changed signature")), id="signature"),
    ],
)
def test_probe_rejects_a_kernel_that_computes_something_else(monkeypatch: pytest.MonkeyPatch, kernel) -> None:
    _fake_ops(monkeypatch, kernel)
    assert vit._onednn_linear_available() is False


def test_probe_on_this_torch_agrees_with_the_fast_path() -> None:
    # whatever the probe decided at import, the Linear's two paths give F.linear / F.gelu results
    lin = vit.Linear(7, 6).eval()
    x = torch.randn(3, 5, 7)
    with torch.inference_mode():
        torch.testing.assert_close(lin(x), F.linear(x, lin.weight, lin.bias), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(lin.forward_gelu(x), F.gelu(F.linear(x, lin.weight, lin.bias)), rtol=1e-4, atol=1e-5)


def test_image_files_are_recognised_by_opencv(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), np.full((4, 5, 3), 128, np.uint8))
    assert check_image_file(png, decode=True) is None
    # an ASCII PGM (P2): OpenCV reads it; the old header table (P5 / P6 only) refused it
    pgm = tmp_path / "b.pgm"
    pgm.write_bytes(b"P2\n2 2\n255\n0 64 128 255\n")
    assert cv2.imread(str(pgm), cv2.IMREAD_UNCHANGED) is not None
    assert check_image_file(pgm, decode=True) is None
    # text under an image name, and a file of zeros
    fake = tmp_path / "c.jpg"
    fake.write_text("not an image at all")
    assert "not a readable image" in check_image_file(fake, decode=False)
    zeros = tmp_path / "d.png"
    zeros.write_bytes(bytes(64))
    assert "not a readable image" in check_image_file(zeros, decode=False)
    # a recognised header whose body is cut off: only decoding catches it
    cut = tmp_path / "e.png"
    cut.write_bytes(png.read_bytes()[:20])
    assert check_image_file(cut, decode=False) is None
    assert check_image_file(cut, decode=True).startswith("corrupt PNG image")
    (tmp_path / "empty.png").touch()
    assert "empty" in check_image_file(tmp_path / "empty.png", decode=False)
    assert "not found" in check_image_file(tmp_path / "missing.png", decode=False)


# ---------------------------------------------------------------- warnings: only the known ones are filtered


def test_onnx_export_silences_only_the_legacy_exporter_notices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Under warnings-as-errors the export runs (its known notices are filtered by message / module), and a warning
    of any other kind raised during the export still reaches the caller."""
    import warnings

    pytest.importorskip("onnx")
    from poseadapt.interop import onnx_export
    from poseadapt.models import create_model

    model = create_model("vit_tiny", "coco17", img_size=(64, 48))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        onnx_export.export_onnx(model, tmp_path / "a.onnx", check=False)

    real_export = torch.onnx.export

    def noisy_export(*args, **kwargs):
        warnings.warn("something else the user must see", UserWarning, stacklevel=1)
        warnings.warn("another deprecation", DeprecationWarning, stacklevel=1)
        return real_export(*args, **kwargs)

    monkeypatch.setattr(onnx_export.torch.onnx, "export", noisy_export)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        onnx_export.export_onnx(model, tmp_path / "b.onnx", check=False)
    messages = [str(w.message) for w in record]
    assert "something else the user must see" in messages and "another deprecation" in messages
    assert not any("legacy TorchScript-based" in m for m in messages)


def test_hotcoco_sigma_notice_is_the_only_hotcoco_warning_filtered(monkeypatch: pytest.MonkeyPatch):
    import warnings

    import hotcoco

    from poseadapt.evaluate.oks import coco_keypoint_stats

    gt = {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "area": 2500,
                         "iscrowd": 0, "num_keypoints": 1, "keypoints": [10, 10, 2]}],
        "categories": [{"id": 1, "name": "p", "keypoints": ["a"]}],
    }  # fmt: skip
    pred = [{"image_id": 1, "category_id": 1, "keypoints": [10, 10, 1], "score": 1.0}]
    real = hotcoco.COCOeval

    def evaluating(*args, **kwargs):  # hotcoco's own text (it says it in summarize()), then another warning
        warnings.warn(
            "hotcoco: kpt_oks_sigmas differ from the COCO defaults, which redefines OKS. Keypoint AP is no longer "
            "COCO keypoint AP.",
            UserWarning,
            stacklevel=1,
        )
        warnings.warn("hotcoco: something else", UserWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hotcoco, "COCOeval", evaluating)
    with pytest.warns(UserWarning) as record:
        assert coco_keypoint_stats(gt, pred, [0.05])["AP"] == pytest.approx(1.0)
    assert [str(w.message) for w in record] == ["hotcoco: something else"]
