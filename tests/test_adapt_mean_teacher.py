"""The `mean_teacher` method: labelled synthetic adults + unlabelled top-view infants (labels ignored), an EMA teacher
on the weak view, silhouettes from the renderer's masks (COCO polygons) or RLE, a pose prior; tiny random models."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from poseadapt.adapt.methods.mean_teacher import MeanTeacher, silhouette_distance
from poseadapt.adapt.unlabelled import distance_to_mask, silhouette_mask
from poseadapt.data.coco import coco_keypoints_from_dict
from poseadapt.errors import PoseAdaptError
from poseadapt.priors import complete_poses, fit_prior
from poseadapt.synth import render_dataset, write_dataset
from poseadapt.train import build_trainer, load_recipe, recipe_from_dict

UNLABELLED = {"synth": {"population": "infant", "view": "top", "n": 8, "size": 96, "seed": 9}}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def prior_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, coco = render_dataset("infant", view="top", n=80, size=96, seed=0, schema="coco17")
    data = coco_keypoints_from_dict(coco, "coco17")
    return fit_prior(complete_poses(data.keypoints), data.schema).save(
        tmp_path_factory.mktemp("prior") / "infant.safetensors"
    )


def recipe(**options: object) -> dict:
    return {
        "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "simple"},
        "data": {"train": {"synth": {"population": "adult", "n": 8, "size": 96, "seed": 3}}},
        "optim": {"lr": 1e-3, "weight_decay": 0.0},
        "schedule": {"epochs": 1, "warmup_iters": 0, "policy": "constant"},
        "train": {"batch_size": 4, "workers": 0, "device": "cpu", "progress": False, "tensorboard": False,
                  "val_interval": 0, "ema": None, "log_interval": 1},
        "adapt": [{"mean_teacher": {"unlabelled": copy.deepcopy(UNLABELLED), "momentum": 0.9, **options}}],
    }  # fmt: skip


def test_teacher_is_an_ema_of_the_student(tmp_path: Path) -> None:
    trainer = build_trainer(recipe_from_dict(recipe()), tmp_path / "run")
    method = trainer.methods[0]
    assert isinstance(method, MeanTeacher) and method.teacher is not None
    student = trainer.module
    # the teacher starts as the student, and never joins the optimizer
    for (name, t), (_, s) in zip(method.teacher.named_parameters(), student.named_parameters(), strict=True):
        assert torch.equal(t, s) and not t.requires_grad, name
    optimised = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert not optimised & {id(p) for p in method.teacher.parameters()}
    momentums = []
    for n in range(3):
        before = {k: v.clone() for k, v in method.teacher.named_parameters()}
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn_like(p))
        m = method.update_teacher(student)
        momentums.append(m)
        assert m == pytest.approx(min(0.9, (1 + n) / (10 + n)))
        for name, s in student.named_parameters():
            expected = m * before[name] + (1 - m) * s
            torch.testing.assert_close(dict(method.teacher.named_parameters())[name], expected)
    # through training: state saved and restored (exact resume keeps the teacher)
    state = method.state_dict()
    assert state["updates"] == 3
    fresh = MeanTeacher(method.options)
    fresh.load_state_dict(state)  # before the teacher exists: applied when it is made
    fresh.teacher = copy.deepcopy(method.teacher)
    with torch.no_grad():
        for p in fresh.teacher.parameters():
            p.zero_()
    fresh.load_state_dict(fresh.pending)
    for (_, a), (_, b) in zip(fresh.teacher.named_parameters(), method.teacher.named_parameters(), strict=True):
        assert torch.equal(a, b)


def test_unlabelled_items_two_views_zero_weights_and_silhouettes(tmp_path: Path) -> None:
    trainer = build_trainer(recipe_from_dict(recipe()), tmp_path / "run")
    stream = trainer.loader.dataset.datasets[-1]
    item = stream.get(0, np.random.default_rng(0))
    assert item["target_weight"].sum() == 0 and (item["keypoints"][:, 2] == 0).all()
    extra = item["sample_extra"]
    assert extra["weak_image"].shape == item["image"].shape and extra["unlabelled"] == 1.0
    assert extra["has_silhouette"] == 1.0 and extra["silhouette_distance"].min() == 0.0
    # same crop geometry: the labels the renderer wrote (ignored for training) fall inside the silhouette
    labelled = stream.base.get(0, np.random.default_rng(0))["keypoints"]
    inside = labelled[labelled[:, 2] > 1]  # visible points
    d = extra["silhouette_distance"][np.round(inside[:, 1]).astype(int), np.round(inside[:, 0]).astype(int)]
    assert np.median(d) < 0.5
    batch = next(iter(trainer.loader))
    rows = batch["unlabelled"] > 0
    assert rows.any() and (~rows).any()  # adults and infants mixed
    assert batch["target_weight"][rows].sum() == 0 and batch["target_weight"][~rows].sum() > 0
    assert batch["weak_image"].shape == batch["image"].shape


def test_silhouette_loss_is_zero_inside_the_mask_and_positive_outside() -> None:
    class Codec:
        stride = np.array([4.0, 4.0])

    mask = np.zeros((64, 48), np.uint8)
    mask[16:48, 12:36] = 1
    field = torch.from_numpy(distance_to_mask(mask, 4.0))[None]

    def peaks(points: list[tuple[float, float]]) -> torch.Tensor:
        ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(12.0), indexing="ij")
        maps = [torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 2) for x, y in points]
        return torch.stack(maps)[None].requires_grad_(True)

    inside = peaks([(6.0, 8.0), (5.0, 6.0)])  # heatmap cells -> crop pixels (24, 32), (20, 24): in the mask
    outside = peaks([(1.0, 1.0), (11.0, 15.0)])
    d_in = silhouette_distance(inside, field, 20.0, Codec())
    d_out = silhouette_distance(outside, field, 20.0, Codec())
    assert torch.allclose(d_in, torch.zeros_like(d_in), atol=1e-3)
    assert (d_out > 1.0).all()
    d_out.sum().backward()
    assert outside.grad.abs().sum() > 0  # the loss moves the peaks


# pycocotools' _mask.pyx on numpy 2, that one notice only
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn.t accept a copy keyword:DeprecationWarning")
def test_rle_and_polygon_silhouettes_agree() -> None:
    from pycocotools import mask as mask_utils

    poly = [[10.0, 10.0, 60.0, 10.0, 60.0, 80.0, 10.0, 80.0]]
    rle = mask_utils.merge(mask_utils.frPyObjects(poly, 100, 100))
    rle["counts"] = rle["counts"].decode()
    matrix = np.array([[0.5, 0.0, 2.0], [0.0, 0.5, 1.0]])
    a = silhouette_mask(poly, matrix, (48, 64), None)
    b = silhouette_mask(rle, matrix, (48, 64), None)
    assert a.sum() > 100 and np.abs(a.astype(int) - b).sum() / a.sum() < 0.1


def test_coco_file_unlabelled_and_bad_options_are_one_line(tmp_path: Path, prior_file: Path) -> None:
    files = write_dataset(tmp_path / "infants", "infant", view="top", n=6, size=96, seed=4, schemas=["coco17"])
    ann = files.annotations["coco17"]
    data = json.loads(ann.read_text())
    for a in data["annotations"]:  # an unlabelled file: boxes and masks, no keypoints
        a["keypoints"], a["num_keypoints"] = [0] * 51, 0
    unlabelled = tmp_path / "infants" / "annotations" / "unlabelled.json"
    unlabelled.write_text(json.dumps(data))
    r = recipe(prior=str(prior_file))
    r["adapt"][0]["mean_teacher"]["unlabelled"] = {"ann": str(unlabelled), "images": str(files.images)}
    trainer = build_trainer(recipe_from_dict(r), tmp_path / "coco-run")
    assert len(trainer.loader.dataset.datasets[-1]) == len(data["annotations"])
    assert trainer.fit().status == "completed"

    bad = [
        ({"unlabelled": {"ann": str(unlabelled), **UNLABELLED}}, r"unlabelled': give exactly one of 'ann'"),
        ({"unlabelled": {"synth": {**UNLABELLED["synth"], "stream": True}}}, "stream: true' is not supported"),
        ({"unlabelled": {"ann": str(tmp_path / "none.json")}}, r"unlabelled.ann': file not found"),
        ({"strong": [{"type": "RandomFlip"}]}, r"mean_teacher.strong': only pixel transforms .*RandomFlip"),
        ({"augment": [{"type": "RandomBlur"}]}, r"mean_teacher.augment': only box transforms"),
        ({"strong": [{"type": "Nope"}]}, r"mean_teacher.strong': unknown transform"),
        ({"prior": str(tmp_path / "none.safetensors")}, r"mean_teacher.prior': pose prior not found"),
        ({"momentum": 1.0}, r"mean_teacher.momentum'"),
        ({"ratio": 1.5}, r"mean_teacher.ratio'"),
        ({"silhuette": 1.0}, r"mean_teacher.silhuette': unknown key"),
        ({"teacher_views": ["mirror"]}, r"mean_teacher.teacher_views.0'"),
        ({"prior_filter": True}, r"mean_teacher.prior_filter': needs 'prior'"),
        ({"student_rotate": 200.0}, r"mean_teacher.student_rotate'"),
    ]
    for options, message in bad:
        r = recipe()
        r["adapt"][0]["mean_teacher"].update(options)
        with pytest.raises(PoseAdaptError, match=message) as exc:
            build_trainer(recipe_from_dict(r), tmp_path / "bad")
        assert "\n" not in str(exc.value)
        assert not (tmp_path / "bad").exists()  # refused before anything was built or written


def test_short_mean_teacher_run_from_the_shipped_recipe(tmp_path: Path, prior_file: Path) -> None:
    shipped = load_recipe("synth-infant-mean-teacher").to_dict()
    assert next(iter(shipped["adapt"][-1])) == "mean_teacher"
    shipped["model"] = {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "simple"}  # no builtin
    train = shipped["data"]["train"]
    (train[0] if isinstance(train, list) else train)["synth"].update(n=8, size=96)
    shipped["data"]["val"]["synth"].update(n=4, size=96)
    shipped["schedule"].update(epochs=2, warmup_iters=0)
    shipped["train"].update(batch_size=4, workers=0, device="cpu", progress=False, tensorboard=False, val_interval=2)
    shipped["train"].update(log_interval=1)
    mt = shipped["adapt"][-1]["mean_teacher"]
    mt["unlabelled"]["synth"].update(n=8, size=96)
    mt.update(prior=str(prior_file), score_threshold=0.0, rampup_iters=2)
    result = build_trainer(recipe_from_dict(shipped), tmp_path / "run").fit()
    assert result.status == "completed" and result.final_checkpoint.is_file()
    header = (tmp_path / "run" / "adapt_log.csv").read_text().splitlines()[0]
    for column in ("pseudo_labels", "prior_energy", "outside_silhouette"):
        assert f"mean_teacher/{column}" in header
    log = (tmp_path / "run" / "train_log.csv").read_text().splitlines()[0]
    assert "mean_teacher/consistency" in log and "mean_teacher/silhouette" in log and "mean_teacher/prior" in log


class _Brightness(torch.nn.Module):
    """A stand-in teacher: each channel is the crop's brightness pooled to heatmap size, times a per-channel mask
    (1 = answers, 0 = silent), plus an optional ramp along x and y that no view maps back onto itself."""

    def __init__(self, channels: torch.Tensor, ramp: float = 0.0) -> None:
        super().__init__()
        self.channels, self.ramp = channels, ramp

    def forward(self, x: torch.Tensor, dataset_index: object = None) -> torch.Tensor:
        bright = torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 4)
        h, w = bright.shape[-2:]
        ramp = self.ramp * (torch.linspace(0, 1, w)[None, :] + 2 * torch.linspace(0, 1, h)[:, None])
        return (bright + ramp) * self.channels[None, :, None, None]


def test_teacher_views_map_back_exactly_and_swap_sides() -> None:
    from poseadapt.schemas import get_schema

    schema = get_schema("coco17")
    method = MeanTeacher(MeanTeacher.Options.model_validate({"unlabelled": UNLABELLED}))
    method.num_keypoints, method.flip_index = len(schema), list(schema.flip_index)
    x = torch.rand(2, 3, 64, 48)
    dots = torch.zeros(len(schema))
    dots[schema.keypoints.index("left_eye")] = 1.0
    identity = _Brightness(dots)(x)
    for views in (["rot180"], ["flip"], ["vflip"], ["flip", "rot180", "vflip"]):
        method.options = method.options.model_copy(update={"teacher_views": views})
        method.teacher = _Brightness(torch.ones(len(schema)))  # answers on every channel: views agree exactly
        assert torch.allclose(method.teacher_heatmaps(x, torch.zeros(2)), method.teacher(x), atol=1e-6), views
        method.teacher = _Brightness(dots)  # a left eye seen in a mirror is a right eye
        out = method.teacher_heatmaps(x, torch.zeros(2))
        mirrors = sum(v != "rot180" for v in views) / (1 + len(views))
        left, right = schema.keypoints.index("left_eye"), schema.keypoints.index("right_eye")
        assert torch.allclose(out[:, left], (1 - mirrors) * identity[:, left], atol=1e-6), views
        assert torch.allclose(out[:, right], mirrors * identity[:, left], atol=1e-6), views
        method.teacher = _Brightness(torch.ones(len(schema)), ramp=1.0)  # not equivariant: the views disagree
        assert not torch.allclose(method.teacher_heatmaps(x, torch.zeros(2)), method.teacher(x), atol=1e-3)


def test_turned_student_view_gets_the_teachers_keypoints_carried_into_it(tmp_path: Path) -> None:
    trainer = build_trainer(recipe_from_dict(recipe(student_rotate=40.0, student_scale=0.2, strong=[])), tmp_path)
    method, stream = trainer.methods[0], trainer.loader.dataset.datasets[-1]
    item = stream.get(0, np.random.default_rng(1))
    extra, matrix = item["sample_extra"], item["sample_extra"]["student_matrix"]
    assert not np.allclose(matrix, [[1, 0, 0], [0, 1, 0]])  # a real turn
    h, w = item["image"].shape[:2]
    turned = cv2.warpAffine(extra["weak_image"], matrix.astype(np.float64), (w, h), flags=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(item["image"], turned)  # no pixel transforms: the student's view IS the turn
    # the renderer's keypoints (ignored for training), carried by the matrix, fall inside the student's silhouette
    labelled = stream.base.get(0, np.random.default_rng(1))["keypoints"]
    visible = labelled[labelled[:, 2] > 1, :2] @ matrix[:, :2].T + matrix[:, 2]
    visible = visible[(visible[:, 0] >= 0) & (visible[:, 0] < w) & (visible[:, 1] >= 0) & (visible[:, 1] < h)]
    d = extra["silhouette_distance"][np.round(visible[:, 1]).astype(int), np.round(visible[:, 0]).astype(int)]
    assert len(visible) >= 5 and np.median(d) < 0.5
    # an oracle teacher that finds those keypoints in the weak view: the pseudo-labels are them, turned
    from poseadapt.train.batch import collate

    batch = collate([item])
    codec = method.codec
    truth = labelled.copy()
    truth[:, 2] = 1.0
    oracle, _ = codec.encode(truth[None, :, :2], np.ones((1, len(truth)), np.float32))
    method.teacher_heatmaps = lambda x, index: torch.from_numpy(np.asarray(oracle, np.float32))  # type: ignore[method-assign]
    method.pseudo_labels(batch)
    _, target, weight = method.pseudo
    carried = labelled[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    found, _ = codec.decode(target.numpy())
    sure = weight[0].numpy() > 0
    assert sure.sum() >= 5
    error = np.linalg.norm(found[0, sure, :2] - carried[sure], axis=1)
    assert error.max() < 1.5, error  # within the heatmap codec's round trip (a heatmap cell is 4 px)
    assert np.linalg.norm(found[0, sure, :2] - labelled[sure, :2], axis=1).max() > 5  # and not left unturned


def test_prior_and_silhouette_filters_drop_wrong_pseudo_labels(tmp_path: Path, prior_file: Path) -> None:
    from poseadapt.train.batch import collate

    def pseudo_weights(method: MeanTeacher, batch: dict, poses: np.ndarray) -> np.ndarray:
        heatmaps, _ = method.codec.encode(poses[..., :2], np.ones(poses.shape[:2], np.float32))
        method.teacher_heatmaps = lambda x, index: torch.from_numpy(np.asarray(heatmaps, np.float32))  # type: ignore[method-assign]
        method.pseudo_labels(batch)
        return method.pseudo[2].numpy()

    options = {"prior": str(prior_file), "prior_filter": True, "silhouette_filter": 1.0, "strong": []}
    options["score_threshold"] = 0.0  # the filters alone decide
    trainer = build_trainer(recipe_from_dict(recipe(**options)), tmp_path / "run")
    method, stream = trainer.methods[0], trainer.loader.dataset.datasets[-1]
    items = [stream.get(i, np.random.default_rng(i)) for i in range(4)]
    truth = np.stack([stream.base.get(i, np.random.default_rng(i))["keypoints"] for i in range(4)])
    batch = collate(items)
    inside = (truth[..., 2] > 1) & (truth[..., 0] > 0) & (truth[..., 1] > 0)
    kept = pseudo_weights(method, batch, truth)
    plausible = (kept > 0).any(1)  # true poses, as the (coarse) heatmaps give them back: most pass the prior
    assert plausible.sum() >= 2
    assert (kept[plausible][inside[plausible]] > 0).mean() > 0.9  # and are taught
    odd = truth.copy()
    wrist, (iw, ih) = 9, method.codec.input_size  # coco17 left_wrist, flung to the crop's far corner
    odd[:, wrist, :2] = np.where(odd[:, wrist, :1] < iw / 2, [iw - 2, ih - 2], [1, 1])
    assert (pseudo_weights(method, batch, odd) == 0).all()  # an arm longer than the body: the whole pose goes
    method.options = method.options.model_copy(update={"prior_filter": False})
    weights = pseudo_weights(method, batch, odd)
    field = batch["silhouette_distance"].numpy()
    rows = np.arange(4)
    far = field[rows, np.round(odd[:, wrist, 1]).astype(int), np.round(odd[:, wrist, 0]).astype(int)] > 1.0
    assert far.any() and (weights[far, wrist] == 0).all()  # the wrist outside the body goes, the rest stays
    assert (weights[plausible][inside[plausible]] > 0).mean() > 0.8
