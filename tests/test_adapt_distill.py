"""The `distill` method (DWPose): a frozen teacher checkpoint supervises a smaller student through a trained 1x1
feature alignment and heatmap distillation on every keypoint, weight decaying as (1 - epoch / epochs); stage 2 is
head-only self-distillation without labels; FLOPs are counted; bad options are one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from poseadapt.adapt.flops import count_flops
from poseadapt.adapt.methods import build_methods
from poseadapt.adapt.methods.distill import heatmap_distill_loss
from poseadapt.cli.main import main
from poseadapt.errors import PoseAdaptError
from poseadapt.interop.checkpoint import load_checkpoint, save_checkpoint
from poseadapt.models import create_model
from poseadapt.train import Hook, build_trainer, recipe_from_dict

INPUT = (48, 64)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'big' teacher: a wider tiny ViT (96 channels, 3 blocks) with O(1) heatmaps."""
    torch.manual_seed(1)
    model = create_model("vit_tiny", "coco17", "simple", img_size=(INPUT[1], INPUT[0]), embed_dim=96, depth=3)
    for m in model.heads.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    return save_checkpoint(model, tmp_path_factory.mktemp("teacher") / "teacher.safetensors")


def recipe(teacher: Path | None, epochs: int = 4, **distill: Any) -> dict:
    options = {"teacher": str(teacher)} if teacher is not None else {}
    return {
        "model": {"name": "vit_tiny", "input_size": list(INPUT), "schema": "coco17", "head": "simple"},
        "data": {"train": {"synth": {"population": "adult", "n": 8, "size": 96, "seed": 3}}},
        "optim": {"lr": 3e-3, "weight_decay": 0.0},
        "schedule": {"epochs": epochs, "warmup_iters": 0, "policy": "constant"},
        "train": {"batch_size": 4, "workers": 0, "device": "cpu", "progress": False, "tensorboard": False,
                  "val_interval": 0, "log_interval": 1, "ema": None},
        "adapt": [{"distill": {**options, **distill}}],
    }  # fmt: skip


class Record(Hook):
    def __init__(self) -> None:
        self.steps: list[dict] = []

    def after_step(self, trainer, logs) -> None:
        losses = {k: float(v) for k, v in logs["losses"].items()}
        self.steps.append({"epoch": trainer.epoch, **losses})


def test_distill_trains_alignment_and_decays_with_the_epoch(tmp_path: Path, teacher_ckpt: Path) -> None:
    seen = Record()
    trainer = build_trainer(recipe_from_dict(recipe(teacher_ckpt)), tmp_path, hooks=(seen,))
    method = trainer.methods[0]
    align = method.align
    assert isinstance(align, torch.nn.Conv2d) and (align.in_channels, align.out_channels) == (64, 96)
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in in_optimizer for p in align.parameters())
    teacher_before = {k: v.clone() for k, v in method.teachers[0].state_dict().items()}
    align_before = align.weight.detach().clone()
    trainer.fit()
    assert not torch.equal(align.weight, align_before)  # the alignment trains
    for k, v in method.teachers[0].state_dict().items():  # the teacher does not
        assert torch.equal(v, teacher_before[k])

    # each epoch's terms carry the factor 1 - e/4; the feature loss falls within the first epochs
    per_epoch: dict[int, list[dict]] = {}
    for s in seen.steps:
        per_epoch.setdefault(s["epoch"], []).append(s)
    assert sorted(per_epoch) == [0, 1, 2, 3]
    assert all("distill/feature" in s and "distill/logit" in s for s in seen.steps)
    log = (tmp_path / "adapt_log.csv").read_text().splitlines()
    header = log[0].split(",")
    weights = sorted({float(row.split(",")[header.index("distill/weight")]) for row in log[1:]
                      if row.split(",")[header.index("distill/weight")]})  # fmt: skip
    assert weights == pytest.approx([0.25, 0.5, 0.75, 1.0])
    first, last = seen.steps[0]["distill/feature"], seen.steps[-1]["distill/feature"]
    assert last < 0.25 * first  # trained alignment and x0.25 decay together

    # the factor is exactly 1 - e/E: recompute one step of the last epoch by hand
    student = trainer.module.eval()
    batch = next(iter(trainer.loader))
    from poseadapt.train.batch import model_input

    x = model_input(batch["image"], student)
    with torch.no_grad():
        s_feat = student.forward_features(x, batch["dataset_index"])
        s_heat = student.heads(s_feat, batch["dataset_index"])
        out = method.losses(batch, type("O", (), {"features": s_feat, "heatmaps": s_heat})(), student)
        t_feat, t_heat = method.teacher_outputs(batch["image"])
        expected = 0.25 * torch.mean((s_heat - t_heat) ** 2)
    torch.testing.assert_close(out["logit"], expected)
    torch.testing.assert_close(out["feature"], 0.25 * torch.mean((align(s_feat) - t_feat) ** 2))

    final = load_checkpoint(tmp_path / "final.safetensors")  # the alignment is not exported
    assert set(final.state_dict()) == set(trainer.module.state_dict())


def test_an_ensemble_teacher_is_the_mean_of_its_members(tmp_path: Path, teacher_ckpt: Path) -> None:
    torch.manual_seed(2)
    other = create_model("vit_tiny", "coco17", "simple", img_size=(INPUT[1], INPUT[0]), embed_dim=96, depth=3)
    for m in other.heads.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    second = save_checkpoint(other, tmp_path / "second.safetensors")
    data = recipe(teacher_ckpt)
    data["adapt"][0]["distill"]["teacher"] = [str(teacher_ckpt), str(second)]
    trainer = build_trainer(recipe_from_dict(data), tmp_path / "run")
    method = trainer.methods[0]
    assert len(method.teachers) == 2 and method.fingerprint.count(",") == 1
    batch = next(iter(trainer.loader))
    feats, heat = method.teacher_outputs(batch["image"])
    singles = []
    for path in (teacher_ckpt, second):
        one = load_checkpoint(path).eval()
        with torch.no_grad():
            x = one.normalize(batch["image"].permute(0, 3, 1, 2))
            f = one.forward_features(x)
            singles.append((f, one.heads(f, 0)))
    torch.testing.assert_close(feats, 0.5 * (singles[0][0] + singles[1][0]))
    torch.testing.assert_close(heat, 0.5 * (singles[0][1] + singles[1][1]))
    assert not torch.allclose(singles[0][1], singles[1][1])  # the members differ, so the mean is not either one
    # members that do not share a feature width are one line
    narrow = create_model("vit_tiny", "coco17", "simple", img_size=(INPUT[1], INPUT[0]))
    data["adapt"][0]["distill"]["teacher"] = [
        str(teacher_ckpt),
        str(save_checkpoint(narrow, tmp_path / "n.safetensors")),
    ]
    with pytest.raises(PoseAdaptError, match="ensemble's members must share"):
        build_trainer(recipe_from_dict(data), tmp_path / "run2")


def test_flip_test_teacher_targets_are_the_eval_merge_and_mirror_consistent(tmp_path: Path, teacher_ckpt: Path) -> None:
    trainer = build_trainer(recipe_from_dict(recipe(teacher_ckpt, flip_test=True)), tmp_path / "run")
    method = trainer.methods[0]
    batch = next(iter(trainer.loader))
    _, heat = method.teacher_outputs(batch["image"])
    # the merge `poseadapt eval` scores the teacher with: the codec's flip_back of the mirrored crop's heatmaps
    one = load_checkpoint(teacher_ckpt).eval()
    with torch.no_grad():
        x = one.normalize(batch["image"].permute(0, 3, 1, 2))
        plain, mirrored = one(x).numpy(), one(x.flip(-1)).numpy()
    merged = 0.5 * (plain + one.codec.flip_back(mirrored, one.schemas[0].flip_index))
    torch.testing.assert_close(heat, torch.from_numpy(merged))
    assert not torch.allclose(heat, torch.from_numpy(plain))
    # so the targets of the mirrored crop are the mirrored targets (left and right swapped); the plain teacher's are not
    _, heat_of_mirror = method.teacher_outputs(batch["image"].flip(2))
    from poseadapt.codecs import flip_heatmaps_back

    flip_index = one.schemas[0].flip_index
    torch.testing.assert_close(heat_of_mirror, flip_heatmaps_back(heat, flip_index))
    method.options.flip_test = False
    _, plain_of_mirror = method.teacher_outputs(batch["image"].flip(2))
    assert not torch.allclose(plain_of_mirror, flip_heatmaps_back(torch.from_numpy(plain), flip_index), atol=1e-3)


def test_unlabelled_images_are_taught_by_the_teacher_alone(tmp_path: Path, teacher_ckpt: Path) -> None:
    data = recipe(teacher_ckpt, epochs=1)
    data["adapt"][0]["distill"]["unlabelled"] = {
        "synth": {"population": "infant", "view": "top", "n": 8, "size": 96, "seed": 5},
        "ratio": 0.5,
    }
    trainer = build_trainer(recipe_from_dict(data), tmp_path / "run")
    method = trainer.methods[0]
    weights = torch.cat([b["target_weight"].sum(1) for b in trainer.loader])
    assert (weights == 0).sum() >= 6 and (weights > 0).sum() >= 6  # about half the epoch has no labels
    batch = next(b for b in trainer.loader if bool((b["target_weight"].sum(1) == 0).any()))
    student = trainer.module.eval()
    from poseadapt.train.batch import model_input

    with torch.no_grad():
        s_feat = student.forward_features(model_input(batch["image"], student), batch["dataset_index"])
        s_heat = student.heads(s_feat, batch["dataset_index"])
        out = method.losses(batch, type("O", (), {"features": s_feat, "heatmaps": s_heat})(), student)
        _, t_heat = method.teacher_outputs(batch["image"])
    torch.testing.assert_close(out["logit"], torch.mean((s_heat - t_heat) ** 2))  # every row, labelled or not
    trainer.fit()
    assert (tmp_path / "run" / "final.safetensors").is_file()


def test_logit_distillation_teaches_keypoints_the_labels_lack() -> None:
    s = torch.zeros(2, 3, 4, 4, requires_grad=True)
    t = torch.rand(2, 3, 4, 4)
    heatmap_distill_loss(s, t).backward()
    assert (s.grad.abs().sum(dim=(2, 3)) > 0).all()  # every keypoint, no label weights involved
    assert float(heatmap_distill_loss(t, t, "kl")) == pytest.approx(0.0, abs=1e-6)
    assert float(heatmap_distill_loss(torch.zeros_like(t), t, "kl")) > 0


def test_two_stage_recipe_runs_from_the_cli(tmp_path: Path, teacher_ckpt: Path, cli_train) -> None:
    stage1 = cli_train(recipe(teacher_ckpt, epochs=2), tmp_path / "s1")
    student_ckpt = Path(stage1["final_checkpoint"])
    student = load_checkpoint(student_ckpt)
    assert count_flops(student) < count_flops(load_checkpoint(teacher_ckpt))

    # stage 2: the stage-1 student teaches itself; frozen backbone, fresh head, no labels, no decay
    r = recipe(None, epochs=2, labels=False, feature_weight=0, decay=False, reset_head=True)
    r["model"]["checkpoint"] = str(student_ckpt)
    r["adapt"] = [{"head_only": {}}, *r["adapt"]]
    cli_train(r, tmp_path / "s2")
    after = load_checkpoint(tmp_path / "s2" / "final.safetensors")
    b1 = {k: v for k, v in student.state_dict().items() if k.startswith("backbone.")}
    for k, v in b1.items():
        assert torch.equal(after.state_dict()[k], v)
    heads = [k for k in student.state_dict() if k.startswith("heads.")]
    assert any(not torch.equal(after.state_dict()[k], student.state_dict()[k]) for k in heads)
    log = (tmp_path / "s2" / "train_log.csv").read_text().splitlines()
    header = log[0].split(",")
    mse = [float(row.split(",")[header.index("mse")]) for row in log[1:] if row.split(",")[header.index("mse")]]
    assert mse and max(mse) == 0.0  # labels ignored: the supervised term is zero


def test_flops_counter_counts_attention_and_convs() -> None:
    m = create_model("vit_tiny", "coco17", "simple", img_size=(64, 48))
    small = count_flops(m)
    big = count_flops(create_model("vit_tiny", "coco17", "simple", img_size=(64, 48), depth=4))
    assert 0 < small < big
    assert count_flops(m, batch=2) == 2 * small
    # every product of the forward pass, attention's two included (2 * 2 * N^2 * C per block), by hand:
    n, c, depth, k = 4 * 3, 64, 2, 17  # tokens (64x48 crop, patch 16), width, blocks, keypoints
    patch = 2 * 3 * c * 16 * 16 * n
    linear = 2 * n * c * (3 * c + c + 2 * 256)  # qkv, proj, the MLP's two layers
    attention = 2 * 2 * n * n * c
    head = 2 * c * k * 3 * 3 * (16 * 12)  # the simple head: x4 upsampling, one 3x3 conv
    assert small == patch + depth * (linear + attention) + head


BAD = [
    ({"feature_weight": 0, "logit_weight": 0}, "adapt.0.distill", "nothing to distil"),
    ({"labels": False, "logit_weight": 0}, "adapt.0.distill.labels", "logit_weight > 0"),
    ({"logit_loss": "l1"}, "adapt.0.distill.logit_loss", "'mse' or 'kl'"),
    ({"beta": -1}, "adapt.0.distill.beta", "greater than 0"),
    ({"featur_weight": 1}, "adapt.0.distill.featur_weight", "unknown key"),
]


@pytest.mark.parametrize(("change", "key", "message"), BAD)
def test_bad_options_are_one_line(tmp_path: Path, change: dict, key: str, message: str, teacher_ckpt: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    r = recipe(teacher_ckpt)
    r["adapt"][0]["distill"].update(change)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(r))
    with pytest.raises(SystemExit) as exc:
        main(["train", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code != 0 and len(err.splitlines()) == 1, err
    assert f"'{key}" in err and message in err, err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_teacher_missing_or_mismatched_is_one_line(tmp_path: Path, teacher_ckpt: Path) -> None:
    r = recipe(tmp_path / "nope.safetensors")
    with pytest.raises(PoseAdaptError, match=r"adapt\.0\.distill\.teacher': file not found"):
        build_trainer(recipe_from_dict(r), tmp_path / "a")
    with pytest.raises(PoseAdaptError, match=r"needs a source model"):
        build_trainer(recipe_from_dict(recipe(None)), tmp_path / "b")
    other = recipe(teacher_ckpt)
    other["model"]["input_size"] = [64, 80]
    with pytest.raises(PoseAdaptError) as exc:
        build_trainer(recipe_from_dict(other), tmp_path / "c")
    assert "\n" not in str(exc.value) and "must match" in str(exc.value)
    assert build_methods(recipe(teacher_ckpt)["adapt"])[0].name == "distill"


def test_shipped_distill_recipes_train(tmp_path: Path, cli_train) -> None:
    """synth-distill then synth-distill-stage2, shrunk, with a tiny stand-in teacher at the recipe's crop size."""
    from poseadapt.train.recipe import recipe_text

    teacher = save_checkpoint(
        create_model("vit_tiny", "coco17", "light", img_size=(128, 96), embed_dim=96), tmp_path / "teacher.safetensors"
    )
    small = ["train.batch_size=4", "train.workers=0", "train.device=cpu", "train.progress=false",
             "train.tensorboard=false", "train.val_interval=0", "schedule.epochs=2", "schedule.warmup_iters=0",
             "data.train.0.synth.n=8", "data.train.0.synth.size=96"]  # fmt: skip
    r1 = yaml.safe_load(recipe_text("synth-distill")[0])
    assert r1["adapt"][0]["distill"]["teacher"] == "builtin:synthpose-vit-tiny"
    r1.pop("out")
    s1 = cli_train(r1, tmp_path / "s1", *small, f"adapt.0.distill.teacher={teacher}")
    r2 = yaml.safe_load(recipe_text("synth-distill-stage2")[0])
    r2.pop("out")
    s2 = cli_train(r2, tmp_path / "s2", *small, f"model.checkpoint={s1['final_checkpoint']}")
    assert Path(s2["final_checkpoint"]).is_file()
    assert count_flops(load_checkpoint(s2["final_checkpoint"])) < count_flops(load_checkpoint(teacher))
