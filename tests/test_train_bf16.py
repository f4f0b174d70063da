"""bf16 autocast on CPU: `amp: auto` follows the CPU's native bf16 support (and one-off parity and speed checks), and a
few bf16 training steps and a bf16 validation agree with fp32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from poseadapt.train import engine, recipe_from_dict
from poseadapt.train.build import build_dataset, build_model, build_trainer
from poseadapt.train.hooks import Hook
from poseadapt.train.validate import evaluate_ap, predict_topdown

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


def test_auto_follows_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert engine.resolve_amp("auto", CPU) is False
    monkeypatch.setattr(engine, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    monkeypatch.setattr(engine, "cpu_bf16_speedup", lambda: 2.0)
    assert engine.resolve_amp("auto", CPU) is engine.cpu_bf16_parity()
    monkeypatch.setattr(engine, "cpu_bf16_speedup", lambda: 0.6)  # flags say yes, bf16 GEMMs run at half speed
    assert engine.resolve_amp("auto", CPU) is False
    monkeypatch.setattr(engine, "cpu_bf16_speedup", lambda: 2.0)
    monkeypatch.setattr(engine, "cpu_flags", lambda: {"amx_bf16", "amx_tile"})
    monkeypatch.setattr(engine, "cpu_bf16_parity", lambda: False)  # flags say yes, the parity check says no
    assert engine.resolve_amp("auto", CPU) is False
    assert engine.resolve_amp(True, CPU) is True and engine.resolve_amp(False, CPU) is False


def test_parity_and_speed_checks_leave_the_global_rng_alone() -> None:
    engine.cpu_bf16_parity.cache_clear()
    engine.cpu_bf16_speedup.cache_clear()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    assert isinstance(engine.cpu_bf16_parity(), bool)
    speedup = engine.cpu_bf16_speedup()
    assert 0.0 < speedup < 100.0  # a ratio of two measured GEMM times (about 0.6 on a CPU emulating bf16, 2+ native)
    assert torch.equal(torch.rand(3), expected)


def test_cpu_flags_are_read_on_linux() -> None:
    if not Path("/proc/cpuinfo").is_file():
        pytest.skip("no /proc/cpuinfo")
    flags = engine.cpu_flags()
    assert flags and ("sse2" in flags or "fp" in flags or "asimd" in flags)  # x86 or arm


class Losses(Hook):
    name = "losses"

    def __init__(self) -> None:
        self.values: list[float] = []

    def after_step(self, trainer: Any, logs: dict[str, Any]) -> None:
        self.values.append(float(logs["losses"]["loss"]))


def _run(tiny_recipe: dict, out: Path, amp: bool) -> tuple[list[float], Any]:
    recipe = dict(tiny_recipe, train={**tiny_recipe["train"], "amp": amp, "max_iters": 4})
    recipe["schedule"] = {**recipe["schedule"], "epochs": 2}
    hook = Losses()
    trainer = build_trainer(recipe_from_dict(recipe), out, hooks=(hook,))
    assert trainer.autocast is amp
    trainer.fit()
    return hook.values, trainer


def test_bf16_training_steps_track_fp32(tmp_path: Path, tiny_recipe: dict) -> None:
    fp32, t32 = _run(tiny_recipe, tmp_path / "fp32", False)
    bf16, t16 = _run(tiny_recipe, tmp_path / "bf16", True)
    assert len(fp32) == len(bf16) == 4
    assert all(np.isfinite(bf16))
    # same data, same initial weights: bf16 rounding moves each step's loss by well under 5%
    np.testing.assert_allclose(bf16, fp32, rtol=0.05)
    # and the weights stay close after 4 steps (fp32 master weights; only the compute is bf16)
    a, b = t32.module.state_dict(), t16.module.state_dict()
    for key in ("heads.coco17.final_layer.weight", "backbone.blocks.0.attn.qkv.weight"):
        assert torch.isfinite(b[key]).all()
        rel = (a[key] - b[key]).norm() / a[key].norm()
        assert rel < 0.05, (key, float(rel))


def test_bf16_validation_matches_fp32(tiny_recipe: dict) -> None:
    tiny_recipe["data"]["val"] = {"synth": {"population": "adult", "n": 6, "size": 96, "seed": 4}}
    recipe = recipe_from_dict(tiny_recipe)
    model = build_model(recipe).eval()
    val = build_dataset(recipe.data.val, "data.val", model, 0, recipe.data.padding, False, 0)
    # raw outputs: the bf16 forward of the validation crops is within a few percent of fp32
    x = torch.stack([torch.from_numpy(val[i]["image"]) for i in range(len(val))]).permute(0, 3, 1, 2)
    with torch.no_grad():
        ref = model(model.normalize(x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(model.normalize(x)).float()
    assert ((low - ref).norm() / ref.norm()) < 0.05
    # decoded predictions through the validation path: finite, in the image, and mostly the same pixels
    p32 = predict_topdown(model, val, flip_test=False)
    p16 = predict_topdown(model, val, flip_test=False, autocast=True)
    k32, k16 = np.asarray(p32.keypoints), np.asarray(p16.keypoints)
    assert np.isfinite(k16).all() and k16.shape == k32.shape
    assert np.median(np.abs(k16[..., :2] - k32[..., :2])) <= 2.0
    ap32 = evaluate_ap(model, val, flip_test=False)["AP"]
    ap16 = evaluate_ap(model, val, flip_test=False, autocast=True)["AP"]
    assert ap16 == pytest.approx(ap32, abs=0.1)
