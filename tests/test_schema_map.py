"""SchemaMap: name matching against mmpose's hand-written dataset conversions, and label transfer numerics."""

import itertools
import json

import numpy as np
import pytest

from poseadapt.errors import DataError, SchemaError
from poseadapt.schemas import KeypointSchema, SchemaMap, builtin_names, canonical_keypoint_name, get_schema

# KeypointConverter mappings (src index, dst index) hand-written in mmpose's RTMPose configs:
# projects/rtmpose/rtmpose/body_2d_keypoint/rtmpose-l_8xb512-700e_body8-halpe26-384x288.py (-> halpe26) and the
# body7 -> COCO configs (-> coco17).
MMPOSE_TO_HALPE26 = {
    "coco_wholebody133": [(i, i) for i in range(17)] + [(17, 20), (18, 22), (19, 24), (20, 21), (21, 23), (22, 25)],
    "aic14": [(0, 6), (1, 8), (2, 10), (3, 5), (4, 7), (5, 9), (6, 12), (7, 14), (8, 16), (9, 11), (10, 13),
              (11, 15), (12, 17), (13, 18)],
    "crowdpose14": [(0, 5), (1, 6), (2, 7), (3, 8), (4, 9), (5, 10), (6, 11), (7, 12), (8, 13), (9, 14), (10, 15),
                    (11, 16), (12, 17), (13, 18)],
    "mpii16": [(0, 16), (1, 14), (2, 12), (3, 11), (4, 13), (5, 15), (8, 18), (9, 17), (10, 10), (11, 8), (12, 6),
               (13, 5), (14, 7), (15, 9)],
    "halpe26": [(i, i) for i in range(26)],
}  # fmt: skip
MMPOSE_TO_COCO17 = {
    "aic14": [(0, 6), (1, 8), (2, 10), (3, 5), (4, 7), (5, 9), (6, 12), (7, 14), (8, 16), (9, 11), (10, 13),
              (11, 15)],
    "crowdpose14": [(0, 5), (1, 6), (2, 7), (3, 8), (4, 9), (5, 10), (6, 11), (7, 12), (8, 13), (9, 14), (10, 15),
                    (11, 16)],
    "mpii16": [(0, 16), (1, 14), (2, 12), (3, 11), (4, 13), (5, 15), (10, 10), (11, 8), (12, 6), (13, 5), (14, 7),
               (15, 9)],
    "halpe26": [(i, i) for i in range(17)],
    "posetrack17": [(0, 0)] + [(i, i) for i in range(3, 17)],
}  # fmt: skip


@pytest.mark.parametrize(
    "spelling, canonical",
    [
        ("left_shoulder", "left_shoulder"),
        ("l_shoulder", "left_shoulder"),
        ("lshoulder", "left_shoulder"),
        ("LShoulder", "left_shoulder"),
        ("shoulder_left", "left_shoulder"),
        ("Left Shoulder", "left_shoulder"),
        ("Shoulder (L)", "left_shoulder"),
        ("R_Ankle", "right_ankle"),
        ("rhip", "right_hip"),
        ("LBigToe", "left_big_toe"),
        ("left_bigtoe", "left_big_toe"),
        ("top_head", "head_top"),
        ("upper_neck", "neck"),
        ("pelvis", "mid_hip"),
        ("MidHip", "mid_hip"),
        ("hip", "mid_hip"),
        ("left_hip", "left_hip"),
        ("L_F_Paw", "left_front_paw"),
        ("Root of tail", "root_of_tail"),
        ("thumb1", "thumb_1"),
        ("index_finger_2", "forefinger_2"),
        ("right_little_finger4", "right_pinky_finger_4"),
        ("rear", "rear"),  # not "right ear"
        ("L", "l"),  # a bare side names no part
    ],
)
def test_canonical_keypoint_name(spelling, canonical):
    assert canonical_keypoint_name(spelling) == canonical


@pytest.mark.parametrize("src", sorted(MMPOSE_TO_HALPE26))
def test_matches_mmpose_halpe26_conversion(src):
    m = SchemaMap(src, "halpe26")
    expected = set(MMPOSE_TO_HALPE26[src])
    if src == "mpii16":  # MPII pelvis = Halpe mid hip by our synonym table; mmpose leaves Halpe's hip unlabelled
        expected.add((6, 19))
    assert set(m.matched) == expected


@pytest.mark.parametrize("src", sorted(MMPOSE_TO_COCO17))
def test_matches_mmpose_coco17_conversion(src):
    m = SchemaMap(src, "coco17")
    assert set(m.matched) == set(MMPOSE_TO_COCO17[src])
    assert m.approximate == []  # COCO has no neck / pelvis to approximate


def test_map_mpii_to_coco17_kinds():
    m = SchemaMap("mpii16", "coco17")
    assert m.kinds == ["unmatched"] * 5 + ["exact"] * 12
    assert m.unmatched_dst == [0, 1, 2, 3, 4]
    mpii = get_schema("mpii16")
    assert [mpii.keypoints[i] for i in m.unmatched_src] == ["pelvis", "thorax", "upper_neck", "head_top"]


def test_approximate_rules():
    m = SchemaMap("coco17", "mpii16")
    coco, mpii = get_schema("coco17"), get_schema("mpii16")
    approx = {mpii.keypoints[d]: [coco.keypoints[s] for s in srcs] for d, srcs in m.approximate}
    # upper_neck sits a neck length above the shoulders: no rule; head_top has no principled rule either
    assert approx == {"pelvis": ["left_hip", "right_hip"], "thorax": ["left_shoulder", "right_shoulder"]}
    assert [mpii.keypoints[d] for d in m.unmatched_dst] == ["upper_neck", "head_top"]
    aic = SchemaMap("coco17", "aic14")
    assert aic.approximate == [(13, (5, 6))]  # AIC neck <- COCO shoulder midpoint


def test_alias_matching_of_a_foreign_spelling(tmp_path):
    path = tmp_path / "openpose_like.yaml"
    names = ["Nose", "Neck", "RShoulder", "LShoulder", "MidHip", "RHip", "LHip", "LBigToe", "RBigToe", "top_head"]
    path.write_text(json.dumps({"name": "openpose_like", "keypoints": names, "sigmas": [0.05] * len(names)}))
    m = SchemaMap(str(path), "halpe26")
    halpe = get_schema("halpe26")
    got = {halpe.keypoints[d]: names[s] for s, d in m.matched}
    assert got == {
        "nose": "Nose",
        "neck": "Neck",
        "right_shoulder": "RShoulder",
        "left_shoulder": "LShoulder",
        "mid_hip": "MidHip",
        "right_hip": "RHip",
        "left_hip": "LHip",
        "left_big_toe": "LBigToe",
        "right_big_toe": "RBigToe",
        "head_top": "top_head",
    }
    assert set(m.kinds) == {"alias", "unmatched"}


def test_exact_match_preferred_over_alias():
    src = KeypointSchema(name="s", keypoints=("upper_neck", "neck"), sigmas=(0.1, 0.1))
    dst = KeypointSchema(name="d", keypoints=("neck", "upper_neck"), sigmas=(0.1, 0.1))
    m = SchemaMap(src, dst)
    assert m.matched == [(1, 0), (0, 1)] and m.kinds == ["exact", "exact"]
    m = SchemaMap(src, KeypointSchema(name="d1", keypoints=("neck", "top_head"), sigmas=(0.1, 0.1)))
    assert m.matched == [(1, 0)] and m.unmatched_src == [0]  # one source feeds at most one destination


@pytest.mark.parametrize("src, dst", list(itertools.product(["coco17", "mpii16", "aic14", "halpe26"], repeat=2)))
def test_map_invariants_between_builtins(src, dst):
    m = SchemaMap(src, dst)
    s, d = get_schema(src), get_schema(dst)
    srcs = [a for a, _ in m.matched]
    dsts = [b for _, b in m.matched] + [b for b, _ in m.approximate]
    assert len(srcs) == len(set(srcs)) and len(dsts) == len(set(dsts))
    assert sorted(dsts + m.unmatched_dst) == list(range(len(d)))
    for a, b in m.matched:  # same point, same side
        assert canonical_keypoint_name(s.keypoints[a]) == canonical_keypoint_name(d.keypoints[b])
    counts = m.counts()
    assert counts["exact"] + counts["alias"] + counts["approximate"] + counts["unmatched"] == len(d)
    if src == dst:
        assert m.matched == [(i, i) for i in range(len(s))] and set(m.kinds) == {"exact"}


def test_every_builtin_pair_maps_without_error():
    for src, dst in itertools.product(builtin_names(), repeat=2):
        out = SchemaMap(src, dst).to_dict()
        assert len(out["points"]) == len(get_schema(dst))
        json.dumps(out)


def _labelled(rng, shape, k):
    kp = np.zeros((*shape, k, 3))
    kp[..., :2] = rng.uniform(0, 500, size=(*shape, k, 2))
    kp[..., 2] = rng.integers(0, 3, size=(*shape, k))
    kp[kp[..., 2] == 0, :2] = 0
    return kp


def test_transfer_copies_matched_and_averages_approximate():
    m = SchemaMap("coco17", "mpii16")
    kp = _labelled(np.random.default_rng(0), (4, 3), 17)
    out = m.transfer(kp)
    assert out.shape == (4, 3, 16, 3)
    for s, d in m.matched:
        np.testing.assert_array_equal(out[..., d, :], kp[..., s, :])
    hips = kp[..., [11, 12], :]
    both = (hips[..., 2] > 0).all(-1)
    np.testing.assert_allclose(out[..., 6, 0][both], hips[..., 0].mean(-1)[both])
    np.testing.assert_allclose(out[..., 6, 1][both], hips[..., 1].mean(-1)[both])
    np.testing.assert_array_equal(out[..., 6, 2][both], hips[..., 2].min(-1)[both])
    assert not out[..., 6, :][~both].any(), "pelvis must stay unlabelled unless both hips are"
    assert not out[..., [8, 9], :].any(), "unmatched points are zeros"


def test_transfer_by_hand():
    m = SchemaMap("coco17", "aic14")
    kp = np.zeros((17, 3), dtype=np.int64)
    kp[5] = (100, 50, 2)  # left shoulder
    kp[6] = (60, 54, 1)  # right shoulder
    out = m.transfer(kp)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out[13], [80.0, 52.0, 1.0])  # neck: midpoint, v = min
    np.testing.assert_array_equal(out[3], [100, 50, 2])  # aic left_shoulder
    np.testing.assert_array_equal(out[12], [0, 0, 0])  # head_top: unmatched
    kp[6, 2] = 0
    assert not m.transfer(kp)[13].any()


def test_transfer_commutes_with_horizontal_flip():
    """Flip-then-map equals map-then-flip: the map never swaps sides, and midpoints are side-symmetric."""
    rng = np.random.default_rng(1)
    width = 640.0
    for src, dst in [("coco17", "mpii16"), ("mpii16", "halpe26"), ("coco_wholebody133", "halpe26")]:
        m = SchemaMap(src, dst)
        kp = _labelled(rng, (5,), len(m.src))

        def flip(points, schema):
            out = points[..., list(schema.flip_index), :].copy()
            out[..., 0] = np.where(out[..., 2] > 0, width - out[..., 0], 0)
            return out

        np.testing.assert_allclose(m.transfer(flip(kp, m.src)), flip(m.transfer(kp), m.dst))


def test_round_trip_through_a_superset_is_identity():
    kp = _labelled(np.random.default_rng(2), (7,), 17)
    there = SchemaMap("coco17", "coco_wholebody133").transfer(kp)
    back = SchemaMap("coco_wholebody133", "coco17").transfer(there)
    np.testing.assert_array_equal(back, kp)


def test_transfer_rejects_wrong_shape():
    m = SchemaMap("coco17", "mpii16")
    with pytest.raises(DataError, match=r"expected \(\.\.\., 17, 3\)"):
        m.transfer(np.zeros((16, 3)))
    with pytest.raises(DataError):
        m.transfer(np.zeros((17, 2)))


def test_unknown_schema_is_a_schema_error():
    with pytest.raises(SchemaError, match="unknown schema 'nope'"):
        SchemaMap("nope", "coco17")


def test_to_dict_and_report_agree_with_attributes():
    m = SchemaMap("coco17", "mpii16")
    d = json.loads(json.dumps(m.to_dict()))
    assert d["matched"] == [list(p) for p in m.matched]
    assert d["approximate"] == [[6, [11, 12]], [7, [5, 6]]]
    assert d["unmatched_dst"] == [8, 9] and d["unmatched_src"] == [0, 1, 2, 3, 4]
    assert d["counts"] == {"exact": 12, "alias": 0, "approximate": 2, "unmatched": 2, "unused_src": 5}
    assert d["points"][6] == {
        "dst_index": 6,
        "dst": "pelvis",
        "kind": "approximate",
        "src_index": [11, 12],
        "src": ["left_hip", "right_hip"],
        "rule": "pelvis = hip midpoint",
    }
    text = m.report()
    assert "12 exact, 0 alias, 2 approximate, 2 unmatched" in text
    assert "pelvis" in text and "mean of left_hip (11) + right_hip (12)" in text
    assert "unused src: nose, left_eye, right_eye, left_ear, right_ear" in text
