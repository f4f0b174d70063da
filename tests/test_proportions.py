"""Proportion debiasing of pseudo-labels (`poseadapt.evaluate.proportions`) on rendered adults and infants: a
source proportion carried into the labels is moved to the target's, anything else is left alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from poseadapt.errors import PoseAdaptError
from poseadapt.evaluate.proportions import ProportionDebias, axial_pairs, axial_ratios
from poseadapt.schemas import get_schema

SCHEMA = get_schema("coco17")
HIPS = [SCHEMA.index("left_hip"), SCHEMA.index("right_hip")]


def rendered(population: str, seed: int) -> np.ndarray:
    from poseadapt.data.coco import coco_keypoints_from_dict
    from poseadapt.synth import render_dataset

    _, coco = render_dataset(population, view="top", n=150, size=96, seed=seed, schema="coco17")
    return coco_keypoints_from_dict(coco, "coco17").keypoints


@pytest.fixture(scope="module")
def populations() -> dict[str, Any]:
    adults, infants, truth = rendered("adult", 1), rendered("infant", 2), rendered("infant", 3)
    debias = ProportionDebias.from_poses(SCHEMA.keypoints, adults, infants)
    return {"debias": debias, "truth": truth, "adults": adults}


def with_segment_shifted(poses: np.ndarray, part: str, delta: float) -> np.ndarray:
    """`poses` with the left / right pair of axial `part` moved by `delta` of its span (its ratio changes by delta)."""
    pairs = axial_pairs(SCHEMA.keypoints)
    m = [p for p, _, _ in pairs].index(part)
    mid = {k: (poses[:, pairs[k][1], :2] + poses[:, pairs[k][2], :2]) / 2 for k in (m - 1, m + 1)}
    out = poses.copy()
    for idx in pairs[m][1:]:
        out[:, idx, :2] += delta * (mid[m + 1] - mid[m - 1])
    return out


def test_axial_pairs_and_ratios_read_the_schema_and_ignore_a_left_right_swap(populations: dict[str, Any]) -> None:
    pairs = axial_pairs(SCHEMA.keypoints)
    assert [p for p, _, _ in pairs] == ["eye", "ear", "shoulder", "hip", "knee", "ankle"]
    truth = populations["truth"]
    ratios = axial_ratios(truth, pairs)
    assert ratios.shape == (len(truth), 4) and np.isfinite(ratios).mean() > 0.9
    np.testing.assert_allclose(axial_ratios(truth[:, list(SCHEMA.flip_index)], pairs), ratios)
    hidden = truth.copy()
    hidden[:5, HIPS[0], 2] = 0  # one side unlabelled: no midpoint, no ratio for the segments that use it
    r = axial_ratios(hidden, pairs)
    assert np.isnan(r[:5, 1:4]).all() and np.isfinite(r[:5, 0]).sum() == np.isfinite(ratios[:5, 0]).sum()


def test_a_source_proportion_carried_into_the_labels_is_moved_to_the_target(populations: dict[str, Any]) -> None:
    """Target poses = the truth, so a correct fix restores the truth, and moving the hips (which changes the knees'
    ratios, their span starts at the hips) must not set off a second, spurious correction."""
    truth = populations["truth"]
    debias = ProportionDebias.from_poses(SCHEMA.keypoints, populations["adults"], truth)
    j = debias.segments.index("hip")
    assert debias.source[j] + 0.05 < debias.target[j]  # rendered adults' hips sit nearer their shoulders
    # labels of the infants with their hips carried 80% of the way to the adults' proportions
    labels = with_segment_shifted(truth, "hip", 0.8 * (debias.source[j] - debias.target[j]))
    fixed, report = debias.apply(labels)
    assert [p for p, seg in report.items() if seg["corrected"]] == ["hip"]
    assert report["hip"]["labels"] < report["hip"]["target"] - 0.05 and report["hip"]["people"] == len(truth)
    assert report["hip"]["after"] == pytest.approx(report["hip"]["target"], abs=1e-4)
    np.testing.assert_allclose(fixed, truth, atol=1e-6)
    assert np.abs(labels[:, HIPS, :2] - truth[:, HIPS, :2]).max() > 1.0
    # the same labels mirrored (left / right swapped) are corrected the same way
    mirrored, _ = debias.apply(labels[:, list(SCHEMA.flip_index)])
    np.testing.assert_allclose(mirrored, fixed[:, list(SCHEMA.flip_index)])


def test_a_discrepancy_that_is_not_the_sources_proportion_is_left_alone(populations: dict[str, Any]) -> None:
    debias, truth = populations["debias"], populations["truth"]
    j = debias.segments.index("hip")
    past = debias.target[j] - debias.source[j]  # beyond the target, away from the source: not a carried proportion
    labels = with_segment_shifted(truth, "hip", 0.5 * past)
    labels[7, HIPS, :] = 0.0  # an unlabelled pair stays (0, 0, 0)
    fixed, report = debias.apply(labels)
    assert not report["hip"]["corrected"]
    np.testing.assert_array_equal(fixed[:, HIPS], labels[:, HIPS])
    assert (fixed[7, HIPS] == 0).all()


def test_a_schema_without_three_axial_pairs_is_one_line() -> None:
    names = ["nose", "left_shoulder", "right_shoulder", "left_wrist", "right_wrist"]
    poses = np.zeros((3, len(names), 3))
    with pytest.raises(PoseAdaptError, match="3 or more left/right pairs .* this schema has shoulder$"):
        ProportionDebias.from_poses(names, poses, poses)
    with pytest.raises(PoseAdaptError, match="no source pose labels three consecutive axial pairs"):
        ProportionDebias.from_poses(SCHEMA.keypoints, np.zeros((3, 17, 3)), np.zeros((3, 17, 3)))


def test_a_gap_the_medians_noise_explains_moves_nothing_with_few_people(populations: dict[str, Any]) -> None:
    """The same carried hip gap, 0.04 of the span: on all 150 labelled people it is beyond the two medians' noise
    and moves; on 12 of them the labels' median alone wanders that far, so nothing moves and the report says why."""
    truth = populations["truth"]
    debias = ProportionDebias.from_poses(SCHEMA.keypoints, populations["adults"], truth)
    pairs, j = axial_pairs(SCHEMA.keypoints), debias.segments.index("hip")

    def carried(poses: np.ndarray) -> np.ndarray:  # hips 0.04 of the span short of the target's median
        gap = debias.target[j] - 0.04 - np.nanmedian(axial_ratios(poses, pairs)[:, j])
        return with_segment_shifted(poses, "hip", gap)

    many, few = carried(truth), carried(truth[:12])
    fixed, report = debias.apply(many)
    assert report["hip"]["corrected"] and report["hip"]["noise"] < 0.04
    np.testing.assert_allclose(fixed, truth, atol=1e-6)
    fixed, report = debias.apply(few)
    assert report["hip"]["labels"] == pytest.approx(debias.target[j] - 0.04, abs=1e-4)
    assert not report["hip"]["corrected"] and report["hip"]["noise"] > 0.04 > 0.005  # MIN_SHIFT alone would move it
    np.testing.assert_array_equal(fixed[:, HIPS], few[:, HIPS])
