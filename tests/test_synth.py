"""Synthetic renderer: determinism, COCO validity, geometric visibility, silhouettes, population differences."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from poseadapt.data.coco import load_coco_keypoints
from poseadapt.errors import DataError, PoseAdaptError
from poseadapt.schemas import get_schema
from poseadapt.synth import get_population, iter_samples, render_dataset, render_sample, write_dataset
from poseadapt.synth.appearance import sample_outfit
from poseadapt.synth.body import JOINT_LIMITS, forward_kinematics, head_to_body_ratio, limit_of, rot_y
from poseadapt.synth.camera import look_at
from poseadapt.synth.poses import PoseSample, sample_pose
from poseadapt.synth.scene.compose import KEYPOINT_INDEX, PlacedPerson, render_posed

POPULATIONS = ("adult", "infant", "elderly", "wheelchair")


def test_same_seed_gives_byte_identical_json_and_images(tmp_path):
    a = write_dataset(tmp_path / "a", "infant", view="top", n=4, size=96, seed=7)
    b = write_dataset(tmp_path / "b", "infant", view="top", n=4, size=96, seed=7, workers=2)
    c = write_dataset(tmp_path / "c", "infant", view="top", n=4, size=96, seed=8)
    for name in ("coco17", "infant21"):
        assert a.annotations[name].read_bytes() == b.annotations[name].read_bytes()
        assert a.annotations[name].read_bytes() != c.annotations[name].read_bytes()
    first = sorted(a.images.iterdir())[0].name
    assert (a.images / first).read_bytes() == (b.images / first).read_bytes()


def test_workers_in_a_script_without_main_guard_stop_with_one_line(tmp_path):
    """Each worker imports the caller's script: unguarded, the call reruns there. It must fail fast, not respawn."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from poseadapt.synth import write_dataset\n"
        f"write_dataset({str(tmp_path / 'out')!r}, 'infant', view='top', n=4, size=64, seed=1, workers=2)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0
    assert "if __name__ == '__main__':" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out" / "annotations").exists()


def test_any_subset_renders_identically():
    streamed = list(iter_samples("elderly", view="random", n=4, size=64, seed=3))
    alone = render_sample(2, "elderly", view="random", size=64, seed=3)
    assert np.array_equal(streamed[2].image, alone.image)
    assert np.array_equal(streamed[2].persons[0].visibility, alone.persons[0].visibility)


@pytest.mark.parametrize("population", POPULATIONS)
def test_output_validates_through_the_coco_loader(tmp_path, population):
    files = write_dataset(tmp_path, population, view="random", n=6, size=80, seed=1, preview=True)
    native = get_population(population).native_schema
    assert set(files.annotations) == {"coco17", native}
    for name, path in files.annotations.items():
        data = load_coco_keypoints(path, name, image_root=files.images, check_images=True, decode_images=True)
        assert len(data.image_ids) >= 6  # one person per image, none fully hidden at this framing
        assert data.keypoints.shape[1] == len(get_schema(name))
        raw = json.loads(path.read_text())
        assert raw["categories"][0]["keypoints"] == list(get_schema(name).keypoints)
    assert files.preview is not None and cv2.imread(str(files.preview)) is not None


def _adult_standing(yaw_deg: float = 0.0) -> PlacedPerson:
    pop = get_population("adult")
    rng = np.random.default_rng(0)
    shape = pop.sample_shape(rng)
    angles = {"left_shoulder_abd": 8.0, "right_shoulder_abd": 8.0, "left_elbow_flex": 10.0, "right_elbow_flex": 10.0}
    root = rot_y(yaw_deg)
    sk = forward_kinematics(shape, angles, root, np.array([0.0, 0.0, 0.0]))
    sk = sk.translated(np.array([0.0, -sk.points[:, 1].min() + 0.02, 0.0]))
    outfit = sample_outfit(rng, "adult", 0.0, 1.0)
    return PlacedPerson(sk, PoseSample("standing", angles, root), outfit)


def _camera_towards(person: PlacedPerson, direction: np.ndarray, size: int = 256):
    target = 0.5 * (person.skeleton.points.min(0) + person.skeleton.points.max(0))
    return look_at(
        target + 4.0 * direction,
        target,
        image_up_hint=np.array([0.0, 1.0, 0.0]),
        roll_deg=0.0,
        fov_deg=35.0,
        width=size,
        height=size,
    )


def test_keypoint_hidden_behind_the_body_is_occluded():
    """Camera on the person's left: the right hip, knee and shoulder are behind the body (v=1), the left ones
    visible (v=2); seen from the front all four hips/shoulders are visible. The renderer's depth buffer agrees."""
    person = _adult_standing()
    side = render_posed([person], _camera_towards(person, np.array([1.0, 0.0, 0.0])))
    vis = side.persons[0].visibility
    for name in ("right_hip", "right_knee", "right_shoulder", "right_ear"):
        assert vis[KEYPOINT_INDEX[name]] == 1, name
    for name in ("left_hip", "left_knee", "left_shoulder", "left_ear", "nose"):
        assert vis[KEYPOINT_INDEX[name]] == 2, name
    # the hidden right hip's pixel shows this person's own surface, well in front of the joint
    rec = side.persons[0]
    k = KEYPOINT_INDEX["right_hip"]
    col, row = np.floor(rec.pixels[k]).astype(int)
    assert rec.mask[row, col]
    front = render_posed([person], _camera_towards(person, np.array([0.0, 0.0, 1.0])))
    for name in ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "nose", "left_eye", "right_eye"):
        assert front.persons[0].visibility[KEYPOINT_INDEX[name]] == 2, name
    back = render_posed([person], _camera_towards(person, np.array([0.0, 0.0, -1.0])))
    for name in ("nose", "left_eye", "right_eye"):
        assert back.persons[0].visibility[KEYPOINT_INDEX[name]] == 1, name


def test_keypoint_outside_the_image_is_v0_and_zeroed():
    person = _adult_standing()
    sk = person.skeleton
    hip = sk.point("mid_hip")
    cam = look_at(
        hip + np.array([0.0, 0.0, 1.2]),
        hip,
        image_up_hint=np.array([0.0, 1.0, 0.0]),
        roll_deg=0.0,
        fov_deg=40.0,
        width=128,
        height=128,
    )
    sample = render_posed([person], cam)
    rec = sample.persons[0]
    assert rec.visibility[KEYPOINT_INDEX["left_ankle"]] == 0 and rec.visibility[KEYPOINT_INDEX["head_top"]] == 0
    from poseadapt.synth.coco_writer import person_annotation, schema_columns

    ann = person_annotation(rec, schema_columns(get_schema("coco17")), False, 1, 1)
    kp = np.asarray(ann["keypoints"]).reshape(-1, 3)
    assert np.all(kp[15] == 0)  # left ankle: COCO writes unlabelled points as 0, 0, 0
    assert kp[11, 2] == 2  # the left hip is in the middle of the view


@pytest.mark.parametrize("population", POPULATIONS)
def test_visible_keypoints_lie_in_the_silhouette_and_the_bbox(population):
    schema = get_population(population).native_schema
    samples = list(iter_samples(population, view="random", n=12, size=128, seed=5, people=(1, 2)))
    images, coco = render_dataset(population, view="random", n=12, size=128, seed=5, schema=schema, people=(1, 2))
    columns = [KEYPOINT_INDEX[n] for n in get_schema(schema).keypoints]
    n_visible = 0
    for ann in coco["annotations"]:
        kp = np.asarray(ann["keypoints"], dtype=float).reshape(-1, 3)
        x, y, w, h = ann["bbox"]
        contours = [np.asarray(p, np.float32).reshape(-1, 1, 2) for p in ann["segmentation"]]
        sample = samples[ann["image_id"] - 1]
        person = sample.persons[ann["id"] % 100]
        mask = person.mask_with_device if population == "wheelchair" else person.mask
        assert ann["area"] == mask.sum()
        for (px, py), v in zip(kp[:, :2], kp[:, 2], strict=True):
            if v != 2:
                continue
            n_visible += 1
            assert x <= px <= x + w and y <= py <= y + h
            assert mask[int(py), int(px)]
            # and within a pixel of the written polygon (the polygon runs through boundary pixel centres)
            assert max(cv2.pointPolygonTest(c, (float(px), float(py)), True) for c in contours) >= -1.0
    assert n_visible > 50
    assert all(a["num_keypoints"] == int((np.asarray(a["keypoints"])[2::3] > 0).sum()) for a in coco["annotations"])
    assert person.visibility[columns].dtype == np.int8


def test_head_to_body_ratio_infant_vs_adult():
    rng = np.random.default_rng(0)
    ratios = {
        name: np.median([head_to_body_ratio(get_population(name).sample_shape(rng)) for _ in range(60)])
        for name in ("infant", "adult")
    }
    assert ratios["infant"] >= 0.22
    assert ratios["adult"] <= 0.15


def test_infants_seen_from_the_top_mostly_lie_parallel_to_the_image_plane():
    samples = list(iter_samples("infant", view="top", n=40, size=64, seed=11))
    cosines = np.array([abs(s.persons[0].torso_normal_cam[2]) for s in samples])
    assert np.mean(cosines > np.cos(np.radians(30))) > 0.6
    kinds = [s.persons[0].pose for s in samples]
    assert sum(k in ("supine", "prone") for k in kinds) > 0.7 * len(kinds)


def test_older_adults_stoop_more_than_adults():
    rng = np.random.default_rng(2)
    flex = {}
    for name in ("adult", "elderly"):
        pop = get_population(name)
        values = []
        for _ in range(150):
            kind = "walking" if rng.random() < 0.5 else "standing"
            pose = sample_pose(rng, pop, kind)
            values.append(_trunk(forward_kinematics(pop.sample_shape(rng), pose.angles, pose.root_rotation)))
        flex[name] = np.median(values)
    assert flex["elderly"] > flex["adult"] + 10.0


def _trunk(sk):
    from poseadapt.synth.body import trunk_flexion_deg

    return trunk_flexion_deg(sk)


def test_sampled_angles_stay_within_the_population_ranges():
    rng = np.random.default_rng(4)
    for name in POPULATIONS:
        pop = get_population(name)
        limits = pop.limits()
        for _ in range(40):
            angles = sample_pose(rng, pop).angles
            for dof, value in angles.items():
                lo, hi = limit_of(dof, limits)
                assert lo - 1e-9 <= value <= hi + 1e-9, (name, dof, value)
    assert get_population("elderly").limits()["shoulder_flex"][1] < JOINT_LIMITS["shoulder_flex"][1]


def test_wheelchair_points_are_labelled_only_with_a_wheelchair():
    _, chair = render_dataset("wheelchair", view="diagonal", n=6, size=128, seed=2, schema="wheelchair25")
    kp = np.array([a["keypoints"] for a in chair["annotations"]]).reshape(len(chair["annotations"]), -1, 3)
    assert (kp[:, 17:, 2] > 0).mean() > 0.7  # chair points in view
    assert (kp[:, 17:, 2] == 2).any()
    _, adult = render_dataset("adult", view="diagonal", n=3, size=128, seed=2, schema="wheelchair25")
    kp = np.array([a["keypoints"] for a in adult["annotations"]]).reshape(len(adult["annotations"]), -1, 3)
    assert np.all(kp[:, 17:] == 0)


def test_several_people_per_image_get_one_annotation_each():
    _, coco = render_dataset("adult", view="diagonal", n=4, size=128, seed=9, people=3)
    per_image = np.bincount([a["image_id"] for a in coco["annotations"]])[1:]
    assert per_image.max() == 3 and per_image.min() >= 2


def test_other_schemas_by_name_and_alias():
    _, coco = render_dataset("adult", view="front", n=2, size=96, seed=0, schema="mpii16")  # pelvis, thorax aliases
    assert coco["categories"][0]["keypoints"][6] == "pelvis"
    with pytest.raises(PoseAdaptError, match="cannot produce"):
        render_dataset("adult", n=1, size=64, schema="coco_wholebody133")


def test_user_backgrounds_and_bad_inputs(tmp_path):
    bg = tmp_path / "bg"
    bg.mkdir()
    cv2.imwrite(str(bg / "room.png"), np.full((50, 70, 3), (10, 200, 30), np.uint8))
    img = render_sample(0, "adult", view="front", size=64, seed=0, backgrounds=bg).image
    assert np.abs(img[0, 0].astype(int) - (10, 200, 30)).max() <= 25
    with pytest.raises(DataError):
        render_sample(0, backgrounds=tmp_path / "missing")
    with pytest.raises(PoseAdaptError, match="kyphosis_deg"):
        get_population("elderly", kyphosis_deg=(50.0, 10.0))
    with pytest.raises(PoseAdaptError, match="poses"):
        get_population("adult", poses={"flying": 1.0})
    with pytest.raises(PoseAdaptError, match="view"):
        render_sample(0, view="sky")
    custom = get_population("elderly", kyphosis_deg=(50.0, 55.0), props={})
    assert custom.kyphosis_deg == (50.0, 55.0)


# pycocotools' _mask.pyx on numpy 2, that one notice only
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn.t accept a copy keyword:DeprecationWarning")
def test_silhouette_polygons_agree_with_pycocotools(tmp_path):
    """pycocotools rasterises the written polygons back to the renderer's own mask (with holes filled: COCO
    polygons cannot carry the inside of a wheel)."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from scipy.ndimage import binary_fill_holes

    samples = list(iter_samples("wheelchair", view="side", n=4, size=128, seed=4))
    files = write_dataset(tmp_path, "wheelchair", view="side", n=4, size=128, seed=4, schemas=["wheelchair25"])
    coco = COCO(str(files.annotations["wheelchair25"]))
    for ann in coco.loadAnns(coco.getAnnIds()):
        ours = binary_fill_holes(samples[ann["image_id"] - 1].persons[ann["id"] % 100].mask_with_device)
        theirs = coco.annToMask(ann).astype(bool)
        iou = (ours & theirs).sum() / (ours | theirs).sum()
        assert iou > 0.97, iou


def test_blankets_hide_the_legs_they_cover():
    """Supine infants from the top, with and without blankets: under a blanket far fewer knees / ankles are
    visible, and the covered ones are labelled occluded (v=1), not dropped."""
    legs = [KEYPOINT_INDEX[k] for k in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    share = {}
    for p in (0.0, 1.0):
        pop = get_population("infant", props={"blanket": p}, poses={"supine": 1.0})
        samples = list(iter_samples(pop, view="top", n=24, size=96, seed=1))
        vis = np.array([s.persons[0].visibility[legs] for s in samples])
        share[p] = ((vis == 2).mean(), (vis == 1).mean())
        assert all(("blanket" in s.persons[0].props) == (p == 1.0) for s in samples)
    assert share[1.0][0] < share[0.0][0] - 0.12
    assert share[1.0][1] > share[0.0][1] + 0.12


def test_flexed_lying_adults_bend_their_knees_and_leave_others_unchanged():
    from poseadapt.synth.poses import sample_pose

    def knee_flex(pop: object) -> float:
        rng = np.random.default_rng(4)
        return float(np.mean([sample_pose(rng, pop, "supine").angles["left_knee_flex"] for _ in range(200)]))

    extended, flexed = get_population("adult"), get_population("adult", flexed_lying=1.0)
    # flexed limbs draw knees from 25..135 degrees, extended ones from 0..70
    assert knee_flex(flexed) > knee_flex(extended) + 25
    # a population that does not ask for flexed adults draws nothing extra: renders stay identical
    same = get_population("adult", flexed_lying=0.0)
    a, b = render_sample(5, "adult", view="top", size=64), render_sample(5, same, view="top", size=64)
    np.testing.assert_array_equal(a.image, b.image)


def test_child_proportions_give_bigger_heads_and_leave_others_unchanged():
    from poseadapt.synth.populations import _CHILD_LENGTHS

    def head_share(pop: object) -> float:
        rng = np.random.default_rng(3)
        shapes = [pop.sample_shape(rng) for _ in range(300)]
        return float(np.mean([s.lengths["head"] / s.stature for s in shapes]))

    adult, children = get_population("adult"), get_population("adult", child_proportions=1.0)
    # blended uniformly between the adult (0.130) and toddler (0.200) head: about 0.165 on average
    assert head_share(adult) < 0.14
    assert 0.15 < head_share(children) < _CHILD_LENGTHS["head"]
    with pytest.raises(PoseAdaptError, match="child_proportions"):
        get_population("adult", child_proportions=1.5)
    # a blend range towards the toddler's end: bigger heads still, the default range draws as before
    toddlers = get_population("adult", child_proportions=1.0, child_blend=(0.6, 1.0))
    assert head_share(children) + 0.02 < head_share(toddlers) < _CHILD_LENGTHS["head"]
    with pytest.raises(PoseAdaptError, match="child_blend"):
        get_population("adult", child_blend=(0.8, 0.2))
    # a population that does not ask for children draws nothing extra: renders stay identical
    same = get_population("adult", child_proportions=0.0)
    a, b = render_sample(6, "adult", view="random", size=64), render_sample(6, same, view="random", size=64)
    np.testing.assert_array_equal(a.image, b.image)


def test_one_piece_and_swimwear_outfits_and_others_unchanged():
    def outfits(**kw: float) -> list:
        rng = np.random.default_rng(8)
        return [sample_outfit(rng, "adult", 0.0, 1.0, **kw) for _ in range(200)]

    def same(o: object, part: str, other: str) -> bool:
        return np.array_equal(o.colors[part], o.colors[other])

    # one piece: the same cloth from the top to the legs; swimwear: bare arms and legs
    assert all(same(o, "top", "bottom") and same(o, "sleeve", "leg") for o in outfits(one_piece=1.0))
    assert all(same(o, "sleeve", "skin") and same(o, "leg", "skin") for o in outfits(swimwear=1.0))
    separates = outfits()
    assert sum(same(o, "leg", "skin") for o in separates) < 0.5 * len(separates)
    with pytest.raises(PoseAdaptError, match="one_piece"):
        get_population("adult", one_piece=0.7, swimwear=0.6)
    # a population that does not ask for them draws nothing extra: renders stay identical
    plain = get_population("adult", one_piece=0.0, swimwear=0.0)
    a, b = render_sample(7, "adult", view="random", size=64), render_sample(7, plain, view="random", size=64)
    np.testing.assert_array_equal(a.image, b.image)


def test_thermal_look_keeps_every_label_and_images_by_heat_not_colour():
    """The thermal camera sees the same scene: identical keypoints, visibility and silhouettes; a grey image in
    which bodies are warmer than the room and bare skin warmer than clothing, whatever the clothes' colours."""
    skin_minus_cloth, body_minus_room = [], []
    for i in range(6):
        seen = render_sample(i, "adult", view="random", size=128, seed=11)
        hot = render_sample(i, "adult", view="random", size=128, seed=11, look="thermal")
        for p, q in zip(seen.persons, hot.persons, strict=True):
            assert np.array_equal(p.pixels, q.pixels) and np.array_equal(p.visibility, q.visibility)
            assert np.array_equal(p.mask, q.mask)
        img = hot.image.astype(np.float64)
        assert np.array_equal(hot.image[..., 0], hot.image[..., 1]) and np.array_equal(
            hot.image[..., 1], hot.image[..., 2]
        )
        mask = seen.persons[0].mask
        eroded = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        room = ~cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        if eroded.sum() < 50:
            continue
        body_minus_room.append(img[..., 0][eroded].mean() - img[..., 0][room].mean())
        # the head is bare skin; the chest wears a top (never skin-coloured in the adult style)
        pts = seen.persons[0].pixels
        head, chest = (
            pts[KEYPOINT_INDEX["nose"]],
            0.5 * (pts[KEYPOINT_INDEX["left_shoulder"]] + pts[KEYPOINT_INDEX["right_hip"]]),
        )
        vis = seen.persons[0].visibility
        if vis[KEYPOINT_INDEX["nose"]] == 2 and vis[KEYPOINT_INDEX["left_shoulder"]] == 2:
            hx, hy = np.clip(np.round(head).astype(int), 0, 127)
            cx, cy = np.clip(np.round(chest).astype(int), 0, 127)
            if eroded[hy, hx] and eroded[cy, cx]:
                skin_minus_cloth.append(img[hy, hx, 0] - img[cy, cx, 0])
    assert len(body_minus_room) >= 4 and min(body_minus_room) > 40
    assert skin_minus_cloth and np.mean(skin_minus_cloth) > 10
    assert np.array_equal(
        render_sample(3, "infant", view="top", size=64, seed=2, look="thermal").image,
        next(iter_samples("infant", view="top", n=1, size=64, seed=2, start=3, look="thermal")).image,
    )
    with pytest.raises(PoseAdaptError, match="unknown look 'sonar'"):
        render_sample(0, "adult", look="sonar")
