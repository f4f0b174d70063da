"""Does memory replay keep the keypoints the target data lacks?  One command, a few minutes on 2 cores.

    .venv/bin/python benchmarks/memory_replay_ap.py [--source builtin:synthpose-vit-tiny] [--out bench_out/mr]

Source: a coco17 model of adults. Target: older adults labelled in `body13` (coco17 without eyes and ears), the
situation of a clinical set that never labelled the face. Both runs compose `lora` + `rehearsal` (adults, labelled
in body13 too, so no label of eyes or ears reaches training) + `memory_replay`, so both export a union head
(body13 + eyes + ears) that `poseadapt eval` scores:
- with memory replay: the frozen source model's confident predictions supervise eyes and ears;
- without (`memory_replay: {weight: 0}`): the same union head, nothing supervises eyes and ears.
Scored with `poseadapt eval` on adults of every view (fresh renders) restricted to eyes and ears ("face4"), and on
the body13 points, with 95% bootstrap intervals over images from `poseadapt compare`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

BODY13 = [
    "nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
FACE4 = ["left_eye", "right_eye", "left_ear", "right_ear"]


def sh(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "poseadapt.cli.main", *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"poseadapt {' '.join(args)}\n{proc.stderr[-3000:]}")
    return proc.stdout


def subset(coco_file: Path, names: list[str], schema_name: str, out: Path) -> Path:
    """The COCO file with only `names` kept (a test set in another schema)."""
    data = json.loads(coco_file.read_text())
    cat = data["categories"][0]
    idx = [cat["keypoints"].index(n) for n in names]
    for ann in data["annotations"]:
        kp = ann["keypoints"]
        ann["keypoints"] = [v for i in idx for v in kp[3 * i : 3 * i + 3]]
        ann["num_keypoints"] = sum(1 for i in idx if kp[3 * i + 2] > 0)
    cat["keypoints"], cat["skeleton"], cat["name"] = names, [], "person"
    data["info"] = {"description": schema_name}
    out.write_text(json.dumps(data))
    return out


def schema_yaml(path: Path, name: str, names: list[str]) -> Path:
    from poseadapt.schemas import get_schema

    coco = get_schema("coco17")
    sig = [coco.sigmas[coco.keypoints.index(n)] for n in names]
    path.write_text(json.dumps({"name": name, "keypoints": names, "sigmas": sig}))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="builtin:synthpose-vit-tiny")
    ap.add_argument("--out", type=Path, default=Path("bench_out/memory_replay"))
    ap.add_argument("--n", type=int, default=400, help="labelled older adults")
    ap.add_argument("--epochs", type=int, default=6)
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    body13 = schema_yaml(out / "body13.yaml", "body13", BODY13)

    data = out / "data"
    sets = {
        "elderly": ("elderly", "random", args.n, 31),
        "adult_test": ("adult", "random", 300, 32),
    }
    for key, (pop, view, n, seed) in sets.items():
        if not (data / key / "annotations").is_dir():
            sh("synth", "--population", pop, "--view", view, "--n", str(n), "--seed", str(seed), "--size", "256",
               "--out", str(data / key))  # fmt: skip
    elderly = subset(data / "elderly/annotations/elderly_coco17.json", BODY13, "body13", data / "elderly_body13.json")
    adults = data / "adult_test/annotations/adult_coco17.json"
    face4 = subset(adults, FACE4, "face4", data / "adult_face4.json")
    adult_body = subset(adults, BODY13, "body13", data / "adult_body13.json")

    runs = {}
    for key, weight in (("with_replay", 1.0), ("without_replay", 0.0)):
        run = out / "runs" / key
        if not (run / "final.safetensors").is_file():
            adapt = (
                f"[{{lora: {{r: 8, head: all}}}}, "
                f"{{rehearsal: {{source: {{synth: {{population: adult, view: random, n: 400, seed: 33}}, "
                f"schema: {body13}}}, ratio: 0.3, pseudo_label: false}}}}, "
                f"{{memory_replay: {{weight: {weight}}}}}]"
            )
            sh(
                "train", "synth-infant-finetune", "--out", str(run),
                "--set", f"model.checkpoint={args.source}", "--set", "model.name=vit_synth",
                "--set", "model.head=light", "--set", f"model.schema={body13}",
                "--set", f"data.train={{ann: {elderly}, images: {data / 'elderly/images'}, schema: {body13}}}",
                "--set", "data.val=null", "--set", f"schedule.epochs={args.epochs}", "--set", "schedule.policy=cosine",
                "--set", "optim.lr=2e-3", "--set", "train.batch_size=32", "--set", "train.progress=false",
                "--set", "train.amp=true", "--set", f"adapt={adapt}",
            )  # fmt: skip
        runs[key] = run / "final.safetensors"

    summary = json.loads(
        sh(
            "compare",
            *[a for k, p in runs.items() for a in ("--model", f"{k}={p}")],
            "--model",
            f"source={args.source}",
            "--test",
            f"adult_face4={face4}:{data / 'adult_test/images'}",
            "--test",
            f"adult_body13={adult_body}:{data / 'adult_test/images'}",
            "--out",
            str(out / "compare"),
            "--baseline",
            "without_replay",  # the paired difference with - without, with its interval
            "--json",
        )  # fmt: skip
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2)[:4000])


if __name__ == "__main__":
    main()
