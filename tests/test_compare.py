"""`poseadapt compare`: report numbers = summary.json, bootstrap = direct resampling, bad input = one line."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from poseadapt.cli.main import main
from poseadapt.evaluate import bootstrap as bs
from poseadapt.evaluate.oks import coco_keypoint_stats
from poseadapt.interop.checkpoint import save_checkpoint
from poseadapt.models import create_model
from poseadapt.schemas import KeypointSchema
from poseadapt.synth import write_dataset


def run_cli(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    return int(info.value.code or 0)


def tiny_checkpoint(path, seed, schema="coco17"):
    torch.manual_seed(seed)
    model = create_model("vit_tiny", schema, img_size=(128, 96))
    with torch.no_grad():
        for p in model.heads.parameters():
            p.normal_(0, 0.5)
    return save_checkpoint(model.eval(), path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    tests = {}
    for pop in ("adult", "infant"):
        files = write_dataset(root / pop, pop, n=5, size=96, seed=1, schemas=["coco17"])
        ann = files.annotations["coco17"]
        data = json.loads(ann.read_text())
        for i, im in enumerate(data["images"]):  # subgroups: an attribute and a plain image field
            im["attributes"] = {"lighting": "dim" if i % 2 else "bright"}
            im["site"] = "A" if i < 3 else "B"
        ann.write_text(json.dumps(data))
        tests[pop] = ann
    a = tiny_checkpoint(root / "a.safetensors", 0)
    b = tiny_checkpoint(root / "b.safetensors", 1)
    # a results-file model from "another tool": the ground truth, moved by a few pixels
    rng = np.random.default_rng(0)
    res = {}
    for pop, ann in tests.items():
        gt = json.loads(ann.read_text())
        rows = []
        for x in gt["annotations"]:
            kp = np.array(x["keypoints"], float).reshape(-1, 3)
            kp[:, :2] += rng.normal(0, 2.0, kp[:, :2].shape)
            kp[:, 2] = 0.9
            rows.append({"image_id": x["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.9})
        res[pop] = root / f"other_{pop}.json"
        res[pop].write_text(json.dumps(rows))
    return root, tests, a, b, res


class Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self._attrs, self.srcs = [], None, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "td" and "data-field" in attrs:
            self._attrs = attrs
        if tag == "img":
            self.srcs.append(attrs["src"])

    def handle_data(self, data):
        if self._attrs is not None:
            self.cells.append((self._attrs, data))
            self._attrs = None


def test_compare_writes_four_outputs_whose_numbers_agree(setup, capsys):
    root, tests, a, b, res = setup
    out = root / "report"
    argv = ["compare", "--model", f"A={a}", "--model", f"B={b}",
            "--model", f"other=adult:{res['adult']},infant:{res['infant']}",
            "--test", f"adult={tests['adult']}", "--test", f"infant={tests['infant']}",
            "--out", str(out), "--baseline", "A", "--group-by", "site", "--bootstrap", "30", "--json"]  # fmt: skip
    assert run_cli(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    summary = json.loads((out / "summary.json").read_text())
    assert printed == summary
    assert {p.name for p in out.iterdir()} >= {
        "report.html",
        "report.md",
        "summary.json",
        "ap.png",
        "overlays_adult.png",
        "keypoints_infant.png",
        "subgroups_adult.png",
    }
    assert len(summary["results"]) == 6
    rows = {(r["model"], r["test"]): r for r in summary["results"]}
    other = rows[("other", "infant")]
    assert other["AP"] > 0.5 and other["AP_ci"][0] <= other["AP"] <= other["AP_ci"][1]
    assert rows[("A", "adult")]["forgetting"] is None
    f = rows[("other", "adult")]["forgetting"]
    assert f["baseline"] == "A" and f["ci"][0] <= f["delta_AP"] <= f["ci"][1] and f["excludes_zero"] is True
    assert {(g["key"], g["value"]) for g in other["subgroups"]} == {("lighting", "dim"), ("lighting", "bright"),
                                                                     ("site", "A"), ("site", "B")}  # fmt: skip
    worst = min(other["subgroups"], key=lambda g: g["AP"])
    assert other["worst_subgroup"] == {"key": worst["key"], "value": worst["value"], "AP": worst["AP"]}
    assert len(other["per_keypoint"]) == 17 and other["scored_keypoints"] == 17

    parser = Cells()
    html = (out / "report.html").read_text()
    parser.feed(html)
    assert len(parser.cells) > 6 * 11
    costs = {m["name"]: m for m in summary["models"]}
    assert costs["A"]["gflops"] > 0 and costs["A"]["params_m"] > 0  # checkpoints are counted, results files not
    assert all(m["gflops"] is None for m in summary["models"] if m["kind"] != "checkpoint")
    for attrs, text in parser.cells:
        key = attrs["data-field"]
        if key in ("gflops", "params_m"):
            assert text == f"{costs[attrs['data-model']][key]:.3f}"
            continue
        row = rows[(attrs["data-model"], attrs["data-test"])]
        if key.startswith("kp:"):
            value = row["per_keypoint"][key[3:]]
        elif key.startswith("group:"):
            gk, gv = key[6:].split("=")
            value = next(g["AP"] for g in row["subgroups"] if (g["key"], g["value"]) == (gk, gv))
        elif key.startswith("delta_AP"):
            f = row["forgetting"]
            value = {"delta_AP": f["delta_AP"], "delta_AP_ci_low": f["ci"][0], "delta_AP_ci_high": f["ci"][1]}[key]
        elif key.endswith(("_ci_low", "_ci_high")):
            value = row[key.split("_ci_")[0] + "_ci"][0 if key.endswith("low") else 1]
        else:
            value = row[key]
        expected = (
            f"{value:.3f}" if isinstance(value, float) and value != -1.0 else ("-" if value == -1.0 else str(value))
        )
        assert text == expected, (attrs, text, value)
    # self-contained: every image is inline, nothing is fetched
    assert parser.srcs and all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    assert "http" not in html.replace("http-equiv", "")
    md = (out / "report.md").read_text()
    assert f"{rows[('B', 'adult')]['AP']:.3f}" in md and "worst-served subgroup" in md


def test_bootstrap_matches_direct_resampling():
    """Our resampling (ids renumbered per draw, hotcoco) against a hand-made resample scored by pycocotools."""
    rng = np.random.default_rng(1)
    sigmas = [0.05, 0.07, 0.09]
    images = [{"id": i, "width": 100, "height": 100} for i in (3, 5, 8, 9)]
    anns, results = [], []
    for im in images:
        for _ in range(rng.integers(1, 3)):
            xy = rng.uniform(10, 90, (3, 2))
            kp = np.concatenate([xy, np.full((3, 1), 2.0)], 1)
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": 1, "keypoints": kp.ravel().tolist(),
                         "bbox": [10, 10, 80, 80], "area": 6400.0, "iscrowd": 0, "num_keypoints": 3})  # fmt: skip
            noisy = xy + rng.normal(0, rng.uniform(0.5, 6), xy.shape)
            results.append({"image_id": im["id"], "category_id": 1, "score": float(rng.uniform(0.2, 1)),
                            "keypoints": np.concatenate([noisy, np.ones((3, 1))], 1).ravel().tolist()})  # fmt: skip
    dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "p", "keypoints": list("abc")}]}
    draws = bs.draws([im["id"] for im in images], samples=25, seed=7)
    assert draws.shape == (25, 4) and set(np.unique(draws)) <= {3, 5, 8, 9}
    ours = bs.bootstrap_stats({"m": bs.ImageIndexed(dataset, results, sigmas)}, draws)["m"]["AP"]

    direct = []
    for draw in draws:
        imgs, gts, dets = [], [], []
        for copy, image_id in enumerate(draw):
            new = 1000 * (copy + 1)
            imgs.append({"id": new, "width": 100, "height": 100})
            gts += [
                {**a, "image_id": new, "id": new + j}
                for j, a in enumerate(x for x in anns if x["image_id"] == image_id)
            ]
            dets += [{**r, "image_id": new} for r in results if r["image_id"] == image_id]
        resampled = {**dataset, "images": imgs, "annotations": gts}
        direct.append(coco_keypoint_stats(resampled, dets, sigmas, engine="pycocotools")["AP"])
    np.testing.assert_allclose(ours, direct, atol=1e-9)
    assert np.std(direct) > 0.01  # the draws really differ
    iv = bs.percentile_interval(0.5, ours)
    assert [iv.low, iv.high] == pytest.approx(np.percentile(direct, [2.5, 97.5]))


@pytest.mark.parametrize("case", ["missing ann", "no shared keypoints", "cannot load", "empty test", "no results"])
def test_bad_input_is_one_line_and_writes_nothing(setup, tmp_path, capsys, case):
    root, tests, a, b, res = setup
    model, test = f"A={a}", f"adult={tests['adult']}"
    if case == "missing ann":
        test = f"adult={tmp_path / 'nope.json'}"
    elif case == "no shared keypoints":
        dots = KeypointSchema.from_dict({"name": "dots", "keypoints": ["dot_a", "dot_b"], "sigmas": [0.05, 0.05]})
        torch.manual_seed(0)
        model = f"D={save_checkpoint(create_model('vit_tiny', dots, img_size=(128, 96)), tmp_path / 'd.safetensors')}"
    elif case == "cannot load":
        (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
        model = f"J={tmp_path / 'junk.safetensors'}"
    elif case == "empty test":
        data = json.loads(tests["adult"].read_text())
        data["annotations"] = []
        (tmp_path / "empty.json").write_text(json.dumps(data))
        test = f"empty={tmp_path / 'empty.json'}:{tests['adult'].parent.parent / 'images'}"
    elif case == "no results":
        model = f"R=infant:{res['infant']}"
    out = tmp_path / "out"
    assert run_cli(["compare", "--model", model, "--test", test, "--out", str(out), "--bootstrap", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_multi_head_checkpoint_is_scored_with_the_head_of_the_test_sets_schema(tmp_path):
    """A multi-head model on a test set in its second head's schema: compare uses that head (not the first)."""
    from poseadapt.evaluate.compare import ModelSpec, TestSpec, compare, head_for, load_test_set
    from poseadapt.evaluate.topdown import evaluate_model
    from poseadapt.interop.checkpoint import load_checkpoint

    torch.manual_seed(0)
    model = create_model("vit_tiny", ["coco17", "mpii16"], img_size=(128, 96))
    with torch.no_grad():
        for p in model.heads.parameters():
            p.normal_(0, 0.5)
    ckpt = save_checkpoint(model.eval(), tmp_path / "multi.safetensors")
    files = write_dataset(tmp_path / "elderly", "elderly", n=4, size=96, seed=3, schemas=["mpii16"])
    ann = files.annotations["mpii16"]
    loaded = load_checkpoint(ckpt)
    ts = load_test_set(TestSpec("mpii", ann, None), loaded.schemas[0])
    assert ts.gt.schema.name == "mpii16" and head_for(loaded, ts.gt.schema) == 1
    assert head_for(loaded, "coco17") == 0 and head_for(loaded, "coco17:5") == 0 and head_for(loaded, "x") == 0
    summary, cells, _ = compare([ModelSpec("m", str(ckpt))], [TestSpec("mpii", ann, None)], samples=5,
                                flip_test=False)  # fmt: skip
    evs = [evaluate_model(loaded, ts.gt, ts.images, head=h, flip_test=False) for h in (0, 1)]
    got = cells[("m", "mpii")].preds.keypoints
    want = [ev.view.to_gt_schema(ev.predictions).keypoints for ev in evs]
    assert np.allclose(got, want[1]) and not np.allclose(got, want[0])
    assert summary["results"][0]["AP"] == pytest.approx(evs[1].stats["AP"])


def test_prior_adds_the_implausible_rate_and_decode_prior_decodes_every_checkpoint(
    setup, tmp_path, capsys, infant_top_prior
):
    from poseadapt.evaluate.plausibility import implausible_rate_of_files

    root, tests, a, _, res = setup
    prior = infant_top_prior.save(tmp_path / "prior.safetensors")
    base = ["compare", "--model", f"a={a}", "--model", f"other={res['infant']}", "--test", f"infant={tests['infant']}",
            "--bootstrap", "50", "--prior", str(prior), "--json"]  # fmt: skip
    assert run_cli([*base, "--out", str(tmp_path / "plain")]) == 0
    plain = json.loads(capsys.readouterr().out)
    rows = {r["model"]: r for r in plain["results"]}
    # the results-file model's rate is the rate of that file, as `score --prior` computes it
    direct = implausible_rate_of_files(prior, tests["infant"], res["infant"])
    assert rows["other"]["implausible_rate"] == direct["implausible_rate"]
    assert rows["other"]["implausible_ci"] == direct["implausible_interval"]
    assert 0.0 <= rows["a"]["implausible_rate"] <= 1.0 and plain["prior"]["schema"] == "coco17"
    assert "implausible" in (tmp_path / "plain" / "report.md").read_text()
    # decoding with the prior: the random model's poses are implausible, and re-picked peaks make fewer of them
    assert run_cli([*base, "--decode-prior", str(prior), "--out", str(tmp_path / "decoded")]) == 0
    decoded = {r["model"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert decoded["other"]["AP"] == rows["other"]["AP"]  # results files are not decoded again
    assert decoded["a"]["implausible_rate"] <= rows["a"]["implausible_rate"]
    # a prior of another schema is one line, before any prediction
    from poseadapt.priors import fit_prior
    from poseadapt.schemas import get_schema

    mpii = get_schema("mpii16")
    other = fit_prior(np.random.default_rng(0).normal(size=(50, 16, 2)) * 10 + 50, mpii, seed=0)
    wrong = other.save(tmp_path / "mpii.safetensors")
    assert run_cli([*base[:-3], "--prior", str(wrong), "--out", str(tmp_path / "bad")]) != 0
    assert "needs keypoints" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
