"""Guards on what the code borrows: the private oneDNN linear probe checks values (plain and fused GELU), and image
files are recognised by OpenCV's own readers (`cv2.haveImageReader`), not by a header table of ours."""

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
