"""`poseadapt schemas ...` driven as a user would: a subprocess, exit codes, stdout / stderr, `--json`."""

import json
import subprocess
import sys

import pytest

from poseadapt.schemas import SchemaMap, builtin_names, get_schema


def run(*args: str, importtime: bool = False) -> subprocess.CompletedProcess:
    flags = ["-X", "importtime"] if importtime else []
    cmd = [sys.executable, *flags, "-m", "poseadapt.cli.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_list_shows_every_builtin():
    proc = run("schemas", "list")
    assert proc.returncode == 0, proc.stderr
    names = builtin_names()
    assert len(names) >= 8
    for name in names:
        assert name in proc.stdout


def test_list_json():
    proc = run("schemas", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)["schemas"]}
    assert set(rows) == set(builtin_names())
    assert rows["coco_wholebody133"]["keypoints"] == 133
    assert rows["coco_wholebody133"]["groups"] == ["body", "foot", "face", "left_hand", "right_hand"]
    assert rows["mpii16"]["flip_pairs"] == 6
    assert rows["coco_wholebody133"]["source"] == "Jin et al., ECCV 2020, github.com/jin-s13/COCO-WholeBody"


def test_show_coco17_prints_names_flip_pairs_sigmas():
    proc = run("schemas", "show", "coco17")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "left_knee" in line and "right_knee (14)" in line]
    assert rows and "0.087" in rows[0]  # index 13: name, sigma and flip partner on one row
    assert "skeleton (19 edges)" in proc.stdout and "upper_body" in proc.stdout


def test_show_json_round_trips_the_schema():
    proc = run("schemas", "show", "halpe26", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    s = get_schema("halpe26")
    assert data["sigmas"] == list(s.sigmas) and data["keypoints"] == list(s.keypoints)
    assert data["flip_index"] == list(s.flip_index)


def test_map_mpii16_coco17_prints_the_matched_table():
    proc = run("schemas", "map", "mpii16", "coco17")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "12 exact, 0 alias, 0 approximate, 5 unmatched" in out
    knee = [line for line in out.splitlines() if "left_knee" in line]
    assert knee and "exact" in knee[0] and "left_knee (4)" in knee[0]
    nose = [line for line in out.splitlines() if "nose" in line]
    assert nose and "unmatched" in nose[0]
    assert "unused mpii16 keypoints: pelvis, thorax, upper_neck, head_top" in out


def test_map_json_equals_library(tmp_path):
    proc = run("schemas", "map", "coco17", "mpii16", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(json.dumps(SchemaMap("coco17", "mpii16").to_dict()))


def test_map_accepts_yaml_files(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nkeypoints: [LShoulder, RShoulder, top_head]\nsigmas: [0.08, 0.08, 0.03]\n")
    proc = run("schemas", "map", str(path), "crowdpose14", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["matched"] == [[0, 0], [1, 1], [2, 12]]
    assert data["counts"]["alias"] == 3


def test_unknown_schema_is_one_line():
    assert_one_line_error(run("schemas", "show", "coco18"), "unknown schema 'coco18'")
    assert_one_line_error(run("schemas", "map", "mpii16", "nope"), "unknown schema 'nope'")
    assert_one_line_error(run("schemas", "show", "missing.yaml"), "not found")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("name: dup\nkeypoints: [a, b, a]\nsigmas: [0.1, 0.1, 0.1]\n", "duplicate keypoint names: a"),
        ("name: short\nkeypoints: [a, b, c]\nsigmas: [0.1, 0.1]\n", "2 sigmas for 3 keypoints"),
        ("name: grp\nkeypoints: [a, b]\nsigmas: [0.1, 0.1]\ngroups: [a, b]\n", "'groups' must map"),
        ("name: bad\nkeypoints: [a, b\n", "not valid YAML"),
    ],
)
def test_bad_schema_file_is_one_line(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert_one_line_error(run("schemas", "show", str(path)), fragment)
    assert_one_line_error(run("schemas", "map", "coco17", str(path)), fragment)


@pytest.mark.parametrize(
    "args", [("--help",), ("schemas", "list"), ("schemas", "show", "coco17"), ("schemas", "map", "mpii16", "coco17")]
)
def test_never_imports_torch(args):
    proc = run(*args, importtime=True)
    assert proc.returncode == 0, proc.stderr
    modules = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "poseadapt.cli" in modules  # the measurement saw our imports (main itself runs as __main__)
    if args[0] == "schemas":
        assert "poseadapt.cli.schemas_cmd" in modules
    assert not [m for m in modules if m == "torch" or m.startswith("torch.")]
