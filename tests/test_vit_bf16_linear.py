"""`models.vit.Linear` under CPU bf16 autocast: oneDNN's linear on bf16 operands, guarded by a probe by value."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from poseadapt.models import vit


def _fake_ops(monkeypatch: pytest.MonkeyPatch, kernel, bf16: bool = True) -> None:
    ops = SimpleNamespace(mkldnn=SimpleNamespace(_linear_pointwise=kernel, _is_mkldnn_bf16_supported=lambda: bf16))
    monkeypatch.setattr(vit.torch, "ops", ops)
    monkeypatch.setattr(vit, "_ONEDNN_LINEAR", True)


def _honest(x, w, b, attr, scalars, algorithm):
    y = F.linear(x.float(), w.float(), None if b is None else b.float())
    return (F.gelu(y) if attr == "gelu" else y).to(x.dtype)


def test_bf16_probe_accepts_a_correct_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_ops(monkeypatch, _honest)
    assert vit._onednn_bf16_linear_available() is True


@pytest.mark.parametrize(
    "kernel",
    [
        pytest.param(lambda x, w, b, a, s, al: _honest(x, w, None, a, s, al), id="bias dropped"),
        pytest.param(lambda x, w, b, a, s, al: _honest(x, w, b, "none", s, al), id="gelu ignored"),
        pytest.param(lambda x, w, b, a, s, al: _honest(x, w, b, a, s, al).float(), id="fp32 output"),
        pytest.param(lambda x, w, b, a, s, al: torch.zeros(x.shape[0], w.shape[0], dtype=x.dtype), id="wrong values"),
        pytest.param(lambda *args: (_ for _ in ()).throw(RuntimeError("no bf16 kernel")), id="raises"),
    ],
)
def test_bf16_probe_rejects_a_kernel_that_computes_something_else(monkeypatch: pytest.MonkeyPatch, kernel) -> None:
    _fake_ops(monkeypatch, kernel)
    assert vit._onednn_bf16_linear_available() is False


def test_bf16_probe_needs_bf16_support(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_ops(monkeypatch, _honest, bf16=False)
    assert vit._onednn_bf16_linear_available() is False


@pytest.mark.parametrize("bias", [True, False])
def test_linear_under_bf16_autocast_matches_autocast_linear(bias: bool) -> None:
    # whatever the probe decided on this machine, both methods give autocast's F.linear / F.gelu to bf16 rounding
    torch.manual_seed(0)
    lin = vit.Linear(64, 96, bias=bias).eval()
    x = torch.randn(2, 50, 64)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = F.linear(x, lin.weight, lin.bias)
        got, got_gelu = lin(x), lin.forward_gelu(x)
        want_gelu = F.gelu(want)
    assert got.dtype == got_gelu.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(got_gelu.float(), want_gelu.float(), rtol=2e-2, atol=2e-2)


def test_bf16_path_only_for_bf16_inference() -> None:
    lin = vit.Linear(8, 4).eval()
    x = torch.randn(3, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not lin._bf16_path(x)  # gradients on: training takes autocast's own path
        with torch.no_grad():
            assert lin._bf16_path(x) == vit._ONEDNN_LINEAR_BF16
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        assert not lin._bf16_path(x)
    with torch.no_grad():
        assert not lin._bf16_path(x)


def test_weights_changed_in_place_are_used_at_once() -> None:
    lin = vit.Linear(8, 4).eval()
    x = torch.randn(3, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        lin(x)
        lin.weight.data.mul_(2.0)  # `.data` does not bump the version counter: nothing may be cached on it
        lin.bias.data.zero_()
        got = lin(x)
        want = F.linear(x, lin.weight, lin.bias)
    torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-2)
