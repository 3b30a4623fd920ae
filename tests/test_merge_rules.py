"""Merge rules on hand-made arrays: what is accepted, what is zeroed, confidence and source per point."""

from __future__ import annotations

import numpy as np
import pytest

from labeltool.label_codes import (
    ACCEPTED,
    FAR_FROM_ANKLE,
    FAR_FROM_WRIST,
    HANDEDNESS_MISMATCH,
    LOW_CONFIDENCE,
    NO_DETECTION,
    NO_PROPOSAL,
    NOT_RUN,
    OUTSIDE_PROPOSAL,
    SOURCE_GT,
    SOURCE_NONE,
    TOO_FEW_POINTS,
)
from labeltool.layouts import WHOLEBODY133
from labeltool.merge.rules import MergeRules, PartCandidate, body_from_teacher, merge_persons
from labeltool.teachers.base import HANDEDNESS_CONTRADICTS

FACE, LHAND, RHAND, FOOT = 4, 5, 6, 7  # source codes used in these tests
PARTS = WHOLEBODY133.parts
SIZE = (480, 640)  # height, width


def standing_body() -> np.ndarray:
    """A person facing the camera: (1, 17, 3), every point labelled (v=2) except the right ear (v=0)."""
    xy = [
        (320, 100), (330, 90), (310, 90), (340, 95), (0, 0),  # nose, eyes, ears
        (360, 150), (280, 150), (370, 210), (270, 210), (375, 260), (265, 260),  # shoulders, elbows, wrists
        (350, 270), (290, 270), (352, 350), (288, 350), (354, 430), (286, 430),  # hips, knees, ankles
    ]  # fmt: skip
    body = np.zeros((1, 17, 3))
    body[0, :, :2] = xy
    body[0, :, 2] = 2
    body[0, 4] = 0  # right ear unlabelled
    body[0, 7, 2] = 1  # left elbow labelled, occluded
    return body


def face_prediction(conf: float = 0.9, shift=(0.0, 0.0), proposed: bool = True) -> PartCandidate:
    pts = np.zeros((1, 68, 3))
    angle = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    pts[0, :, 0] = 320 + 15 * np.cos(angle) + shift[0]
    pts[0, :, 1] = 105 + 18 * np.sin(angle) + shift[1]
    pts[0, :, 2] = conf
    return PartCandidate(FACE, pts, np.array([proposed]), np.array([[295.0, 80.0, 345.0, 130.0]]))


def hand_prediction(root, conf: float = 0.8, mismatch: bool = False, source: int = LHAND) -> PartCandidate:
    pts = np.zeros((1, 21, 3))
    pts[0, :, 0] = root[0] + np.linspace(0, 12, 21)
    pts[0, :, 1] = root[1] + np.linspace(0, 20, 21)
    pts[0, :, 2] = conf
    box = np.array([[root[0] - 20, root[1] - 10, root[0] + 30, root[1] + 40]])
    return PartCandidate(source, pts, np.array([True]), box, {HANDEDNESS_CONTRADICTS: np.array([mismatch])})


def merge(parts, body=None, rules=None):
    body = standing_body() if body is None else body
    rules = rules or MergeRules()
    conf = np.where(body[:, :, 2] > 0, 1.0, 0.0)
    src = np.full(body.shape[:2], SOURCE_GT, dtype=np.int8)
    return merge_persons(body, conf, src, parts, SIZE, rules)


def test_body_is_never_altered_and_parts_not_run_stay_zero():
    body = standing_body()
    out = merge({})
    np.testing.assert_array_equal(out.keypoints[0, PARTS["body"]], body[0])
    np.testing.assert_array_equal(out.confidence[0, :17], (body[0, :, 2] > 0).astype(np.float32))
    np.testing.assert_array_equal(out.source[0, :17], np.where(body[0, :, 2] > 0, SOURCE_GT, SOURCE_NONE))
    assert not out.keypoints[0, 17:].any() and not out.confidence[0, 17:].any() and not out.source[0, 17:].any()
    assert all(out.status[p] == [NOT_RUN] for p in ("foot", "face", "lefthand", "righthand"))


def test_face_accepted_gets_points_confidence_and_source():
    pred = face_prediction(conf=0.9)
    out = merge({"face": pred})
    idx = PARTS["face"]
    assert out.status["face"] == [ACCEPTED]
    np.testing.assert_array_equal(out.keypoints[0, idx, :2], pred.points[0, :, :2])
    assert (out.keypoints[0, idx, 2] == 2).all()
    np.testing.assert_allclose(out.confidence[0, idx], 0.9, rtol=1e-6)
    assert (out.source[0, idx] == FACE).all()
    # the body is untouched by an accepted part
    np.testing.assert_array_equal(out.keypoints[0, :17], standing_body()[0])


@pytest.mark.parametrize(
    "pred, status",
    [
        (face_prediction(conf=0.3), LOW_CONFIDENCE),
        (face_prediction(conf=0.0), NO_DETECTION),
        (face_prediction(proposed=False), NO_PROPOSAL),
        (face_prediction(shift=(200.0, 0.0)), OUTSIDE_PROPOSAL),
    ],
)
def test_rejected_face_is_all_zeros(pred, status):
    out = merge({"face": pred})
    assert out.status["face"] == [status]
    idx = PARTS["face"]
    assert not out.keypoints[0, idx].any() and not out.confidence[0, idx].any() and not out.source[0, idx].any()


def test_points_outside_the_image_are_dropped_and_too_few_reject_the_part():
    pred = face_prediction(shift=(-310.0, 0.0))  # centre x = 10, radius 15: some points left of x = 0
    pred.boxes[:] = [[-20.0, 80.0, 40.0, 130.0]]
    inside = pred.points[0, :, 0] >= 0
    assert 34 <= inside.sum() < 68
    out = merge({"face": pred})
    assert out.status["face"] == [ACCEPTED]
    idx = PARTS["face"]
    assert not out.keypoints[0, idx[~inside]].any() and (out.keypoints[0, idx[inside], 2] == 2).all()
    assert not out.confidence[0, idx[~inside]].any() and not out.source[0, idx[~inside]].any()
    pred.points[0, :, 0] -= 12.0  # centre x = -2: fewer than face_min_points = 34 inside
    assert (pred.points[0, :, 0] >= 0).sum() < 34
    out = merge({"face": pred})
    assert out.status["face"] == [TOO_FEW_POINTS]
    assert not out.keypoints[0, idx].any()


def test_hand_rules_handedness_and_wrist_distance():
    body = standing_body()
    left_wrist = body[0, 9, :2]
    near = hand_prediction(left_wrist + [2.0, 3.0])
    assert merge({"lefthand": near}).status["lefthand"] == [ACCEPTED]
    flagged = hand_prediction(left_wrist, mismatch=True)
    assert merge({"lefthand": flagged}).status["lefthand"] == [HANDEDNESS_MISMATCH]
    lenient = MergeRules(reject_handedness_mismatch=False)
    assert merge({"lefthand": flagged}, rules=lenient).status["lefthand"] == [ACCEPTED]
    # hand size (diagonal of its points) is ~23 px: a root 40 px from the wrist is too far
    far = hand_prediction(left_wrist + [40.0, 0.0])
    out = merge({"lefthand": far})
    assert out.status["lefthand"] == [FAR_FROM_WRIST]
    assert not out.keypoints[0, PARTS["lefthand"]].any()


def test_both_hands_land_in_their_own_slots():
    body = standing_body()
    left = hand_prediction(body[0, 9, :2], source=LHAND)
    right = hand_prediction(body[0, 10, :2], source=RHAND)
    out = merge({"lefthand": left, "righthand": right})
    np.testing.assert_array_equal(out.keypoints[0, PARTS["lefthand"], :2], left.points[0, :, :2])
    np.testing.assert_array_equal(out.keypoints[0, PARTS["righthand"], :2], right.points[0, :, :2])
    assert (out.source[0, PARTS["righthand"]] == RHAND).all()


def foot_prediction(body: np.ndarray, conf) -> PartCandidate:
    """Toes 20 px in front of each ankle, heel 8 px behind (L big, L small, L heel, R big, R small, R heel)."""
    la, ra = body[0, 15, :2], body[0, 16, :2]
    pts = np.zeros((1, 6, 3))
    pts[0, :, :2] = [la + [8, 15], la + [15, 12], la + [-6, 5], ra + [-8, 15], ra + [-15, 12], ra + [6, 5]]
    pts[0, :, 2] = conf
    return PartCandidate(FOOT, pts, np.array([True]), np.array([[250.0, 400.0, 390.0, 470.0]]))


def test_foot_points_are_accepted_one_by_one():
    body = standing_body()
    body[0, 16, 2] = 0  # right ankle unlabelled: no right foot point may be accepted
    pred = foot_prediction(body, [0.9, 0.0, 0.1, 0.9, 0.9, 0.9])  # small toe: no prediction; heel: low
    out = merge({"foot": pred}, body=body)
    assert out.status["foot"] == [ACCEPTED]
    v = out.keypoints[0, PARTS["foot"], 2]
    np.testing.assert_array_equal(v, [2, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(out.keypoints[0, 17, :2], pred.points[0, 0, :2])
    # a left toe farther from the ankle than one shin length (80 px) is dropped
    pred.points[0, 0, :2] = body[0, 15, :2] + [0, 90]
    assert merge({"foot": pred}, body=body).status["foot"] == [FAR_FROM_ANKLE]


def test_several_persons_are_merged_independently():
    body = np.concatenate([standing_body(), standing_body()])
    body[1, :, 0] += 100
    face = face_prediction()
    face.points = np.concatenate([face.points, face.points])
    face.proposed = np.array([True, True])
    face.boxes = np.concatenate([face.boxes, face.boxes])  # person 1's face centre falls outside this box
    conf = np.ones(body.shape[:2])
    src = np.full(body.shape[:2], SOURCE_GT, dtype=np.int8)
    out = merge_persons(body, conf, src, {"face": face}, SIZE, MergeRules())
    assert out.status["face"] == [ACCEPTED, ACCEPTED]
    face.points[1, :, 0] += 100
    out = merge_persons(body, conf, src, {"face": face}, SIZE, MergeRules())
    assert out.status["face"] == [ACCEPTED, OUTSIDE_PROPOSAL]
    np.testing.assert_array_equal(out.keypoints[:, :17], body)


def test_body_from_teacher_keeps_confident_points_only():
    raw = np.zeros((1, 17, 3))
    raw[0, :, :2] = np.arange(34).reshape(17, 2)
    raw[0, :, 2] = np.linspace(0, 1, 17)
    raw[0, 16, 0] = 700.0  # outside the 640 x 480 image, confidence 1
    kpts, conf, src = body_from_teacher(raw, 3, SIZE, MergeRules(body_min_conf=0.5))
    keep = raw[0, :, 2] >= 0.5
    keep[16] = False
    np.testing.assert_array_equal(kpts[0, keep, :2], raw[0, keep, :2])
    assert (kpts[0, keep, 2] == 2).all() and not kpts[0, ~keep].any()
    np.testing.assert_array_equal(src[0], np.where(keep, 3, 0))
    np.testing.assert_allclose(conf[0], np.where(keep, raw[0, :, 2], 0), rtol=1e-6)
