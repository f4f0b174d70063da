"""Replay helpers (`poseadapt.adapt.replay`): source labels carried into the target schema, teacher pseudo-labels
for what they lack (none where the teacher's decoded peak leaves the crop), and a schema-changing fine-tune
(coco17 -> infant21, head_then_full + rehearsal) that trains and evaluates."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from poseadapt.adapt.methods import build_methods
from poseadapt.adapt.params import apply_trainable, backbone_depth
from poseadapt.adapt.replay import RehearsalTargets, SourceAsTarget
from poseadapt.data.coco import coco_keypoints_from_dict
from poseadapt.data.dataset import TopDownDataset
from poseadapt.data.topdown import invert_affine, warp_points
from poseadapt.errors import PoseAdaptError
from poseadapt.evaluate.oks import coco_keypoint_stats
from poseadapt.models import create_model
from poseadapt.models.surgery import swap_head
from poseadapt.schemas import KeypointSchema, get_schema
from poseadapt.synth import render_dataset
from poseadapt.train.batch import collate, model_input
from poseadapt.train.losses import keypoint_mse
from poseadapt.train.sampler import MixedDataset, MixedSampler

IMG = (128, 96)  # (h, w) of the crops: heatmaps 32x24
# the ViTPose simple head (bilinear x4 + 3x3 conv) keeps these CPU tests fast; the classic deconv head is 20x slower


def confident(model):
    """Re-initialise the head so heatmaps are O(1) (the published init gives ~1e-6: no peak passes a threshold)."""
    torch.manual_seed(5)
    for m in model.heads.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            torch.nn.init.kaiming_normal_(m.weight)
    return model


def synth_set(population: str, schema: str, n: int, seed: int, codec, train: bool, unlabel: bool = False):
    """A rendered top-down dataset; `unlabel` removes one label per person (as annotators skip points)."""
    images, coco = render_dataset(population, n=n, size=128, schema=schema, seed=seed)
    for i, ann in enumerate(coco["annotations"] if unlabel else []):
        k = (3 * i) % (len(ann["keypoints"]) // 3)
        ann["keypoints"][3 * k : 3 * k + 3] = [0, 0, 0]
        ann["num_keypoints"] = sum(v > 0 for v in ann["keypoints"][2::3])
    data = coco_keypoints_from_dict(coco, schema)
    rgb = {im["id"]: img[..., ::-1].copy() for im, img in zip(coco["images"], images, strict=True)}
    return TopDownDataset(data, None, codec, input_size=(IMG[1], IMG[0]), train=train, images_in_memory=rgb, seed=seed)


@pytest.fixture(scope="module")
def codec():
    return create_model("vit_tiny", "infant21", "simple", img_size=IMG).codec


@pytest.fixture(scope="module")
def adults(codec):
    return synth_set("adult", "coco17", 8, 1, codec, train=False, unlabel=True)


def test_source_samples_carry_their_labels_into_the_target_schema(adults, codec):
    wrapped = SourceAsTarget(adults, "infant21", codec)
    infant = get_schema("infant21")
    coco = get_schema("coco17")
    shared = [infant.index(name) for name in coco.keypoints]
    assert shared == list(range(17))
    head_top, neck, toes = infant.index("head_top"), infant.index("neck"), [infant.index("left_big_toe"), 20]
    some_unlabelled = False
    for i in range(len(adults)):
        src, dst = adults[i], wrapped[i]
        kp_s, kp_d = src["keypoints"], dst["keypoints"]
        np.testing.assert_array_equal(kp_d[shared], kp_s)
        # the wrapped item re-encodes from the float32 keypoints the item carries: equal up to that rounding
        np.testing.assert_allclose(dst["target"][shared], src["target"], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(dst["target_weight"][shared], src["target_weight"])
        np.testing.assert_array_equal(dst["extra"]["pseudo_mask"][shared], (kp_s[:, 2] <= 0).astype(np.float32))
        some_unlabelled |= bool((kp_s[:, 2] <= 0).any())
        # head top and big toes: no adult label, left to the teacher
        assert dst["extra"]["pseudo_mask"][[head_top, *toes]].tolist() == [1.0, 1.0, 1.0]
        assert dst["target_weight"][[head_top, *toes]].tolist() == [0.0, 0.0, 0.0]
        # neck: the shoulder midpoint, a label (SchemaMap's approximate rule)
        ls, rs = coco.index("left_shoulder"), coco.index("right_shoulder")
        if kp_s[ls, 2] > 0 and kp_s[rs, 2] > 0:
            np.testing.assert_allclose(kp_d[neck, :2], (kp_s[ls, :2] + kp_s[rs, :2]) / 2, atol=1e-4)
            assert dst["extra"]["pseudo_mask"][neck] == 0
        assert dst["target"].shape == (21, 32, 24)
    assert some_unlabelled


def test_pseudo_labels_sit_at_the_teachers_peaks(adults, codec):
    teacher = confident(create_model("vit_tiny", "halpe26", "simple", img_size=IMG)).train()
    wrapped = SourceAsTarget(adults, "infant21", codec)
    batch = collate([wrapped[i] for i in range(len(wrapped))])
    original_target, original_weight = batch["target"].clone(), batch["target_weight"].clone()

    # the teacher's own decoded peaks, computed independently of RehearsalTargets
    reference = copy.deepcopy(teacher).eval()
    with torch.no_grad():
        heatmaps = reference(reference.normalize(batch["image"].permute(0, 3, 1, 2).float())).numpy()
    peaks, scores = codec.decode(heatmaps)
    iw, ih = codec.input_size  # a decoded peak outside the crop (refinement can push a border one out): no label
    inside = (peaks[..., 0] >= 0) & (peaks[..., 0] <= iw - 1) & (peaks[..., 1] >= 0) & (peaks[..., 1] <= ih - 1)
    halpe, infant = get_schema("halpe26"), get_schema("infant21")
    teacher_of = {infant.index(n): halpe.index(n) for n in infant.keypoints}  # halpe26 has all 21 names
    masked = [(b, k) for b, k in zip(*np.nonzero(batch["pseudo_mask"].numpy()), strict=True)]
    threshold = float(np.median([scores[b, teacher_of[k]] for b, k in masked]))

    rt = RehearsalTargets(teacher, "infant21", codec, score_threshold=threshold)
    assert rt.teacher is not teacher and teacher.training  # the caller's model is left alone
    assert not rt.teacher.training and not any(p.requires_grad for p in rt.teacher.parameters())
    stats = rt(batch)

    filled = kept_out = interior = 0
    for b, k in masked:
        s = scores[b, teacher_of[k]]
        if s >= threshold and inside[b, teacher_of[k]]:
            filled += 1
            assert batch["target_weight"][b, k] == pytest.approx(min(s, 1.0), abs=1e-6)
            peak = peaks[b, teacher_of[k]]
            expected, _ = codec.encode(peak[None], np.ones(1))  # a Gaussian target centred on the teacher's peak
            np.testing.assert_allclose(batch["target"][b, k].numpy(), expected[0], atol=1e-6)
            if np.all(peak >= 2 * codec.stride) and np.all(peak <= np.asarray(codec.input_size) - 1 - 2 * codec.stride):
                pos, _ = codec.decode(batch["target"][b, k][None].numpy())  # away from the border: it decodes back
                np.testing.assert_allclose(pos[0, 0], peak, atol=0.3)
                interior += 1
        else:
            kept_out += 1
            assert batch["target_weight"][b, k] == 0
            assert torch.equal(batch["target"][b, k], original_target[b, k])
    assert filled > 0 and kept_out > 0 and interior > 0 and stats["pseudo_labels"] == filled
    unmasked = batch["pseudo_mask"] == 0
    assert torch.equal(batch["target_weight"][unmasked], original_weight[unmasked])  # labels are never overridden
    assert torch.equal(batch["target"][unmasked], original_target[unmasked])
    assert not batch["target"].requires_grad


def test_rehearsal_teacher_must_share_keypoints_and_crop(codec):
    markers = KeypointSchema.from_dict({"name": "markers3", "keypoints": ["m_a", "m_b", "m_c"], "sigmas": [0.05] * 3})
    with pytest.raises(PoseAdaptError, match="predicts no markers3 keypoint"):
        RehearsalTargets(create_model("vit_tiny", "coco17", img_size=IMG), markers, codec)
    big = create_model("vit_tiny", "coco17", img_size=(256, 192))
    with pytest.raises(PoseAdaptError, match="crops"):
        RehearsalTargets(big, "infant21", codec)


def predict_results(model, dataset: TopDownDataset) -> list[dict]:
    """Top-down predictions on GT boxes, back in image coordinates, as COCO results."""
    model.eval()
    batch = collate([dataset[i] for i in range(len(dataset))], keep_meta=True)
    with torch.no_grad():
        heatmaps = model(model_input(batch["image"], model)).numpy()
    points, scores = model.codec.decode(heatmaps)
    results = []
    for j, meta in enumerate(batch["meta"]):
        xy = warp_points(points[j], invert_affine(meta["matrix"]))
        kps = np.concatenate([xy, scores[j][:, None]], axis=1)
        results.append(
            {"image_id": meta["image_id"], "category_id": 1, "keypoints": kps.ravel().tolist(), "score": 1.0}
        )
    return results


def pycocotools_ap(coco_gt: dict, results: list[dict], sigmas) -> tuple[float, float]:
    """(AP, AR) from pycocotools itself: the oracle for our scorer."""
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(coco_gt)
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return float(ev.stats[0]), float(ev.stats[5])


def shifted_gt_results(coco_gt: dict, sigmas, oks: float) -> list[dict]:
    """The GT moved so that every person's OKS is exactly `oks`: each labelled keypoint k shifted along x by
    d_k = 2 sigma_k sqrt(2 area ln(1/oks)), since COCO's OKS term is exp(-d^2 / (2 area (2 sigma)^2))."""
    out = []
    for ann in coco_gt["annotations"]:
        kp = np.asarray(ann["keypoints"], float).reshape(-1, 3)
        kp[:, 0] += 2 * np.asarray(sigmas) * np.sqrt(2 * ann["area"] * np.log(1 / oks))
        out.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 1.0})
    return out


def test_schema_changing_finetune_coco17_to_infant21_trains_and_evaluates(codec):
    torch.manual_seed(0)
    source = confident(create_model("vit_tiny", "coco17", "simple", img_size=IMG))
    student, report = swap_head(source, "infant21")
    assert len(report.carried) == 17 and set(report.fresh) == {"head_top", "neck", "left_big_toe", "right_big_toe"}

    stages, rehearsal = build_methods(
        [
            {"head_then_full": {"head_epochs": 1}},
            {"rehearsal": {"source": {"synth": {"population": "adult"}}, "ratio": 0.25, "score_threshold": 0.05}},
        ]
    )
    depth = backbone_depth(student)
    labeller = RehearsalTargets(source, "infant21", student.codec, score_threshold=rehearsal.options.score_threshold)
    held = [p for n, p in student.named_parameters() if stages.ever_trains(n, depth)]
    optimizer = torch.optim.AdamW(held, lr=2e-3, weight_decay=1e-4)

    infants = synth_set("infant", "infant21", 12, 2, codec, train=True)
    adults = SourceAsTarget(synth_set("adult", "coco17", 8, 3, codec, train=True, unlabel=True), "infant21", codec)
    data = MixedDataset([infants, adults], head_index=[0, 0])
    ratio = rehearsal.options.ratio  # the target set keeps its whole epoch: 12 / 0.75 = 16 samples
    sampler = MixedSampler(data.sizes, [1 - ratio, ratio], round(len(infants) / (1 - ratio)), seed=0)
    assert sampler.counts == [12, 4]
    loader = torch.utils.data.DataLoader(data, batch_size=8, sampler=sampler, collate_fn=collate, drop_last=True)

    probe = collate([infants[i] for i in range(8)])
    student.eval()
    with torch.no_grad():
        loss_before = float(
            keypoint_mse(student(model_input(probe["image"], student)), probe["target"], probe["target_weight"])
        )
    pseudo, source_rows, switches = 0.0, 0, []
    for epoch in range(4):
        student.train()
        apply_trainable(student, lambda name, e=epoch: stages.trainable(name, e, depth))
        switches.append(bool(stages.on_epoch_start(student, epoch)))
        sampler.set_epoch(epoch)
        for batch in loader:
            pseudo += labeller(batch).get("pseudo_labels", 0.0)
            source_rows += int((batch["pseudo_mask"].sum(dim=1) > 0).sum())
            out = student(model_input(batch["image"], student), batch["dataset_index"])
            loss = keypoint_mse(out, batch["target"], batch["target_weight"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    assert switches == [False, True, False, False]
    assert source_rows == 4 * 4 and pseudo > 0  # every epoch replayed 4 adults, and the teacher filled keypoints
    student.eval()
    with torch.no_grad():
        loss_after = float(
            keypoint_mse(student(model_input(probe["image"], student)), probe["target"], probe["target_weight"])
        )
    assert loss_after < 0.7 * loss_before

    exported = rehearsal.export(stages.export(student))
    eval_set = synth_set("infant", "infant21", 12, 2, codec, train=False)
    _, coco_gt = render_dataset("infant", n=12, size=128, schema="infant21", seed=2)
    sigmas = eval_set.schema.sigmas
    # geometry oracle for the scorer on this GT: every person at OKS 0.77 passes thresholds .50-.75 (6 of 10)
    # with precision 1 and fails .80-.95, so AP = 0.6, AP50 = AP75 = 1, AR = 0.6 (by hand, not by pycocotools)
    known = coco_keypoint_stats(coco_gt, shifted_gt_results(coco_gt, sigmas, 0.77), sigmas)
    assert (known["AP"], known["AP50"], known["AP75"], known["AR"]) == pytest.approx((0.6, 1.0, 1.0, 0.6), abs=1e-9)
    # the adapted model's AP is what pycocotools computes on the same predictions
    results = predict_results(exported, eval_set)
    assert sorted(r["image_id"] for r in results) == sorted(a["image_id"] for a in coco_gt["annotations"])
    stats = coco_keypoint_stats(coco_gt, results, sigmas)
    assert (stats["AP"], stats["AR"]) == pytest.approx(pycocotools_ap(coco_gt, results, sigmas), abs=1e-9)


def test_a_teacher_peak_outside_the_crop_gives_no_pseudo_label(monkeypatch) -> None:
    """The filter decodes the teacher's peak: a Gaussian centred left of the crop still overlaps the heatmap (the old
    window test let it through) but decodes to x < 0, so that keypoint gets weight 0; the one inside gets its score."""
    student = create_model("vit_tiny", "infant21", "simple", img_size=(64, 48))
    teacher = create_model("vit_tiny", "coco17", "simple", img_size=(64, 48))
    codec = student.codec
    coco, infant = get_schema("coco17"), get_schema("infant21")
    nose, wrist = "nose", "left_wrist"
    outside_xy, inside_xy = (-6.0, 30.0), (20.0, 30.0)  # crop pixels: 6 px left of a 48 px wide crop, and inside
    pair, visible = codec.encode(np.asarray([outside_xy, inside_xy], np.float32), np.ones(2, np.float32))
    assert visible.tolist() == [1.0, 1.0]  # the Gaussian window of the outside point overlaps the map
    heatmaps = torch.zeros(1, len(coco), *pair.shape[1:])  # the teacher's output: both maxima at 0.6
    heatmaps[0, coco.index(nose)] = torch.from_numpy(pair[0] * (0.6 / pair[0].max()))
    heatmaps[0, coco.index(wrist)] = torch.from_numpy(pair[1] * (0.6 / pair[1].max()))
    peaks, scores = codec.decode(heatmaps[:, [coco.index(nose), coco.index(wrist)]].numpy())
    assert peaks[0, 0, 0] < 0 <= peaks[0, 1, 0] <= codec.input_size[0] - 1  # outside, inside
    assert scores[0].tolist() == pytest.approx([0.6, 0.6], abs=1e-4)  # both confident

    labeller = RehearsalTargets(teacher, "infant21", codec, score_threshold=0.3)
    monkeypatch.setattr(labeller, "teacher_heatmaps", lambda images: heatmaps[: images.shape[0]])
    k = len(infant)
    batch = {
        "image": torch.zeros(1, 64, 48, 3, dtype=torch.uint8),
        "target": torch.zeros(1, k, *pair.shape[1:]),
        "target_weight": torch.zeros(1, k),
        "pseudo_mask": torch.zeros(1, k),
    }
    batch["pseudo_mask"][0, [infant.index(nose), infant.index(wrist)]] = 1.0
    stats = labeller(batch)
    assert stats["pseudo_labels"] == 1.0
    assert batch["target_weight"][0, infant.index(nose)] == 0.0  # peak outside the crop: no pseudo-label
    assert not batch["target"][0, infant.index(nose)].any()
    assert batch["target_weight"][0, infant.index(wrist)] == pytest.approx(0.6, abs=1e-4)  # inside: its confidence
    expected, _ = codec.encode(peaks[0, 1][None], np.ones(1))
    np.testing.assert_allclose(batch["target"][0, infant.index(wrist)].numpy(), expected[0], atol=1e-6)
    assert (batch["target_weight"][0, [i for i in range(k) if infant.keypoints[i] not in (nose, wrist)]] == 0).all()
