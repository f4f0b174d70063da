"""`poseadapt self-train`: rounds of pseudo-labelling and training, each round's labels exactly what `pseudo-label`
writes with the model of the round before, each round's run a fresh copy of the start model; finished rounds are
kept on a second call; bad options are one line and write nothing. (What the rounds gain is measured, not tested:
docs/ADAPTATION_RESULTS.md.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from poseadapt.cli.main import main
from poseadapt.synth import write_dataset

START = "builtin:synthpose-vit-tiny"
RECIPE: dict[str, Any] = {
    "model": {"name": "vit_synth", "input_size": [96, 128], "schema": "coco17", "head": "light", "checkpoint": START},
    "data": {"train": {"synth": {"population": "adult", "n": 8, "size": 128, "seed": 3}}, "val": None},
    "optim": {"lr": 2e-4, "weight_decay": 0.0},
    "schedule": {"epochs": 1, "warmup_iters": 0, "policy": "constant"},
    "train": {"batch_size": 4, "workers": 0, "device": "cpu", "progress": False, "tensorboard": False,
              "val_interval": 0, "ema": None, "max_iters": 2},
}  # fmt: skip


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, infant_top_prior: Any) -> dict[str, Path]:
    """Six rendered infants with their keypoints stripped (boxes only), a recipe file and an infant pose prior."""
    root = tmp_path_factory.mktemp("selftrain")
    files = write_dataset(root / "infants", "infant", view="top", n=6, size=128, seed=2, schemas=["coco17"])
    data = json.loads(files.annotations["coco17"].read_text())
    for ann in data["annotations"]:
        ann.pop("keypoints"), ann.pop("num_keypoints", None)
    boxes = root / "boxes.json"
    boxes.write_text(json.dumps(data))
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    prior = root / "prior.safetensors"
    infant_top_prior.save(prior)
    return {"boxes": boxes, "images": files.annotations["coco17"].parent.parent / "images", "recipe": recipe,
            "prior": prior, "root": root}  # fmt: skip


def keypoints(path: Path) -> np.ndarray:
    return np.array([a["keypoints"] for a in json.loads(path.read_text())["annotations"]])


def test_each_round_is_pseudo_label_then_a_fresh_copy_trained_and_finished_rounds_are_kept(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "st"
    args = ["self-train", str(setup["recipe"]), "--unlabelled", str(setup["boxes"]), "--images", str(setup["images"]),
            "--out", str(out), "--rounds", "2", "--min-score", "0.3", "--keep-share", "0.8", "--decode-prior",
            str(setup["prior"]), "--left-right", "either"]  # fmt: skip
    code, text, err = run(args, capsys)
    assert code == 0, err
    assert "round 1:" in text and "round 2:" in text and "done: 2 rounds" in text
    summary = json.loads((out / "self_training.json").read_text())
    finals = [out / f"round{r}" / "final.safetensors" for r in (1, 2)]
    assert summary["final_checkpoint"] == str(finals[1]) and all(f.is_file() for f in finals)
    assert [r["labelled_by"] for r in summary["rounds"]] == [START, str(finals[0])]
    assert summary["labelling"]["keep_share"] == 0.8
    # each round's labels are what `pseudo-label` writes with the same options and the round before's model
    for r, labeller in ((1, START), (2, str(finals[0]))):
        expected = tmp_path / f"expected{r}.json"
        code, _, err = run(["pseudo-label", "--checkpoint", labeller, "--ann", str(setup["boxes"]), "--images",
                            str(setup["images"]), "--out", str(expected), "--min-score", "0.3", "--keep-share", "0.8",
                            "--decode-prior", str(setup["prior"])], capsys)  # fmt: skip
        assert code == 0, err
        np.testing.assert_array_equal(keypoints(out / f"round{r}_labels.json"), keypoints(expected))
    assert not np.array_equal(keypoints(out / "round1_labels.json"), keypoints(out / "round2_labels.json"))
    # every round trains a fresh copy of the start model, on its labels first and the recipe's own data after
    for r in (1, 2):
        recorded = yaml.safe_load((out / f"round{r}" / "recipe.yaml").read_text())
        assert recorded["model"]["checkpoint"] == START
        pseudo, adults = recorded["data"]["train"]
        assert pseudo["ann"] == str((out / f"round{r}_labels.json").resolve())
        assert (pseudo["left_right"], pseudo["left_right_anchor"]) == ("either", 0.1)
        assert adults["synth"]["population"] == "adult"
    # a second call keeps the finished rounds; one more round is labelled by the last
    stamps = {p: p.stat().st_mtime_ns for p in [*finals, out / "round1_labels.json", out / "round2_labels.json"]}
    code, text, err = run([*args[:-4], "--rounds", "3", *args[-4:]], capsys)
    assert code == 0, err
    assert "round 1: kept" in text and "round 2: kept" in text and "done: 3 rounds" in text
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    summary = json.loads((out / "self_training.json").read_text())
    assert summary["rounds"][2]["labelled_by"] == str(finals[1])
    assert summary["final_checkpoint"] == str(out / "round3" / "final.safetensors")


def test_the_recipes_entry_of_the_unlabelled_file_says_how_the_labels_train(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The labels take the place of the entry naming the unlabelled file, with its augmentation and left_right;
    without such an entry they go first, where `--set data.train.0...` reaches them."""
    flip = [{"type": "RandomFlip", "prob": 0.5}]
    named = tmp_path / "named.yaml"
    adults = RECIPE["data"]["train"]
    entry = {"ann": str(setup["boxes"]), "images": str(setup["images"]), "augment": flip, "left_right": "either"}
    named.write_text(yaml.safe_dump({**RECIPE, "data": {"train": [adults, entry], "val": None}}))
    for recipe, sets, at in ((named, [], 1), (setup["recipe"], ["--set", f"data.train.0.augment={flip}"], 0)):
        out = tmp_path / recipe.stem
        code, text, err = run(["self-train", str(recipe), "--unlabelled", str(setup["boxes"]), "--images",
                               str(setup["images"]), "--out", str(out), "--rounds", "1", "--json", *sets],
                              capsys)  # fmt: skip
        assert code == 0, err
        assert json.loads(text)["final_checkpoint"] == str(out / "round1" / "final.safetensors")  # stdout: JSON only
        train = yaml.safe_load((out / "round1" / "recipe.yaml").read_text())["data"]["train"]
        assert len(train) == 2 and train[1 - at]["synth"]["population"] == "adult"
        assert train[at]["ann"] == str((out / "round1_labels.json").resolve())
        assert train[at]["augment"] == flip
        assert train[at]["left_right"] == ("either" if recipe == named else "as_labelled")


def test_bad_options_are_one_line_before_any_work(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty, elsewhere = tmp_path / "empty.json", tmp_path / "elsewhere"
    empty.write_text(json.dumps({**json.loads(setup["boxes"].read_text()), "annotations": []}))
    elsewhere.mkdir()
    no_start = tmp_path / "no_start.yaml"
    no_start.write_text(yaml.safe_dump({**RECIPE, "model": {k: v for k, v in RECIPE["model"].items()
                                                            if k != "checkpoint"}}))  # fmt: skip
    out = tmp_path / "st"
    labelled = next((setup["images"].parent / "annotations").glob("*.json"))  # RECIPE validates never
    ok = {"recipe": str(setup["recipe"]), "--unlabelled": str(setup["boxes"]), "--images": str(setup["images"])}
    cases = [
        ({"recipe": str(no_start)}, [], "needs model.checkpoint"),
        ({}, ["--rounds", "0"], "--rounds must be 1 or more"),
        ({}, ["--left-right", "mirror"], "--left-right must be as_labelled or either"),
        ({}, ["--debias-source", str(setup["boxes"])], "--debias-source needs --debias-target"),
        ({"--unlabelled": str(tmp_path / "missing.json")}, [], "not found"),
        ({"--images": str(setup["boxes"])}, [], "--images must be a folder"),
        ({}, ["--set", "optim.lrr=1"], "unknown key"),
        ({}, ["--decode-prior", str(tmp_path / "none.safetensors")], "none.safetensors"),
        ({}, ["--min-score", "nan"], "--min-score must be a number"),
        ({}, ["--keep-share", "0"], "--keep-share must be a share of people in (0, 1]"),
        ({"--unlabelled": str(empty)}, [], "no person box to label"),
        ({"--images": str(elsewhere)}, [], "0 of 6 images found"),
        ({}, ["--stop-when-worse"], "--stop-when-worse needs a labelled validation set"),
        ({}, ["--stop-when-worse", "--set", f"data.val={{ann: {labelled}, images: {setup['images']}}}"],
         "train.val_interval is 0"),
    ]  # fmt: skip
    for changes, extra, message in cases:
        given = {**ok, **changes}
        argv = ["self-train", given.pop("recipe"), *[a for kv in given.items() for a in kv], "--out", str(out), *extra]
        code, _, err = run(argv, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (message, err)
        assert not out.exists()


def test_invert_first_labels_round_1_as_pseudo_label_invert_images_does(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--images", str(setup["images"]), "--min-score", "0.3"]
    code, _, err = run(["self-train", str(setup["recipe"]), "--unlabelled", str(setup["boxes"]), *common, "--out",
                        str(tmp_path / "st"), "--rounds", "1", "--invert-first", "--json"], capsys)  # fmt: skip
    assert code == 0, err
    for flag in ("--invert-images", None):
        expected = tmp_path / f"expected{flag}.json"
        code, _, err = run(["pseudo-label", "--checkpoint", START, "--ann", str(setup["boxes"]), *common, "--out",
                            str(expected), *([flag] if flag else [])], capsys)  # fmt: skip
        assert code == 0, err
        same = np.array_equal(keypoints(tmp_path / "st" / "round1_labels.json"), keypoints(expected))
        assert same == (flag is not None)  # inverted reading: a different labelling than the plain one


def test_a_model_with_two_heads_labels_and_trains_the_head_asked_for(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--head` picks the labelling head and the labels train that head; without it the head named by the recipe's
    entry of the unlabelled file labels; `--no-flip` labels as `pseudo-label --no-flip`; an unknown head is one
    line before any work."""
    from poseadapt.interop.checkpoint import save_checkpoint
    from poseadapt.models.factory import create_model
    from poseadapt.schemas import get_schema

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    start = save_checkpoint(create_model("vit_tiny", ["coco17", "mpii16"], "light", img_size=(64, 48)),
                            tmp_path / "two_heads.safetensors")  # fmt: skip
    model = {**RECIPE["model"], "name": "vit_tiny", "input_size": [48, 64], "schema": ["coco17", "mpii16"],
             "checkpoint": str(start)}  # fmt: skip
    adults = RECIPE["data"]["train"]
    entry = {"ann": str(setup["boxes"]), "images": str(setup["images"]), "head": "mpii16"}
    plain, named = tmp_path / "plain.yaml", tmp_path / "named.yaml"
    plain.write_text(yaml.safe_dump({**RECIPE, "model": model}))
    named.write_text(yaml.safe_dump({**RECIPE, "model": model, "data": {"train": [adults, entry], "val": None}}))
    common = ["--unlabelled", str(setup["boxes"]), "--images", str(setup["images"]), "--min-score", "0", "--rounds",
              "1", "--json"]  # fmt: skip
    mpii = list(get_schema("mpii16").keypoints)
    expected = {}
    for flip in ("--flip", "--no-flip"):
        expected[flip] = tmp_path / f"expected{flip}.json"
        code, _, err = run(["pseudo-label", "--checkpoint", str(start), "--ann", str(setup["boxes"]), "--images",
                            str(setup["images"]), "--min-score", "0", "--head", "mpii16", flip, "--out",
                            str(expected[flip])], capsys)  # fmt: skip
        assert code == 0, err
    for recipe, extra in ((plain, ["--head", "mpii16"]), (named, [])):
        out = tmp_path / recipe.stem
        code, _, err = run(["self-train", str(recipe), *common, "--out", str(out), "--no-flip", *extra], capsys)
        assert code == 0, err
        labels = json.loads((out / "round1_labels.json").read_text())
        assert labels["categories"][0]["keypoints"] == mpii
        np.testing.assert_array_equal(keypoints(out / "round1_labels.json"), keypoints(expected["--no-flip"]))
        assert not np.array_equal(keypoints(out / "round1_labels.json"), keypoints(expected["--flip"]))
        train = yaml.safe_load((out / "round1" / "recipe.yaml").read_text())["data"]["train"]
        pseudo = next(s for s in train if s["ann"] == str((out / "round1_labels.json").resolve()))
        assert pseudo["head"] == "mpii16"
        labelling = json.loads((out / "self_training.json").read_text())["labelling"]
        assert (labelling["head"], labelling["flip_test"], labelling["min_score"]) == ("mpii16", False, 0.0)
    out = tmp_path / "bad"
    code, _, err = run(["self-train", str(plain), *common, "--out", str(out), "--head", "mpii"], capsys)
    assert code == 2 and "no head 'mpii'" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_with_a_validation_set_each_round_records_its_final_weights_ap_and_names_the_best_round(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With `data.val`, each round's recorded validation AP is what `poseadapt eval` gives its final weights on that
    set, the start model's (round 0) what it gives the start checkpoint, and the best round is the one with the
    highest, the start model among them; without it, none is recorded (the first test)."""
    labelled = next((setup["images"].parent / "annotations").glob("*.json"))  # the boxes' own images, with labels
    recipe = tmp_path / "val.yaml"
    val = {"ann": str(labelled), "images": str(setup["images"])}
    recipe.write_text(yaml.safe_dump({**RECIPE, "data": {**RECIPE["data"], "val": val},
                                      "train": {**RECIPE["train"], "val_interval": 1, "max_iters": None}}))  # fmt: skip
    out = tmp_path / "st"
    code, text, err = run(["self-train", str(recipe), "--unlabelled", str(setup["boxes"]), "--images",
                           str(setup["images"]), "--out", str(out), "--rounds", "2", "--min-score", "0.3"],
                          capsys)  # fmt: skip
    assert code == 0, err
    summary = json.loads((out / "self_training.json").read_text())
    ap = []
    for r in (1, 2):
        code, scored, err = run(["eval", "--checkpoint", str(out / f"round{r}" / "final.safetensors"), "--ann",
                                 str(labelled), "--images", str(setup["images"]), "--json"], capsys)  # fmt: skip
        assert code == 0, err
        ap.append(json.loads(scored)["AP"])
        assert summary["rounds"][r - 1]["val_AP"] == pytest.approx(ap[-1], abs=1e-9)
        assert f"round {r}: " in text and f"validation AP {ap[-1]:.4f}" in text
    code, scored, err = run(["eval", "--checkpoint", START, "--ann", str(labelled), "--images", str(setup["images"]),
                             "--json"], capsys)  # fmt: skip
    assert code == 0, err
    start_ap = json.loads(scored)["AP"]  # round 0: each round validated its fresh copy before the first step
    assert summary["start_val_AP"] == pytest.approx(start_ap, abs=1e-9) and start_ap > 0
    assert f"start model's validation AP: {start_ap:.4f}" in text
    best = int(np.argmax([start_ap, *ap]))  # the first of equal APs, as best_round breaks ties
    assert summary["best_round"] == best and summary["best_val_AP"] == pytest.approx(max(start_ap, *ap), abs=1e-9)
    if best:
        assert summary["best_checkpoint"] == str(out / f"round{best}" / "final.safetensors")
        assert f"best round by validation AP: {best} " in text
    else:
        assert summary["best_checkpoint"] == START and "no round beat the start model" in text


def test_the_best_round_is_the_highest_validation_ap_and_the_earliest_of_equals() -> None:
    from poseadapt.train.self_training import RoundResult, best_round

    def rounds(*aps: float | None) -> list[RoundResult]:
        return [RoundResult(r, Path(f"l{r}"), Path(f"c{r}"), "x", val_ap=ap) for r, ap in enumerate(aps, 1)]

    best = best_round(rounds(0.30, 0.52, 0.41))
    assert best is not None and best.round == 2
    best = best_round(rounds(0.30, 0.30))
    assert best is not None and best.round == 1
    assert best_round(rounds(0.30, None)) is None and best_round([]) is None


def test_a_rounds_validation_ap_is_the_row_written_with_its_final_weights(tmp_path: Path) -> None:
    """A run that `train.max_iters` stopped inside an epoch validated earlier weights only: no AP is claimed."""
    from poseadapt.interop.checkpoint import save_checkpoint
    from poseadapt.models.factory import create_model
    from poseadapt.train.self_training import final_val_ap

    save_checkpoint(create_model("vit_tiny"), tmp_path / "final.safetensors", {"training": {"iteration": 8}})
    log = tmp_path / "val_log.csv"
    log.write_text("iteration,val/AP\n4,0.25\n")
    assert final_val_ap(tmp_path) is None
    log.write_text("iteration,val/AP\n4,0.25\n8,0.5\n")
    assert final_val_ap(tmp_path) == 0.5
    assert final_val_ap(tmp_path / "missing") is None


def test_stop_when_worse_runs_no_round_after_one_whose_validation_ap_fell(tmp_path: Path) -> None:
    """The loop itself, with a trainer that writes each round's final weights and validation row (AP 0.3, 0.5, 0.4,
    0.6): with `stop_when_worse` round 3 is the last (0.4 < 0.5) and round 2 the best; without it all four run."""
    from poseadapt.interop.checkpoint import save_checkpoint
    from poseadapt.models.factory import create_model
    from poseadapt.train.self_training import self_training_rounds

    model, aps = create_model("vit_tiny"), {1: 0.3, 2: 0.5, 3: 0.4, 4: 0.6}
    labelled_by: list[str] = []

    def label(checkpoint: str | Path, round_: int) -> tuple[dict[str, Any], dict[str, Any]]:
        labelled_by.append(str(checkpoint))
        return {"images": [], "annotations": [], "categories": []}, {}

    def train(recipe: Any, run_dir: Path) -> Path:
        run_dir.mkdir(parents=True)
        (run_dir / "val_log.csv").write_text(f"iteration,val/AP\n10,{aps[int(run_dir.name[5:])]}\n")
        return save_checkpoint(model, run_dir / "final.safetensors", {"training": {"iteration": 10}})

    for stop, ran, best in ((True, 3, 2), (False, 4, 4)):
        out = tmp_path / f"stop{stop}"
        results = self_training_rounds("start", 4, out, label, lambda p: p, train=train, stop_when_worse=stop)
        summary = json.loads((out / "self_training.json").read_text())
        assert [r.round for r in results] == list(range(1, ran + 1)) and len(summary["rounds"]) == ran
        assert summary["best_round"] == best and summary.get("stopped_when_worse", False) == stop
        assert not (out / f"round{ran + 1}_labels.json").exists()


def test_the_start_model_takes_part_as_round_0_when_round_1_validated_it(tmp_path: Path) -> None:
    """Rounds measured against the model they start from (its AP at round 1's iteration 0): with the start at 0.45
    and rounds at 0.3, 0.5, 0.4, 0.6, `stop_when_worse` stops after round 1 and names the start model; without it
    all four run and round 4 is the best; with the start at 0.7 no round beats it."""
    from poseadapt.interop.checkpoint import save_checkpoint
    from poseadapt.models.factory import create_model
    from poseadapt.train.self_training import self_training_rounds

    model, aps = create_model("vit_tiny"), {1: 0.3, 2: 0.5, 3: 0.4, 4: 0.6}

    def label(checkpoint: str | Path, round_: int) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"images": [], "annotations": [], "categories": []}, {}

    for start_ap, stop, ran, best in ((0.45, True, 1, 0), (0.45, False, 4, 4), (0.7, False, 4, 0)):

        def train(recipe: Any, run_dir: Path, start_ap: float = start_ap) -> Path:
            run_dir.mkdir(parents=True)
            ap = aps[int(run_dir.name[5:])]
            (run_dir / "val_log.csv").write_text(f"iteration,val/AP\n0,{start_ap}\n10,{ap}\n")
            return save_checkpoint(model, run_dir / "final.safetensors", {"training": {"iteration": 10}})

        out = tmp_path / f"start{start_ap}_{stop}"
        results = self_training_rounds("builtin:start", 4, out, label, lambda p: p, train=train, stop_when_worse=stop)
        summary = json.loads((out / "self_training.json").read_text())
        assert [r.round for r in results] == list(range(1, ran + 1))
        assert summary["start_val_AP"] == start_ap and summary["best_round"] == best
        assert summary["best_checkpoint"] == (
            "builtin:start" if best == 0 else str(out / f"round{best}/final.safetensors")
        )
        assert summary.get("stopped_when_worse", False) == (ran < 4)
