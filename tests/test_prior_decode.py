"""Prior-guided decoding (`poseadapt.evaluate.prior_decode`): heatmaps drawn from rendered infant poses, with a
keypoint's strongest peak put where the prior calls the pose implausible and a weaker peak left at the truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from poseadapt.codecs.udp_heatmap import UDPHeatmap
from poseadapt.errors import PoseAdaptError
from poseadapt.evaluate.prior_decode import PriorDecoder, local_maxima
from poseadapt.priors import PosePrior
from poseadapt.schemas import get_schema

COCO17 = get_schema("coco17")
W, H = 24, 32  # heatmap cells


def to_cells(pose: np.ndarray) -> np.ndarray:
    """A pose scaled into the heatmap, 3 cells from its border, rounded to whole cells."""
    lo, hi = pose.min(0), pose.max(0)
    scale = min((W - 7) / max(hi[0] - lo[0], 1e-6), (H - 7) / max(hi[1] - lo[1], 1e-6))
    return np.round(3 + (pose - lo) * scale)


def gaussians(cells: list[list[tuple[np.ndarray, float]]]) -> np.ndarray:
    """(1, K, H, W) maps; keypoint k has a Gaussian (sigma 1) of the given height at each of its cells."""
    ys, xs = np.mgrid[0:H, 0:W]
    maps = np.zeros((1, len(cells), H, W), np.float32)
    for k, peaks in enumerate(cells):
        for (x, y), height in peaks:
            maps[0, k] = np.maximum(maps[0, k], height * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 2.0))
    return maps


def decoder(prior: PosePrior) -> PriorDecoder:
    return PriorDecoder(prior, COCO17.keypoints, COCO17.flip_index)


def typical(poses: np.ndarray, prior: PosePrior) -> list[np.ndarray]:
    """Typical poses, in whole heatmap cells, that stay typical after rounding."""
    cells = [to_cells(p) for p in poses[prior.energy(poses) <= prior.reference]]
    return [c for c in cells if prior.energy(c) <= prior.reference]


def test_local_maxima_lists_the_argmax_first_then_weaker_peaks() -> None:
    maps = gaussians([[((5, 6), 0.6), ((15, 20), 1.0), ((20, 3), 0.02)]])[0]
    cells, values = local_maxima(maps, 3, 0.05)
    assert cells[0, 0].tolist() == [15, 20] and cells[0, 1].tolist() == [5, 6]
    assert values[0, 0] == pytest.approx(1.0) and values[0, 1] == pytest.approx(0.6)
    assert values[0, 2] == -np.inf  # the 0.02 peak is below 5% of the maximum


def test_a_wrist_peak_that_makes_the_pose_implausible_loses_to_the_weaker_true_peak(
    infant_top_poses: np.ndarray, infant_top_prior: PosePrior
) -> None:
    wrist = COCO17.index("left_wrist")
    codec = UDPHeatmap(input_size=(96, 128), heatmap_size=(W, H), sigma=1.0)
    fixed = 0
    tried = 0
    for pose in typical(infant_top_poses, infant_top_prior)[:10]:
        centre = pose.mean(0)
        # the wrong peak: mirrored through the pose's centre and pushed out, kept inside the map
        wrong = np.clip(np.round(centre + 1.8 * (centre - pose[wrist])), 1, [W - 2, H - 2])
        bad = pose.copy()
        bad[wrist] = wrong
        if not infant_top_prior.implausible(bad) or np.abs(wrong - pose[wrist]).max() < 4:
            continue
        tried += 1
        peaks = [[(p, 1.0)] for p in pose]
        peaks[wrist] = [(wrong, 1.0), (pose[wrist], 0.6)]
        maps = gaussians(peaks)
        dec = decoder(infant_top_prior)
        out = dec(maps)
        decoded, scores = codec.decode(out)
        plain, _ = codec.decode(maps)
        stride = (np.array([96, 128]) - 1) / (np.array([W, H]) - 1)  # UDP: input pixels per cell
        np.testing.assert_allclose(plain[0, wrist] / stride, wrong, atol=0.6)  # the arg-max alone takes the wrong peak
        others = np.arange(17) != wrist
        np.testing.assert_array_equal(out[0, others], maps[0, others])  # every other map untouched
        if np.abs(decoded[0, wrist] / stride - pose[wrist]).max() <= 0.6:
            fixed += 1
            assert scores[0, wrist] == pytest.approx(0.6, abs=0.02)  # the score is the chosen peak's
            assert dec.counts == {"poses": 1, "implausible": 1, "changed": 1}
    assert tried >= 3
    assert fixed == tried


def test_plausible_poses_are_left_exactly_as_decoded(infant_top_poses: np.ndarray, infant_top_prior: PosePrior) -> None:
    pose = typical(infant_top_poses, infant_top_prior)[0]
    peaks = [[(p, 1.0)] for p in pose]
    # a weaker second peak elsewhere changes nothing while the arg-max pose is plausible
    peaks[COCO17.index("right_ankle")].append((np.array([2.0, 2.0]), 0.9))
    maps = gaussians(peaks)
    dec = decoder(infant_top_prior)
    assert dec(maps) is maps
    assert dec.counts == {"poses": 1, "implausible": 0, "changed": 0}


def test_swapped_knees_are_exchanged_back(infant_top_poses: np.ndarray, infant_top_prior: PosePrior) -> None:
    lk, rk = COCO17.index("left_knee"), COCO17.index("right_knee")
    done = 0
    for pose in typical(infant_top_poses, infant_top_prior):
        swapped = pose.copy()
        swapped[[lk, rk]] = pose[[rk, lk]]
        if not infant_top_prior.implausible(swapped):
            continue
        peaks = [[(p, 1.0)] for p in pose]
        # each knee map peaks at the other knee and keeps a weaker peak at its own (what a flip test leaves)
        peaks[lk] = [(pose[rk], 1.0), (pose[lk], 0.7)]
        peaks[rk] = [(pose[lk], 1.0), (pose[rk], 0.7)]
        out = decoder(infant_top_prior)(gaussians(peaks))
        for k in (lk, rk):
            y, x = np.unravel_index(np.argmax(out[0, k]), (H, W))
            assert [x, y] == pose[k].tolist()
        done += 1
        if done == 3:
            break
    assert done == 3


def test_bad_heatmaps_and_options_are_one_line(infant_top_prior: PosePrior) -> None:
    with pytest.raises(PoseAdaptError, match="heatmaps"):
        decoder(infant_top_prior)(np.zeros((1, 5, H, W)))
    with pytest.raises(PoseAdaptError, match="peaks >= 2"):
        PriorDecoder(infant_top_prior, COCO17.keypoints, COCO17.flip_index, peaks=1)
    with pytest.raises(PoseAdaptError, match="needs keypoints"):
        PriorDecoder(infant_top_prior, COCO17.keypoints[:10], COCO17.flip_index[:10])


def test_eval_decode_prior_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], infant_top_prior: PosePrior) -> None:
    """`poseadapt eval --decode-prior` runs end to end and reports what the decoder did."""
    from poseadapt.cli.main import main
    from poseadapt.interop.checkpoint import save_checkpoint
    from poseadapt.models import create_model
    from poseadapt.synth import write_dataset

    write_dataset(tmp_path / "data", "infant", view="top", n=4, size=96, seed=1, schemas=["coco17"])
    ann = next((tmp_path / "data" / "annotations").glob("*.json"))
    model = create_model("vit_tiny", "coco17", "simple", img_size=(64, 48))
    ckpt = save_checkpoint(model, tmp_path / "m.safetensors")
    prior_path = infant_top_prior.save(tmp_path / "prior.safetensors")
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--checkpoint", str(ckpt), "--ann", str(ann), "--images", str(tmp_path / "data" / "images"),
              "--decode-prior", str(prior_path), "--prior", str(prior_path), "--json"])  # fmt: skip
    assert exc.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["decode_prior_poses"] == summary["instances"] and "implausible_rate" in summary
    with pytest.raises(SystemExit) as exc:  # predict takes it too
        main(["predict", str(tmp_path / "data" / "images"), "--checkpoint", str(ckpt), "--out", str(tmp_path / "p"),
              "--decode-prior", str(prior_path), "--json"])  # fmt: skip
    assert exc.value.code == 0 and (tmp_path / "p" / "results.json").is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--checkpoint", str(ckpt), "--ann", str(ann), "--images", str(tmp_path / "data" / "images"),
              "--decode-prior", str(tmp_path / "missing.safetensors")])  # fmt: skip
    assert exc.value.code != 0
    assert "Traceback" not in capsys.readouterr().err
