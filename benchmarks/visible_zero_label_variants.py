"""Issue 12, zero labels on visible infants: where the self-trained rounds lose to supervision, and three levers.

    .venv/bin/python benchmarks/visible_zero_label_variants.py anatomy [--out bench_out/thermal]
    .venv/bin/python benchmarks/visible_zero_label_variants.py fusion [--out bench_out/thermal]
    .venv/bin/python benchmarks/visible_zero_label_variants.py noisy [--out bench_out/thermal]
    .venv/bin/python benchmarks/visible_zero_label_variants.py long [--out bench_out/thermal]
    .venv/bin/python benchmarks/visible_zero_label_variants.py soft [--out bench_out/thermal]
    .venv/bin/python benchmarks/visible_zero_label_variants.py noface [--out bench_out/thermal]
    .venv/bin/python benchmarks/visible_zero_label_variants.py noface_chain [--out bench_out/thermal]
    .venv/bin/python benchmarks/visible_zero_label_variants.py balance [--out bench_out/thermal]
    .venv/bin/python benchmarks/visible_zero_label_variants.py few [--out bench_out/thermal]
    .venv/bin/python benchmarks/visible_zero_label_variants.py few_noadults [--out bench_out/thermal]
    .venv/bin/python benchmarks/visible_zero_label_variants.py select [--out bench_out/thermal]
    .venv/bin/python benchmarks/visible_zero_label_variants.py share [--out bench_out/thermal]
    .venv/bin/python benchmarks/visible_zero_label_variants.py share_chain [--out bench_out/thermal]

Session 19's debiased rounds on 600 colour frames of top-view infants (`thermal_adaptation.py visible`: prior-guided
pseudo-labels, proportion debiasing, 3 rounds of a fresh copy of the built-in model on the labels plus 600 labelled
adults) reach 35% of the gain of `sup600_visible` (the same frames WITH labels); the target is 40%. Every group
reuses that chain (it is run first if it is not cached in OUT) and the same visible infant test set.

- `anatomy`: which keypoints hold the gap. Round 3's test predictions with one keypoint group at a time replaced by
  `sup600_visible`'s, and each group's median error (in sqrt(box area)). An oracle (it reads the supervised model),
  to say where a label-free fix would have to act.
- `fusion`: do several readings of one crop label better than one? Each test person read at the four quarter turns
  (the upright test's crops, `Predictor.turned_readings`, each with the flip test), then: `pick` (the upright test's
  choice), `mean4` (score-weighted mean of the four, each aligned left/right to the picked one), `mean2` (the same
  over 0 and 180 degrees, the two readings at the plain crop's resolution), `median4`. Scored for the built-in model
  and `visible_debias_round2` (the model that labels round 3), plain and with prior-guided decoding. Data
  distillation (Radosavovic et al., 2018) labels with such multi-transform ensembles.
- `noisy`: a noisy student (Xie et al., 2020): the same rounds through `poseadapt self-train` with noise on the
  student only (stochastic depth 0.1, `CoarseOcclusion` p 0.5 and `RandomBlur` p 0.3 on the pseudo-labelled crops),
  3 seeds of round 3, paired against the debiased rounds.
- `long`: the same rounds at 12 epochs instead of 6 (session 6 saw 20 epochs instead of 10 lift round 1 by 2.4 AP,
  one seed), 3 seeds of round 3, paired; and `sup600_visible_e12`, the supervised reference at 12 epochs, so the
  share compares equal schedules.
- `soft`: round 3 trained on the labeller's heatmaps instead of its hard labels (the `distill` method: teacher
  `visible_debias_round2` with the flip test, heatmap loss only, constant weight, on the 600 unlabelled frames as
  half of each epoch, with the default rotation; the labelled adults as before), 3 seeds, paired against round 3.
  Session 10 found heatmaps a better target than hard labels when distilling a better teacher into a student.
- `noface`: round 3 on its labels with the face keypoints (nose, eyes, ears) removed, 3 seeds, paired. Nearly every
  face label passes the score threshold and few are right (docs/ADAPTATION_RESULTS.md, session 20), so the
  student learns the face from the labelled adults alone. `noface_chain`: the same for every round's labels (each
  later round labelled by the face-free model before it), 3 seeds of round 3, paired.
- `balance`: round 3 on its labels with the people whose labelled arms are extended repeated (up to 4 times), so
  the labels' forearm / upper-arm ratios come nearer the prior poses' (class-balanced self-training, Zou et al.
  2018, with arm extension as the class): the threshold keeps mostly folded arms. 3 seeds, paired.
- `few`: 50 labelled infants. Plain fine-tuning on them (3 seeds), and `self-train` from that model on the 600
  unlabelled frames, every round also training on the 50 (3 seeds of round 3): what a user gains from labelling
  a few frames when zero labels fall short. `few_noadults`: the same rounds without the labelled adults.
- `select`: which 50 frames to label: the first 50 (random order), a k-center cover of the built-in model's poses,
  or the 50 it is least sure of; `ft50`'s recipe on each, 3 seeds, paired against the first 50.
- `share`: round 3 on round 2's labels capped per keypoint type (`pseudo-label --keep-share` 0.5, then 0.7): each
  type labelled on at most that share of the people, its most confident readings (the class-wise portion of
  class-balanced self-training, Zou et al. 2018; one global threshold labels the confidently wrong face on 97% of
  people and the wrists on 55%). 3 seeds each, paired. `share_chain`: `--keep-share 0.5` in every round
  (`self-train`), 3 seeds of round 3, paired.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from seed_spread import seed_table
from thermal_adaptation import ANN_INFANT, SUP_RECIPE, debiased_runs, infant_prior, render_tests, share_of_gain
from thermal_error_anatomy import load, rewrite, score, truth_for
from unlabelled_methods_ap import FM, sh, train

DEBIAS_LAST = ["visible_debias_round3", "visible_debias_round3_s1", "visible_debias_round3_s2"]
GROUPS = {"face": [0, 1, 2, 3, 4], "shoulders": [5, 6], "elbows": [7, 8], "wrists": [9, 10], "hips": [11, 12],
          "knees": [13, 14], "ankles": [15, 16]}  # fmt: skip
NOISE = ("        - {type: CoarseOcclusion, prob: 0.5}\n"
         "        - {type: RandomBlur, prob: 0.3}\n")  # fmt: skip


def baseline(out: Path) -> tuple[dict[str, Path | str], Path]:
    """The debiased visible chain (cached) and `sup600_visible`, its supervised reference."""
    models, _ = debiased_runs(out, visible=True)
    (out / "sup600.yaml").write_text(SUP_RECIPE)
    models["sup600_visible"] = train(str(out / "sup600.yaml"), out / "runs/sup600_visible",
                                     "data.train.synth.look=visible")  # fmt: skip
    return models, out / "runs"


def predictions(folder: Path, name: str, checkpoint: Path | str, test: Path) -> Path:
    pred = folder / f"{name}.json"
    if not pred.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        sh("eval", "--checkpoint", str(checkpoint), "--ann", str(test), "--images", str(test.parent.parent / "images"),
           "--out", str(pred), "--json")  # fmt: skip
    return pred


def anatomy(out: Path, test: Path) -> None:
    models, _ = baseline(out)
    folder = out / "predictions_visible_anatomy"
    zero = predictions(folder, "round3", models["visible_debias_round3"], test)
    sup = predictions(folder, "sup600_visible", models["sup600_visible"], test)
    (_, anns, mine), (_, other_anns, theirs) = load(zero), load(sup)
    if [a["image_id"] for a in anns] != [a["image_id"] for a in other_anns]:  # one person an image
        raise SystemExit("the two prediction files list different people")
    truth, scale = truth_for(anns, test)
    print(f"round 3 AP {score(test, zero):.1f}, sup600_visible AP {score(test, sup):.1f}")
    print("| keypoints | round 3 AP with sup600_visible's | gain | median error, round 3 | sup600_visible |")
    print("|---|---|---|---|---|")
    base = score(test, zero)
    for group, idx in GROUPS.items():
        mixed = mine.copy()
        mixed[:, idx, :2] = theirs[:, idx, :2]
        ap = score(test, rewrite(zero, mixed, folder / f"round3_with_sup_{group}.json"))
        seen = truth[:, idx, 2] > 0
        err = [np.median((np.linalg.norm(p[:, idx, :2] - truth[:, idx, :2], axis=-1) / scale[:, None])[seen])
               for p in (mine, theirs)]  # fmt: skip
        print(f"| {group} | {ap:.1f} | {ap - base:+.1f} | {err[0]:.3f} | {err[1]:.3f} |")


def fused(readings: np.ndarray, preference: np.ndarray, mode: str, flip_index: np.ndarray) -> np.ndarray:
    """(N, 4, K, 3) readings at the quarter turns -> (N, K, 3): the upright test's pick, or a fusion of readings
    first aligned left/right to the picked one (whichever of a reading and its mirror lies nearer it)."""
    picked = readings[np.arange(len(readings)), np.argmax(preference, axis=1)]
    if mode == "pick":
        return picked
    near = np.linalg.norm(readings[..., :2] - picked[:, None, :, :2], axis=-1).sum(-1)
    mirrored = readings[:, :, flip_index]
    far = np.linalg.norm(mirrored[..., :2] - picked[:, None, :, :2], axis=-1).sum(-1)
    aligned = np.where((far < near)[..., None, None], mirrored, readings)
    if mode == "mean2":
        aligned = aligned[:, [0, 2]]
    weight = np.maximum(aligned[..., 2], 1e-6)[..., None]
    if mode == "median4":
        xy = np.median(aligned[..., :2], axis=1)
    else:
        xy = (aligned[..., :2] * weight).sum(1) / weight.sum(1)
    return np.concatenate([xy, aligned[..., 2:].mean(1)], axis=-1)


def fusion(out: Path, test: Path) -> None:
    from poseadapt.cli.inference_cmd import prior_decoder
    from poseadapt.data.coco import CocoPredictions
    from poseadapt.evaluate.topdown import (
        Predictor,
        gt_people,
        instance_scores,
        load_ground_truth,
        read_image,
        score_ap,
        scoring_view,
    )
    from poseadapt.interop.checkpoint import load_checkpoint

    models, _ = baseline(out)
    gt = load_ground_truth(test, "coco17")
    people, images = gt_people(gt), test.parent.parent / "images"
    files = {im["id"]: im["file_name"] for im in json.loads(test.read_text())["images"]}
    print("| model | decoding | plain | pick (upright test) | mean4 | mean2 (0 and 180) | median4 |")
    print("|---|---|---|---|---|---|---|")
    for name in ("foundation", "visible_debias_round2"):
        model = load_checkpoint(str(models[name]))
        model.eval()
        for decoder in (None, prior_decoder(infant_prior(out), model.schemas[0], model.codec)):
            plain = Predictor(model, decoder=decoder)
            turned = Predictor(model, decoder=decoder, upright_test=True)
            flip = np.asarray(turned.schema.flip_index)
            results: dict[str, list[np.ndarray]] = {m: [] for m in ("plain", "pick", "mean4", "mean2", "median4")}
            for image_id in np.unique(people.image_ids):  # image order = gt_people's order (sorted image ids)
                boxes = people.boxes[people.image_ids == image_id]
                image = read_image(images / files[int(image_id)])
                results["plain"].append(plain.predict(image, boxes))
                readings, preference = turned.turned_readings(*turned.crops(image, boxes))
                for mode in ("pick", "mean4", "mean2", "median4"):
                    results[mode].append(fused(readings, preference, mode, flip))
            order = np.argsort(people.image_ids, kind="stable")
            cells = []
            for keypoints in results.values():
                kp = np.empty((len(people), *keypoints[0].shape[1:]))
                kp[order] = np.concatenate(keypoints)
                preds = CocoPredictions(people.image_ids, np.full(len(people), gt.category_id), kp,
                                        instance_scores(kp[..., 2]))  # fmt: skip
                cells.append(f"{100 * score_ap(scoring_view(gt, None), preds)['AP']:.1f}")
            print(f"| {name} | {'prior' if decoder else 'arg-max'} | {' | '.join(cells)} |", flush=True)


def variant_chain(out: Path, name: str, recipe_text: str, *sets: str, labelling: tuple[str, ...] = ()) -> list[Path]:
    """`poseadapt self-train` of the debiased rounds' recipe (`recipe_text`, its labels' entry naming the unlabelled
    file) with the chain's labelling options (and `labelling`, more of them), then 2 more training seeds of round
    3: round 3's three runs."""
    runs, frames = out / "runs", out / "data/unlabelled_visible"
    boxes = frames / ANN_INFANT
    recipe = out / f"{name}_self_train.yaml"
    recipe.write_text(recipe_text.replace("LABELS", str(boxes)).replace("FRAMES", str(frames / "images")))
    chain = runs / f"{name}_chain"
    sh("self-train", str(recipe), "--unlabelled", str(boxes), "--images", str(frames / "images"), "--out", str(chain),
       "--rounds", "3", "--decode-prior", str(infant_prior(out)), "--debias-source",
       str(out / "data/source_adults/annotations/adult_coco17.json"), "--debias-target",
       str(out / "data/infant_prior" / ANN_INFANT), *labelling, *[a for s in ("data.val=null", "train.progress=false",
                                                                           *sets) for a in ("--set", s)],
       "--json")  # fmt: skip
    last = [chain / "round3/final.safetensors"]
    for seed in (1, 2):
        last.append(train(str(chain / "round3/recipe.yaml"), runs / f"{name}_round3_s{seed}", f"train.seed={seed}"))
    return last


def variant_table(out: Path, test: Path, adults: Path, name: str, last: list[Path], *, references: dict[str, Path]
                  | None = None, shown: dict[str, Path] | None = None,
                  shown_group: str | None = None) -> None:  # fmt: skip
    """`name`'s round 3 over its 3 seeds (`last`) against the debiased rounds' (paired) and the foundation model, and
    its share of `sup600_visible`'s gain and of each of `references`' (more supervised models); `shown`: more
    models scored beside them, as one more seed group named `shown_group` if given (then also paired against it)."""
    chain, _ = baseline(out)
    extra = {**(references or {}), **(shown or {})}
    mine = [f"{name}_round3", f"{name}_round3_s1", f"{name}_round3_s2"]
    models = {"foundation": FM, **{k: chain[k] for k in (*DEBIAS_LAST, "sup600_visible")}, **extra}
    models |= dict(zip(mine, last, strict=True))
    groups = {f"{name}_last": mine, "debias_last": DEBIAS_LAST}
    if shown_group:
        groups[shown_group] = list(shown or {})
    visible = {"as_filmed": test}
    seed_table(out / f"compare_visible_{name}_vs_debias", models, groups, visible, "debias_last")
    if shown_group:
        seed_table(out / f"compare_visible_{name}_vs_{shown_group}", models, groups, visible, shown_group)
    table = seed_table(out / f"compare_visible_{name}_seeds", models, groups, {**visible, "adult": adults},
                       "foundation")  # fmt: skip
    for reference in ("sup600_visible", *(references or {})):
        share_of_gain(table, reference)


SOFT_DISTILL = """\
  - distill:
      teacher: TEACHER
      logit_weight: 1.0
      feature_weight: 0.0
      decay: false
      flip_test: true
      unlabelled:
        ann: BOXES
        images: FRAMES
        ratio: 0.5
        augment:
          - {type: RandomFlip, prob: 0.5}
          - {type: RandomBBoxTransform}
          - {type: PhotometricDistortion, prob: 0.5}
"""


def soft_round(out: Path, recipe: str) -> list[Path]:
    """Round 3 on `visible_debias_round2`'s heatmaps: the round recipe without its labels' entry, plus `distill`
    from that model on the unlabelled frames; 3 training seeds."""
    frames = out / "data/unlabelled_visible"
    head, adults = recipe.split("    - synth:", 1)
    head = head.split("    - ann: LABELS", 1)[0]
    text = head + "    - synth:" + adults + SOFT_DISTILL
    text = text.replace("TEACHER", str(out / "runs/visible_debias_round2/final.safetensors"))
    (out / "soft_round3.yaml").write_text(text.replace("BOXES", str(frames / ANN_INFANT)).replace(
        "FRAMES", str(frames / "images")))  # fmt: skip
    seeds = [f"train.seed={s}" for s in range(3)]
    return [train(str(out / "soft_round3.yaml"), out / "runs" / ("soft_round3" + (f"_s{i}" if i else "")), seed)
            for i, seed in enumerate(seeds)]  # fmt: skip


def without_face(labels: Path, dest: Path) -> Path:
    """A copy of a pseudo-label file with the face keypoints (nose, eyes, ears) unlabelled."""
    doc = json.loads(labels.read_text())
    for ann in doc["annotations"]:
        keypoints = np.asarray(ann["keypoints"], float).reshape(-1, 3)
        keypoints[GROUPS["face"]] = 0.0
        ann["keypoints"], ann["num_keypoints"] = keypoints.ravel().tolist(), int((keypoints[:, 2] > 0).sum())
    dest.write_text(json.dumps(doc))
    return dest


def round3_on(out: Path, name: str) -> list[Path]:
    """Round 3 (`visible_debias_round3.yaml`) trained on OUT/{name}_round3_labels.json instead of its own labels;
    3 training seeds (`{name}_round3`, `_s1`, `_s2`)."""
    recipe = (out / "visible_debias_round3.yaml").read_text()
    (out / f"{name}_round3.yaml").write_text(recipe.replace("visible_debias_round3_labels.json",
                                                            f"{name}_round3_labels.json"))  # fmt: skip
    return [train(str(out / f"{name}_round3.yaml"), out / "runs" / (f"{name}_round3" + (f"_s{i}" if i else "")),
                  f"train.seed={i}") for i in range(3)]  # fmt: skip


def noface_round(out: Path) -> list[Path]:
    """Round 3 on its labels less the face keypoints; 3 training seeds."""
    without_face(out / "visible_debias_round3_labels.json", out / "noface_round3_labels.json")
    return round3_on(out, "noface")


def labelling_options(out: Path) -> tuple[str, ...]:
    """The chain's labelling options after `--checkpoint`/`--out`: the unlabelled frames, threshold, prior, debias."""
    frames = out / "data/unlabelled_visible"
    return ("--ann", str(frames / ANN_INFANT), "--images", str(frames / "images"), "--min-score", "0.4",
            "--decode-prior", str(infant_prior(out)), "--debias-source",
            str(out / "data/source_adults/annotations/adult_coco17.json"), "--debias-target",
            str(out / "data/infant_prior" / ANN_INFANT))  # fmt: skip


def noface_chain(out: Path) -> tuple[list[Path], dict[str, Path]]:
    """The debiased rounds with the face keypoints removed from every round's labels (round 1's labels are the
    chain's own, from the built-in model); 3 training seeds of round 3, and rounds 1 and 2."""
    teacher: Path | None = None
    for r in (1, 2, 3):
        labels = out / f"nofacechain_round{r}_labels.json"
        if not labels.is_file():
            raw = out / f"visible_debias_round{r}_labels.json" if r == 1 else out / f"nofacechain_raw{r}.json"
            if r > 1:
                sh("pseudo-label", "--checkpoint", str(teacher), "--out", str(raw), *labelling_options(out))
            without_face(raw, labels)
        recipe = (out / "visible_debias_round3.yaml").read_text()
        (out / f"nofacechain_round{r}.yaml").write_text(recipe.replace(str(out / "visible_debias_round3_labels.json"),
                                                                       str(labels)))  # fmt: skip
        teacher = train(str(out / f"nofacechain_round{r}.yaml"), out / "runs" / f"nofacechain_round{r}")
    last = [teacher] + [train(str(out / "nofacechain_round3.yaml"), out / "runs" / f"nofacechain_round3_s{i}",
                              f"train.seed={i}") for i in (1, 2)]  # fmt: skip
    return last, {f"nofacechain_round{r}": out / "runs" / f"nofacechain_round{r}/final.safetensors" for r in (1, 2)}


ARMS = ((5, 7, 9), (6, 8, 10))  # shoulder, elbow, wrist
RATIO_BINS = np.array([0, 0.25, 0.5, 0.75, 1.0, 1.25, np.inf])


def forearm_ratios(keypoints: list[float]) -> list[float]:
    """Forearm / upper-arm length of each arm whose shoulder, elbow and wrist are all labelled."""
    kp = np.asarray(keypoints, float).reshape(-1, 3)
    ratios = []
    for s, e, w in ARMS:
        upper = np.linalg.norm(kp[e, :2] - kp[s, :2])
        if kp[[s, e, w], 2].min() > 0 and upper > 1e-6:
            ratios.append(float(np.linalg.norm(kp[w, :2] - kp[e, :2]) / upper))
    return ratios


def balanced_labels(labels: Path, prior_poses: Path, dest: Path, cap: float = 4.0) -> Path:
    """A copy of a pseudo-label file whose people with extended arms are repeated, so that the labelled arms'
    forearm / upper-arm ratios come nearer the prior poses' (class-balanced self-training's idea, on poses): each
    person is repeated by the mean over its labelled arms of min(cap, max(1, prior share / label share)) of its
    ratio's bin, the fraction drawn at random (seed 0); people are only ever added, never dropped."""
    doc, prior = json.loads(labels.read_text()), json.loads(prior_poses.read_text())
    mine = [r for a in doc["annotations"] for r in forearm_ratios(a["keypoints"])]
    theirs = [r for a in prior["annotations"] for r in forearm_ratios(a["keypoints"])]
    share = [np.histogram(r, RATIO_BINS)[0] / max(len(r), 1) for r in (mine, theirs)]
    weight = np.clip(share[1] / np.maximum(share[0], 1e-9), 1.0, cap)
    rng, next_id, people = np.random.default_rng(0), max(a["id"] for a in doc["annotations"]) + 1, []
    for ann in doc["annotations"]:
        ratios = forearm_ratios(ann["keypoints"])
        w = float(np.mean([weight[np.searchsorted(RATIO_BINS, r, side="right") - 1] for r in ratios])) if ratios else 1
        copies = int(np.floor(w)) + int(rng.random() < w - np.floor(w))
        for c in range(copies):
            people.append({**ann, "id": next_id + c - 1} if c else ann)
        next_id += copies - 1
    print(
        f"balanced labels: {len(doc['annotations'])} -> {len(people)} people; arm-ratio bin weights "
        f"{np.round(weight, 2).tolist()}"
    )
    doc["annotations"] = people
    dest.write_text(json.dumps(doc))
    return dest


def balance_round(out: Path) -> list[Path]:
    """Round 3 on its labels balanced towards the prior's arm extension; 3 training seeds."""
    balanced_labels(out / "visible_debias_round3_labels.json", out / "data/infant_prior" / ANN_INFANT,
                    out / "balance_round3_labels.json")  # fmt: skip
    return round3_on(out, "balance")


def share_round(out: Path, share: float) -> tuple[str, list[Path]]:
    """Round 3 on round 2's labels made with `--keep-share` `share` on top of the chain's options (every keypoint
    type labelled on at most that share of the 600 people, its most confident readings); 3 training seeds."""
    name = f"share{round(100 * share)}"
    labels = out / f"{name}_round3_labels.json"
    if not labels.is_file():
        print(sh("pseudo-label", "--checkpoint", str(out / "runs/visible_debias_round2/final.safetensors"), "--out",
                 str(labels), *labelling_options(out), "--keep-share", str(share)))  # fmt: skip
    return name, round3_on(out, name)


LABELLED50 = """\
    - synth: {population: infant, view: top, n: 50, size: 256, seed: 0, look: visible}
      ratio: 0.2
      augment:
        - {type: RandomFlip, prob: 0.5}
        - {type: RandomBBoxTransform, rotate_sigma: 90, rotate_limit: 180, rotate_prob: 0.6}
        - {type: PhotometricDistortion, prob: 0.5}
"""


def few_labels(
    out: Path, recipe: str, adults: bool = True, fine_tune_only: bool = False
) -> tuple[str, list[Path], dict[str, Path]]:
    """50 labelled infants (the first 50 of the unlabelled frames' people, WITH labels): plain fine-tuning on them
    (`sup600.yaml` at n 50, 3 seeds), then `self-train` from its seed-0 model on the 600 unlabelled frames, every
    round training on the labels (ratio 0.4), the 50 labelled infants (0.2) and the labelled adults (0.4), or
    without `adults` on the labels (0.6) and the 50 (0.4), 1200 crops an epoch as the fine-tuning; the chain's
    name, 3 seeds of its round 3, and the 3 fine-tuned models."""
    baseline(out)
    runs = out / "runs"
    finetuned = {(f"ft50_visible_s{s}" if s else "ft50_visible"): train(
        str(out / "sup600.yaml"), runs / (f"ft50_visible_s{s}" if s else "ft50_visible"),
        "data.train.synth.look=visible", "data.train.synth.n=50", f"train.seed={s}") for s in range(3)}  # fmt: skip
    if fine_tune_only:
        return "ft50", [], finetuned
    labels_entry = "      images: FRAMES\n"
    text = recipe.replace(labels_entry, labels_entry + f"      ratio: {0.4 if adults else 0.6}\n", 1)
    head, rest = text.split("    - synth: {population: adult", 1)
    if adults:
        rest = "    - synth: {population: adult" + rest.replace(
            "\n      augment:", "\n      ratio: 0.4\n      augment:", 1
        )
        labelled = LABELLED50
    else:
        rest = rest[rest.index("  val: null") :].replace(
            "progress: false}", "progress: false, samples_per_epoch: 1200}"
        )
        labelled = LABELLED50.replace("ratio: 0.2", "ratio: 0.4")
    name = "few50" if adults else "few50noadults"
    last = variant_chain(out, name, head + labelled + rest, f"model.checkpoint={finetuned['ft50_visible']}")
    return name, last, finetuned


def chosen_frames(out: Path) -> dict[str, Path]:
    """Which 50 of the 600 unlabelled frames to label: the first 50 (the frames are in random order), a k-center
    greedy cover (Sener and Savarese, 2018) of the built-in model's poses (centred, scaled to unit RMS radius; the
    first centre the pose farthest from the mean), and the 50 the built-in model is least sure of (lowest mean
    keypoint score). Each is written as a COCO file of those people WITH their labels (the user labels them)."""
    frames = out / "data/unlabelled_visible"
    truth = json.loads((frames / ANN_INFANT).read_text())
    pred_file = out / "predictions_selection/foundation_unlabelled.json"
    if not pred_file.is_file():  # `eval` scores the hidden labels too; only its predictions are read
        pred_file.parent.mkdir(parents=True, exist_ok=True)
        sh("eval", "--checkpoint", FM, "--ann", str(frames / ANN_INFANT), "--images", str(frames / "images"),
           "--out", str(pred_file), "--json")  # fmt: skip
    pred = {p["image_id"]: np.asarray(p["keypoints"], float).reshape(-1, 3) for p in json.loads(pred_file.read_text())}
    ids = [a["image_id"] for a in truth["annotations"]]
    poses = np.stack([pred[i] for i in ids])
    xy = poses[..., :2] - poses[..., :2].mean(1, keepdims=True)
    xy /= np.sqrt((xy**2).sum(-1).mean(-1))[:, None, None]
    features = xy.reshape(len(ids), -1)
    cover = [int(np.argmax(np.linalg.norm(features - features.mean(0), axis=1)))]
    dist = np.linalg.norm(features - features[cover[0]], axis=1)
    while len(cover) < 50:
        cover.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(features - features[cover[-1]], axis=1))
    choices = {"first50": list(range(50)), "kcenter50": cover,
               "uncertain50": [int(i) for i in np.argsort(poses[..., 2].mean(1))[:50]]}  # fmt: skip
    files = {}
    for name, idx in choices.items():
        keep = {ids[i] for i in idx}
        doc = {**truth, "annotations": [a for a in truth["annotations"] if a["image_id"] in keep],
               "images": [im for im in truth["images"] if im["id"] in keep]}  # fmt: skip
        files[name] = out / f"selection_{name}.json"
        files[name].write_text(json.dumps(doc))
    return files


def selection_table(out: Path, test: Path) -> None:
    """`ft50`'s recipe on each choice of 50 labelled frames, 3 seeds each, paired against the first 50; and
    `ft50` itself (the same first 50, rendered in memory instead of read from files)."""
    few_labels(out, "", fine_tune_only=True)
    frames, runs = out / "data/unlabelled_visible", out / "runs"
    recipe = (out / "sup600.yaml").read_text()
    synth = "    synth: {population: infant, view: top, n: 600, size: 256, seed: 0, look: thermal}\n"
    models: dict[str, Path | str] = {}
    groups: dict[str, list[str]] = {}
    for name, labels in chosen_frames(out).items():
        path = out / f"selection_{name}.yaml"
        path.write_text(recipe.replace(synth, f"    ann: {labels}\n    images: {frames / 'images'}\n"))
        groups[name] = [f"{name}_s{s}" for s in range(3)]
        for s in range(3):
            models[f"{name}_s{s}"] = train(str(path), runs / f"sel_{name}_s{s}", f"train.seed={s}")
    groups["ft50"] = ["ft50_visible", "ft50_visible_s1", "ft50_visible_s2"]
    models |= {k: runs / k / "final.safetensors" for k in groups["ft50"]}
    seed_table(out / "compare_visible_selection", models, groups, {"as_filmed": test}, "first50")


def main() -> None:
    from thermal_adaptation import VISIBLE_ROUND_RECIPE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    groups = ("anatomy", "fusion", "noisy", "long", "soft", "noface", "noface_chain", "balance", "few",
              "few_noadults", "select", "share", "share_chain")  # fmt: skip
    ap.add_argument("group", choices=groups)
    ap.add_argument("--out", type=Path, default=Path("bench_out/thermal"))
    args = ap.parse_args()
    out = args.out.resolve()
    tests = render_tests(out / "data")
    test = tests["infant_visible"]
    if args.group == "anatomy":
        anatomy(out, test)
    elif args.group == "fusion":
        fusion(out, test)
    elif args.group == "noisy":
        recipe = VISIBLE_ROUND_RECIPE.replace("checkpoint: builtin:synthpose-vit-tiny}",
                                              "checkpoint: builtin:synthpose-vit-tiny, drop_path: 0.1}")  # fmt: skip
        head, tail = recipe.split("    - synth:", 1)  # the noise goes on the pseudo-labelled crops only
        variant_table(out, test, tests["adult"], "noisy", variant_chain(out, "noisy", head + NOISE + "    - synth:"
                                                                          + tail))  # fmt: skip
    elif args.group == "noface_chain":
        baseline(out)
        last, earlier = noface_chain(out)
        variant_table(out, test, tests["adult"], "nofacechain", last, shown=earlier)
    elif args.group == "balance":
        baseline(out)  # round 3's labels first
        variant_table(out, test, tests["adult"], "balance", balance_round(out))
    elif args.group == "share":
        baseline(out)  # round 2, the labeller, first
        for share in (0.5, 0.7):
            name, last = share_round(out, share)
            variant_table(out, test, tests["adult"], name, last)
    elif args.group == "share_chain":
        last = variant_chain(out, "sharechain", VISIBLE_ROUND_RECIPE, labelling=("--keep-share", "0.5"))
        variant_table(out, test, tests["adult"], "sharechain", last)
    elif args.group == "select":
        selection_table(out, test)
    elif args.group in ("few", "few_noadults"):
        name, last, finetuned = few_labels(out, VISIBLE_ROUND_RECIPE, adults=args.group == "few")
        variant_table(out, test, tests["adult"], name, last, shown=finetuned, shown_group="ft50")
    elif args.group == "noface":
        baseline(out)  # round 3's labels first
        variant_table(out, test, tests["adult"], "noface", noface_round(out))
    elif args.group == "soft":
        baseline(out)  # round 2, the teacher, first
        variant_table(out, test, tests["adult"], "soft", soft_round(out, VISIBLE_ROUND_RECIPE))
    else:
        last = variant_chain(out, "long", VISIBLE_ROUND_RECIPE, "schedule.epochs=12")
        reference = train(str(out / "sup600.yaml"), out / "runs/sup600_visible_e12", "data.train.synth.look=visible",
                          "schedule.epochs=12")  # fmt: skip
        variant_table(out, test, tests["adult"], "long", last, references={"sup600_visible_e12": reference})


if __name__ == "__main__":
    sys.exit(main())
