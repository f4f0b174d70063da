"""Built-in schemas against their published sources, and flip-pair symmetry for every built-in.

The reference tables below are transcribed from mmpose `configs/_base_/datasets/*.py` (keypoint order and `swap`
fields) and the official evaluation code each dataset cites for its sigmas.
"""

import pytest

from poseadapt.schemas import builtin_names, canonical_keypoint_name, derive_flip_pairs, get_schema
from poseadapt.schemas.registry import BUILTIN_DIR, SCHEMA_ALIASES

REQUIRED = {"coco17", "coco_wholebody133", "halpe26", "mpii16", "aic14", "crowdpose14", "ap10k17", "onehand21"}

COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087,
               0.087, 0.089, 0.089]  # fmt: skip

# (keypoint names as mmpose spells them, sigmas as published, flip pairs by index from mmpose's `swap` fields)
MMPOSE = {
    "mpii16": (
        "right_ankle right_knee right_hip left_hip left_knee left_ankle pelvis thorax upper_neck head_top "
        "right_wrist right_elbow right_shoulder left_shoulder left_elbow left_wrist",
        [0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062, 0.072, 0.179, 0.179, 0.072,
         0.062],
        [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)],
    ),
    "aic14": (
        "right_shoulder right_elbow right_wrist left_shoulder left_elbow left_wrist right_hip right_knee "
        "right_ankle left_hip left_knee left_ankle head_top neck",
        [0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642, 0.03686941,
         0.01981803, 0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173],
        [(0, 3), (1, 4), (2, 5), (6, 9), (7, 10), (8, 11)],
    ),
    "crowdpose14": (
        "left_shoulder right_shoulder left_elbow right_elbow left_wrist right_wrist left_hip right_hip "
        "left_knee right_knee left_ankle right_ankle top_head neck",
        [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079],
        [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)],
    ),
    "ap10k17": (  # mmpose spells the fifth point "Root of tail"
        "L_Eye R_Eye Nose Neck Root_of_tail L_Shoulder L_Elbow L_F_Paw R_Shoulder R_Elbow R_F_Paw L_Hip "
        "L_Knee L_B_Paw R_Hip R_Knee R_B_Paw",
        [0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062, 0.107, 0.087, 0.089, 0.107,
         0.087, 0.089],  # mmpose ap10k.py since its v0.21 merge (AP-10K's own order: symmetric)
        [(0, 1), (5, 8), (6, 9), (7, 10), (11, 14), (12, 15), (13, 16)],
    ),
    "halpe26": (
        "nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow right_elbow "
        "left_wrist right_wrist left_hip right_hip left_knee right_knee left_ankle right_ankle head_top neck hip "
        "left_big_toe right_big_toe left_small_toe right_small_toe left_heel right_heel",  # mmpose: 'head' = top
        COCO_SIGMAS + [0.026, 0.026, 0.066, 0.079, 0.079, 0.079, 0.079, 0.079, 0.079],
        [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (20, 21), (22, 23), (24, 25)],
    ),
    "posetrack17": (
        "nose head_bottom head_top left_ear right_ear left_shoulder right_shoulder left_elbow right_elbow "
        "left_wrist right_wrist left_hip right_hip left_knee right_knee left_ankle right_ankle",
        COCO_SIGMAS,
        [(3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)],
    ),
    "humanart21": (  # mmpose humanart21.py
        "nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow right_elbow "
        "left_wrist right_wrist left_hip right_hip left_knee right_knee left_ankle right_ankle left_finger "
        "right_finger left_toe right_toe",
        COCO_SIGMAS + [0.089, 0.089, 0.089, 0.089],
        [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20)],
    ),
    "jhmdb15": (  # mmpose jhmdb.py
        "neck belly head right_shoulder left_shoulder right_hip left_hip right_elbow left_elbow right_knee "
        "left_knee right_wrist left_wrist right_ankle left_ankle",
        [0.025, 0.107, 0.025, 0.079, 0.079, 0.107, 0.107, 0.072, 0.072, 0.087, 0.087, 0.062, 0.062, 0.089, 0.089],
        [(3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14)],
    ),
    "coco_aic19": (  # mmpose coco_aic.py
        "nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow right_elbow "
        "left_wrist right_wrist left_hip right_hip left_knee right_knee left_ankle right_ankle head_top neck",
        COCO_SIGMAS + [0.026, 0.026],
        [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)],
    ),
    "h36m17": (  # mmpose h36m.py: sigmas=[] (none published; ours are borrowed, see test_borrowed_sigmas_say_so)
        "root right_hip right_knee right_foot left_hip left_knee left_foot spine thorax neck_base head "
        "left_shoulder left_elbow left_wrist right_shoulder right_elbow right_wrist",
        None,
        [(1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16)],
    ),
    "mpii_trb40": (  # mmpose mpii_trb.py (its 'head' is MPII's head top); sigmas=[]
        "left_shoulder right_shoulder left_elbow right_elbow left_wrist right_wrist left_hip right_hip left_knee "
        "right_knee left_ankle right_ankle head_top neck right_neck left_neck medial_right_shoulder "
        "lateral_right_shoulder medial_right_bow lateral_right_bow medial_right_wrist lateral_right_wrist "
        "medial_left_shoulder lateral_left_shoulder medial_left_bow lateral_left_bow medial_left_wrist "
        "lateral_left_wrist medial_right_hip lateral_right_hip medial_right_knee lateral_right_knee "
        "medial_right_ankle lateral_right_ankle medial_left_hip lateral_left_hip medial_left_knee lateral_left_knee "
        "medial_left_ankle lateral_left_ankle",
        None,
        [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (14, 15), (16, 22), (17, 23), (18, 24), (19, 25),
         (20, 26), (21, 27), (28, 34), (29, 35), (30, 36), (31, 37), (32, 38), (33, 39)],
    ),
    "onehand21": (
        "wrist thumb1 thumb2 thumb3 thumb4 forefinger1 forefinger2 forefinger3 forefinger4 middle_finger1 "
        "middle_finger2 middle_finger3 middle_finger4 ring_finger1 ring_finger2 ring_finger3 ring_finger4 "
        "pinky_finger1 pinky_finger2 pinky_finger3 pinky_finger4",
        [0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024, 0.022, 0.026, 0.017, 0.021,
         0.021, 0.032, 0.02, 0.019, 0.022, 0.031],
        [],
    ),
}  # fmt: skip

WB_FOOT_SIGMAS = [0.068, 0.066, 0.066, 0.092, 0.094, 0.094]
WB_FACE_SIGMAS = [
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023, 0.029, 0.032, 0.037, 0.038, 0.043, 0.041,
    0.045, 0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013, 0.015, 0.009, 0.007, 0.007, 0.007, 0.012,
    0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009, 0.011, 0.009, 0.007, 0.013, 0.008, 0.011, 0.012, 0.010, 0.034,
    0.008, 0.008, 0.009, 0.008, 0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007, 0.007, 0.008, 0.011, 0.008,
    0.008, 0.008, 0.01, 0.008,
]  # fmt: skip
# mmpose coco_wholebody.py swap table of the 68 face points (face-i <-> face-j), 0-based within the face
FACE_SWAP = [(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)] + [
    (31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (48, 54), (49, 53), (50, 52),
    (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]  # fmt: skip

# Sigmas published with unequal left/right values: kept as published so OKS matches the official evaluations.
PUBLISHED_ASYMMETRIC = {
    "aic14": lambda name: True,  # measured per joint by the AIC organisers
    "coco_wholebody133": lambda name: name.startswith("face_") or name.endswith(("toe", "heel")),
    "coco_wholebody_face68": lambda name: True,
}


def _pairs_by_index(schema):
    return {tuple(sorted(p)) for p in schema.flip_pair_index}


def _mirror(name: str) -> str:
    """Swap the side word of a snake_case name (left <-> right, l <-> r); independent of the schema code."""
    swap = {"left": "right", "right": "left", "l": "r", "r": "l"}
    return "_".join(swap.get(t, t) for t in name.split("_"))


def test_issue_builtins_present():
    assert REQUIRED <= set(builtin_names())
    assert len(builtin_names()) >= 8


@pytest.mark.parametrize("name", builtin_names())
def test_flip_pairs_are_symmetric(name):
    s = get_schema(name)
    perm = s.flip_index
    assert [perm[p] for p in perm] == list(range(len(s))), "flip_index must be an involution"
    for left, right in s.flip_pairs:
        assert left != right
        assert _mirror(left) == right, f"{left} / {right} are not left/right counterparts"
    unpaired_with_mirror = [
        k for i, k in enumerate(s.keypoints) if perm[i] == i and _mirror(k) != k and _mirror(k) in s.keypoints
    ]
    assert not unpaired_with_mirror, f"sided keypoints missing from flip_pairs: {unpaired_with_mirror}"
    assert {frozenset(p) for p in derive_flip_pairs(s.keypoints)} == {frozenset(p) for p in s.flip_pairs}
    asymmetric = [(a, b) for a, b in s.flip_pairs if s.sigmas[s.index(a)] != s.sigmas[s.index(b)]]
    allowed = PUBLISHED_ASYMMETRIC.get(name, lambda _: False)
    assert all(allowed(a) for a, _ in asymmetric), f"unequal sigmas on the two sides: {asymmetric}"
    if name in PUBLISHED_ASYMMETRIC:  # the exception list must not go stale: it names only real asymmetries
        assert asymmetric, f"{name} is listed as published-asymmetric but its sigmas are symmetric"


@pytest.mark.parametrize("name", builtin_names())
def test_skeleton_and_groups_are_clean(name):
    s = get_schema(name)
    edges = [tuple(sorted(e)) for e in s.skeleton]
    assert len(edges) == len(set(edges)), "duplicate skeleton edge"
    assert all(a != b for a, b in edges)
    for members in s.groups.values():
        assert len(members) == len(set(members))


@pytest.mark.parametrize("name", sorted(MMPOSE))
def test_matches_mmpose_reference(name):
    names, sigmas, swaps = MMPOSE[name]
    s = get_schema(name)
    ref_names = names.split()
    assert len(s) == len(ref_names)
    # same points in the same order: our readable names denote the same point as mmpose's spelling
    ours = [canonical_keypoint_name(k) for k in s.keypoints]
    theirs = [canonical_keypoint_name(k) for k in ref_names]
    if name == "halpe26":  # mmpose calls Halpe's top of head 'head'; transcribed as head_top above
        theirs[17] = "head_top"
    assert ours == theirs
    if sigmas is not None:
        assert list(s.sigmas) == pytest.approx(sigmas, abs=0)
    assert _pairs_by_index(s) == {tuple(sorted(p)) for p in swaps}


# Built-ins whose dataset publishes no OKS sigmas: every sigma is the one of the joint it sits on (or beside), taken
# from the schema named here, and the YAML says so. A value that matches no joint would be an unlabelled estimate.
BORROWED = {
    "h36m17": {"hip": 0.107, "knee": 0.087, "foot": 0.089, "shoulder": 0.079, "elbow": 0.072, "wrist": 0.062,
               "root": 0.026, "spine": 0.026, "thorax": 0.026, "base": 0.026, "head": 0.026},
    "mpii_trb40": {"hip": 0.107, "knee": 0.087, "ankle": 0.089, "shoulder": 0.079, "bow": 0.072, "elbow": 0.072,
                   "wrist": 0.062, "top": 0.079, "neck": 0.079},  # CrowdPose's values for the same 14 joints
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BORROWED))
def test_borrowed_sigmas_say_so(name):
    s = get_schema(name)
    assert list(s.sigmas) == [BORROWED[name][k.split("_")[-1]] for k in s.keypoints]
    text = (BUILTIN_DIR / f"{name}.yaml").read_text()
    assert "BORROWED, not published" in text and "poseadapt sigmas" in text


# mmpose dataset names that are exactly a built-in (same points, flip pairs and sigmas in mmpose's configs)
MMPOSE_NAMES = {
    "ubody2d": "coco_wholebody133",  # ubody2d.py: coco_wholebody.py's 133 names, swaps and sigmas, nothing else
    "exlpose": "crowdpose14",  # exlpose.py: CrowdPose's order (`head` = head top) and sigmas
    "humanart_aic": "coco_aic19",  # humanart_aic.py: coco_aic.py's names, swaps and sigmas
    "coco_aic": "coco_aic19",
    "h36m": "h36m17",
    "mpii_trb": "mpii_trb40",
    "mhp": "mpii16",  # mhp.py: mpii.py's 16 names and sigmas
    "ochuman": "coco17",
    "posetrack18": "posetrack17",
}


@pytest.mark.parametrize("alias", sorted(MMPOSE_NAMES))
def test_mmpose_dataset_names_resolve(alias):
    assert alias in SCHEMA_ALIASES and SCHEMA_ALIASES[alias] == MMPOSE_NAMES[alias]
    assert get_schema(alias) is get_schema(MMPOSE_NAMES[alias]) is get_schema(alias.upper())


def test_alias_table_names_only_builtins():
    assert set(SCHEMA_ALIASES.values()) <= set(builtin_names())
    assert not set(SCHEMA_ALIASES) & set(builtin_names())  # an alias never hides a built-in


def test_exlpose_and_ubody_are_the_layouts_they_alias():
    names, sigmas, swaps = MMPOSE["crowdpose14"]
    exl = get_schema("exlpose")  # mmpose exlpose.py sigmas, transcribed independently of crowdpose.py's
    assert list(exl.sigmas) == [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
                                0.079, 0.079] == sigmas  # fmt: skip
    assert _pairs_by_index(exl) == {tuple(sorted(p)) for p in swaps}
    ub = get_schema("ubody2d")
    hand = list(MMPOSE["onehand21"][1])
    assert list(ub.sigmas) == COCO_SIGMAS + WB_FOOT_SIGMAS + WB_FACE_SIGMAS + hand + hand


def test_halpe136_layout():
    """mmpose halpe.py: halpe26's body order, then COCO-WholeBody's face and hands; its own sigmas."""
    s = get_schema("halpe136")
    wb, h26 = get_schema("coco_wholebody133"), get_schema("halpe26")
    assert len(s) == 136 and s.keypoints[:26] == h26.keypoints and s.keypoints[26:] == wb.keypoints[23:]
    body = COCO_SIGMAS + [0.08, 0.08, 0.08] + [0.089] * 6
    assert list(s.sigmas) == body + [0.015] * 110
    expected = {tuple(sorted(p)) for p in h26.flip_pair_index}
    expected |= {(26 + a, 26 + b) for a, b in FACE_SWAP} | {(94 + i, 115 + i) for i in range(21)}
    assert _pairs_by_index(s) == expected


def test_coco17_sigmas_are_pycocotools():
    import numpy as np
    from pycocotools.cocoeval import Params

    ref = Params(iouType="keypoints").kpt_oks_sigmas  # computed there as [.26, .25, ...] / 10
    np.testing.assert_allclose(get_schema("coco17").sigmas, ref, rtol=0, atol=1e-15)
    assert list(get_schema("coco17").sigmas) == COCO_SIGMAS


def test_coco_wholebody133_layout():
    s = get_schema("coco_wholebody133")
    sizes = {g: len(m) for g, m in s.groups.items()}
    assert sizes == {"body": 17, "foot": 6, "face": 68, "left_hand": 21, "right_hand": 21}
    # groups are the consecutive blocks of the official layout, in order, and cover every point once
    flat = [i for g in ("body", "foot", "face", "left_hand", "right_hand") for i in s.group_index(g)]
    assert flat == list(range(133))
    assert s.keypoints[:17] == get_schema("coco17").keypoints
    hand = list(MMPOSE["onehand21"][1])
    assert list(s.sigmas) == COCO_SIGMAS + WB_FOOT_SIGMAS + WB_FACE_SIGMAS + hand + hand
    expected = {(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 20), (18, 21), (19, 22)}
    expected |= {(23 + a, 23 + b) for a, b in FACE_SWAP}
    expected |= {(91 + i, 112 + i) for i in range(21)}
    assert _pairs_by_index(s) == expected
    # the hand blocks are onehand21 with a side prefix, joint for joint
    one = get_schema("onehand21").keypoints
    assert [k.removeprefix("left_") for k in s.groups["left_hand"]] == ["hand_root", *one[1:]]
    assert [k.removeprefix("right_") for k in s.groups["right_hand"]] == ["hand_root", *one[1:]]


def test_face68_is_the_wholebody_face_block():
    face = get_schema("coco_wholebody_face68")
    wb = get_schema("coco_wholebody133")
    assert face.keypoints == wb.groups["face"]
    assert list(face.sigmas) == WB_FACE_SIGMAS
    assert _pairs_by_index(face) == {tuple(sorted(p)) for p in FACE_SWAP}
    self_symmetric = [face.keypoints[i] for i in range(68) if face.flip_index[i] == i]
    assert self_symmetric == [face.keypoints[i] for i in (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)]


def test_builtin_yaml_round_trips(tmp_path):
    from poseadapt.schemas import KeypointSchema

    for name in builtin_names():
        s = get_schema(name)
        path = tmp_path / f"{name}.yaml"
        path.write_text(s.to_yaml())
        assert KeypointSchema.from_yaml(path).to_dict() == s.to_dict()


# Built-ins whose sigmas no study of that population / dataset published: the README says so for each, and so
# does the schema's own YAML.
NOT_PUBLISHED = {
    "infant21": "ADULT values borrowed",
    "elderly23": "borrowed",
    "wheelchair25": "ESTIMATES, not measured",
    "h36m17": "BORROWED, not published",
    "mpii_trb40": "BORROWED, not published",
    "mpii16": "publishes no OKS sigmas",
    "jhmdb15": "COCO-derived values",
}


def test_readme_says_published_sigmas_only_where_they_are():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if "Keypoint schemas:" in line)
    listed = row.split("built-ins (", 1)[1].split(";", 1)[0].replace(")", "").split(", ")
    assert sorted(listed) == builtin_names() and row.startswith(f"| Keypoint schemas: {len(listed)} built-ins")
    caveat = row.split("Borrowed, not published:", 1)[1].split("Measure yours", 1)[0]
    for name, phrase in NOT_PUBLISHED.items():
        assert name in caveat, f"README does not say {name}'s sigmas are not published"
        assert phrase in (BUILTIN_DIR / f"{name}.yaml").read_text()
    assert "wheelchair25's chair-point sigmas are estimates" in caveat
