"""Recipes: validation with one clear line per problem, `--set` overrides, the shipped recipes, and the checks
that must fail before training starts (bad key, missing dataset path, schema / head mismatch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from poseadapt.cli.main import main
from poseadapt.errors import PoseAdaptError, SchemaError
from poseadapt.train import build_trainer, builtin_recipes, load_recipe, recipe_from_dict
from poseadapt.train.recipe import apply_overrides, parse_override

TINY = {
    "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "simple"},
    "data": {"train": {"synth": {"population": "adult", "n": 8, "size": 96}}},
    "train": {"batch_size": 4, "workers": 0, "device": "cpu", "progress": False},
}


def write_recipe(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"optim": {"lrr": 1e-3}}, "recipe key 'optim.lrr': unknown key (did you mean 'lr'?)"),
        ({"modle": {}}, "recipe key 'modle': unknown key (did you mean 'model'?)"),
        ({"train": {"batch_size": 0}}, "recipe key 'train.batch_size': input should be greater than or equal to 1"),
        ({"train": {"amp": "maybe"}}, "recipe key 'train.amp': input should be 'auto', True or False (got 'maybe')"),
        ({"schedule": {"policy": "linear"}}, "recipe key 'schedule.policy': input should be 'step', 'cosine' or"),
        ({"model": {"input_size": [8, 8]}}, "recipe key 'model.input_size': must be two integers >= 16 (w, h)"),
        ({"train": {"device": "tpu"}}, "recipe key 'train.device': must be auto, cpu, cuda, cuda:N or mps"),
        (
            {"data": {"train": [{"synth": {"populaton": "infant"}}]}},
            "recipe key 'data.train.0.synth.populaton': unknown key (did you mean 'population'?)",
        ),
        ({"data": {"train": {"ann": "a.json", "synth": "adult"}}}, "recipe key 'data.train.0': give exactly one of"),
        ({"data": {"val": {"synth": "adult"}}}, "recipe key 'data.train': required key is missing"),
    ],
)
def test_bad_recipes_name_the_key(patch: dict, message: str) -> None:
    data = {**TINY, **patch}
    if "data" in patch and "train" not in patch["data"]:
        data["data"] = patch["data"]
    with pytest.raises(PoseAdaptError) as err:
        recipe_from_dict(data)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_overrides_parse_yaml_scalars_and_paths() -> None:
    assert parse_override("optim.lr=1e-4") == (["optim", "lr"], 1e-4)
    assert parse_override("train.amp=true") == (["train", "amp"], True)
    assert parse_override("train.ema=null") == (["train", "ema"], None)
    assert parse_override("schedule.milestones=[3, 4]") == (["schedule", "milestones"], [3, 4])
    assert parse_override("model.name=vit_small") == (["model", "name"], "vit_small")
    data = json.loads(json.dumps(TINY))
    apply_overrides(data, ["data.train.0.synth.n=5", "optim.layer_decay=0.8", "adapt=[{lora: {r: 4}}]"])
    recipe = recipe_from_dict(data)
    assert recipe.data.train[0].synth.n == 5 and recipe.optim.layer_decay == 0.8
    assert recipe.adapt == [{"lora": {"r": 4}}]
    apply_overrides(data, ["adapt.0.lora.r=2"])
    assert recipe_from_dict(data).adapt == [{"lora": {"r": 2}}]
    with pytest.raises(PoseAdaptError, match="expects KEY=VALUE"):
        parse_override("optim.lr")
    with pytest.raises(PoseAdaptError, match="'model.name' is a value, not a section"):
        apply_overrides(json.loads(json.dumps(TINY)), ["model.name.x=1"])
    with pytest.raises(PoseAdaptError, match="not an index"):
        apply_overrides(json.loads(json.dumps(TINY)), ["data.train.3.ratio=1"])


def test_shipped_recipes_validate() -> None:
    names = builtin_recipes()
    assert {"synth-adult-tiny", "synth-infant-finetune", "vitpose-b-coco"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert recipe.to_dict() == recipe_from_dict(recipe.to_dict()).to_dict()  # round-trips through recipe.yaml
    assert load_recipe("synth-infant-finetune").adapt == [{"layer_decay": {"rate": 0.75}}]
    assert next(iter(load_recipe("synth-infant-rehearsal").adapt[0])) == "rehearsal"
    vitpose = load_recipe("vitpose-b-coco")
    assert (vitpose.optim.lr, vitpose.optim.weight_decay, vitpose.optim.layer_decay) == (5e-4, 0.1, 0.75)
    assert vitpose.schedule.milestones == [170, 200] and vitpose.train.grad_clip == 1.0


def test_yaml_syntax_error_and_unknown_recipe(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: [vit_tiny\n")
    with pytest.raises(PoseAdaptError, match=r"invalid YAML \(line 3"):
        load_recipe(bad)
    with pytest.raises(PoseAdaptError, match="recipe not found: nope.yaml .*synth-adult-tiny"):
        load_recipe("nope.yaml")


def test_missing_dataset_path_fails_before_anything_is_built(tmp_path: Path) -> None:
    data = {**TINY, "data": {"train": {"ann": str(tmp_path / "missing.json")}}}
    with pytest.raises(PoseAdaptError, match=r"^recipe key 'data.train.0.ann': file not found: .*missing.json$"):
        build_trainer(recipe_from_dict(data), tmp_path / "run")
    data = {**TINY, "model": {**TINY["model"], "checkpoint": str(tmp_path / "none.safetensors")}}
    with pytest.raises(PoseAdaptError, match="recipe key 'model.checkpoint': file not found"):
        build_trainer(recipe_from_dict(data), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_schema_head_mismatch_fails_before_training(tmp_path: Path) -> None:
    from poseadapt.synth import write_dataset

    files = write_dataset(tmp_path / "infants", "infant", n=2, size=64, schemas=["infant21"])
    ann = files.annotations["infant21"]
    data = {**TINY, "data": {"train": {"ann": str(ann), "images": str(files.images)}}}
    with pytest.raises(SchemaError) as err:
        build_trainer(recipe_from_dict(data), tmp_path / "run")
    msg = str(err.value)
    assert msg.startswith("recipe key 'data.train.0': the data's schema 'infant21' (21 keypoints) does not match")
    assert "head 'coco17' (schema 'coco17', 17 keypoints)" in msg and not (tmp_path / "run" / "last.pt").exists()


def test_unknown_method_and_method_options() -> None:
    with pytest.raises(
        PoseAdaptError, match="^recipe key 'adapt.0': unknown method 'lora9' \\(did you mean 'lora'\\?\\)$"
    ):
        build_trainer(recipe_from_dict({**TINY, "adapt": [{"lora9": {}}]}), "unused")
    with pytest.raises(PoseAdaptError, match="^recipe key 'adapt.0': unknown method 'zzz' \\(known: full, head_only"):
        recipe_from_dict({**TINY, "adapt": ["zzz"]})
    with pytest.raises(PoseAdaptError, match="^recipe key 'adapt.0.lora.rank': unknown key$"):
        build_trainer(recipe_from_dict({**TINY, "adapt": [{"lora": {"rank": 4}}]}), "unused")
    with pytest.raises(PoseAdaptError, match="^recipe key 'adapt': must be a list of methods"):
        recipe_from_dict({**TINY, "adapt": 5})
    assert recipe_from_dict({**TINY, "adapt": "lora"}).adapt == ["lora"]  # one bare name is a list of one
    assert recipe_from_dict({**TINY, "adapt": None}).adapt == []


def test_the_old_finetune_section_is_an_unknown_key() -> None:
    with pytest.raises(PoseAdaptError, match="^recipe key 'finetune': unknown key \\(known: .*adapt"):
        recipe_from_dict({**TINY, "finetune": {"strategy": "lora"}})


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_device_without_cuda_fails_up_front(tmp_path: Path) -> None:
    data = {**TINY, "train": {**TINY["train"], "device": "cuda"}}
    with pytest.raises(PoseAdaptError, match="'train.device': 'cuda' but CUDA is not available"):
        build_trainer(recipe_from_dict(data), tmp_path / "run")


def test_cli_bad_recipe_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_recipe(tmp_path, TINY)
    with pytest.raises(SystemExit) as exc:
        main(["train", str(path), "--set", "optim.lrr=1e-3", "--out", str(tmp_path / "run")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: recipe key 'optim.lrr': unknown key (did you mean 'lr'?)\n"


def test_synth_overrides_change_the_rendered_population_and_bad_ones_fail_at_load() -> None:
    from poseadapt.errors import PoseAdaptError
    from poseadapt.train.recipe import recipe_from_dict

    def recipe(overrides: dict) -> object:
        synth = {"population": "adult", "n": 4, "overrides": overrides}
        return recipe_from_dict(
            {"model": {"name": "vit_tiny", "schema": "coco17"}, "data": {"train": {"synth": synth}}}
        )

    pop = recipe({"poses": {"lying": 1.0}, "flexed_lying": 0.5}).data.train[0].synth.resolved_population()
    assert pop.poses == {"lying": 1.0} and pop.flexed_lying == 0.5 and pop.name == "adult"
    for bad, says in [
        ({"flexed_lying": 2}, "flexed_lying"),
        ({"poses": {"flying": 1}}, "flying"),
        ({"wings": 2}, "wings"),
        ({"name": "x"}, "rename"),
    ]:
        with pytest.raises(PoseAdaptError, match=says):
            recipe(bad)
