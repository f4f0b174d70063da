"""Issue 12's few- and zero-label comparisons on infants seen by a thermal camera (appearance and shape gaps).

    .venv/bin/python benchmarks/thermal_adaptation.py few [--seeds 5] [--out bench_out/thermal]
    .venv/bin/python benchmarks/thermal_adaptation.py zero [--out bench_out/thermal]
    .venv/bin/python benchmarks/thermal_adaptation.py fda [--out bench_out/thermal]
    .venv/bin/python benchmarks/thermal_adaptation.py inverted [--out bench_out/thermal]
    .venv/bin/python benchmarks/thermal_adaptation.py debias [--out bench_out/thermal]
    .venv/bin/python benchmarks/thermal_adaptation.py either [--out bench_out/thermal]
    .venv/bin/python benchmarks/thermal_adaptation.py visible [--out bench_out/thermal]
    .venv/bin/python benchmarks/thermal_adaptation.py visible256 [--out bench_out/thermal]

On visible renders, adults and infants differ in body shape, not appearance, and domain-adversarial alignment was
level with plain fine-tuning (docs/ADAPTATION_RESULTS.md, session 9). Here the infants are imaged by a long-wave
infrared camera (`synth --look thermal`), as night-time cot recordings are, while the labelled adults stay visible:
the gap FiDIP's and SHIFT's alignment is meant to close (SLP's in-bed IR; field request 13).

Everything starts from `builtin:synthpose-vit-tiny`; training images are rendered in memory with seeds no test set
uses. Test sets (200 images each, rendered into OUT/data): thermal infants top view (9101), thermal infants
diagonal view (9103, a view no training image has), visible adults (9102, forgetting), visible infants top view
(9101, the same people as the thermal test set: how much each model still reads the other camera).

- `few`: 50 labelled thermal infants, seeds 0..N-1 of each recipe, scored with `compare --seeds` against
  `finetune50` (synth-infant-50-finetune on the thermal infants). `adv`: synth-infant-adversarial with the
  labelled infants 60% of each batch, seen as often as in finetune50 (benchmarks/issue12_variants.py's `adv_eq`),
  300 labelled visible adults as source, 200 unlabelled thermal infants; `adv_l01`: the same with a 10x stronger
  reversal (max_lambda 0.01); `adv_control`: the same without the reversed gradient (max_lambda 0), which isolates
  what the alignment adds over the adults' labels (a second table compares against it). About 35 min on 2 cores.
- `zero`: no thermal infant label. `zero_adv`: DANN's first setting (the recipe's own 600 labelled visible adults
  are the source, `own_data: source`; 600 unlabelled thermal infants the target), `zero_adv_l03` with a 30x
  stronger reversal, `zero_control` without it; `zero_gray_mt`: the adults in grey (half of them inverted,
  `RandomGrayscale`) plus a mean teacher on the 600 thermal infants with the infant pose prior and silhouettes;
  `zero_gray_mt2`: a second mean-teacher run started from it; `zero_gray`: the grey adults alone. All against
  `sup600`, the same 600 thermal infants WITH labels and as many steps. Share of the supervised gain =
  (AP - AP_foundation) / (AP_sup600 - AP_foundation). About 1 h 15 min on 2 cores.
- `fda` (session 15): the same zero-label set-up with `FourierStyle` (FDA: the adults' crops take the low-frequency
  amplitude spectrum of one of the 600 unlabelled thermal frames, rendered to OUT/data/unlabelled_thermal; beta
  0.05, p 0.5, after the grey step). `zero_fda`: those adults alone; `zero_fda_mt`: plus the mean teacher of
  `zero_gray_mt`, which is re-run beside it as the paired control (both also with training seeds 1 and 2,
  compared with `compare --seeds`); `fda_round1`, `fda_round2`: offline
  self-training from `zero_fda_mt` (`poseadapt pseudo-label`, flip test, prior-guided decoding, keypoints >= 0.4;
  a fresh copy of the built-in model trains on those labels plus the FDA adults). Against `sup600`. About 45 min.
- `inverted` (session 16): the same rounds started from the built-in model reading the 600 frames inverted
  (black-hot; it reads a dark body on a light ground far better than a light one on a dark ground):
  `inv_round1..3`, the last also with training seeds 1 and 2 on the same labels (`compare --seeds` against the
  foundation model, share of sup600's gain with its interval); then rounds 4 and 5, and `zero_fda_mt`'s mean
  teacher continuing from round 3, paired against round 3; then the whole pipeline inverted (`invpipe_round1..3`:
  every round reads and trains on the inverted frames, scored on the inverted test images), with 3 seeds of its
  last round and its own supervised reference `sup600_inv` (the same frames inverted, WITH labels); then the
  inversion inside the model instead (`invmodel_round1..3`, recipe key `model.invert_input: true`, 3 seeds),
  scored on the frames as filmed. About 45 min.
- `debias` (session 17): `invmodel`'s rounds with every round's pseudo-labels debiased (`pseudo-label
  --debias-source` = the labelled adults the rounds train on, `--debias-target` = the prior's 500 infant poses;
  evaluate/proportions.py): `debias_round1..3`, the last with 3 training seeds, against `invmodel_round3`'s 3 seeds
  (paired) and the foundation model, with the share of `sup600_invmodel`'s gain. About 20 min, plus the
  `inverted` group's invmodel runs if they are not cached.
- `either` (session 18): the `debias` rounds again with the pseudo-labels trained as `left_right: either` (the loss
  takes the nearer of the labels and their mirror), with no anchor (`either_round*`) and with the default
  `left_right_anchor` 0.1 (`anchored_round*`), the last round of each with 3 training seeds, against
  `debias_round3`'s 3 seeds (paired) and the foundation model, with the share of `sup600_invmodel`'s gain. About
  1 h 30 min from nothing.
- `visible` (session 19): the `debias` and `anchored` chains on colour frames of the same 600 infants, with no
  inversion and the adults without the thermal-only steps (`visible_debias_round*`, `visible_anchored_round*`, 3
  seeds of each last round, paired), scored on the visible infant test set against `sup600_visible` (sup600 on the
  colour frames). Is the thermal recipe's 40% a thermal effect? About 1 h 30 min.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2

from seed_spread import seed_table
from unlabelled_methods_ap import FM, sh, train

THERMAL = "look=thermal"
ANN_INFANT = "annotations/infant_coco17.json"


def render_tests(data: Path) -> dict[str, Path]:
    renders = {
        "infant_thermal": ("infant", "top", 9101, "thermal"),
        "infant_diag_thermal": ("infant", "diagonal", 9103, "thermal"),
        "adult": ("adult", "random", 9102, "visible"),
        "infant_visible": ("infant", "top", 9101, "visible"),
    }
    tests = {}
    for name, (pop, view, seed, look) in renders.items():
        folder = data / f"{name}_test"
        if not (folder / "annotations").is_dir():
            sh("synth", "--population", pop, "--view", view, "--n", "200", "--seed", str(seed), "--size", "256",
               "--look", look, "--out", str(folder))  # fmt: skip
        tests[name] = folder / f"annotations/{pop}_coco17.json"
    return tests


def few_runs(runs: Path, seeds: int) -> tuple[dict[str, Path], dict[str, list[str]]]:
    common = ("data.train.synth.n=50", "data.train.synth.look=thermal", f"model.checkpoint={FM}")
    adv = ("adapt.0.adversarial.source.synth.n=300", "adapt.0.adversarial.target_unlabelled.synth.n=200",
           "adapt.0.adversarial.target_unlabelled.synth.look=thermal", "adapt.0.adversarial.source.ratio=0.2",
           "adapt.0.adversarial.target_unlabelled.ratio=0.2", "train.samples_per_epoch=238")  # fmt: skip
    models: dict[str, Path] = {}
    groups: dict[str, list[str]] = {"finetune50": [], "adv": [], "adv_l01": [], "adv_control": []}
    for s in range(seeds):
        seed = f"train.seed={s}"
        models[f"ft{s}"] = train("synth-infant-50-finetune", runs / f"ft50_s{s}", *common, seed)
        models[f"adv{s}"] = train("synth-infant-adversarial", runs / f"adv_s{s}", *common, *adv, seed)
        models[f"l01_{s}"] = train("synth-infant-adversarial", runs / f"adv_l01_s{s}", *common, *adv, seed,
                                   "adapt.0.adversarial.max_lambda=0.01")  # fmt: skip
        models[f"ctl{s}"] = train("synth-infant-adversarial", runs / f"ctl_s{s}", *common, *adv, seed,
                                  "adapt.0.adversarial.max_lambda=0")  # fmt: skip
        for g, m in (("finetune50", "ft"), ("adv", "adv"), ("adv_l01", "l01_"), ("adv_control", "ctl")):
            groups[g].append(f"{m}{s}")
    return models, groups


ZERO_RECIPE = """\
model: {name: vit_synth, input_size: [96, 128], schema: coco17, head: light, checkpoint: builtin:synthpose-vit-tiny}
data:
  train:
    synth: {population: adult, view: random, n: 600, size: 256, seed: 3000}
  val: null
optim: {lr: 2.0e-4, weight_decay: 0.05}
schedule: {epochs: 6, warmup_iters: 20, policy: cosine}
train: {batch_size: 32, workers: 2, progress: false}
adapt:
  - layer_decay: {rate: 0.75}
  - adversarial:
      own_data: source
      target_unlabelled:
        synth: {population: infant, view: top, n: 600, size: 256, seed: 0, look: thermal}
        ratio: 0.5
      weight: 0.3
      max_lambda: 0.001
"""
SUP_RECIPE = """\
model: {name: vit_synth, input_size: [96, 128], schema: coco17, head: light, checkpoint: builtin:synthpose-vit-tiny}
data:
  train:
    synth: {population: infant, view: top, n: 600, size: 256, seed: 0, look: thermal}
  val: null
optim: {lr: 2.0e-4, weight_decay: 0.05}
schedule: {epochs: 6, warmup_iters: 20, policy: cosine}
train: {batch_size: 32, workers: 2, progress: false, samples_per_epoch: 1200}
adapt:
  - layer_decay: {rate: 0.75}
"""


GRAY_MT_RECIPE = """\
model: {name: vit_synth, input_size: [96, 128], schema: coco17, head: light, checkpoint: builtin:synthpose-vit-tiny}
data:
  train:
    synth: {population: adult, view: random, n: 600, size: 256, seed: 3000}
    augment:
      - {type: RandomFlip, prob: 0.5}
      - {type: RandomBBoxTransform, rotate_sigma: 90, rotate_limit: 180, rotate_prob: 0.6}
      - {type: PhotometricDistortion, prob: 0.5}
      - {type: RandomGrayscale, prob: 0.5, invert_prob: 0.5}
      - {type: RandomBlur, prob: 0.3}
  val: null
optim: {lr: 2.0e-4, weight_decay: 0.05}
schedule: {epochs: 6, warmup_iters: 20, policy: cosine}
train: {batch_size: 32, workers: 2, progress: false}
adapt:
  - layer_decay: {rate: 0.75}
  - mean_teacher:
      unlabelled:
        synth: {population: infant, view: top, n: 600, size: 256, seed: 0, look: thermal}
      ratio: 0.5
      momentum: 0.99
      score_threshold: 0.4
      augment: []
      consistency: 1.0
      prior: PRIOR
      prior_weight: 1.0e-4
      silhouette: 1.0e-3
      rampup_iters: 100
"""


def infant_prior(out: Path) -> Path:
    """The infant pose prior of synth-infant-mean-teacher: 500 top-view infant poses no training image shows."""
    prior = out / "priors/infant-top-coco17.safetensors"
    if not prior.is_file():
        poses = out / "data/infant_prior"
        sh("synth", "--population", "infant", "--view", "top", "--n", "500", "--seed", "7", "--size", "256",
           "--out", str(poses))  # fmt: skip
        prior.parent.mkdir(parents=True, exist_ok=True)
        sh("prior", "fit", str(poses / "annotations/infant_coco17.json"), "--out", str(prior))
    return prior


def zero_runs(out: Path) -> dict[str, Path | str]:
    runs = out / "runs"
    zero, sup, gray = out / "zero_adv.yaml", out / "sup600.yaml", out / "zero_gray_mt.yaml"
    zero.write_text(ZERO_RECIPE)
    sup.write_text(SUP_RECIPE)
    gray.write_text(GRAY_MT_RECIPE.replace("PRIOR", str(infant_prior(out))))
    mt = train(str(gray), runs / "zero_gray_mt")
    return {
        "foundation": FM,
        "zero_adv": train(str(zero), runs / "zero_adv"),
        "zero_adv_l03": train(str(zero), runs / "zero_adv_l03", "adapt.1.adversarial.max_lambda=0.03"),
        "zero_control": train(str(zero), runs / "zero_ctl", "adapt.1.adversarial.max_lambda=0"),
        "zero_gray": train(
            str(gray), runs / "zero_gray", "adapt=[{layer_decay: {rate: 0.75}}]", "train.samples_per_epoch=1200"
        ),  # fmt: skip
        "zero_gray_mt": mt,
        "zero_gray_mt2": train(str(gray), runs / "zero_gray_mt2", f"model.checkpoint={mt}"),
        "sup600": train(str(sup), runs / "sup600"),
    }


FDA_STEP = "      - {type: FourierStyle, images: FRAMES, beta: 0.05, prob: 0.5}\n"
ROUND_RECIPE = """\
model: {name: vit_synth, input_size: [96, 128], schema: coco17, head: light, checkpoint: builtin:synthpose-vit-tiny}
data:
  train:
    - ann: LABELS
      images: FRAMES
      augment:
        - {type: RandomFlip, prob: 0.5}
        - {type: RandomBBoxTransform, rotate_sigma: 90, rotate_limit: 180, rotate_prob: 0.6}
        - {type: PhotometricDistortion, prob: 0.5}
    - synth: {population: adult, view: random, n: 600, size: 256, seed: 3000}
      augment:
        - {type: RandomFlip, prob: 0.5}
        - {type: RandomBBoxTransform, rotate_sigma: 90, rotate_limit: 180, rotate_prob: 0.6}
        - {type: PhotometricDistortion, prob: 0.5}
        - {type: RandomGrayscale, prob: 0.5, invert_prob: 0.5}
        - {type: FourierStyle, images: FRAMES, beta: 0.05, prob: 0.5}
        - {type: RandomBlur, prob: 0.3}
  val: null
optim: {lr: 2.0e-4, weight_decay: 0.05}
schedule: {epochs: 6, warmup_iters: 20, policy: cosine}
train: {batch_size: 32, workers: 2, progress: false}
adapt:
  - layer_decay: {rate: 0.75}
"""


# the rounds on colour frames: the adults lose the steps that only bring them nearer a thermal frame
THERMAL_ONLY = ("        - {type: RandomGrayscale, prob: 0.5, invert_prob: 0.5}\n",
                "        - {type: FourierStyle, images: FRAMES, beta: 0.05, prob: 0.5}\n")  # fmt: skip
VISIBLE_ROUND_RECIPE = ROUND_RECIPE.replace(THERMAL_ONLY[0], "").replace(THERMAL_ONLY[1], "")


def thermal_frames(out: Path, look: str = "thermal") -> Path:
    """The mean teacher's own 600 unlabelled thermal infants, written as files (their keypoints are never read);
    with `look` "visible", the same infants filmed by a colour camera."""
    unlabelled = out / f"data/unlabelled_{look}"
    if not (unlabelled / "annotations").is_dir():
        sh("synth", "--population", "infant", "--view", "top", "--n", "600", "--seed", "0", "--size", "256",
           "--look", look, "--out", str(unlabelled))  # fmt: skip
    return unlabelled


def write_mt_recipes(out: Path, frames: str, prior: str) -> None:
    """OUT/zero_gray_mt.yaml and OUT/zero_fda_mt.yaml: the grey and the FDA adults, each with the mean teacher."""
    gray = GRAY_MT_RECIPE.replace("PRIOR", prior)
    fda = gray.replace("      - {type: RandomBlur, prob: 0.3}\n", FDA_STEP + "      - {type: RandomBlur, prob: 0.3}\n")
    (out / "zero_gray_mt.yaml").write_text(gray)
    (out / "zero_fda_mt.yaml").write_text(fda.replace("FRAMES", frames))


def fda_runs(out: Path, rounds: int = 2) -> dict[str, Path | str]:
    runs, unlabelled = out / "runs", thermal_frames(out)
    frames, prior = str(unlabelled / "images"), str(infant_prior(out))
    write_mt_recipes(out, frames, prior)
    (out / "sup600.yaml").write_text(SUP_RECIPE)
    boxes = str(unlabelled / "annotations/infant_coco17.json")  # its keypoints are never read
    models: dict[str, Path | str] = {"foundation": FM}
    models["zero_fda"] = train(str(out / "zero_fda_mt.yaml"), runs / "zero_fda", "adapt=[{layer_decay: {rate: 0.75}}]",
                               "train.samples_per_epoch=1200")  # fmt: skip
    models["zero_gray_mt"] = train(str(out / "zero_gray_mt.yaml"), runs / "zero_gray_mt")
    teacher = models["zero_fda_mt"] = train(str(out / "zero_fda_mt.yaml"), runs / "zero_fda_mt")
    for r in range(1, rounds + 1):
        labels = out / f"fda_round{r}_labels.json"
        if not labels.is_file():
            sh("pseudo-label", "--checkpoint", str(teacher), "--ann", boxes, "--images", frames, "--out", str(labels),
               "--min-score", "0.4", "--decode-prior", prior)  # fmt: skip
        recipe = out / f"fda_round{r}.yaml"
        recipe.write_text(ROUND_RECIPE.replace("LABELS", str(labels)).replace("FRAMES", frames))
        teacher = models[f"fda_round{r}"] = train(str(recipe), runs / f"fda_round{r}")
    models["sup600"] = train(str(out / "sup600.yaml"), runs / "sup600")
    return models


def inverted_runs(
    out: Path, rounds: int = 3, seeds: int = 3, stay_inverted: bool = False, in_model: bool = False
) -> tuple[dict[str, Path | str], list[str]]:
    """Self-training rounds started from the built-in model reading the unlabelled frames inverted (black-hot).

    A thermal camera's black-hot palette shows a dark body on a light ground, as a colour camera sees dark
    clothes, which the built-in model reads; round 1's labels come from that reading, later rounds read the frames
    as filmed (`inv_round*`) or, with `stay_inverted`, every round reads and trains on the inverted frames and the
    model is meant for inverted frames (`invpipe_round*`; `sup600_inv` is its supervised reference, the same 600
    inverted frames WITH labels); with `in_model`, every round trains with `model.invert_input: true`, so the model
    inverts whatever it reads, the frames as filmed and the visible adults alike (`invmodel_round*`). The last round
    is re-trained on the same labels with `seeds` training seeds.
    """
    runs, unlabelled = out / "runs", thermal_frames(out)
    frames, prior = str(unlabelled / "images"), str(infant_prior(out))
    boxes = str(unlabelled / "annotations/infant_coco17.json")
    inverted = out / "data/unlabelled_thermal_inverted/images"
    if not inverted.is_dir():
        inverted.mkdir(parents=True)
        for frame in sorted(Path(frames).iterdir()):
            cv2.imwrite(str(inverted / frame.name), 255 - cv2.imread(str(frame)))
    (out / "sup600.yaml").write_text(SUP_RECIPE)
    models: dict[str, Path | str] = {"foundation": FM}
    name, trains_on = ("invpipe", str(inverted)) if stay_inverted else ("invmodel" if in_model else "inv", frames)
    inverting = ("model.invert_input=true",) if in_model else ()
    teacher, read_from = FM, str(inverted)
    for r in range(1, rounds + 1):
        labels = out / f"{'inv' if r == 1 else name}_round{r}_labels.json"  # round 1's labels are shared
        if not labels.is_file():
            sh("pseudo-label", "--checkpoint", str(teacher), "--ann", boxes, "--images", read_from,
               "--out", str(labels), "--min-score", "0.4", "--decode-prior", prior)  # fmt: skip
        recipe = out / f"{name}_round{r}.yaml"
        recipe.write_text(ROUND_RECIPE.replace("LABELS", str(labels)).replace("FRAMES", trains_on))
        teacher = models[f"{name}_round{r}"] = train(str(recipe), runs / f"{name}_round{r}", *inverting)
        read_from = trains_on
    last = f"{name}_round{rounds}"
    for seed in range(1, seeds):
        models[f"{last}_s{seed}"] = train(str(out / f"{last}.yaml"), runs / f"{last}_s{seed}", f"train.seed={seed}",
                                          *inverting)  # fmt: skip
    models["sup600"] = train(str(out / "sup600.yaml"), runs / "sup600")
    if stay_inverted:
        labelled = f"data.train=[{{ann: {boxes}, images: {inverted}}}]"  # the reference reads the labels
        models["sup600_inv"] = train(str(out / "sup600.yaml"), runs / "sup600_inv", labelled)
    if in_model:  # its supervised reference: sup600 with the inversion inside the model
        models["sup600_invmodel"] = train(str(out / "sup600.yaml"), runs / "sup600_invmodel", *inverting)
    return models, [last] + [f"{last}_s{seed}" for seed in range(1, seeds)]


def debiased_runs(
    out: Path, rounds: int = 3, seeds: int = 3, either: float | None = None, visible: bool = False
) -> tuple[dict[str, Path | str], list[str]]:
    """`invmodel_round*` with every round's pseudo-labels debiased (`pseudo-label --debias-source/--debias-target`).

    Source: the labelled adults every round trains on (the recipe's synth stream, written to OUT/data/source_adults);
    target: the 500 infant poses the prior was fitted on. Round 1 reads the frames with `--invert-images`. With
    `either` (a `left_right_anchor`), the pseudo-labels train with `left_right: either`: their left/right is
    trusted only that much, the adults' fully (`either_round*` with anchor 0, `anchored_round*` otherwise);
    round 1's labels are `debias_round1`'s (the same teacher). With `visible`, the same rounds on 600 colour frames
    of the same infants (`visible_*`): no inversion anywhere and the adults without the thermal-only steps (grey and
    inverted copies, FDA).
    """
    name = "debias" if either is None else "either" if either == 0 else "anchored"
    runs, unlabelled = out / "runs", thermal_frames(out, "visible" if visible else "thermal")
    name, inverting = (f"visible_{name}", ()) if visible else (name, ("model.invert_input=true",))
    first = "visible_debias" if visible else "debias"
    frames, prior = str(unlabelled / "images"), str(infant_prior(out))
    boxes = str(unlabelled / "annotations/infant_coco17.json")
    adults = out / "data/source_adults"
    if not (adults / "annotations").is_dir():  # the same people as the recipes' `synth: {population: adult, ...}`
        sh("synth", "--population", "adult", "--view", "random", "--n", "600", "--seed", "3000", "--size", "256",
           "--out", str(adults))  # fmt: skip
    debias = ("--debias-source", str(adults / "annotations/adult_coco17.json"),
              "--debias-target", str(out / "data/infant_prior/annotations/infant_coco17.json"))  # fmt: skip
    models: dict[str, Path | str] = {"foundation": FM}
    teacher: Path | str = FM
    mirror_free = f"      images: FRAMES\n      left_right: either\n      left_right_anchor: {either}\n"
    base = VISIBLE_ROUND_RECIPE if visible else ROUND_RECIPE
    round_recipe = base.replace("      images: FRAMES\n", mirror_free, 1)
    for r in range(1, rounds + 1):
        labels = out / f"{first if r == 1 else name}_round{r}_labels.json"
        if not labels.is_file():
            # later thermal models invert inside (model.invert_input)
            reading = ("--invert-images",) if r == 1 and not visible else ()
            print(sh("pseudo-label", "--checkpoint", str(teacher), "--ann", boxes, "--images", frames, "--out",
                     str(labels), "--min-score", "0.4", "--decode-prior", prior, *reading, *debias))  # fmt: skip
        recipe = out / f"{name}_round{r}.yaml"
        recipe.write_text((base if either is None else round_recipe).replace("LABELS", str(labels))
                          .replace("FRAMES", frames))  # fmt: skip
        teacher = models[f"{name}_round{r}"] = train(str(recipe), runs / f"{name}_round{r}", *inverting)
    last = f"{name}_round{rounds}"
    for seed in range(1, seeds):
        models[f"{last}_s{seed}"] = train(str(out / f"{last}.yaml"), runs / f"{last}_s{seed}", f"train.seed={seed}",
                                          *inverting)  # fmt: skip
    return models, [last] + [f"{last}_s{seed}" for seed in range(1, seeds)]


def inverted_copy(ann: Path, folder: Path) -> Path:
    """The test set with every image inverted (255 - pixel), its annotations unchanged; the copy's COCO file."""
    copy = folder / "annotations" / ann.name
    if not copy.is_file():
        (folder / "images").mkdir(parents=True, exist_ok=True)
        for image in sorted((ann.parent.parent / "images").iterdir()):
            cv2.imwrite(str(folder / "images" / image.name), 255 - cv2.imread(str(image)))
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ann, copy)
    return copy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("group", choices=("few", "zero", "fda", "inverted", "debias", "either", "visible", "visible256"))
    ap.add_argument("--seeds", type=int, default=5, help="few: runs per recipe")
    ap.add_argument("--out", type=Path, default=Path("bench_out/thermal"))
    args = ap.parse_args()
    out = args.out.resolve()
    tests = render_tests(out / "data")
    if args.group == "few":
        models, groups = few_runs(out / "runs", args.seeds)
        seed_table(out / "compare_few", models, groups, tests, "finetune50")
        seed_table(out / "compare_few_vs_control", models, groups, tests, "adv_control")
        return
    tables = {"debias": debias_table, "either": either_table, "visible": visible_table,
              "visible256": visible_large_table}  # fmt: skip
    if args.group in tables:
        tables[args.group](out, tests)
        return
    last_round: list[str] = []
    if args.group == "inverted":
        models, last_round = inverted_runs(out)
    else:
        models = zero_runs(out) if args.group == "zero" else fda_runs(out)
    summary = json.loads(sh(
        "compare", *[a for k, p in models.items() for a in ("--model", f"{k}={p}")],
        *[a for k, p in tests.items() for a in ("--test", f"{k}={p}")],
        "--baseline", "foundation", "--out", str(out / f"compare_{args.group}"), "--bootstrap", "1000", "--json",
    ))  # fmt: skip
    ap_of = {(r["model"], r["test"]): r for r in summary["results"]}
    gain = ap_of[("sup600", "infant_thermal")]["AP"] - ap_of[("foundation", "infant_thermal")]["AP"]
    print("| model | test | AP [95%] | Δ vs foundation [95%] | share of sup600's gain |")
    print("|---|---|---|---|---|")
    for r in summary["results"]:
        f = r.get("forgetting") or {}
        d = f"{100 * f['delta_AP']:+.1f} [{100 * f['ci'][0]:+.1f}, {100 * f['ci'][1]:+.1f}]" if f.get("ci") else "-"
        share = f"{100 * f['delta_AP'] / gain:.0f}%" if f.get("ci") and r["test"] == "infant_thermal" else "-"
        ci = f"{100 * r['AP']:.1f} [{100 * r['AP_ci'][0]:.1f}, {100 * r['AP_ci'][1]:.1f}]"
        print(f"| {r['model']} | {r['test']} | {ci} | {d} | {share} |")
    if args.group == "fda":  # FDA against its control: three training seeds each, paired on the thermal infants
        runs, seeded, groups = out / "runs", {}, {}
        for name in ("zero_gray_mt", "zero_fda_mt"):
            groups[name.removeprefix("zero_")] = [name] + [f"{name}_s{seed}" for seed in (1, 2)]
            seeded[name] = models[name]
            for seed in (1, 2):
                seeded[f"{name}_s{seed}"] = train(str(out / f"{name}.yaml"), runs / f"{name}_s{seed}",
                                                  f"train.seed={seed}")  # fmt: skip
        seed_table(out / "compare_fda_seeds", seeded, groups, {"infant_thermal": tests["infant_thermal"]}, "gray_mt")
    if args.group == "inverted":  # the last round over its training seeds, and the reading it started from
        seeded = {k: models[k] for k in ("foundation", *last_round)}
        table = seed_table(out / "compare_inverted_seeds", seeded, {"inv_last": last_round},
                           {"infant_thermal": tests["infant_thermal"]}, "foundation")  # fmt: skip
        d = table["seed_groups"][0]["vs_baseline"]
        print(
            f"share of sup600's gain, {len(last_round)} seeds: {100 * d['delta_AP'] / gain:.0f}% "
            f"[{100 * d['ci'][0] / gain:.0f}%, {100 * d['ci'][1] / gain:.0f}%]"
        )
        flipped = inverted_copy(tests["infant_thermal"], out / "data/infant_thermal_test_inverted")
        reading = json.loads(sh("eval", "--checkpoint", FM, "--ann", str(flipped), "--images",
                                str(flipped.parent.parent / "images"), "--json"))  # fmt: skip
        print(f"the built-in model on the thermal test infants inverted: AP {100 * reading['AP']:.1f}")
        later, _ = inverted_runs(out, rounds=5, seeds=1)  # do more rounds help? paired against round 3
        # or the FDA mean teacher (session 15's zero_fda_mt recipe) continuing from round 3
        write_mt_recipes(out, str(thermal_frames(out) / "images"), str(infant_prior(out)))
        later["mt_from_round3"] = train(str(out / "zero_fda_mt.yaml"), out / "runs/mt_from_r3",
                                        f"model.checkpoint={later['inv_round3']}")  # fmt: skip
        print(sh(
            "compare", *[a for k in ("inv_round3", "inv_round4", "inv_round5", "mt_from_round3")
                         for a in ("--model", f"{k}={later[k]}")],
            "--test", f"infant_thermal={tests['infant_thermal']}", "--baseline", "inv_round3",
            "--out", str(out / "compare_rounds45"), "--bootstrap", "1000",
        ))  # fmt: skip
        # the whole pipeline inverted: every round reads and trains on inverted frames, tested on the inverted test
        piped, piped_last = inverted_runs(out, stay_inverted=True)
        both = {"inverted": flipped, "as_filmed": tests["infant_thermal"]}
        table = seed_table(out / "compare_invpipe_seeds", {**piped, **seeded}, {"invpipe_last": piped_last,
                           "inv_last": last_round}, both, "foundation")  # fmt: skip
        ap = {(r["model"], r["test"]): 100 * r["AP"] for r in table["results"]}
        mean = next(g for g in table["seed_groups"] if (g["group"], g["test"]) == ("invpipe_last", "inverted"))
        low, high = (100 * v for v in mean["AP_ci"])
        for start in ("inverted", "as_filmed"):  # the foundation model reading the frames inverted, or as filmed
            base, gain = ap[("foundation", start)], ap[("sup600_inv", "inverted")] - ap[("foundation", start)]
            print(f"invpipe share of sup600_inv's gain from the foundation model reading {start}: "
                  f"{100 * (100 * mean['AP'] - base) / gain:.0f}% [{100 * (low - base) / gain:.0f}%, "
                  f"{100 * (high - base) / gain:.0f}%] (images and runs of invpipe; the rest fixed)")  # fmt: skip
        # the inversion inside the model (`model.invert_input`): it reads the frames as filmed
        inside, inside_last = inverted_runs(out, in_model=True)
        filmed = {"as_filmed": tests["infant_thermal"], "adult": tests["adult"]}
        table = seed_table(out / "compare_invmodel_seeds", {**inside, "invpipe_round3": piped["invpipe_round3"]},
                           {"invmodel_last": inside_last}, filmed, "foundation")  # fmt: skip
        group = next(g for g in table["seed_groups"] if (g["group"], g["test"]) == ("invmodel_last", "as_filmed"))
        ap = {(r["model"], r["test"]): r["AP"] for r in table["results"]}
        for ref in ("sup600_invmodel", "sup600"):
            gain = ap[(ref, "as_filmed")] - ap[("foundation", "as_filmed")]
            d = group["vs_baseline"]
            print(f"invmodel share of {ref}'s gain: {100 * d['delta_AP'] / gain:.0f}% "
                  f"[{100 * d['ci'][0] / gain:.0f}%, {100 * d['ci'][1] / gain:.0f}%]")  # fmt: skip


def either_table(out: Path, tests: dict[str, Path]) -> None:
    """`left_right: either` on the debiased rounds' labels, anchor 0 (`either_round3`) and 0.1 (`anchored_round3`),
    3 seeds each, against `debias_round3` (3 seeds, the same rounds trusting the labels' left/right; paired) and the
    foundation model; each one's share of `sup600_invmodel`'s gain."""
    either, either_last = debiased_runs(out, either=0.0)
    anchored, anchored_last = debiased_runs(out, either=0.1)
    debiased, debias_last = debiased_runs(out)
    (out / "sup600.yaml").write_text(SUP_RECIPE)
    reference = train(str(out / "sup600.yaml"), out / "runs/sup600_invmodel", "model.invert_input=true")
    models = {**debiased, **either, **anchored, "sup600_invmodel": reference}
    groups = {"anchored_last": anchored_last, "either_last": either_last, "debias_last": debias_last}
    thermal = {"as_filmed": tests["infant_thermal"]}
    seed_table(out / "compare_either_vs_debias", models, groups, thermal, "debias_last")
    table = seed_table(out / "compare_either_seeds", models, groups, {**thermal, "adult": tests["adult"]},
                       "foundation")  # fmt: skip
    share_of_gain(table, "sup600_invmodel")


def share_of_gain(table: dict, reference: str) -> None:
    """Print each seed group's share of `reference`'s AP gain over the foundation model on the thermal infants."""
    ap = {(r["model"], r["test"]): r["AP"] for r in table["results"]}
    gain = ap[(reference, "as_filmed")] - ap[("foundation", "as_filmed")]
    for g in table["seed_groups"]:
        if g["test"] == "as_filmed":
            d = g["vs_baseline"]
            print(f"{g['group']} share of {reference}'s gain: {100 * d['delta_AP'] / gain:.0f}% "
                  f"[{100 * d['ci'][0] / gain:.0f}%, {100 * d['ci'][1] / gain:.0f}%]")  # fmt: skip


def visible_table(out: Path, tests: dict[str, Path]) -> None:
    """The `debias` and `anchored` rounds on colour frames of the same 600 infants (`visible=True`), 3 seeds of each
    last round, paired, and against the foundation model; each one's share of `sup600_visible`'s gain (the same 600
    colour frames WITH labels, sup600's recipe)."""
    debiased, debias_last = debiased_runs(out, visible=True)
    anchored, anchored_last = debiased_runs(out, either=0.1, visible=True)
    (out / "sup600.yaml").write_text(SUP_RECIPE)
    reference = train(str(out / "sup600.yaml"), out / "runs/sup600_visible", "data.train.synth.look=visible")
    models = {**debiased, **anchored, "sup600_visible": reference}
    groups = {"anchored_last": anchored_last, "debias_last": debias_last}
    visible = {"as_filmed": tests["infant_visible"]}
    seed_table(out / "compare_visible_either_vs_debias", models, groups, visible, "debias_last")
    table = seed_table(out / "compare_visible_seeds", models, groups, {**visible, "adult": tests["adult"]},
                       "foundation")  # fmt: skip
    share_of_gain(table, "sup600_visible")
    shown = ("foundation", *debias_last, *anchored_last, "sup600_visible")
    hedging(out / "predictions_visible", {k: models[k] for k in shown}, tests["infant_visible"])


def visible_large_table(out: Path, tests: dict[str, Path]) -> None:
    """`visible`'s debiased rounds at 256x192 crops, run by `poseadapt self-train` (3 rounds, then 2 more training
    seeds of round 3 on its labels), against `sup600_visible256` (the same 600 colour frames WITH labels at
    256x192) and, on the same test images, the 128x96 chain and its reference."""
    runs, unlabelled = out / "runs", thermal_frames(out, "visible")
    frames, boxes = unlabelled / "images", unlabelled / "annotations/infant_coco17.json"
    large = "model.input_size=[192, 256]"
    recipe = out / "visible256_self_train.yaml"  # the round recipe, its labels' entry naming the unlabelled file
    recipe.write_text(VISIBLE_ROUND_RECIPE.replace("LABELS", str(boxes)).replace("FRAMES", str(frames)))
    adults = out / "data/source_adults/annotations/adult_coco17.json"  # written by `visible`'s chains
    chain = runs / "visible256_self_train"
    # rounds already finished are kept by self-train itself
    sh("self-train", str(recipe), "--unlabelled", str(boxes), "--images", str(frames), "--out", str(chain),
       "--rounds", "3", "--decode-prior", str(infant_prior(out)), "--debias-source", str(adults),
       "--debias-target", str(out / "data/infant_prior" / ANN_INFANT), "--set", large, "--set", "data.val=null",
       "--set", "train.progress=false", "--json")  # fmt: skip
    models: dict[str, Path | str] = {"foundation": FM}
    models |= {f"visible256_round{r}": chain / f"round{r}/final.safetensors" for r in (1, 2, 3)}
    last = ["visible256_round3"]
    for seed in (1, 2):
        name = f"visible256_round3_s{seed}"
        models[name] = train(str(chain / "round3/recipe.yaml"), runs / name, f"train.seed={seed}")
        last.append(name)
    (out / "sup600.yaml").write_text(SUP_RECIPE)
    models["sup600_visible256"] = train(str(out / "sup600.yaml"), runs / "sup600_visible256",
                                        "data.train.synth.look=visible", large)  # fmt: skip
    small = ["visible_debias_round3", "visible_debias_round3_s1", "visible_debias_round3_s2"]
    models |= {name: runs / name / "final.safetensors" for name in (*small, "sup600_visible")}
    visible = {"as_filmed": tests["infant_visible"]}
    groups = {"visible256_last": last, "debias_last": small}
    seed_table(out / "compare_visible256_vs_128", models, groups, visible, "debias_last")
    table = seed_table(out / "compare_visible256_seeds", models, groups, {**visible, "adult": tests["adult"]},
                       "foundation")  # fmt: skip
    share_of_gain(table, "sup600_visible256")
    share_of_gain(table, "sup600_visible")


def hedging(folder: Path, models: dict[str, Path | str], test: Path) -> None:
    """Print per model the share of test people predicted whole-body mirrored, the median keypoint error with left
    and right matched to the truth per body (in sqrt(box area)), and the median predicted / true shoulder distance
    (under 1: left and right pulled together, the loss's answer to labels whose left / right is a coin toss)."""
    import numpy as np

    from thermal_error_anatomy import chirality, load, oracle_unmirror, truth_for

    folder.mkdir(parents=True, exist_ok=True)
    print("| model | mirrored | matched median error | shoulder distance / true |\n|---|---|---|---|")
    for name, checkpoint in models.items():
        pred = folder / f"{name}.json"
        if not pred.is_file():
            images = str(test.parent.parent / "images")
            sh("eval", "--checkpoint", str(checkpoint), "--ann", str(test), "--images", images, "--out", str(pred),
               "--json")  # fmt: skip
        _, anns, poses = load(pred)
        truth, scale = truth_for(anns, test)
        mirrored = chirality(poses, truth, scale)[0]
        matched, _ = oracle_unmirror(poses, truth)
        seen = truth[..., 2] > 0
        error = np.linalg.norm(matched[..., :2] - truth[..., :2], axis=2) / scale[:, None]
        width = np.linalg.norm(poses[:, 5, :2] - poses[:, 6, :2], axis=1)
        true_width = np.linalg.norm(truth[:, 5, :2] - truth[:, 6, :2], axis=1)
        print(f"| {name} | {mirrored:.0%} | {np.median(error[seen]):.3f} | {np.median(width / true_width):.2f} |")


def debias_table(out: Path, tests: dict[str, Path]) -> None:
    """`debias_round3` (3 seeds) against `invmodel_round3` (3 seeds, the same rounds undebiased) and the foundation
    model; its share of `sup600_invmodel`'s gain."""
    debiased, last = debiased_runs(out)
    inside, inside_last = inverted_runs(out, in_model=True)  # cached from the `inverted` group when it has run
    models = {**debiased, **{k: inside[k] for k in (*inside_last, "sup600_invmodel")}}
    groups = {"debias_last": last, "invmodel_last": inside_last}
    thermal = {"as_filmed": tests["infant_thermal"]}
    seed_table(out / "compare_debias_vs_invmodel", models, groups, thermal, "invmodel_last")
    table = seed_table(out / "compare_debias_seeds", models, groups, {**thermal, "adult": tests["adult"]},
                       "foundation")  # fmt: skip
    share_of_gain(table, "sup600_invmodel")


if __name__ == "__main__":
    main()
