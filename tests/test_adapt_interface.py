"""The adaptation-method interface as a user and a contributor meet it: `poseadapt methods --json`, recipe errors
in one line, a method written outside the package joining through `add_method`, and the loss with fractional
weights."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import yaml
from pydantic import Field

from poseadapt.adapt import Method, MethodOptions, StepOutputs
from poseadapt.adapt.methods import METHODS, add_method, build_methods, describe_methods
from poseadapt.cli.main import main
from poseadapt.errors import PoseAdaptError
from poseadapt.train import build_trainer, recipe_from_dict
from poseadapt.train.losses import HeatmapMSE, keypoint_mse

SHIPPED = {"full", "head_only", "freeze_blocks", "layer_decay", "head_then_full", "lora", "rehearsal", "memory_replay"}


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------- poseadapt methods
def test_methods_json_lists_every_shipped_method(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["methods", "--json"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    listed = json.loads(out)
    assert isinstance(listed, list) and SHIPPED <= {m["name"] for m in listed}
    for m in listed:
        assert {"name", "kind", "summary", "options"} <= set(m), m
        assert m["summary"] and isinstance(m["options"], list)
    by_name = {m["name"]: m for m in listed}
    assert "parameters" in by_name["lora"]["kind"] and "data" in by_name["rehearsal"]["kind"]
    lora_opts = {o["name"]: o for o in by_name["lora"]["options"]}
    assert lora_opts["r"]["default"] == 8 and not lora_opts["r"]["required"]
    assert {o["name"] for o in by_name["rehearsal"]["options"]} >= {"source", "ratio", "teacher"}
    assert {o["name"]: o["required"] for o in by_name["freeze_blocks"]["options"]} == {"blocks": True}
    assert listed == json.loads(json.dumps(describe_methods()))  # the CLI prints the table as the API describes it


# ---------------------------------------------------------------------------------------------- recipe errors
BAD_ADAPT = {
    "unknown method": ([{"lroa": {"r": 4}}], "recipe key 'adapt.0': unknown method 'lroa' (did you mean 'lora'?)"),
    "bad option key": (
        [{"head_only": None}, {"lora": {"rank": 4}}],
        "recipe key 'adapt.1.lora.rank': unknown key",
    ),
    "bad option value": ([{"lora": {"r": 0}}], "recipe key 'adapt.0.lora.r': "),
    "two parameter choices": (
        [{"lora": {"r": 4}}, {"head_only": {}}],
        "recipe key 'adapt.1.head_only': 'head_only' and 'lora' both choose which parameters train; keep one",
    ),
    "listed twice": ([{"layer_decay": {}}, {"layer_decay": {}}], "method 'layer_decay' is listed twice"),
    "not a one-key mapping": ([{"lora": {}, "head_only": {}}], "recipe key 'adapt.0': each item is one method name"),
    "rehearsal without source": ([{"rehearsal": {"ratio": 0.2}}], "recipe key 'adapt.0.rehearsal.source': required"),
}


@pytest.mark.parametrize("case", list(BAD_ADAPT))
def test_bad_adapt_items_are_one_line_naming_the_key(tiny_recipe: dict, case: str) -> None:
    items, message = BAD_ADAPT[case]
    with pytest.raises(PoseAdaptError) as exc:
        build_methods(items)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    tiny_recipe["adapt"] = items
    with pytest.raises(PoseAdaptError) as exc:  # the recipe itself refuses it, before anything is built
        recipe_from_dict(tiny_recipe)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_cli_unknown_method_is_one_line_exit_2(tmp_path: Path, tiny_recipe: dict, capsys) -> None:
    tiny_recipe["adapt"] = [{"head_then_ful": {}}]
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe))
    with pytest.raises(SystemExit) as exc:
        main(["train", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err == "error: recipe key 'adapt.0': unknown method 'head_then_ful' (did you mean 'head_then_full'?)\n"
    assert not (tmp_path / "run").exists()


def test_memory_replay_without_a_teacher_fails_before_training(tmp_path: Path, tiny_recipe: dict) -> None:
    tiny_recipe["adapt"] = [{"memory_replay": {}}]  # no teacher, no model.checkpoint
    with pytest.raises(PoseAdaptError) as exc:
        build_trainer(recipe_from_dict(tiny_recipe), tmp_path / "run")
    msg = str(exc.value)
    assert msg.startswith("recipe key 'adapt.0.memory_replay.teacher': this method needs a source model")
    assert "\n" not in msg and not (tmp_path / "run").exists()
    tiny_recipe["adapt"] = [{"memory_replay": {"teacher": str(tmp_path / "nope.safetensors")}}]
    with pytest.raises(PoseAdaptError, match="^recipe key 'adapt.0.memory_replay.teacher': file not found"):
        build_trainer(recipe_from_dict(tiny_recipe), tmp_path / "run")


# ---------------------------------------------------------------------------------------------- a new method
class FeatureNormOptions(MethodOptions):
    weight: float = Field(1.0, ge=0.0, description="scale of the penalty")


class FeatureNorm(Method):
    """What a contributor writes in one file: an L2 penalty on the backbone features."""

    name = "test_feature_norm"
    kinds: ClassVar[tuple[str, ...]] = ("losses",)
    summary = "penalise the mean squared backbone feature"
    Options = FeatureNormOptions

    def __init__(self, options: FeatureNormOptions) -> None:
        super().__init__(options)
        self.last = 0.0

    def losses(self, batch, out: StepOutputs, model) -> dict[str, torch.Tensor]:
        assert out.features.ndim == 4 and out.heatmaps.shape == batch["target"].shape
        penalty = out.features.float().pow(2).mean()
        self.last = float(penalty.detach())
        return {"l2": self.options.weight * penalty}

    def logs(self) -> dict[str, float]:
        return {"feature_sq": self.last}


@pytest.fixture
def feature_norm_method():
    add_method(FeatureNorm)
    assert add_method(FeatureNorm) is FeatureNorm  # adding the same class again is harmless
    yield FeatureNorm
    METHODS.pop(FeatureNorm.name, None)


def feature_sq(checkpoint: Path) -> float:
    from poseadapt.interop.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        return float(model.forward_features(torch.randn(4, 3, 64, 48)).pow(2).mean())


def test_a_method_from_outside_the_package_trains_from_a_recipe(
    tmp_path: Path, tiny_recipe: dict, cli_train, feature_norm_method
) -> None:
    assert FeatureNorm.name in {m["name"] for m in describe_methods()}
    tiny_recipe["schedule"]["epochs"] = 2
    tiny_recipe["data"]["train"]["synth"]["n"] = 16
    tiny_recipe["optim"]["lr"] = 2e-2  # Adam moves each weight ~lr per step: visible in 8 steps
    plain = cli_train(tiny_recipe, tmp_path / "plain")
    tiny_recipe["adapt"] = [{FeatureNorm.name: {"weight": 5.0}}]
    penalised = cli_train(tiny_recipe, tmp_path / "penalised")
    assert plain["status"] == penalised["status"] == "completed" and penalised["iteration"] == 8

    with (tmp_path / "penalised" / "train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    term = f"{FeatureNorm.name}/l2"
    assert len(rows) == 8 and all(float(r[term]) > 0 for r in rows)
    assert float(rows[0]["loss"]) > float(rows[0]["mse"]) + 0.9 * float(rows[0][term])  # the sum includes it
    adapt_log = (tmp_path / "penalised" / "adapt_log.csv").read_text()
    assert f"{FeatureNorm.name}/feature_sq" in adapt_log.splitlines()[0]
    assert "test_feature_norm" not in (tmp_path / "plain" / "train_log.csv").read_text()

    # it changed training: the penalised model's features are smaller than the plain run's, from the same start
    assert feature_sq(Path(penalised["final_checkpoint"])) < 0.95 * feature_sq(Path(plain["final_checkpoint"]))

    # an option typo in the new method is one line naming it, like any shipped method's
    tiny_recipe["adapt"] = [{FeatureNorm.name: {"weigth": 1.0}}]
    with pytest.raises(PoseAdaptError, match=rf"^recipe key 'adapt.0.{FeatureNorm.name}.weigth': unknown key$"):
        recipe_from_dict(tiny_recipe)


def test_add_method_refuses_a_clash_and_a_nameless_class() -> None:
    class Impostor(Method):
        name = "lora"

    class Nameless(Method):
        pass

    with pytest.raises(PoseAdaptError, match="a method named 'lora' exists already"):
        add_method(Impostor)
    with pytest.raises(PoseAdaptError, match="needs a `name`"):
        add_method(Nameless)
    assert METHODS["lora"].__name__ == "Lora"


# ---------------------------------------------------------------------------------------------- the loss
def test_keypoint_mse_with_fractional_weights_is_mean_of_w_times_squared_error() -> None:
    pred = torch.tensor([[[[1.0, 2.0], [0.0, 0.5]], [[0.0, 0.0], [3.0, 1.0]]]])  # (1, 2, 2, 2)
    gt = torch.tensor([[[[0.0, 2.0], [1.0, 0.5]], [[1.0, 0.0], [1.0, 1.0]]]])
    w = torch.tensor([[0.5, 0.25]])
    # joint 0: squared errors 1, 0, 1, 0 -> weighted 0.5 * 2 = 1.0; joint 1: 1, 0, 4, 0 -> 0.25 * 5 = 1.25
    expected = (1.0 + 1.25) / 8  # the mean over all B * K * H * W = 8 values
    assert keypoint_mse(pred, gt, w).item() == pytest.approx(expected, rel=1e-7)
    squared_weight_form = ((0.5**2) * 2 + (0.25**2) * 5) / 8
    assert keypoint_mse(pred, gt, w).item() != pytest.approx(squared_weight_form)
    # random shapes: the same formula, and a half-sure label counts half
    g = torch.Generator().manual_seed(1)
    p, t, wr = torch.rand(3, 4, 5, 6, generator=g), torch.rand(3, 4, 5, 6, generator=g), torch.rand(3, 4, generator=g)
    by_hand = (
        sum(float(wr[b, k]) * float(((p[b, k] - t[b, k]) ** 2).sum()) for b in range(3) for k in range(4)) / p.numel()
    )
    assert keypoint_mse(p, t, wr).item() == pytest.approx(by_hand, rel=1e-5)
    assert keypoint_mse(p, t, wr * 0.5).item() == pytest.approx(0.5 * by_hand, rel=1e-5)
    assert keypoint_mse(p, t).item() == pytest.approx(float(((p - t) ** 2).mean()), rel=1e-6)
    term = HeatmapMSE(weight=0.5)
    assert term({"target": t, "target_weight": wr}, p).item() == pytest.approx(by_hand, rel=1e-5)  # unscaled
