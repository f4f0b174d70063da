"""The `adversarial` method (DANN): the gradient-reversal layer, the schedule, the domain streams through the engine
(tags, unlabelled samples ignored by the supervised loss, the classifier in the optimizer and learning), and
one-line errors for bad options."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from poseadapt.adapt.methods import build_methods
from poseadapt.adapt.methods.adversarial import (
    DomainClassifier,
    balanced_domain_loss,
    batch_domains,
    dann_lambda,
    reverse_gradient,
)
from poseadapt.cli.main import main
from poseadapt.errors import PoseAdaptError
from poseadapt.train import Hook, build_trainer, recipe_from_dict
from poseadapt.train.checkpointing import load_train_state

pytestmark = pytest.mark.usefixtures("one_thread")


def test_gradient_reversal_flips_the_sign_and_scales() -> None:
    x = torch.randn(3, 4, requires_grad=True)
    g = torch.randn(3, 4)
    y = reverse_gradient(x, 0.37)
    assert torch.equal(y, x)  # identity forward
    (y * g).sum().backward()
    torch.testing.assert_close(x.grad, -0.37 * g)
    x.grad = None
    reverse_gradient(x, 0.0).mul(g).sum().backward()  # scale 0: the backbone gets nothing
    assert torch.count_nonzero(x.grad) == 0


def test_dann_schedule() -> None:
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    values = [dann_lambda(p / 10) for p in range(11)]
    assert values == sorted(values) and values[5] > 0.98


def test_classifier_learns_separable_domains_and_reverses_into_the_features() -> None:
    torch.manual_seed(0)
    clf = DomainClassifier(8, 2, hidden=16)
    clf.reversal.scale = 0.5
    opt = torch.optim.AdamW(clf.parameters(), lr=1e-2)
    domains = torch.tensor([0] * 12 + [1] * 4)  # imbalanced on purpose: the loss is balanced
    feats = torch.randn(16, 8, 3, 2) + domains.view(-1, 1, 1, 1) * 1.5
    first = None
    for _ in range(60):
        f = feats.clone().requires_grad_(True)
        loss = balanced_domain_loss(clf(f), domains)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss.detach()) < 0.2 * first
    # the gradient reaching the features is the reversed (and halved) gradient of the classifier's loss
    f = feats.clone().requires_grad_(True)
    balanced_domain_loss(clf(f), domains).backward()
    clf.reversal.scale = -1.0  # plain gradient, for the reference
    f2 = feats.clone().requires_grad_(True)
    balanced_domain_loss(clf(f2), domains).backward()
    torch.testing.assert_close(f.grad, -0.5 * f2.grad)


def recipe(**adversarial: Any) -> dict:
    options = {
        "source": {"synth": {"population": "adult", "view": "front", "n": 12, "size": 96, "seed": 5}, "ratio": 0.3},
        "target_unlabelled": {"synth": {"population": "infant", "view": "top", "n": 12, "size": 96, "seed": 9},
                              "ratio": 0.3},
        **adversarial,
    }  # fmt: skip
    return {
        "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "simple"},
        "data": {"train": {"synth": {"population": "infant", "view": "top", "n": 8, "size": 96, "seed": 3}}},
        "optim": {"lr": 2e-3, "weight_decay": 0.0},
        "schedule": {"epochs": 3, "warmup_iters": 0, "policy": "constant"},
        "train": {"batch_size": 10, "workers": 0, "device": "cpu", "progress": False, "tensorboard": False,
                  "val_interval": 0, "log_interval": 1, "ema": None},
        "adapt": [{"adversarial": options}],
    }  # fmt: skip


class Record(Hook):
    def __init__(self) -> None:
        self.steps: list[dict] = []

    def before_step(self, trainer, batch) -> None:
        bs, it = trainer.batch_size, trainer.epoch_iteration
        indices = trainer.sampler.epoch_indices(trainer.epoch)[it * bs : (it + 1) * bs]
        self.steps.append(
            {"stream": [d for d, _, _ in indices], "weight": batch["target_weight"].clone(),
             "domain": batch.get("domain")}
        )  # fmt: skip

    def after_step(self, trainer, logs) -> None:
        self.steps[-1]["domain_loss"] = float(logs["losses"]["adversarial/domain"])


def test_domains_tagged_unlabelled_ignored_classifier_optimised(tmp_path: Path) -> None:
    seen = Record()
    r = recipe(max_lambda=0.0, weight=1.0)  # reversal off: the classifier alone must learn to tell them apart
    trainer = build_trainer(recipe_from_dict(r), tmp_path, hooks=(seen,))
    method = trainer.methods[0]
    assert method.domains == ["target", "source"]
    # 8 labelled infants keep their epoch; the two streams take 30% each: 8 / 0.4 = 20 samples
    assert trainer.sampler.counts == [8, 6, 6]
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    clf_params = list(method.classifier.parameters())
    assert clf_params and all(id(p) in in_optimizer for p in clf_params)
    before = [p.detach().clone() for p in clf_params]
    trainer.fit()
    assert any(not torch.equal(a, b) for a, b in zip(before, clf_params, strict=True))

    for step in seen.steps:
        stream = np.asarray(step["stream"])
        domain = batch_domains({"domain": step["domain"]}, len(stream), torch.device("cpu")).numpy()
        np.testing.assert_array_equal(domain, np.where(stream == 1, 1, 0))  # adults 1; infants (any) 0
        weight = step["weight"].numpy()
        assert (weight[stream == 2] == 0).all()  # unlabelled infants: nothing for the supervised loss
        assert (weight[stream != 2].sum(axis=1) > 0).all()
    losses = [s["domain_loss"] for s in seen.steps]
    assert np.mean(losses[-2:]) < np.mean(losses[:2])

    state = load_train_state(tmp_path / "last.pt")["methods"]["adapt.0.adversarial"]
    assert state["steps_per_epoch"] == 2 and set(state["classifier"]) == set(method.classifier.state_dict())
    logged = (tmp_path / "adapt_log.csv").read_text().splitlines()[0]
    assert "adversarial/domain_acc" in logged and "adversarial/grl_lambda" in logged


def test_zero_target_labels_own_data_is_the_source_and_a_mean_teachers_images_the_target(tmp_path: Path) -> None:
    """DANN's first setting: the recipe's own labelled adults are the source, unlabelled infants (the method's own
    stream and a mean teacher's) the target; nothing labelled is target."""
    seen = Record()
    r = recipe(own_data="source", max_lambda=0.0, weight=1.0)
    r["adapt"][0]["adversarial"].pop("source")
    r["data"]["train"] = {"synth": {"population": "adult", "view": "front", "n": 8, "size": 96, "seed": 5}}
    unlabelled = {"synth": {"population": "infant", "view": "top", "n": 6, "size": 96, "seed": 13}}
    r["adapt"].append({"mean_teacher": {"unlabelled": unlabelled, "ratio": 0.2, "rampup_iters": 1}})
    trainer = build_trainer(recipe_from_dict(r), tmp_path, hooks=(seen,))
    method = trainer.methods[0]
    assert method.domains == ["target", "source"]
    assert trainer.sampler.counts == [
        8,
        5,
        3,
    ]  # 8 / (1 - 0.5): own adults, adversarial's infants, the mean teacher's infants
    trainer.fit()
    for step in seen.steps:
        stream = np.asarray(step["stream"])
        domain = batch_domains({"domain": step["domain"]}, len(stream), torch.device("cpu"), untagged=1).numpy()
        np.testing.assert_array_equal(domain, np.where(stream == 0, 1, 0))  # adults source; all infants target
        assert (step["weight"].numpy()[stream != 0] == 0).all()  # no infant label reaches the supervised loss
    with pytest.raises(PoseAdaptError, match="own_data: source needs 'target_unlabelled'"):
        bad = recipe(own_data="source")
        bad["adapt"][0]["adversarial"].pop("target_unlabelled")
        build_methods(recipe_from_dict(bad).adapt)


def test_schedule_follows_progress_and_synthetic_third_domain(tmp_path: Path) -> None:
    r = recipe(
        synthetic={"synth": {"population": "infant", "view": "side", "n": 6, "size": 96, "seed": 11}, "ratio": 0.2},
        target_unlabelled=None,
    )
    r["adapt"][0]["adversarial"].pop("target_unlabelled")
    trainer = build_trainer(recipe_from_dict(r), tmp_path)
    method = trainer.methods[0]
    assert method.domains == ["target", "source", "synthetic"]
    assert method.classifier.mlp[-1].out_features == 3
    lambdas = []

    class Lam(Hook):
        def after_step(self, trainer, logs) -> None:
            lambdas.append(method.classifier.reversal.scale)

    trainer.hooks.append(Lam())
    trainer.fit()
    n = len(lambdas)
    per_epoch = n // 3
    expected = [dann_lambda((i // per_epoch + (i % per_epoch) / per_epoch) / 3) for i in range(n)]
    np.testing.assert_allclose(lambdas, expected, atol=1e-6)


BAD = [
    ({"source": None}, "adapt.0.adversarial", "needs a second domain"),
    ({"weight": 0}, "adapt.0.adversarial.weight", "greater than 0"),
    ({"schedule": "linear"}, "adapt.0.adversarial.schedule", "'dann' or 'constant'"),
    ({"source": {"ratio": 0.3}}, "adapt.0.adversarial.source", "exactly one of"),
    ({"source": {"synth": "adult", "ratio": 0.7}}, "adapt.0.adversarial", "add up to"),
    (
        {"target_unlabelled": {"synth": "infant", "labelled": True}},
        "adapt.0.adversarial.target_unlabelled",
        "unlabelled by definition",
    ),
    ({"classifer": {}}, "adapt.0.adversarial.classifer", "unknown key"),
]


@pytest.mark.parametrize(("change", "key", "message"), BAD)
def test_bad_options_are_one_line(change: dict, key: str, message: str) -> None:
    r = recipe()
    r["adapt"][0]["adversarial"].update(change)
    with pytest.raises(PoseAdaptError) as exc:
        build_methods(r["adapt"])
    text = str(exc.value)
    assert "\n" not in text and f"'{key}" in text and message in text, text


def test_missing_file_is_one_line_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    r = recipe(source={"ann": str(tmp_path / "nope.json"), "ratio": 0.3})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(r))
    with pytest.raises(SystemExit) as exc:
        main(["train", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code != 0 and len(err.splitlines()) == 1
    assert re.search(r"adapt\.0\.adversarial\.source\.ann': file not found", err), err


SMALL_RUN = (
    "train.batch_size=4", "train.workers=0", "train.device=cpu", "train.progress=false", "train.tensorboard=false",
    "train.val_interval=0", "schedule.epochs=1", "schedule.warmup_iters=0", "data.train.0.synth.size=96",
)  # fmt: skip


def test_shipped_recipes_train(tmp_path: Path, cli_train) -> None:
    """synth-infant-adversarial and its plain fine-tuning baseline, shrunk, from a tiny stand-in checkpoint."""
    import yaml

    from poseadapt.interop.checkpoint import save_checkpoint
    from poseadapt.models import create_model
    from poseadapt.train.recipe import recipe_text

    ckpt = save_checkpoint(
        create_model("vit_tiny", "coco17", "light", img_size=(128, 96)), tmp_path / "adult.safetensors"
    )
    for name in ("synth-infant-adversarial", "synth-infant-50-finetune"):
        r = yaml.safe_load(recipe_text(name)[0])
        assert r["model"]["checkpoint"] == "builtin:synthpose-vit-tiny"
        sets = [*SMALL_RUN, f"model.checkpoint={ckpt}", "data.train.0.synth.n=6"]
        if name == "synth-infant-adversarial":
            key = "adapt.0.adversarial"
            sets += [f"{key}.{role}.synth.{k}={v}" for role in ("source", "target_unlabelled") for k, v in
                     (("n", 4), ("size", 96))]  # fmt: skip
        else:
            sets += ["train.samples_per_epoch=8"]
        r.pop("out")
        out = cli_train(r, tmp_path / name, *sets)
        assert Path(out["final_checkpoint"]).is_file()
