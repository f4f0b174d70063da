"""The fast gate of `poseadapt score` (`evaluate.cocofiles.check_plain_coco`): byte-level spellings it must refuse.

A refusal only sends the files to the full loader, so the gate may refuse a valid file, but it must never accept
a file the loader would read differently (a list of another length, a nested list, a string, a visibility flag
other than 0/1/2); each case below changes one list of an otherwise plain pair.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poseadapt.evaluate.cocofiles import check_plain_coco
from test_metrics_oks import random_case


def _write(tmp_path: Path, gt: dict, preds: list[dict], gt_text: str | None = None) -> tuple[Path, Path, Path]:
    schema, _, _ = random_case(5, n_images=12)
    paths = tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "schema.yaml"
    paths[0].write_text(gt_text if gt_text is not None else json.dumps(gt))
    paths[1].write_text(json.dumps(preds))
    paths[2].write_text(schema.to_yaml())
    return paths


@pytest.fixture
def case() -> tuple[dict, list[dict]]:
    _, gt, preds = random_case(5, n_images=12)
    return gt, preds


def test_plain_pair_is_accepted_in_any_usual_spelling(tmp_path: Path, case: tuple[dict, list[dict]]) -> None:
    gt, preds = case
    for text in (json.dumps(gt), json.dumps(gt, separators=(",", ":")), json.dumps(gt, indent=None)):
        got = check_plain_coco(*_write(tmp_path, gt, preds, text))
        assert got is not None and got.num_annotations == len(gt["annotations"]) and got.num_predictions == len(preds)
    gt["annotations"][0]["keypoints"][2::3] = [float(v) for v in gt["annotations"][0]["keypoints"][2::3]]  # `2.0`
    assert check_plain_coco(*_write(tmp_path, gt, preds)) is not None


def _gt_list(gt: dict, i: int, value: object) -> dict:
    gt["annotations"][i]["keypoints"] = value
    return gt


@pytest.mark.parametrize(
    "change",
    [
        "gt one value short",
        "gt one value long",
        "gt nested list",
        "gt string value",
        "gt flag 3",
        "gt flag 0.5",
        "gt flag 12",
        "gt flag -1",
        "pred one short, another one long",
        "pred nested list",
        "pred keypoints a string",
        "pred keypoints a number",
    ],
)
def test_gate_refuses_every_irregular_list(tmp_path: Path, case: tuple[dict, list[dict]], change: str) -> None:
    gt, preds = case
    kp = list(gt["annotations"][1]["keypoints"])
    pk = list(preds[1]["keypoints"])
    if change == "gt one value short":
        _gt_list(gt, 1, kp[:-1])
    elif change == "gt one value long":
        _gt_list(gt, 1, [*kp, 1])
    elif change == "gt nested list":
        _gt_list(gt, 1, [kp[:3], *kp[3:]])
    elif change == "gt string value":
        _gt_list(gt, 1, ["1,2", *kp[1:]])
    elif change.startswith("gt flag"):
        _gt_list(gt, 1, [*kp[:-1], json.loads(change.split()[-1])])
    elif change == "pred one short, another one long":  # the total count stays right
        preds[1]["keypoints"] = pk[:-1]
        preds[2]["keypoints"] = [*preds[2]["keypoints"], 0.5]
    elif change == "pred nested list":
        preds[1]["keypoints"] = [pk[:3], *pk[3:]]
    elif change == "pred keypoints a string":
        preds[1]["keypoints"] = json.dumps(pk)
    elif change == "pred keypoints a number":
        preds[1]["keypoints"] = 1.0
    assert check_plain_coco(*_write(tmp_path, gt, preds)) is None


def test_gate_refuses_duplicate_ids_and_unknown_references(tmp_path: Path, case: tuple[dict, list[dict]]) -> None:
    gt, preds = case
    gt["annotations"][1]["id"] = gt["annotations"][0]["id"]
    assert check_plain_coco(*_write(tmp_path, gt, preds)) is None
    _, gt, preds = random_case(5, n_images=12)
    preds[0]["image_id"] = 10_000
    assert check_plain_coco(*_write(tmp_path, gt, preds)) is None
    _, gt, preds = random_case(5, n_images=12)
    gt["annotations"][0]["id"] = 2**70  # beyond 64 bits: the loader words it
    assert check_plain_coco(*_write(tmp_path, gt, preds)) is None


# ---------------------------------------------------------------------------------------------- the fast entry
def test_fast_entry_options_match_the_typer_command() -> None:
    import typer

    from poseadapt.cli.entry import SCORE_DEFAULTS, SCORE_FLAGS, SCORE_OPTIONS
    from poseadapt.cli.main import app

    command = typer.main.get_command(app).commands["score"]  # type: ignore[attr-defined]
    kinds = {"path": Path, "float": float, "str": str, "text": str}
    seen = set()
    for param in command.params:
        (opt,) = param.opts
        seen.add(opt)
        if param.is_flag:
            assert SCORE_FLAGS[opt] == param.name
        else:
            assert SCORE_OPTIONS[opt] == (param.name, kinds[param.type.name])
        if param.required:
            assert param.name not in SCORE_DEFAULTS
        else:
            assert SCORE_DEFAULTS[param.name] == param.default, param.name
    assert seen == set(SCORE_OPTIONS) | set(SCORE_FLAGS)


def _run_entry(argv: list[str], capsys: pytest.CaptureFixture[str], entry: bool) -> tuple[int, str, str]:
    from poseadapt.cli.entry import main as entry_main
    from poseadapt.cli.main import main as cli_main

    with pytest.raises(SystemExit) as exit_info:
        (entry_main if entry else cli_main)(argv)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


@pytest.mark.parametrize(
    "extra",
    [["--json"], [], ["--json", "--engine=pycocotools"], ["--metric", "pck", "--alpha", "0.1", "--json"]],
)
def test_fast_entry_prints_what_the_full_cli_prints(
    tmp_path: Path, case: tuple[dict, list[dict]], capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    gt_path, pred_path, schema_path = _write(tmp_path, *case)
    argv = ["score", "--gt", str(gt_path), f"--pred={pred_path}", "--schema", str(schema_path), *extra]
    assert _run_entry(argv, capsys, entry=True) == _run_entry(argv, capsys, entry=False)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--gt", "g.json"],
        ["--gt", "g.json", "--pred", "p.json", "--bogus"],
        ["--gt", "g.json", "--gt", "h.json", "--pred", "p.json"],
        ["--gt", "g.json", "--pred", "p.json", "--alpha", "much"],
        ["--gt", "g.json", "--pred", "p.json", "--json=yes"],
        ["--gt", "g.json", "--pred"],
        ["g.json"],
    ],
)
def test_fast_entry_leaves_anything_unusual_to_typer(args: list[str]) -> None:
    from poseadapt.cli.entry import plain_score_options

    assert plain_score_options(args) is None


def test_fast_entry_reports_errors_as_the_full_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["score", "--gt", str(tmp_path / "missing.json"), "--pred", str(tmp_path / "p.json"), "--json"]
    code, out, err = _run_entry(argv, capsys, entry=True)
    assert (code, out, err) == _run_entry(argv, capsys, entry=False)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
