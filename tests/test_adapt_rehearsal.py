"""The `rehearsal` method through the training engine (`adapt: [{rehearsal: ...}]` in a recipe): coco17-labelled
synthetic adults replayed into an infant21 fine-tune, with the frozen halpe26 source model pseudo-labelling the
infant21 points the adult labels lack (head top, big toes).

Checked against independent computations: which rows are adults comes from the sampler's index list, the
unlabelled items come straight from the dataset, and the expected pseudo-labels from the source checkpoint loaded
afresh and decoded here. The source model is a random tiny ViT whose head is re-initialised to give O(1) heatmaps
(the published init gives ~1e-6, no peak would pass a threshold): the test is about the wiring, not its quality.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from poseadapt.adapt.replay import SourceAsTarget, teacher_fingerprint
from poseadapt.cli.main import main
from poseadapt.errors import PoseAdaptError
from poseadapt.interop.checkpoint import load_checkpoint, save_checkpoint
from poseadapt.models import create_model
from poseadapt.schemas import KeypointSchema, get_schema
from poseadapt.synth import write_dataset
from poseadapt.train import Hook, build_trainer, recipe_from_dict
from poseadapt.train.checkpointing import load_train_state

INPUT = (48, 64)  # (w, h): 12x16 heatmaps
GAPS = ("head_top", "left_big_toe", "right_big_toe")  # infant21 points with no coco17 label (neck: shoulder midpoint)
THRESHOLD = 0.05
MARKERS = KeypointSchema.from_dict({"name": "markers3", "keypoints": ["m_a", "m_b", "m_c"], "sigmas": [0.05] * 3})


pytestmark = pytest.mark.usefixtures("one_thread")


def confident_model(
    schema: str | KeypointSchema, input_size: tuple[int, int] = INPUT, seed: int = 5
) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model("vit_tiny", schema, "simple", img_size=(input_size[1], input_size[0]))
    for m in model.heads.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    return model


@pytest.fixture(scope="module")
def source_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The adult source model: halpe26, so it predicts the head top and big toes that coco17 labels lack."""
    return save_checkpoint(confident_model("halpe26"), tmp_path_factory.mktemp("src") / "adult_halpe26.safetensors")


def recipe(ckpt: Path, epochs: int = 3, **rehearsal: object) -> dict:
    return {
        "model": {"name": "vit_tiny", "input_size": list(INPUT), "schema": "infant21", "head": "simple"}
        | {"checkpoint": str(ckpt)},
        "data": {"train": {"synth": {"population": "infant", "n": 24, "size": 96, "seed": 3}}},
        "optim": {"lr": 1e-3, "weight_decay": 0.0},
        "schedule": {"epochs": epochs, "warmup_iters": 2, "policy": "constant"},
        "train": {
            "batch_size": 4,
            "workers": 0,
            "device": "cpu",
            "progress": False,
            "tensorboard": False,
            "val_interval": 0,
            "log_interval": 1,
        },
        "adapt": [
            {"full": {}},
            {
                "rehearsal": {
                    "source": {"synth": {"population": "adult", "n": 16, "size": 96, "seed": 5}, "schema": "coco17"},
                    "ratio": 0.3,
                    "score_threshold": THRESHOLD,
                    **rehearsal,
                }
            },
        ],
    }


def rehearsal_options(r: dict) -> dict:
    return r["adapt"][1]["rehearsal"]


class RecordLoss(Hook):
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def after_step(self, trainer, logs) -> None:
        self.losses[trainer.iteration] = float(logs["losses"]["loss"])


class RecordBatches(Hook):
    """The batch as the model sees it, beside the sampler's indices of its rows and the rows as the data set produced
    them (before pseudo-labelling). Hooks' before_step runs before the methods'; the rehearsal method fills the
    batch's target tensors in place, so the references kept here hold the pseudo-labels once the step ran."""

    def __init__(self) -> None:
        self.steps: list[dict] = []

    def before_step(self, trainer, batch) -> None:
        bs, it = trainer.batch_size, trainer.epoch_iteration
        indices = trainer.sampler.epoch_indices(trainer.epoch)[it * bs : (it + 1) * bs]
        raw = [trainer.loader.dataset[i] for i in indices]
        self.steps.append(
            {
                "domain": [d for d, _, _ in indices],
                "raw": raw,
                "image": batch["image"].clone(),
                **{k: batch[k] for k in ("target", "target_weight")},  # filled in place by the method
                "pseudo_mask": batch.get("pseudo_mask"),
            }
        )


def test_rehearsal_mixes_adults_and_pseudo_labels_only_what_coco17_lacks(tmp_path: Path, source_ckpt: Path) -> None:
    loss, seen = RecordLoss(), RecordBatches()
    trainer = build_trainer(recipe_from_dict(recipe(source_ckpt)), tmp_path, hooks=(loss, seen))
    # 24 infants keep their full epoch; adults are 30% of it: 24 / 0.7 = 34 samples, 10 of them adults
    assert trainer.sampler.counts == [24, 10] and trainer.recipe.train.samples_per_epoch == 34
    result = trainer.fit()
    assert result.status == "completed" and result.iteration == 3 * 8

    infant21 = get_schema("infant21")
    gaps = [infant21.index(n) for n in GAPS]
    teacher = load_checkpoint(source_ckpt)  # independent of the run: the source model as saved
    halpe = teacher.schemas[0]
    codec = trainer.module.codec
    adults = filled = unlabelled_kept = 0
    for step in seen.steps:
        domain = np.asarray(step["domain"])
        adults += int(domain.sum())
        for row, raw in enumerate(step["raw"]):  # the batch rows are the sampler's items, in order
            assert torch.equal(step["image"][row], torch.from_numpy(raw["image"]))
        with torch.no_grad():
            heatmaps = teacher(teacher.normalize(step["image"].permute(0, 3, 1, 2).float())).numpy()
        peaks, scores = codec.decode(heatmaps[:, [halpe.index(n) for n in GAPS]])
        pseudo_targets, _ = codec.encode(peaks.reshape(-1, 2), np.ones(peaks.shape[0] * peaks.shape[1]))
        pseudo_targets = pseudo_targets.reshape(*peaks.shape[:2], *pseudo_targets.shape[1:])
        # a decoded peak outside the crop gives no pseudo-label
        inside = (peaks >= 0).all(axis=-1) & (peaks <= np.asarray(codec.input_size) - 1).all(axis=-1)
        for row, raw in enumerate(step["raw"]):
            weight, target = step["target_weight"][row].numpy(), step["target"][row].numpy()
            raw_weight = np.asarray(raw["target_weight"], np.float32)
            if domain[row] == 0:  # infants: labels untouched, nothing to pseudo-label
                np.testing.assert_array_equal(weight, raw_weight)
                np.testing.assert_array_equal(target, raw["target"])
                assert step["pseudo_mask"] is None or not step["pseudo_mask"][row].any()  # None: no adult in it
                continue
            others = [k for k in range(len(infant21)) if k not in gaps]
            np.testing.assert_array_equal(weight[others], raw_weight[others])  # adult labels, as carried over
            np.testing.assert_array_equal(target[others], raw["target"][others])
            unlabelled_kept += int((raw_weight[others] == 0).sum())
            assert (raw_weight[gaps] == 0).all()  # no adult label there before the teacher
            for j, k in enumerate(gaps):
                if scores[row, j] >= THRESHOLD and inside[row, j] > 0:
                    filled += 1
                    # the engine runs the teacher on the adult rows alone: float rounding differs from this batch
                    assert weight[k] == pytest.approx(min(float(scores[row, j]), 1.0), abs=1e-5)
                    np.testing.assert_allclose(target[k], pseudo_targets[row, j], atol=1e-4)
                else:
                    assert weight[k] == 0
    rows = 4 * len(seen.steps)
    assert abs(adults / rows - 0.3) < 0.1  # 30 of the 96 rows the 3 epochs trained on were adults
    assert filled > 0 and unlabelled_kept > 0

    # the teacher: frozen, in eval mode, the source checkpoint unchanged, apart from the trained model
    method = trainer.methods[1]
    assert method.name == "rehearsal" and method.key == "adapt.1.rehearsal"
    frozen = method.labeller.teacher
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert teacher_fingerprint(frozen) == teacher_fingerprint(teacher) == method.fingerprint
    assert all(m is not frozen for m in trainer.module.modules())
    state = load_train_state(tmp_path / "last.pt")
    assert set(state["model"]) == set(trainer.module.state_dict())
    assert state["methods"]["adapt.1.rehearsal"]["teacher"] == method.fingerprint
    logged = (tmp_path / "adapt_log.csv").read_text().splitlines()[0]
    assert "rehearsal/pseudo_labels" in logged and "rehearsal/pseudo_confidence" in logged

    losses = list(loss.losses.values())
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])
    final = load_checkpoint(tmp_path / "final.safetensors")
    assert [s.name for s in final.schemas] == ["infant21"]
    adapt = final.provenance["adapt"]
    assert [next(iter(m)) for m in adapt] == ["full", "rehearsal"]
    assert adapt[1]["rehearsal"]["source"]["schema"] == "coco17" and adapt[1]["rehearsal"]["ratio"] == 0.3


def test_resume_rebuilds_the_teacher_and_reproduces_the_losses(tmp_path: Path, source_ckpt: Path) -> None:
    ckpt = tmp_path / "source.safetensors"
    shutil.copy(source_ckpt, ckpt)  # the default teacher: model.checkpoint as loaded, before head surgery
    files = write_dataset(tmp_path / "adults", "adult", n=16, size=96, seed=5, schemas=["coco17"])
    r = recipe(ckpt, epochs=2)  # adults from a COCO file this time; its categories name the schema
    rehearsal_options(r)["source"] = {"ann": str(files.annotations["coco17"]), "images": str(files.images)}
    full = RecordLoss()
    build_trainer(recipe_from_dict(r), tmp_path / "full", hooks=(full,)).fit()

    class StopAt(Hook):
        def after_step(self, trainer, logs) -> None:
            if trainer.iteration == 5:
                raise KeyboardInterrupt

    first = RecordLoss()
    assert build_trainer(recipe_from_dict(r), tmp_path / "split", hooks=(first, StopAt())).fit().iteration == 5

    original = ckpt.read_bytes()
    save_checkpoint(confident_model("halpe26", seed=6), ckpt)  # another source model under the same name
    with pytest.raises(PoseAdaptError, match="the rehearsal teacher differs from the saved run's"):
        build_trainer(recipe_from_dict(r), tmp_path / "split", resume=True).fit(resume=True)
    ckpt.write_bytes(original)

    second = RecordLoss()
    result = build_trainer(recipe_from_dict(r), tmp_path / "split", resume=True, hooks=(second,)).fit(resume=True)
    assert result.status == "completed" and min(second.losses) == 6
    resumed = {**first.losses, **second.losses}
    assert sorted(resumed) == sorted(full.losses) == list(range(1, 17))
    for it, value in full.losses.items():
        assert resumed[it] == pytest.approx(value, abs=1e-6), it
    adapt = load_checkpoint(tmp_path / "split" / "final.safetensors").provenance["adapt"]
    assert adapt[1]["rehearsal"]["source"]["ann"] == str(files.annotations["coco17"])


def test_source_schema_gaps_alone_are_left_to_the_teacher() -> None:
    """Default `fill_unlabelled: false`: an adult's unlabelled coco17 point (v=0) stays unsupervised."""
    from poseadapt.train.build import build_dataset
    from poseadapt.train.recipe import DataSource

    model = create_model("vit_tiny", "infant21", "simple", img_size=(INPUT[1], INPUT[0]))
    src = DataSource.model_validate(
        {"synth": {"population": "adult", "n": 40, "size": 96, "seed": 3}, "schema": "coco17"}
    )
    adults = build_dataset(src, "src", model, 0, 1.25, False, 0, match_head=False)
    assert adults.schema.name == "coco17"
    expected = [0.0] * 17 + [1.0, 0.0, 1.0, 1.0]  # head_top, neck (shoulder midpoint), big toes
    some_v0 = False
    for fill, masks in ((False, []), (True, [])):
        wrapped = SourceAsTarget(adults, "infant21", model.codec, fill_unlabelled=fill)
        for i in range(len(adults)):
            masks.append(wrapped[i]["extra"]["pseudo_mask"].tolist())
        if not fill:
            assert all(m == expected for m in masks)
        else:
            for i, m in enumerate(masks):
                v0 = adults[i]["keypoints"][:, 2] <= 0
                some_v0 |= bool(v0.any())
                assert m[:17] == v0.astype(float).tolist()
    assert some_v0  # the random views put some adult points out of frame


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


BAD = {
    "source file missing": (
        lambda r, d: rehearsal_options(r).update(source={"ann": str(d / "nope.json")}),
        "recipe key 'adapt.1.rehearsal.source.ann': file not found",
    ),
    "ratio 1": (lambda r, d: rehearsal_options(r).update(ratio=1.0), "recipe key 'adapt.1.rehearsal.ratio'"),
    "ratio 0": (lambda r, d: rehearsal_options(r).update(ratio=0), "recipe key 'adapt.1.rehearsal.ratio'"),
    "ratio draws nothing": (
        lambda r, d: (rehearsal_options(r).update(ratio=0.1), r["data"]["train"]["synth"].update(n=2)),
        "the rehearsal stream's ratio 0.1 of 2 samples per epoch draws nothing",
    ),
    "no shared keypoint": (
        lambda r, d: rehearsal_options(r)["source"].update(schema=str(write(d / "m.yaml", MARKERS.to_dict()))),
        "the source schema 'markers3' shares no keypoint with the target head's schema 'infant21'",
    ),
    "typo in synth": (
        lambda r, d: rehearsal_options(r)["source"].update(synth={"populaton": "adult"}),
        "recipe key 'adapt.1.rehearsal.source.synth.populaton': unknown key",
    ),
    "images with synth": (
        lambda r, d: rehearsal_options(r).update(source={"synth": "adult", "images": str(d)}),
        "recipe key 'adapt.1.rehearsal.source': 'images' goes with 'ann', not with 'synth'",
    ),
    "teacher file missing": (
        lambda r, d: rehearsal_options(r).update(teacher=str(d / "nope.safetensors")),
        "recipe key 'adapt.1.rehearsal.teacher': file not found",
    ),
    "teacher predicts nothing useful": (
        lambda r, d: rehearsal_options(r).update(
            teacher=str(save_checkpoint(confident_model(MARKERS), d / "markers.safetensors"))
        ),
        "the teacher (markers3) predicts no infant21 keypoint",
    ),
    "no source model": (
        lambda r, d: r["model"].pop("checkpoint"),
        "recipe key 'adapt.1.rehearsal.teacher': this method needs a source model",
    ),
    "teacher crop size": (
        lambda r, d: rehearsal_options(r).update(
            teacher=str(save_checkpoint(confident_model("halpe26", (96, 128)), d / "big.safetensors"))
        ),
        "recipe key 'adapt.1.rehearsal.teacher': the teacher takes 96x128 crops",
    ),
    "two parameter choices": (
        lambda r, d: r["adapt"].insert(0, {"head_only": {}}),
        "recipe key 'adapt.1.full': 'full' and 'head_only' both choose which parameters train; keep one",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_rehearsal_settings_fail_up_front_in_one_line(tmp_path: Path, source_ckpt: Path, case: str) -> None:
    r = recipe(source_ckpt)
    edit, message = BAD[case]
    edit(r, tmp_path)
    with pytest.raises(PoseAdaptError, match=re.escape(message)) as exc:
        build_trainer(recipe_from_dict(r), tmp_path / "run")
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_cli_trains_the_builtin_rehearsal_recipe(tmp_path: Path, source_ckpt: Path, capsys) -> None:
    tiny = [
        f"model.checkpoint={source_ckpt}",
        f"model.input_size=[{INPUT[0]}, {INPUT[1]}]",
        "model.head=simple",
        "data.train.synth.n=8",
        "data.train.synth.size=96",
        "data.val.synth.n=4",
        "data.val.synth.size=96",
        "adapt.0.rehearsal.source.synth.n=4",
        "adapt.0.rehearsal.source.synth.size=96",
        "schedule.epochs=1",
        "schedule.warmup_iters=1",
        "train.batch_size=4",
        "train.workers=0",
        "train.device=cpu",
        "train.val_interval=1",
        "train.flip_test=false",
        "train.tensorboard=false",
    ]
    args = ["train", "synth-infant-rehearsal", "--out", str(tmp_path), "--json"]
    with pytest.raises(SystemExit) as exc:
        main([*args, *(a for item in tiny for a in ("--set", item))])
    assert exc.value.code == 0, capsys.readouterr().err
    assert '"status": "completed"' in capsys.readouterr().out
    saved = yaml.safe_load((tmp_path / "recipe.yaml").read_text())
    assert saved["adapt"][0]["rehearsal"]["ratio"] == 0.3 and saved["train"]["samples_per_epoch"] == 11  # 8 / 0.7
    assert saved["adapt"][0]["rehearsal"]["source"]["synth"]["n"] == 4
    adapt = load_checkpoint(tmp_path / "final.safetensors").provenance["adapt"]
    assert adapt[0]["rehearsal"]["source"]["schema"] == "coco17"

    with pytest.raises(SystemExit) as exc:  # bad input through the CLI: exit 2, one line, no traceback
        main(["train", "synth-infant-rehearsal", "--out", str(tmp_path / "bad"), "--set", "adapt.0.rehearsal.ratio=2"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.startswith("error: recipe key 'adapt.0.rehearsal.ratio'") and "\n" not in err


def test_an_inverting_model_keeps_a_teacher_that_reads_as_its_checkpoint_did(tmp_path: Path, source_ckpt: Path) -> None:
    """`model.invert_input: true` inverts the trained model only: the rehearsal teacher labels the colour source
    images through the source checkpoint's own mean / std, as it always did."""
    spec = recipe(source_ckpt)
    spec["model"]["invert_input"] = True
    trainer = build_trainer(recipe_from_dict(spec), tmp_path)
    source = load_checkpoint(source_ckpt)
    assert trainer.module.config.input_inverted and not source.config.input_inverted
    frozen = trainer.methods[1].labeller.teacher
    assert not frozen.config.input_inverted and teacher_fingerprint(frozen) == teacher_fingerprint(source)
    pixels = torch.randint(0, 256, (2, 3, *INPUT[::-1])).float()
    with torch.no_grad():
        torch.testing.assert_close(frozen(frozen.normalize(pixels)), source.eval()(source.normalize(pixels)))
        # the trained model's backbone reads the same pixels inverted: its normalised input is the source's of 255 - x
        torch.testing.assert_close(trainer.module.normalize(pixels), source.normalize(255 - pixels))
