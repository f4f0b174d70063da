"""What a new user's own data produces (issue 14): an ONNX file with named dimensions and its metadata, overlays
with a score flag, side colours, boxes and ground truth, recipe-relative paths, one size convention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from poseadapt.cli.main import main as cli_main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli_main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.mark.parametrize("head", ["simple", "simcc"])
def test_onnx_export_names_dimensions_and_carries_metadata(tmp_path: Path, head: str) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from poseadapt.interop.onnx_export import export_onnx
    from poseadapt.models import create_model

    model = create_model("vit_tiny", "coco17", head, img_size=(64, 48)).eval()
    result = export_onnx(model, tmp_path / "m.onnx")
    assert result["max_rel_error"] < 1e-4
    proto = onnx.load(str(tmp_path / "m.onnx"))
    x = torch.randn(3, 3, 64, 48)
    with torch.no_grad():
        ref = model(x)
    refs = ref if isinstance(ref, tuple) else (ref,)
    for value, r in zip(proto.graph.output, refs, strict=True):
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims == ["batch", *r.shape[1:]], (value.name, dims)  # only the batch is called batch
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["keypoint_names"]) == list(model.schema.keypoints)
    assert ["left_eye", "right_eye"] in json.loads(meta["flip_pairs"])
    assert meta["input_size"] == "48x64" and meta["input_width"] == "48" and meta["input_height"] == "64"
    assert json.loads(meta["mean"]) == pytest.approx(list(model.config.mean))
    assert json.loads(meta["std"]) == pytest.approx(list(model.config.std))
    assert json.loads(meta["codec"])["type"] == model.config.codec["type"]
    assert meta["output_kind"] == ("simcc" if head == "simcc" else "heatmaps")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixels": x.numpy()})  # another batch size runs, shapes as declared
    for g, r in zip(got, refs, strict=True):
        assert g.shape == tuple(r.shape)
        assert np.abs(g - r.numpy()).max() <= 1e-4 * np.abs(r.numpy()).max()


def test_draw_pose_colours_sides_draws_the_box_and_follows_the_threshold() -> None:
    from poseadapt.models.inference import BOX_COLOUR, CENTRE_COLOUR, LEFT_COLOUR, RIGHT_COLOUR, draw_pose
    from poseadapt.schemas import get_schema

    schema = get_schema("coco17")
    person = np.zeros((1, 17, 3))
    at = {"left_wrist": (10, 10, 0.9), "right_wrist": (30, 10, 0.9), "nose": (20, 30, 0.9), "left_eye": (10, 30, 0.2)}
    for name, row in at.items():
        person[0, schema.keypoints.index(name)] = row
    image = np.zeros((40, 40, 3), np.uint8)
    drawn = draw_pose(image, person, schema, 0.3, boxes=np.array([[2, 2, 36, 36, 1.0]]))
    assert tuple(drawn[10, 10]) == LEFT_COLOUR
    assert tuple(drawn[10, 30]) == RIGHT_COLOUR
    assert tuple(drawn[30, 20]) == CENTRE_COLOUR
    assert tuple(drawn[30, 10]) == (0, 0, 0)  # under the threshold
    assert tuple(drawn[20, 2]) == BOX_COLOUR and tuple(drawn[20, 37]) == BOX_COLOUR
    assert tuple(draw_pose(image, person, schema, 0.1)[30, 10]) == LEFT_COLOUR
    assert tuple(draw_pose(image, person, schema, 0.95)[10, 10]) == (0, 0, 0)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """2 rendered adults (COCO file + images) and a tiny untrained checkpoint."""
    from poseadapt.cli import synth_cmd
    from poseadapt.interop.checkpoint import save_checkpoint
    from poseadapt.models import create_model

    root = tmp_path_factory.mktemp("own_out")
    synth_cmd.run("adult", "random", 2, 96, root / "d", 1, ["coco17"], "1", None, "png", 1, False, True)
    ckpt = save_checkpoint(create_model("vit_tiny", "coco17", "simple", img_size=(64, 48)), root / "tiny.safetensors")
    return root / "d", ckpt


def test_predict_overlays_take_min_score_boxes_and_ground_truth(
    tmp_path: Path, rendered: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2

    from poseadapt.models.inference import BOX_COLOUR, LEFT_COLOUR, RIGHT_COLOUR

    data, ckpt = rendered
    ann = data / "annotations" / "adult_coco17.json"
    gt = json.loads(ann.read_text())
    image = gt["images"][0]
    w, h = image["width"], image["height"]
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({Path(image["file_name"]).name: [[5, 6, 40, 50, 0.9]]}))
    src = data / "images" / Path(image["file_name"]).name
    args = ["predict", str(src), "--checkpoint", str(ckpt), "--ann", str(ann), "--boxes", str(boxes), "--no-flip"]
    code, _, err = run_cli([*args, "--out", str(tmp_path / "hi"), "--min-score", "1e9"], capsys)
    assert code == 0, err
    overlay = cv2.cvtColor(cv2.imread(str(tmp_path / "hi" / "overlays" / f"{src.stem}.png")), cv2.COLOR_BGR2RGB)
    assert overlay.shape[:2] == (h, 2 * w)  # prediction | ground truth
    pred, truth = overlay[:, :w], overlay[:, w:]
    assert tuple(pred[30, 5]) == BOX_COLOUR  # the --boxes box
    original = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2RGB)
    inside = (slice(25, 50), slice(10, 40))
    assert np.array_equal(pred[inside], original[inside])  # nothing scores 1e9: no keypoint drawn
    kps = np.asarray(next(a for a in gt["annotations"] if a["image_id"] == image["id"])["keypoints"]).reshape(-1, 3)
    names = gt["categories"][0]["keypoints"]
    for name, colour in (("left_shoulder", LEFT_COLOUR), ("right_shoulder", RIGHT_COLOUR)):
        x, y, v = kps[names.index(name)]
        assert v > 0
        assert tuple(truth[int(round(y)), int(round(x))]) == colour, name
    code, _, err = run_cli([*args, "--out", str(tmp_path / "lo"), "--min-score", "-1"], capsys)
    assert code == 0, err
    low = cv2.imread(str(tmp_path / "lo" / "overlays" / f"{src.stem}.png"))
    assert not np.array_equal(cv2.cvtColor(low, cv2.COLOR_BGR2RGB)[:, :w], pred)  # every keypoint drawn


def test_predict_help_documents_min_score(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["predict", "--help"], capsys)
    assert code == 0
    assert "--min-score" in out and "0.3" in out


def test_recipe_file_paths_resolve_against_its_folder_and_set_paths_against_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from poseadapt.train.recipe import load_recipe

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "train.json").write_text("{}")
    text = {
        "model": {"name": "vit_tiny", "checkpoint": "models/start.safetensors", "schema": ["clinic.yaml"]},
        "data": {
            "train": [{"ann": "data/train.json", "images": "data/images"}, {"synth": "adult"}],
            "val": {"ann": "/abs/val.json", "images": "data/images", "schema": "coco17"},
        },
        "out": "runs/x",
    }
    (project / "r.yaml").write_text(yaml.safe_dump(text))
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe("project/r.yaml", ["data.train.0.images=elsewhere/images"])
    assert recipe.data.train[0].ann == Path("project/data/train.json")
    assert recipe.data.train[0].images == Path("elsewhere/images")  # --set: the working directory
    assert recipe.data.val_sources[0].ann == Path("/abs/val.json")
    assert recipe.data.val_sources[0].images == Path("project/data/images")
    assert recipe.data.val_sources[0].schema_name == "coco17"  # a schema name is not a path
    assert recipe.model.checkpoint == Path("project/models/start.safetensors")
    assert recipe.model.schemas == ["project/clinic.yaml"]
    assert recipe.out == Path("project/runs/x")
    monkeypatch.chdir(project)  # a recipe in the working folder keeps its paths as written
    assert load_recipe("r.yaml").data.train[0].ann == Path("data/train.json")


def test_builtin_recipes_keep_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from poseadapt.train.recipe import builtin_recipes, load_recipe

    monkeypatch.chdir(tmp_path)
    name = builtin_recipes()[0]
    recipe = load_recipe(name, ["data.train.0.ann=mine.json", "data.train.0.synth=null"])
    assert recipe.data.train[0].ann == Path("mine.json")


def test_import_img_size_is_width_first_like_recipes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from poseadapt.interop.checkpoint import load_model
    from test_interop_layouts import HEADS, timm_vit

    torch.manual_seed(0)
    torch.save({"model": timm_vit(5, 16, True, False)}, tmp_path / "vit.pth")
    base = ["import", "timm", str(tmp_path / "vit.pth"), "--num-heads", str(HEADS), "--schema", "coco17"]
    code, _, err = run_cli([*base, "--out", str(tmp_path / "p.safetensors"), "--img-size", "48x64"], capsys)
    assert code == 0, err
    assert "note" not in err
    assert load_model(tmp_path / "p.safetensors").input_size == (48, 64)  # (w, h), as a recipe writes it
    code, _, err = run_cli([*base, "--out", str(tmp_path / "l.safetensors"), "--img-size", "64x48"], capsys)
    assert code == 0 and "WIDTHxHEIGHT" in err and "48x64" in err  # a landscape crop is said, not refused
    assert load_model(tmp_path / "l.safetensors").input_size == (64, 48)
    code, out, _ = run_cli(["import", "--help"], capsys)
    assert "WIDTHxHEIGHT" in out
    code, _, err = run_cli([*base, "--out", str(tmp_path / "x.safetensors"), "--img-size", "64 by 48"], capsys)
    assert code != 0 and "WIDTHxHEIGHT" in err


def test_interop_messages_say_sizes_width_first(tmp_path: Path) -> None:
    from poseadapt.errors import PoseAdaptError
    from poseadapt.interop.common import grid_from_tokens
    from poseadapt.interop.importers import import_checkpoint
    from test_interop_layouts import HEADS, timm_vit

    with pytest.raises(PoseAdaptError, match=r"pos_embed has 10 tokens, not 3x4 \(w x h\)$"):
        grid_from_tokens(10, (4, 3))  # a (h, w) = (4, 3) token grid is 3 wide, 4 high
    torch.manual_seed(0)
    torch.save({"model": timm_vit(5, 16, True, False)}, tmp_path / "vit.pth")
    model, report = import_checkpoint(
        "timm", str(tmp_path / "vit.pth"), schema="coco17", num_heads=HEADS, img_size=(64, 48)
    )
    assert model.config.backbone.grid_size == (4, 3)  # (h, w) tokens of the 48x64 (w x h) crop
    assert any(n.startswith("pos_embed 5x5 resized to 3x4 (w x h, bicubic)") for n in report.notes), report.notes


def test_training_writes_a_learning_curve_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    recipe = {
        "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "simple"},
        "data": {"train": {"synth": {"population": "adult", "n": 4, "size": 96}},
                 "val": {"synth": {"population": "adult", "n": 2, "size": 96, "seed": 1}}},
        "optim": {"lr": 1e-3, "weight_decay": 0.0},
        "schedule": {"epochs": 2, "warmup_iters": 0, "policy": "constant"},
        "train": {"batch_size": 2, "workers": 0, "device": "cpu", "progress": False, "tensorboard": False,
                  "val_interval": 1, "ema": None, "log_interval": 1},
    }  # fmt: skip
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    code, _, err = run_cli(["train", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    png = tmp_path / "run" / "learning_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import cv2

    image = cv2.imread(str(png))
    orange = (np.abs(image[..., ::-1].astype(int) - (255, 127, 14)).sum(-1) < 40).sum()  # tab:orange: the AP line
    blue = (np.abs(image[..., ::-1].astype(int) - (31, 119, 180)).sum(-1) < 40).sum()  # tab:blue: the loss
    assert orange > 20 and blue > 20


def test_a_runs_recipe_yaml_trains_again_from_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run folder's recipe.yaml holds absolute paths (and builtin: names as they are), so it resolves the same
    from the run folder as from where the user ran."""
    import yaml

    from poseadapt.train.recipe import dump_recipe, load_recipe

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    recipe = load_recipe("demo-infant", ["data.train.0.ann=data/train.json", "data.train.0.images=data/images"])
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text(dump_recipe(recipe, absolute=True))
    again = load_recipe(str(run / "recipe.yaml"))
    assert again.data.train[0].ann == (tmp_path / "data" / "train.json")
    assert again.data.train[0].images == (tmp_path / "data" / "images")
    assert str(again.model.checkpoint) == "builtin:synthpose-vit-tiny"
    assert yaml.safe_load((run / "recipe.yaml").read_text())["model"]["schema"] == ["infant21"]
