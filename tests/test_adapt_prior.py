"""The pose prior (`poseadapt.priors`), its file, the implausible-pose rate, `poseadapt prior fit`, `score --prior`
and the `prior` method: fitted on rendered top-view infants (coco17), checked against poses made implausible by
hand (an arm three times too long, keypoints shuffled)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from poseadapt.cli.main import main
from poseadapt.errors import PoseAdaptError
from poseadapt.evaluate.plausibility import implausible_rate
from poseadapt.priors import PosePrior
from poseadapt.schemas import get_schema
from poseadapt.synth import write_dataset
from poseadapt.train import build_trainer, recipe_from_dict

COCO17 = get_schema("coco17")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def poses(infant_top_poses: np.ndarray) -> np.ndarray:
    return infant_top_poses


@pytest.fixture
def prior(infant_top_prior: PosePrior) -> PosePrior:
    return infant_top_prior


def far_wrist(pose: np.ndarray) -> np.ndarray:
    """The left wrist pushed out to twice the pose's radius from its centre (an arm far longer than the body)."""
    out = pose.copy()
    w = COCO17.index("left_wrist")
    centre = pose.mean(0)
    radius = np.linalg.norm(pose - centre, axis=1).max()
    direction = (pose[w] - centre) / np.linalg.norm(pose[w] - centre)
    out[w] = centre + 2.0 * radius * direction
    return out


def test_a_pose_far_outside_the_prior_costs_more_than_one_inside(poses: np.ndarray, prior: PosePrior) -> None:
    inside = poses[prior.energy(poses) <= prior.reference][:20]  # typical poses
    outside = np.stack([far_wrist(p) for p in inside])
    e_in, e_out = prior.energy(inside), prior.energy(outside)
    assert (e_out > e_in).all() and prior.implausible(outside).all() and not prior.implausible(inside).any()
    assert (prior.parts(outside)["bones"] > prior.parts(inside)["bones"]).all()
    # the energy is invariant to where, how large and how rotated the pose is
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = inside @ rot.T * 3.0 + 50.0
    np.testing.assert_allclose(prior.energy(moved), e_in, rtol=1e-6, atol=1e-6)
    # torch gives the same numbers, and a gradient that lowers the energy of the odd pose
    x = torch.tensor(outside[:1], dtype=torch.float64, requires_grad=True)
    energy = prior.energy(x)
    np.testing.assert_allclose(energy.detach().numpy(), e_out[:1], rtol=1e-6)
    energy.sum().backward()
    step = x.detach() - 0.5 * x.grad / x.grad.norm()
    assert float(prior.energy(step)) < float(energy.detach())


def test_prior_round_trips_through_safetensors(prior: PosePrior, poses: np.ndarray, tmp_path: Path) -> None:
    path = prior.save(tmp_path / "infant.safetensors")
    assert path.read_bytes()[8:9] == b"{"  # a safetensors header (JSON), not a pickle
    back = PosePrior.load(path)
    np.testing.assert_allclose(back.energy(poses), prior.energy(poses), rtol=1e-12, atol=1e-12)
    assert (back.keypoints, back.threshold, back.reference) == (prior.keypoints, prior.threshold, prior.reference)
    (tmp_path / "bad.safetensors").write_bytes(b"not a prior")
    with pytest.raises(PoseAdaptError, match="not a safetensors pose prior"):
        PosePrior.load(tmp_path / "bad.safetensors")


def test_implausible_rate_is_about_one_percent_on_training_poses_and_high_on_shuffled(
    prior: PosePrior, poses: np.ndarray
) -> None:
    train = implausible_rate(prior, poses, COCO17.keypoints)
    assert train["poses"] == len(poses) and 0.0 <= train["implausible_rate"] <= 0.03
    rng = np.random.default_rng(0)
    shuffled = np.stack([p[rng.permutation(len(p))] for p in poses])
    assert implausible_rate(prior, shuffled, COCO17.keypoints)["implausible_rate"] > 0.9
    # predictions of another schema are scored on the prior's keypoints, by name
    halpe = get_schema("halpe26")
    wide = np.zeros((len(poses), len(halpe), 2))
    wide[:, [halpe.index(k) for k in COCO17.keypoints]] = poses
    assert implausible_rate(prior, wide, halpe.keypoints)["implausible_rate"] == train["implausible_rate"]
    with pytest.raises(PoseAdaptError, match="needs keypoints the poses lack"):
        implausible_rate(prior, poses[:, :5], COCO17.keypoints[:5])


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_prior_fit_cli_and_score_with_prior(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = write_dataset(tmp_path / "infants", "infant", view="top", n=60, size=96, seed=1, schemas=["coco17"])
    ann = files.annotations["coco17"]
    out = tmp_path / "prior.safetensors"
    rc, stdout, err = run_cli(["prior", "fit", str(ann), "--out", str(out), "--json"], capsys)
    assert rc == 0, err
    summary = json.loads(stdout)
    assert summary["schema"] == "coco17" and summary["poses"] >= 30 and out.is_file()
    # the ground truth as predictions: scored, and about as plausible as the prior's own poses
    gt = json.loads(ann.read_text())
    pred = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in gt["annotations"] if a["num_keypoints"] == 17]  # fmt: skip
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    args = ["score", "--gt", str(ann), "--pred", str(tmp_path / "pred.json"), "--json"]
    rc, stdout, err = run_cli([*args, "--prior", str(out)], capsys)
    assert rc == 0, err
    scored = json.loads(stdout)
    assert scored["poses"] == len(pred) and scored["implausible_rate"] <= 0.05 and scored["AP"] > 0.99
    # bad input: one line each, before any work
    for bad, message in [
        (["prior", "fit", str(ann), "--out", str(tmp_path / "p.pt")], "must be a .safetensors file"),
        (["prior", "fit", str(ann), "--out", str(out), "--min-poses", "500"], "a pose prior needs at least 500"),
        (["prior", "fit", str(tmp_path / "none.json"), "--out", str(out)], "not found"),
        ([*args, "--prior", str(tmp_path / "none.safetensors")], "pose prior not found"),
    ]:
        rc, _, err = run_cli(bad, capsys)
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


def prior_recipe(prior_path: Path, **options: object) -> dict:
    return {
        "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "simple"},
        "data": {"train": {"synth": {"population": "infant", "view": "top", "n": 8, "size": 96, "seed": 3}}},
        "optim": {"lr": 1e-3, "weight_decay": 0.0},
        "schedule": {"epochs": 1, "warmup_iters": 0, "policy": "constant"},
        "train": {"batch_size": 4, "workers": 0, "device": "cpu", "progress": False, "tensorboard": False,
                  "val_interval": 0, "ema": None, "log_interval": 1},
        "adapt": [{"prior": {"prior": str(prior_path), **options}}],
    }  # fmt: skip


def test_prior_method_trains_and_bad_options_are_one_line(prior: PosePrior, tmp_path: Path) -> None:
    path = prior.save(tmp_path / "infant.safetensors")
    trainer = build_trainer(recipe_from_dict(prior_recipe(path, weight=0.01)), tmp_path / "run")
    assert trainer.fit().status == "completed"
    log = (tmp_path / "run" / "adapt_log.csv").read_text().splitlines()
    assert log[0].startswith("iteration") and "prior/energy" in log[0] and len(log) == 3
    for options, message in [
        ({"prior": str(tmp_path / "missing.safetensors")}, r"adapt.0.prior.prior': pose prior not found"),
        ({"weight": -1.0}, r"adapt.0.prior.weight'"),
        ({"wieght": 1.0}, r"adapt.0.prior.wieght': unknown key"),
        ({"head": "nope"}, r"adapt.0.prior.head': no head 'nope'"),
    ]:
        recipe = prior_recipe(path)
        recipe["adapt"][0]["prior"].update(options)
        with pytest.raises(PoseAdaptError, match=message) as exc:
            build_trainer(recipe_from_dict(recipe), tmp_path / "bad")
        assert "\n" not in str(exc.value)
    recipe = prior_recipe(path)
    recipe["model"]["schema"] = "mpii16"
    recipe["data"]["train"]["schema"] = "mpii16"
    with pytest.raises(PoseAdaptError, match=r"adapt.0.prior': head schema 'mpii16'.*lack"):
        build_trainer(recipe_from_dict(recipe), tmp_path / "bad2")


def test_threshold_reference_frees_poses_up_to_the_implausible_threshold(poses: np.ndarray, prior: PosePrior) -> None:
    from poseadapt.adapt.methods.prior import PriorTerm

    energy = torch.as_tensor(prior.energy(poses))
    between = energy[(energy > prior.reference) & (energy <= prior.threshold)]  # plausible, but above the median
    outside = torch.as_tensor(prior.energy(np.stack([far_wrist(p) for p in poses[:10]])))
    median = PriorTerm(prior, COCO17, "adapt.0.prior", 20.0, {})
    threshold = PriorTerm(prior, COCO17, "adapt.0.prior", 20.0, {}, reference="threshold")
    assert len(between) > 10 and float(median.loss(between)) > 0 and float(threshold.loss(between)) == 0.0
    assert float(threshold.loss(outside)) > 0 and float(threshold.loss(outside)) < float(median.loss(outside))
